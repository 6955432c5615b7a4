//! Legacy providers with the webhook connector, for tests that run several bridges: each
//! provider is a receiver of the bridge's signed commands (in this process), a client of the
//! bridge's inbound event API, and its bridge (a daemon process) speaking MIMI to its peers.
//!
//! Not part of `common/mod.rs`: a test that wants it declares both
//! `mod common;` and `#[path = "common/webhook.rs"] mod webhook;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mimi_bridge_connector::{BridgeCommand, CommandKind, ConnectorEvent, EventKind};
use mimi_bridge_webhook::{ProviderClient, Receiver, ReceiverOptions, WebhookSecret};
use serde_json::Value;

use crate::common::{BIN, Daemon};

pub const TOKEN: &str = "test-admin-token";

/// How long any one wait of these tests lasts at most.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A path segment with everything but unreserved characters percent-encoded.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A development CA and one certificate per domain, made by `mimi-bridge dev-certs`.
pub fn dev_certs(dir: &Path, domains: &[&str]) -> PathBuf {
    let certs = dir.join("certs");
    let mut command = Command::new(BIN);
    command.args(["dev-certs", "--out"]).arg(&certs);
    for d in domains {
        command.args(["--provider", d]);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "dev-certs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    certs
}

pub fn secret(byte: u8) -> WebhookSecret {
    WebhookSecret::from_bytes(vec![byte; 32]).unwrap()
}

/// How one provider is set up.
pub struct Setup<'a> {
    pub dir: &'a Path,
    pub certs: &'a Path,
    pub domain: &'a str,
    pub mimi_port: u16,
    /// The other providers and their MIMI ports.
    pub peers: &'a [(&'a str, u16)],
    /// `bridge.consent`: `ask` or `grant`.
    pub consent: &'a str,
    /// The receiver answers 500 to this many calls first.
    pub fail_first: usize,
}

/// A legacy provider: its receiver of commands, its client of the bridge's API, its bridge.
pub struct Provider {
    pub domain: String,
    pub receiver: Receiver,
    pub client: ProviderClient,
    pub bridge: Daemon,
    http: reqwest::Client,
}

