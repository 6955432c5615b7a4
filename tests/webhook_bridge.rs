//! Two legacy providers bridged end to end through the webhook connector: provider A's
//! receiver ↔ bridge A (the room's hub) ↔ mutual TLS ↔ bridge B (a follower) ↔ provider B's
//! receiver. Each provider speaks only the webhook JSON API; everything MIMI happens in the
//! bridges (separate daemon processes). B's receiver answers 500 to its first calls: the
//! commands still arrive once each, in order.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{BIN, Daemon};
use mimi_bridge_connector::{
    BridgeCommand, CommandKind, ConnectorEvent, EventKind, MessageContent, UserRef,
};
use mimi_bridge_webhook::{ProviderClient, Receiver, ReceiverOptions, WebhookSecret};
use serde_json::Value;

const TOKEN: &str = "test-admin-token";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn secret(byte: u8) -> WebhookSecret {
    WebhookSecret::from_bytes(vec![byte; 32]).unwrap()
}

/// A legacy provider: its receiver of commands, its client of the bridge's API, its bridge.
struct Provider {
    receiver: Receiver,
    client: ProviderClient,
    bridge: Daemon,
}

struct Setup<'a> {
    dir: &'a Path,
    certs: &'a Path,
    domain: &'a str,
    mimi_port: u16,
    peer: &'a str,
    peer_port: u16,
    consent: &'a str,
    fail_first: usize,
}

impl Provider {
    async fn start(s: Setup<'_>) -> Provider {
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
        std::fs::write(
            &config,
            format!(
                "[provider]\ndomain = \"{domain}\"\n\
                 [server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\nshutdown_grace_seconds = 2\n\
                 [database]\nurl = \"sqlite://{home}/bridge.db\"\n\
                 [mimi.tls]\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{certs}/{domain}.pem\"\n\
                 private_key = \"{certs}/{domain}.key\"\ntrust_anchors = \"{certs}/ca.pem\"\n\
                 [mimi.peers.\"{peer}\"]\naddress = \"127.0.0.1:{peer_port}\"\n\
                 [bridge]\nconsent = \"{consent}\"\n\
                 [webhook]\nurl = \"{receiver_url}\"\nsecrets = [\"{secret}\"]\n",
                domain = s.domain,
                home = home.display(),
                certs = s.certs.display(),
                port = s.mimi_port,
                peer = s.peer,
                peer_port = s.peer_port,
                consent = s.consent,
                secret = secret.encoded(),
            ),
        )
        .unwrap();
        let bridge = Daemon::start(&home, &["run", "--config", config.to_str().unwrap()]);
        let client = ProviderClient::new(format!("http://{}", bridge.addr), vec![secret]).unwrap();
        Provider {
            receiver,
            client,
            bridge,
        }
    }

    /// Submits an event; the bridge must store it (202).
    async fn submit(&self, event: ConnectorEvent) {
        let answer = self.client.submit(&event).await.unwrap_or_else(|e| {
            panic!("{} refused: {e}", event.event_id);
        });
        assert_eq!((answer.status, answer.duplicate), (202, false));
    }

    /// Waits until the receiver has `count` commands.
    async fn commands(&self, count: usize, what: &str) -> Vec<BridgeCommand> {
        match self.receiver.wait_for(count, Duration::from_secs(30)).await {
            Ok(commands) => commands,
            Err(got) => panic!(
                "timed out waiting for {what}: {} of {count} commands arrived: {:#?}\nbridge log: {:#?}",
                got.len(),
                got,
                self.bridge.log()
            ),
        }
    }

