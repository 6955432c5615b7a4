//! Shared set-up for integration tests: real databases, real processes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mimi_bridge::store::{Store, StoreOptions};

/// The Postgres server the tests use. Override with `MIMI_TEST_POSTGRES_URL`
/// (any database on the server works: each test creates and drops its own database).
pub fn postgres_admin_url() -> String {
    std::env::var("MIMI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh, empty database for one test; dropped (Postgres) or deleted (SQLite) at the end.
pub struct TestDb {
    pub url: String,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/store.db", dir.path().display());
        TestDb {
            url,
            backend: "sqlite",
            _dir: Some(dir),
            pg_name: None,
        }
    }

    pub async fn postgres() -> TestDb {
        let admin = postgres_admin_url();
        let name = format!(
            "mimi_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let store = Store::open(&StoreOptions::new(&admin)).await.unwrap_or_else(|e| {
            panic!(
                "the store tests need Postgres ({e}). Start one, or point MIMI_TEST_POSTGRES_URL \
                 at a server where this user may CREATE DATABASE."
            )
        });
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(store.pool())
        .await
        .expect("drop old test database");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(store.pool())
            .await
            .expect("create test database");
        store.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        TestDb {
            url: format!("{base}/{name}"),
            backend: "postgres",
            _dir: None,
            pg_name: Some(name),
        }
    }

    pub async fn store(&self) -> Store {
        Store::open_and_migrate(&StoreOptions::new(&self.url))
            .await
            .expect("open and migrate the test store")
    }
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Best effort, on a thread of its own: Drop cannot be async.
            let admin = postgres_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let store = Store::open(&StoreOptions::new(&admin)).await.ok()?;
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(store.pool())
                    .await;
                    store.close().await;
                    Some(())
                })
            })
            .join();
        }
    }
}

/// Generates one `#[tokio::test]` per backend for a test body `async fn(TestDb)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::TestDb::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::TestDb::postgres().await).await
                }
            )*
        }
    };
}

pub const BIN: &str = env!("CARGO_BIN_EXE_mimi-bridge");

/// A running daemon whose log lines are collected from stderr.
pub struct Daemon {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    /// The address of the HTTP listener.
    pub addr: String,
    /// Every log line read while starting.
    pub startup: Vec<String>,
}

impl Daemon {
    pub fn start(cwd: &Path, args: &[&str]) -> Daemon {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .env(
                "RUST_LOG",
                std::env::var("MIMI_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("MIMI_BRIDGE_STATE_KEY")
            .env_remove("MIMI_BRIDGE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mimi-bridge");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    // The HTTP listener logs last; the MIMI listener's line comes before it.
                    if !line.contains("MIMI listening on")
                        && let Some(rest) = line.split("listening on ").nth(1)
                    {
                        break rest.split_whitespace().next().unwrap().to_string();
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "the daemon did not report its address; it said:\n{}",
                        seen.join("\n")
                    );
                }
            }
        };
        Daemon {
            child,
            lines,
            addr,
            startup: seen,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a signal and waits for the exit status.
    pub fn stop(mut self, signal: &str) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the daemon did not stop after {signal}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// The address logged for a listener, e.g. "MIMI listening on".
    pub fn logged_addr(&self, prefix: &str) -> Option<String> {
        self.startup
            .iter()
            .find_map(|l| l.split(prefix).nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    }
}

/// The `type` of each command, as on the wire (`"message"`, `"user_left"`, …).
pub fn command_types(commands: &[mimi_bridge_connector::BridgeCommand]) -> Vec<String> {
    commands
        .iter()
        .map(|c| {
            serde_json::to_value(c).expect("a command serialises")["type"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// An `/update` request carrying `commit`, with a partial GroupInfo (what a hub test needs).
pub fn commit_request(commit: &[u8]) -> mimi_bridge::protocol::wire::UpdateRequest {
    use mimi_bridge::protocol::wire::{
        GroupInfoOption, HandshakeBundle, HandshakeBundleBody, MlsMessage, PartialGroupInfo,
        RatchetTreeOption, RatchetTreePresence, UpdateRequest,
    };
    UpdateRequest {
        bundle: HandshakeBundle {
            proposal_or_commit: MlsMessage::from_bytes(commit).unwrap(),
            body: HandshakeBundleBody::Commit {
                welcome: None,
                group_info_option: GroupInfoOption::Partial(PartialGroupInfo {
                    ratchet_tree_presence: RatchetTreePresence::NoRatchetTree,
                    group_info_extensions: vec![],
                    signature: vec![].into(),
                }),
                ratchet_tree_option: RatchetTreeOption::DistributionService,
            },
        },
    }
}

/// A connector whose legacy network is a list: it records each command once, and names a new
/// room `room_id` when it is asked to create one.
#[derive(Default)]
pub struct RecordingConnector {
    pub commands: std::sync::Mutex<Vec<mimi_bridge_connector::BridgeCommand>>,
    pub room_id: Option<&'static str>,
}

#[mimi_bridge_connector::async_trait]
impl mimi_bridge_connector::Connector for RecordingConnector {
    fn name(&self) -> &str {
        "recording"
    }
    fn version(&self) -> &str {
        "0"
    }
    fn capabilities(&self) -> mimi_bridge_connector::Capabilities {
        mimi_bridge_connector::Capabilities::all()
    }
    async fn start(
        &self,
        _: std::sync::Arc<dyn mimi_bridge_connector::EventSink>,
    ) -> Result<(), mimi_bridge_connector::ConnectorError> {
        Ok(())
    }
    async fn stop(&self) -> Result<(), mimi_bridge_connector::ConnectorError> {
        Ok(())
    }
    async fn deliver(
        &self,
        command: &mimi_bridge_connector::BridgeCommand,
    ) -> Result<mimi_bridge_connector::Delivery, mimi_bridge_connector::ConnectorError> {
        let mut commands = self.commands.lock().unwrap();
        if !commands.iter().any(|c| c.command_id == command.command_id) {
            commands.push(command.clone());
        }
        let mut delivery = mimi_bridge_connector::Delivery::done();
        if let (mimi_bridge_connector::CommandKind::RoomCreated { .. }, Some(id)) =
            (&command.kind, self.room_id)
        {
            delivery.room_id = Some(id.into());
        }
        Ok(delivery)
    }
}

/// A plain-text legacy message event's kind.
pub fn text(id: &str, body: &str) -> mimi_bridge_connector::EventKind {
    mimi_bridge_connector::EventKind::Message {
        message_id: id.into(),
        content: mimi_bridge_connector::MessageContent::text(body),
        reply_to: None,
        expires: None,
    }
}