impl Provider {
    pub async fn start(s: Setup<'_>) -> Provider {
        let secret = secret(s.domain.len() as u8 + s.domain.as_bytes()[0]);
        let receiver = Receiver::new(ReceiverOptions {
            secrets: vec![secret.clone()],
            fail_first: s.fail_first,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver_url = format!("http://{}/commands", listener.local_addr().unwrap());
        tokio::spawn(mimi_bridge_webhook::serve(
            listener,
            receiver.clone(),
            false,
        ));

        let home = s.dir.join(s.domain);
        std::fs::create_dir_all(&home).unwrap();
        let config = home.join("bridge.toml");
        let mut text = format!(
            "[provider]\ndomain = \"{domain}\"\n\
             [server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\nshutdown_grace_seconds = 2\n\
             [database]\nurl = \"sqlite://{home}/bridge.db\"\n\
             [mimi.tls]\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{certs}/{domain}.pem\"\n\
             private_key = \"{certs}/{domain}.key\"\ntrust_anchors = \"{certs}/ca.pem\"\n",
            domain = s.domain,
            home = home.display(),
            certs = s.certs.display(),
            port = s.mimi_port,
        );
        for (peer, port) in s.peers {
            text.push_str(&format!(
                "[mimi.peers.\"{peer}\"]\naddress = \"127.0.0.1:{port}\"\n"
            ));
        }
        text.push_str(&format!(
            "[bridge]\nconsent = \"{consent}\"\n\
             [webhook]\nurl = \"{receiver_url}\"\nsecrets = [\"{secret}\"]\n",
            consent = s.consent,
            secret = secret.encoded(),
        ));
        // A short room log, to drive the rejoin of clients left behind (see `mls.catch_up_epochs`).
        if let Ok(epochs) = std::env::var("MIMI_TEST_CATCH_UP_EPOCHS") {
            text.push_str(&format!("[mls]\ncatch_up_epochs = {epochs}\n"));
        }
        std::fs::write(&config, text).unwrap();
        let bridge = Daemon::start(&home, &["run", "--config", config.to_str().unwrap()]);
        let client = ProviderClient::new(format!("http://{}", bridge.addr), vec![secret]).unwrap();
        Provider {
            domain: s.domain.to_string(),
            receiver,
            client,
            bridge,
            http: reqwest::Client::new(),
        }
    }

    /// Submits an event; the bridge must store it (202).
    pub async fn submit(&self, event: ConnectorEvent) {
        let answer = self.client.submit(&event).await.unwrap_or_else(|e| {
            panic!("{} refused: {e}", event.event_id);
        });
        assert_eq!((answer.status, answer.duplicate), (202, false));
    }

    /// The commands received so far, each once, in arrival order.
    pub fn commands(&self) -> Vec<BridgeCommand> {
        self.receiver.commands()
    }

    /// Waits (at most [`WAIT`]) until `done` accepts the commands received so far, and returns
    /// them; on time-out, panics with them and the bridge logs of `all`.
    pub async fn wait_until(
        &self,
        what: &str,
        all: &[&Provider],
        done: impl Fn(&[BridgeCommand]) -> bool,
    ) -> Vec<BridgeCommand> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.commands();
            if done(&got) {
                return got;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {} s waiting for {what} at {}; it got {} commands: {}\n{}",
                    WAIT.as_secs(),
                    self.domain,
                    got.len(),
                    describe(&got),
                    logs(all)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /admin/v1/rooms/{room}`: the status and the view.
    pub async fn room_view(&self, room: &str) -> (u16, Value) {
        let r = self
            .http
            .get(
                self.bridge
                    .url(&format!("/admin/v1/rooms/{}", url_encode(room))),
            )
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits (at most [`WAIT`]) until the room's view here satisfies `check`.
    pub async fn wait_view(
        &self,
        room: &str,
        what: &str,
        all: &[&Provider],
        check: impl Fn(u16, &Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, view) = self.room_view(room).await;
            if check(status, &view) {
                return view;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {} s waiting for {what} at {}; last view {status}: {view}\n{}",
                    WAIT.as_secs(),
                    self.domain,
                    logs(all)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The participants' user URIs in a room view, sorted.
pub fn participants(view: &Value) -> Vec<String> {
    let mut users: Vec<String> = view["participants"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["user"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    users.sort();
    users
}

/// The bridges' logs (what they said since last asked), for a failure message.
pub fn logs(all: &[&Provider]) -> String {
    all.iter()
        .map(|p| {
            let lines = p.bridge.log();
            let skip = lines.len().saturating_sub(120);
            format!(
                "----- bridge {} (last {} of {} log lines) -----\n{}",
                p.domain,
                lines.len() - skip,
                lines.len(),
                lines[skip..].join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line per command: its type, room, sender and what it is about.
pub fn describe(commands: &[BridgeCommand]) -> String {
    commands
        .iter()
        .map(|c| {
            let v = serde_json::to_value(c).unwrap_or(Value::Null);
            let detail = match &c.kind {
                CommandKind::Message { content, .. } => content.body.clone(),
                CommandKind::EventFailed { event_id, reason } => format!("{event_id}: {reason}"),
                _ => v
                    .get("target")
                    .map(|t| t.to_string())
                    .or_else(|| v.get("participants").map(|p| p.to_string()))
                    .unwrap_or_default(),
            };
            format!(
                "\n  {} room={} legacy_room={} sender={} {}",
                v["type"].as_str().unwrap_or("?"),
                c.room.uri.as_str(),
                c.room
                    .legacy_id
                    .as_ref()
                    .map(|l| l.as_str().to_string())
                    .unwrap_or_else(|| "-".into()),
                c.sender.uri.as_str(),
                detail
            )
        })
        .collect()
}

/// The `type` of a command, as on the wire.
pub fn kind_of(command: &BridgeCommand) -> String {
    serde_json::to_value(command).unwrap()["type"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn event(id: &str, room: &str, sender: &str, kind: EventKind) -> ConnectorEvent {
    ConnectorEvent::new(id, room, sender, kind)
}

/// A plain text message event.
pub fn text(message_id: &str, body: &str) -> EventKind {
    EventKind::Message {
        message_id: message_id.into(),
        content: mimi_bridge_connector::MessageContent::text(body),
        reply_to: None,
        expires: None,
    }
}

/// The message commands whose body is `body`.
pub fn messages_saying<'c>(commands: &'c [BridgeCommand], body: &str) -> Vec<&'c BridgeCommand> {
    commands
        .iter()
        .filter(|c| matches!(&c.kind, CommandKind::Message { content, .. } if content.body == body))
        .collect()
}