    async fn room_view(&self, room: &str) -> Value {
        let encoded: String = room
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        reqwest::Client::new()
            .get(self.bridge.url(&format!("/admin/v1/rooms/{encoded}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn event(id: &str, room: &str, sender: &str, kind: EventKind) -> ConnectorEvent {
    ConnectorEvent::new(id, room, sender, kind)
}

fn message(id: &str, content: MessageContent, reply_to: Option<&str>) -> EventKind {
    EventKind::Message {
        message_id: id.into(),
        content,
        reply_to: reply_to.map(Into::into),
        expires: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_webhook_providers_share_a_room_through_their_bridges() {
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
    let a = Provider::start(Setup {
        dir: dir.path(),
        certs: &certs,
        domain: "a.example",
        mimi_port: pa,
        peer: "b.example",
        peer_port: pb,
        consent: "ask",
        fail_first: 0,
    })
    .await;
    // B's provider lets anyone add its users, and its server fails its first three calls.
    let b = Provider::start(Setup {
        dir: dir.path(),
        certs: &certs,
        domain: "b.example",
        mimi_port: pb,
        peer: "a.example",
        peer_port: pa,
        consent: "grant",
        fail_first: 3,
    })
    .await;
    const ROOM: &str = "mimi://a.example/r/general";

    // A's alice creates a room and invites bob of B (B grants consent on his behalf).
    a.submit(event(
        "a-1",
        "general",
        "alice",
        EventKind::RoomCreated {
            name: Some("General".into()),
        },
    ))
    .await;
    a.submit(event(
        "a-2",
        "general",
        "alice",
        EventKind::UserInvited {
            target: UserRef::mimi("mimi://b.example/u/bob"),
        },
    ))
    .await;
    a.submit(event(
        "a-3",
        "general",
        "alice",
        message("m-1", MessageContent::text("hello bob"), None),
    ))
    .await;

    // B's provider learns of the room (with both participants), then alice's message.
    let got = b.commands(2, "the room and alice's message at B").await;
    let CommandKind::RoomCreated { name, participants } = &got[0].kind else {
        panic!("expected room_created first: {got:#?}");
    };
    assert_eq!(name.as_deref(), Some("General"));
    assert_eq!(got[0].room.uri.as_str(), ROOM);
    let mut users: Vec<_> = participants.iter().map(|p| p.uri.as_str()).collect();
    users.sort();
    assert_eq!(
        users,
        ["mimi://a.example/u/alice", "mimi://b.example/u/bob"]
    );
    let bob = participants
        .iter()
        .find(|p| p.uri.as_str() == "mimi://b.example/u/bob")
        .unwrap();
    assert_eq!(bob.legacy_id.as_ref().map(|l| l.as_str()), Some("bob"));
    let CommandKind::Message {
        content,
        mimi_message_id: alice_msg,
        ..
    } = &got[1].kind
    else {
        panic!("expected alice's message: {got:#?}");
    };
    assert_eq!(content.body, "hello bob");
    assert_eq!(got[1].sender.uri.as_str(), "mimi://a.example/u/alice");
    assert_eq!(got[1].room.legacy_id.as_ref().unwrap().as_str(), "room-1");
    let alice_msg = alice_msg.clone();
    // B's receiver named the room "room-1" and alice's message "msg-1".
    let b_room = "room-1";

    // Bob replies in markdown to alice's message, by B's own id for it.
    b.submit(event(
        "b-1",
        b_room,
        "bob",
        message(
            "b-m-1",
            MessageContent::markdown("**hi** alice"),
            Some("msg-1"),
        ),
    ))
    .await;
    let got = a.commands(1, "bob's reply at A").await;
    let CommandKind::Message {
        content, reply_to, ..
    } = &got[0].kind
    else {
        panic!("expected bob's reply: {got:#?}");
    };
    assert_eq!(content.body, "**hi** alice");
    assert_eq!(content.format, mimi_bridge_connector::TextFormat::Markdown);
    let reply_to = reply_to.as_ref().expect("a reply");
    assert_eq!(
        reply_to.mimi_id, alice_msg,
        "the reply points at alice's message"
    );
    assert_eq!(reply_to.legacy_id.as_ref().unwrap().as_str(), "m-1");
    assert_eq!(got[0].room.legacy_id.as_ref().unwrap().as_str(), "general");
    assert_eq!(got[0].sender.uri.as_str(), "mimi://b.example/u/bob");

    // Alice edits her message; bob reacts to it; alice deletes it and renames the room.
    a.submit(event(
        "a-4",
        "general",
        "alice",
        EventKind::Edit {
            message_id: "m-1".into(),
            content: MessageContent::text("hello bob!"),
        },
    ))
    .await;
    let got = b.commands(3, "alice's edit at B").await;
    let CommandKind::Edit {
        message, content, ..
    } = &got[2].kind
    else {
        panic!("expected the edit: {got:#?}");
    };
    assert_eq!(content.body, "hello bob!");
    assert_eq!(message.mimi_id, alice_msg);
    assert_eq!(message.legacy_id.as_ref().unwrap().as_str(), "msg-1");

    b.submit(event(
        "b-2",
        b_room,
        "bob",
        EventKind::Reaction {
            message_id: "msg-1".into(),
            key: "👍".into(),
            reaction_id: None,
        },
    ))
    .await;
    let got = a.commands(2, "bob's reaction at A").await;
    let CommandKind::Reaction { message, key, .. } = &got[1].kind else {
        panic!("expected the reaction: {got:#?}");
    };
    assert_eq!(key, "👍");
    assert_eq!(message.legacy_id.as_ref().unwrap().as_str(), "m-1");

    a.submit(event(
        "a-5",
        "general",
        "alice",
        EventKind::Delete {
            message_id: "m-1".into(),
        },
    ))
    .await;
    a.submit(event(
        "a-6",
        "general",
        "alice",
        EventKind::RoomRenamed {
            name: "Lobby".into(),
        },
    ))
    .await;
    let got = b.commands(5, "the delete and the rename at B").await;
    let CommandKind::Delete { message, .. } = &got[3].kind else {
        panic!("expected the delete: {got:#?}");
    };
    assert_eq!(message.legacy_id.as_ref().unwrap().as_str(), "msg-1");
    assert!(
        matches!(&got[4].kind, CommandKind::RoomRenamed { name } if name == "Lobby"),
        "{got:#?}"
    );

    // Bob leaves; A's bridge (the hub) commits his leaving, and A's provider is told.
    b.submit(event("b-3", b_room, "bob", EventKind::UserLeft))
        .await;
    let got = a.commands(3, "bob's leaving at A").await;
    assert!(matches!(got[2].kind, CommandKind::UserLeft), "{got:#?}");
    assert_eq!(got[2].sender.uri.as_str(), "mimi://b.example/u/bob");
    let view = a.room_view(ROOM).await;
    let users: Vec<_> = view["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["user"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(users, ["mimi://a.example/u/alice"], "{view}");

    // An edit of a message the bridge never saw cannot be carried: A's provider is told so.
    a.submit(event(
        "a-7",
        "general",
        "alice",
        EventKind::Edit {
            message_id: "m-404".into(),
            content: MessageContent::text("?"),
        },
    ))
    .await;
    let got = a.commands(4, "the failure report at A").await;
    let CommandKind::EventFailed { event_id, reason } = &got[3].kind else {
        panic!("expected event_failed: {got:#?}");
    };
    assert_eq!(event_id.as_str(), "a-7");
    assert!(reason.contains("m-404"), "{reason}");

    // Give any stray duplicate time to show, then check: each event arrived exactly once, in
    // order, on the other side only.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        common::command_types(&a.receiver.commands()),
        ["message", "reaction", "user_left", "event_failed"]
    );
    assert_eq!(
        common::command_types(&b.receiver.commands()),
        ["room_created", "message", "edit", "delete", "room_renamed"]
    );
    // B's server failed three calls; they were retried under the same ids.
    assert!(b.receiver.attempts() >= 5 + 3, "{}", b.receiver.attempts());
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The inbound API's refusals, each with its status and JSON error code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbound_api_checks_signatures_and_refuses_replays() {
    let dir = tempfile::tempdir().unwrap();
    let good = secret(7);
    let config = dir.path().join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[provider]\ndomain = \"a.example\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
             [database]\nurl = \"sqlite://{}/bridge.db\"\n\
             [webhook]\nurl = \"http://127.0.0.1:9/unused\"\nsecrets = [\"{}\"]\n",
            dir.path().display(),
            good.encoded()
        ),
    )
    .unwrap();
    let bridge = Daemon::start(dir.path(), &["run", "--config", config.to_str().unwrap()]);
    let base = format!("http://{}", bridge.addr);
    let client = ProviderClient::new(&base, vec![good.clone()]).unwrap();
    let body = |id: &str| {
        serde_json::to_vec(&event(
            id,
            "general",
            "alice",
            EventKind::RoomCreated { name: None },
        ))
        .unwrap()
    };
    let http = reqwest::Client::new();

    // valid
    let ts = now();
    let r = client
        .submit_raw("wh-1", ts, body("e-1"), None)
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["duplicate"], false);

    // several signatures, one valid (a rotation)
    let b2 = body("e-2");
    let header = format!(
        "{} {}",
        secret(9).sign("wh-2", ts, &b2),
        good.sign("wh-2", ts, &b2)
    );
    let r = client
        .submit_raw("wh-2", ts, b2, Some(header))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);

    // each refusal: (what, answer, status, code)
    let b3 = body("e-3");
    let mut tampered = b3.clone();
    let at = tampered.len() - 3;
    tampered[at] ^= 1;
    let cases = vec![
        (
            "tampered body",
            client
                .submit_raw("wh-3", ts, tampered, Some(good.sign("wh-3", ts, &b3)))
                .await
                .unwrap(),
            401,
            "invalid_signature",
        ),
        (
            "wrong secret",
            client
                .submit_raw(
                    "wh-3",
                    ts,
                    b3.clone(),
                    Some(secret(8).sign("wh-3", ts, &b3)),
                )
                .await
                .unwrap(),
            401,
            "invalid_signature",
        ),
        (
            "old timestamp",
            client
                .submit_raw("wh-3", ts - 600, b3.clone(), None)
                .await
                .unwrap(),
            401,
            "timestamp_out_of_range",
        ),
        (
            "replayed call",
            client
                .submit_raw("wh-1", ts, body("e-1"), None)
                .await
                .unwrap(),
            409,
            "replayed",
        ),
        (
            "id reused for another body",
            client
                .submit_raw("wh-1", ts + 1, body("e-9"), None)
                .await
                .unwrap(),
            409,
            "webhook_id_reused",
        ),
    ];
    for (what, answer, status, code) in cases {
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        assert_eq!(answer.body["error"], code, "{what}: {}", answer.body);
        assert!(
            answer.body["message"].is_string(),
            "{what}: {}",
            answer.body
        );
    }

    // missing headers
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let b = body("e-4");
        let mut request = http
            .post(format!("{base}/webhook/v1/events"))
            .header("content-type", "application/json");
        for (name, value) in [
            ("webhook-id", "wh-4".to_string()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", good.sign("wh-4", ts, &b)),
        ] {
            if name != missing {
                request = request.header(name, value);
            }
        }
        let r = request.body(b).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "without {missing}");
        let json: Value = r.json().await.unwrap();
        assert_eq!(json["error"], "missing_header", "without {missing}: {json}");
    }

    // a signed body that is not an event
    let junk = br#"{"type": "message", "event_id": "e-5"}"#.to_vec();
    let r = client.submit_raw("wh-5", ts, junk, None).await.unwrap();
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("invalid_event"))
    );

    // the provider retrying (same id, new timestamp, same body) gets the first answer again
    let r = client
        .submit_raw("wh-1", ts + 2, body("e-1"), None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["duplicate"], true);

    // the OpenAPI document is served
    let doc: Value = http
        .get(format!("{base}/webhook/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/webhook/v1/events"].is_object());
}

