use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("test.toml"))
}

#[test]
fn the_embedded_defaults_are_valid_and_use_sqlite_under_data() {
    let config = Config::load_or_default(None).unwrap();
    assert_eq!(config.database.url, "sqlite://data/mimi-bridge.db");
    assert!(config.listen_addr().unwrap().ip().is_loopback());
}

#[test]
fn the_example_config_parses_and_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mimi-bridge.example.toml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.provider.domain, "chat.example");
    assert_eq!(config.mimi.code_points, ComponentCodePoints::default());
}

#[test]
fn an_empty_file_means_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn an_unknown_key_is_refused_with_its_name() {
    let err = parse("[server]\nlisen = \"127.0.0.1:1\"\n").unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }));
    assert!(err.to_string().contains("lisen"), "{err}");
}

#[test]
fn a_mistyped_value_is_refused_with_its_line() {
    let err = parse("[database]\nmax_connections = \"eight\"\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("max_connections"), "{text}");
}

fn invalid_field(text: &str) -> String {
    match parse(text).unwrap_err() {
        ConfigError::Invalid { field, .. } => field,
        other => panic!("expected a field error, got {other}"),
    }
}

#[test]
fn each_invalid_value_names_its_field() {
    assert_eq!(
        invalid_field("[provider]\ndomain = \"not a domain\"\n"),
        "provider.domain"
    );
    assert_eq!(
        invalid_field("[server]\nlisten = \"localhost\"\n"),
        "server.listen"
    );
    assert_eq!(
        invalid_field("[database]\nurl = \"mysql://x\"\n"),
        "database.url"
    );
    assert_eq!(
        invalid_field("[database]\nmax_connections = 0\n"),
        "database.max_connections"
    );
    assert_eq!(
        invalid_field("[mimi.code_points]\nroles_list = 0x22\n"),
        "mimi.code_points.roles_list"
    );
    assert_eq!(invalid_field("[log]\nfilter = \"a=b=c\"\n"), "log.filter");
    assert_eq!(
        invalid_field("[mls]\nkey_package_pool = 0\n"),
        "mls.key_package_pool"
    );
    assert_eq!(
        invalid_field("[mls]\nstate_key_file = \"\"\n"),
        "mls.state_key_file"
    );
    assert_eq!(
        invalid_field("[mls]\ncatch_up_epochs = 1\n"),
        "mls.catch_up_epochs"
    );
    assert_eq!(
        invalid_field("[mimi.content_extensions]\nsender_timestamp = 2\n"),
        "mimi.content_extensions"
    );
}

#[test]
fn the_error_message_starts_with_the_file_and_field() {
    let err = parse("[server]\nlisten = \"nope\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("test.toml: `server.listen`"), "{err}");
}

#[test]
fn a_missing_file_is_a_read_error() {
    let err = Config::load(Path::new("/nonexistent/mimi.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
}

#[test]
fn connector_sections_are_checked_field_by_field() {
    const MATRIX: &str = "[matrix]\nhomeserver_url = \"http://127.0.0.1:8008\"\n\
        server_name = \"hs.example\"\nas_token = \"aaaaaaaaaaaaaaaa\"\nhs_token = \"bbbbbbbbbbbbbbbb\"\n";
    let config = parse(MATRIX).unwrap();
    let settings = config.matrix_settings().unwrap();
    assert_eq!(settings.appservice_url, "http://127.0.0.1:8448");
    assert_eq!(settings.bot_user_id(), "@mimibot:hs.example");
    let cases = [
        (
            MATRIX.replace("aaaaaaaaaaaaaaaa", "short"),
            "matrix.as_token",
        ),
        (
            MATRIX.replace("bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa"),
            "matrix.hs_token",
        ),
        (
            MATRIX.replace("http://127.0.0.1:8008", "127.0.0.1:8008"),
            "matrix.homeserver_url",
        ),
        (format!("{MATRIX}prefix = \"Mimi\"\n"), "matrix.prefix"),
        (
            format!("{MATRIX}bot_localpart = \"mimi_bot\"\n"),
            "matrix.bot_localpart",
        ),
        (
            format!(
                "{MATRIX}[webhook]\nurl = \"http://x/\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n"
            ),
            "matrix",
        ),
        (
            "[webhook]\nurl = \"ftp://x\"\nsecrets = []\n".into(),
            "webhook.url",
        ),
        (
            "[webhook]\nurl = \"http://x/\"\nsecrets = []\n".into(),
            "webhook.secrets",
        ),
        (
            "[webhook]\nurl = \"http://x/\"\nsecrets = [\"nope\"]\n".into(),
            "webhook.secrets",
        ),
        (
            "[bridge]\nmax_delivery_attempts = 0\n".into(),
            "bridge.max_delivery_attempts",
        ),
    ];
    for (text, field) in cases {
        assert_eq!(invalid_field(&text), field, "{text}");
    }
}
