//! Two providers share a room over the MIMI protocol: separate daemon processes, mutual TLS
//! with certificates made by the CLI, driven through each daemon's operator API.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Daemon};
use serde_json::{Value, json};

const TOKEN: &str = "test-admin-token";
const ROOM: &str = "mimi://a.example/r/clubhouse";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Provider {
    daemon: Daemon,
    http: reqwest::Client,
}

impl Provider {
    fn start(
        dir: &Path,
        certs: &Path,
        domain: &str,
        port: u16,
        peer: &str,
        peer_port: u16,
    ) -> Provider {
        let home = dir.join(domain);
        std::fs::create_dir_all(&home).unwrap();
        let config = home.join("bridge.toml");
        std::fs::write(
            &config,
            format!(
                "[provider]\ndomain = \"{domain}\"\n\
                 [server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\nshutdown_grace_seconds = 2\n\
                 [database]\nurl = \"sqlite://{home}/bridge.db\"\n\
                 [mimi.tls]\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{certs}/{domain}.pem\"\n\
                 private_key = \"{certs}/{domain}.key\"\ntrust_anchors = \"{certs}/ca.pem\"\n\
                 [mimi.peers.\"{peer}\"]\naddress = \"127.0.0.1:{peer_port}\"\n",
                home = home.display(),
                certs = certs.display(),
            ),
        )
        .unwrap();
        Provider {
            daemon: Daemon::start(&home, &["run", "--config", config.to_str().unwrap()]),
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        self.daemon.url(path)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls until `check` accepts the answer of GET `path` (the protocol runs in the
    /// background), at most 20 s.
    async fn wait_for(&self, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = self.get(path).await;
            if status == 200 && check(&body) {
                return body;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; last answer {status}: {body}\nlog: {:?}",
                    self.daemon.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn room_path(suffix: &str) -> String {
    let encoded: String = url_encode(ROOM);
    format!("/admin/v1/rooms/{encoded}{suffix}")
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_room_on_a_with_a_user_of_b_messages_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let out = Command::new(BIN)
        .args(["dev-certs", "--out"])
        .arg(&certs)
        .args(["--provider", "a.example", "--provider", "b.example"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (pa, pb) = (free_port(), free_port());
    let a = Provider::start(dir.path(), &certs, "a.example", pa, "b.example", pb);
    let b = Provider::start(dir.path(), &certs, "b.example", pb, "a.example", pa);

    let (s, _) = a
        .post(
            "/admin/v1/clients",
            json!({ "client": "mimi://a.example/d/alice/bridge" }),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = b
        .post(
            "/admin/v1/clients",
            json!({ "client": "mimi://b.example/d/bob/bridge" }),
        )
        .await;
    assert_eq!(s, 201);

    // a resolves b's user by handle and by nickname with b's /identifierQuery (§5.8)
    for query in [
        json!({ "provider": "b.example", "handle": "im:bob@b.example" }),
        json!({ "provider": "b.example", "nick": "bob" }),
    ] {
        let (s, found) = a.post("/admin/v1/lookups", query.clone()).await;
        assert_eq!(s, 200, "{query}: {found}");
        assert_eq!(found["code"], "success", "{query}: {found}");
        assert_eq!(found["users"], json!(["mimi://b.example/u/bob"]), "{query}");
    }
    let (s, found) = a
        .post(
            "/admin/v1/lookups",
            json!({ "provider": "b.example", "nick": "nobody" }),
        )
        .await;
    assert_eq!((s, &found["code"]), (200, &json!("notFound")), "{found}");
    assert_eq!(found["users"], json!([]));
    let (s, body) = a
        .post(
            "/admin/v1/lookups",
            json!({ "provider": "b.example", "nick": "bob", "handle": "im:bob@b.example" }),
        )
        .await;
    assert_eq!(s, 400, "{body}");

    // the room is created on a, its hub
    let (s, room) = a
        .post(
            "/admin/v1/rooms",
            json!({ "room": ROOM, "creator": "mimi://a.example/d/alice/bridge" }),
        )
        .await;
    assert_eq!(s, 201, "{room}");
    assert_eq!(room["epoch"], 0);

    // without bob's consent, b hands out no key material: the add is refused
    let (s, body) = a
        .post(
            &room_path("/members"),
            json!({ "committer": "mimi://a.example/d/alice/bridge", "user": "mimi://b.example/u/bob" }),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("NoConsent"),
        "{body}"
    );
    // alice asks, bob grants (for this room)
    let (s, body) = a
        .post(
            "/admin/v1/consent/requests",
            json!({ "requester": "mimi://a.example/u/alice", "target": "mimi://b.example/u/bob", "room": ROOM }),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let (s, body) = b
        .post(
            "/admin/v1/consent/answers",
            json!({ "requester": "mimi://a.example/u/alice", "target": "mimi://b.example/u/bob", "room": ROOM, "grant": true }),
        )
        .await;
    assert_eq!(s, 202, "{body}");

    // bob of b is added: key material from b, one commit with the participant list and the
    // Add, the Welcome delivered to b through /notify
    let (s, body) = a
        .post(
            &room_path("/members"),
            json!({ "committer": "mimi://a.example/d/alice/bridge", "user": "mimi://b.example/u/bob" }),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let on_b = b
        .wait_for(&room_path(""), "bob to join on b", |v| v["epoch"] == 1)
        .await;
    let on_a = a
        .wait_for(&room_path(""), "the add on a", |v| v["epoch"] == 1)
        .await;
    assert_eq!(on_a["participants"], on_b["participants"]);
    assert_eq!(
        on_a["epoch_authenticator"], on_b["epoch_authenticator"],
        "both group contexts agree"
    );
    assert_eq!(on_b["participants"][1]["user"], "mimi://b.example/u/bob");

    // a message from a to b
    let (s, _) = a
        .post(
            &room_path("/messages"),
            json!({ "sender": "mimi://a.example/d/alice/bridge", "text": "hello bob" }),
        )
        .await;
    assert_eq!(s, 202);
    let got = b
        .wait_for(&room_path("/messages"), "alice's message on b", |v| {
            v.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(got[0]["text"], "hello bob");
    assert_eq!(got[0]["sender"], "mimi://a.example/d/alice/bridge");

    // and back, through the hub's /submitMessage
    let (s, _) = b
        .post(
            &room_path("/messages"),
            json!({ "sender": "mimi://b.example/d/bob/bridge", "text": "hello alice" }),
        )
        .await;
    assert_eq!(s, 202);
    let got = a
        .wait_for(&room_path("/messages"), "bob's message on a", |v| {
            v.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(got[0]["text"], "hello alice");
    assert_eq!(got[0]["sender"], "mimi://b.example/d/bob/bridge");
    assert_eq!(got.as_array().unwrap().len(), 1, "delivered once");

    // a role change: bob becomes group_admin (3), on both sides
    let (s, body) = a
        .post(
            &room_path("/roles"),
            json!({ "committer": "mimi://a.example/d/alice/bridge", "user": "mimi://b.example/u/bob", "role": 3 }),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let on_b = b
        .wait_for(&room_path(""), "the role change on b", |v| v["epoch"] == 2)
        .await;
    let on_a = a
        .wait_for(&room_path(""), "the role change on a", |v| v["epoch"] == 2)
        .await;
    assert_eq!(on_b["participants"][1]["role"], 3);
    assert_eq!(on_a["participants"], on_b["participants"]);
    assert_eq!(on_a["epoch_authenticator"], on_b["epoch_authenticator"]);

    // bob, now an admin, adds dave of a from the follower side: key material through the hub,
    // the commit through /update, dave joining on a from the Welcome
    let (s, _) = a
        .post(
            "/admin/v1/clients",
            json!({ "client": "mimi://a.example/d/dave/bridge" }),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = a
        .post(
            "/admin/v1/consent/answers",
            json!({ "requester": "mimi://b.example/u/bob", "target": "mimi://a.example/u/dave", "grant": true }),
        )
        .await;
    assert_eq!(s, 202);
    let (s, body) = b
        .post(
            &room_path("/members"),
            json!({ "committer": "mimi://b.example/d/bob/bridge", "user": "mimi://a.example/u/dave" }),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let on_a = a
        .wait_for(&room_path(""), "dave added on a", |v| v["epoch"] == 3)
        .await;
    let on_b = b
        .wait_for(&room_path(""), "dave added on b", |v| v["epoch"] == 3)
        .await;
    assert!(
        on_a["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["user"] == "mimi://a.example/u/dave")
    );
    assert_eq!(on_a["members"], on_b["members"]);
    assert_eq!(on_a["epoch_authenticator"], on_b["epoch_authenticator"]);

    // carol of b joins, then is banned: role 1, no clients left, on both sides
    let (s, _) = b
        .post(
            "/admin/v1/clients",
            json!({ "client": "mimi://b.example/d/carol/bridge" }),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = b
        .post(
            "/admin/v1/consent/answers",
            json!({ "requester": "mimi://a.example/u/alice", "target": "mimi://b.example/u/carol", "grant": true }),
        )
        .await;
    assert_eq!(s, 202);
    let (s, body) = a
        .post(
            &room_path("/members"),
            json!({ "committer": "mimi://a.example/d/alice/bridge", "user": "mimi://b.example/u/carol" }),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    b.wait_for(&room_path(""), "carol on b", |v| v["epoch"] == 4)
        .await;
    // carol's second device joins by external commit, with the GroupInfo from the hub
    let (s, _) = b
        .post(
            "/admin/v1/clients",
            json!({ "client": "mimi://b.example/d/carol/phone" }),
        )
        .await;
    assert_eq!(s, 201);
    let (s, body) = b
        .post(
            &room_path("/devices"),
            json!({ "client": "mimi://b.example/d/carol/phone" }),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let carol_clients = |v: &Value| {
        v["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter(|c| c["user"] == "mimi://b.example/u/carol")
                    .count()
            })
            .unwrap_or(0)
    };
    let on_a = a
        .wait_for(&room_path(""), "carol's phone on a", |v| v["epoch"] == 5)
        .await;
    let on_b = b
        .wait_for(&room_path(""), "carol's phone on b", |v| v["epoch"] == 5)
        .await;
    assert_eq!(carol_clients(&on_a), 2);
    assert_eq!(on_a["members"], on_b["members"]);
    assert_eq!(on_a["epoch_authenticator"], on_b["epoch_authenticator"]);
    let (s, body) = a
        .post(
            &room_path("/removals"),
            json!({ "committer": "mimi://a.example/d/alice/bridge", "user": "mimi://b.example/u/carol", "ban": true }),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let on_b = b
        .wait_for(&room_path(""), "the ban on b", |v| v["epoch"] == 6)
        .await;
    let on_a = a
        .wait_for(&room_path(""), "the ban on a", |v| v["epoch"] == 6)
        .await;
    let carol = on_a["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user"] == "mimi://b.example/u/carol")
        .unwrap()
        .clone();
    assert_eq!(carol["role"], 1, "banned");
    assert!(
        !on_a["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user"] == "mimi://b.example/u/carol"),
        "carol's clients are gone"
    );
    assert_eq!(on_a["participants"], on_b["participants"]);
    assert_eq!(on_a["epoch_authenticator"], on_b["epoch_authenticator"]);

    // bob leaves: his proposals are cached by the hub and committed by the next committer
    let (s, body) = b
        .post(
            &room_path("/leave"),
            json!({ "client": "mimi://b.example/d/bob/bridge" }),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    a.wait_for(&room_path(""), "bob's leave cached on a", |v| {
        v["pending_proposals"] == 2
    })
    .await;
    let (s, body) = a
        .post(
            &room_path("/commit"),
            json!({ "committer": "mimi://a.example/d/alice/bridge" }),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let on_a = a
        .wait_for(&room_path(""), "the leave committed on a", |v| {
            v["epoch"] == 7
        })
        .await;
    assert!(
        !on_a["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["user"] == "mimi://b.example/u/bob")
    );
    assert_eq!(on_a["pending_proposals"], 0);
    // b has no member left in the room; its view of the room stays, at the epoch it left
    let on_b = b
        .wait_for(&room_path(""), "the leave committed on b", |v| {
            v["epoch"] == 7
        })
        .await;
    assert_eq!(on_b["participants"], on_a["participants"]);
    assert!(
        !on_b["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["client"]
                .as_str()
                .unwrap()
                .starts_with("mimi://b.example/")),
        "{on_b}"
    );
    assert_eq!(
        on_b["epoch_authenticator"],
        Value::Null,
        "b has no member to tell it"
    );
    let dead = a.get("/admin/v1/outbox/dead-letters").await;
    assert_eq!(
        dead.1.as_array().map(Vec::len),
        Some(0),
        "{dead:?}: {:?}",
        a.daemon.log()
    );

    assert!(b.daemon.stop("-TERM").success());
    assert!(a.daemon.stop("-TERM").success());
}

#[tokio::test]
async fn the_operator_api_needs_its_token_and_explains_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    Command::new(BIN)
        .args(["dev-certs", "--out"])
        .arg(&certs)
        .args(["--provider", "a.example"])
        .output()
        .unwrap();
    let a = Provider::start(
        dir.path(),
        &certs,
        "a.example",
        free_port(),
        "b.example",
        free_port(),
    );
    let r = a
        .http
        .post(a.url("/admin/v1/clients"))
        .json(&json!({"client": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (s, body) = a
        .post(
            "/admin/v1/clients",
            json!({ "client": "mimi://a.example/u/alice" }),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        body["message"].as_str().unwrap().contains("client"),
        "{body}"
    );
    let (s, body) = a
        .post(
            "/admin/v1/clients",
            json!({ "client": "mimi://b.example/d/bob/x" }),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not a client of this provider"),
        "{body}"
    );
    let (s, body) = a.get(&room_path("")).await;
    assert_eq!(s, 404, "{body}");
    assert!(a.daemon.stop("-TERM").success());
}
