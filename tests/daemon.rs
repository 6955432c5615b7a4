//! The `mimi-bridge` binary as a user runs it: real processes, real HTTP, real signals.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{BIN, Daemon};

fn write_config(dir: &Path, body: &str) -> String {
    let path = dir.join("bridge.toml");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

fn sqlite_config(dir: &Path) -> String {
    write_config(
        dir,
        &format!(
            "[provider]\ndomain = \"a.example\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
             [database]\nurl = \"sqlite://{}/bridge.db\"\n",
            dir.display()
        ),
    )
}

#[tokio::test]
async fn run_serves_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path());
    let daemon = Daemon::start(dir.path(), &["run", "--config", &config]);
    let resp = reqwest::get(daemon.url("/health")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "sqlite");
    assert_eq!(body["provider"], "a.example");

    let resp = reqwest::get(daemon.url("/no/such/endpoint")).await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/endpoint")
    );

    let status = daemon.stop("-TERM");
    assert!(status.success(), "graceful exit, got {status}");
    assert!(dir.path().join("bridge.db").exists());
}

#[tokio::test]
async fn run_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path());
    let daemon = Daemon::start(dir.path(), &["run", "--config", &config]);
    let status = daemon.stop("-INT");
    assert!(status.success(), "graceful exit, got {status}");
}

/// The README's run command: no config file, embedded defaults, SQLite under ./data.
#[tokio::test]
async fn run_without_config_uses_sqlite_under_data() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &["run"]);
    assert!(daemon.addr.starts_with("127.0.0.1:"), "{}", daemon.addr);
    let resp = reqwest::get(daemon.url("/health")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(dir.path().join("data/mimi-bridge.db").exists());
    let key = std::fs::read_to_string(dir.path().join("data/state.key")).unwrap();
    assert_eq!(key.trim().len(), 64, "a fresh 32-byte state key, in hex");
    let log = daemon.log();
    let status = daemon.stop("-TERM");
    assert!(status.success(), "{status}; log: {log:?}");
}

#[test]
fn check_config_accepts_the_example() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/mimi-bridge.example.toml"
    );
    let out = Command::new(BIN)
        .args(["check-config", "--config", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
}

#[test]
fn check_config_rejects_a_broken_config_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for (body, field) in [
        ("[server]\nlisten = \"not-an-address\"\n", "server.listen"),
        ("[database]\nurl = \"mysql://root@h/db\"\n", "database.url"),
        ("[provider]\ndomain = \"bad domain\"\n", "provider.domain"),
        ("[database]\nmax_conections = 3\n", "max_conections"),
    ] {
        let config = write_config(dir.path(), body);
        let out = Command::new(BIN)
            .args(["check-config", "--config", &config])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{body}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(field),
            "{body}: stderr does not name {field}: {err}"
        );
    }
}

#[test]
fn migrate_applies_the_schema_and_reports_versions() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path());
    let out = Command::new(BIN)
        .args(["migrate", "--config", &config])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("(was 0;"), "{stdout}");
    let again = Command::new(BIN)
        .args(["migrate", "--config", &config])
        .output()
        .unwrap();
    let again = String::from_utf8_lossy(&again.stdout);
    let version = again.split_whitespace().nth(3).unwrap();
    assert!(again.contains(&format!("(was {version};")), "{again}");
}

#[test]
fn run_refuses_an_unusable_database_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // a file where the database folder should be
    std::fs::write(dir.path().join("blocker"), b"").unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"sqlite://{}/blocker/x.db\"\n",
            dir.path().display()
        ),
    );
    let out = Command::new(BIN)
        .args(["run", "--config", &config])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot create the database folder"), "{err}");
}

#[test]
fn run_refuses_a_malformed_state_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path());
    let out = Command::new(BIN)
        .args(["run", "--config", &config])
        .current_dir(dir.path())
        .env("MIMI_BRIDGE_STATE_KEY", "not-hex")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MIMI_BRIDGE_STATE_KEY"), "{err}");
}