/// A command the receiver keeps failing is retried under its id, then dead-lettered, listed by
/// the admin API, and delivered once when re-sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_that_keep_failing_are_dead_lettered_and_can_be_resent() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[derive(Clone, Default)]
    struct Flaky {
        healthy: Arc<AtomicBool>,
        calls: Arc<AtomicUsize>,
        ids: Arc<std::sync::Mutex<Vec<String>>>,
    }
    async fn handle(
        axum::extract::State(f): axum::extract::State<Flaky>,
        headers: axum::http::HeaderMap,
    ) -> axum::http::StatusCode {
        f.calls.fetch_add(1, Ordering::SeqCst);
        let id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        f.ids.lock().unwrap().push(id);
        if f.healthy.load(Ordering::SeqCst) {
            axum::http::StatusCode::OK
        } else {
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        }
    }
    let flaky = Flaky::default();
    let app = axum::Router::new()
        .route("/", axum::routing::post(handle))
        .with_state(flaky.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let good = secret(5);
    let config = dir.path().join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[provider]\ndomain = \"a.example\"\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\
             [database]\nurl = \"sqlite://{}/bridge.db\"\n[bridge]\nmax_delivery_attempts = 3\n\
             [webhook]\nurl = \"{url}\"\nsecrets = [\"{}\"]\n",
            dir.path().display(),
            good.encoded()
        ),
    )
    .unwrap();
    let bridge = Daemon::start(dir.path(), &["run", "--config", config.to_str().unwrap()]);
    let client = ProviderClient::new(format!("http://{}", bridge.addr), vec![good]).unwrap();
    // a message in a room the bridge does not know: the provider is told, by a command
    client
        .submit(&event(
            "e-1",
            "nowhere",
            "alice",
            message("m-1", MessageContent::text("hi"), None),
        ))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let list = || async {
        http.get(bridge.url("/admin/v1/outbox/dead-letters"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = list().await;
        if dead.as_array().is_some_and(|a| !a.is_empty()) {
            break dead;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing was dead-lettered: {:?}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let item = &dead[0];
    assert_eq!(item["kind"], "connector");
    assert_eq!(item["body"]["type"], "event_failed");
    assert_eq!(item["body"]["event_id"], "e-1");
    let id = item["id"].as_str().unwrap().to_string();
    // three attempts, all under the command's id
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    assert!(flaky.ids.lock().unwrap().iter().all(|i| *i == id));

    // the receiver is fixed; the operator re-sends
    flaky.healthy.store(true, Ordering::SeqCst);
    let r = http
        .post(bridge.url(&format!("/admin/v1/outbox/dead-letters/{id}/resend")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while flaky.calls.load(Ordering::SeqCst) < 4 {
        assert!(std::time::Instant::now() < deadline, "not re-sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 4);
    assert_eq!(flaky.ids.lock().unwrap()[3], id);
    assert_eq!(list().await, serde_json::json!([]));
    // an unknown dead letter
    let r = http
        .post(bridge.url("/admin/v1/outbox/dead-letters/nope/resend"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}
