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
