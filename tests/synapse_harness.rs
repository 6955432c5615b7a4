//! The Synapse test harness itself: a real homeserver, real users, an appservice listener
//! that records transactions, and a restart that keeps everything.

mod synapse;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, put};
use serde_json::{Value, json};
use synapse::Synapse;

const AS_TOKEN: &str = "as_token_harness";
const HS_TOKEN: &str = "hs_token_harness";

/// `(txn id, body)` of every transaction PUT with the right hs_token.
type Transactions = Arc<Mutex<Vec<(String, Value)>>>;

async fn transaction(
    State(seen): State<Transactions>,
    Path(txn): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {HS_TOKEN}")) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"errcode": "M_FORBIDDEN"})),
        );
    }
    seen.lock().unwrap().push((txn, body));
    (StatusCode::OK, Json(json!({})))
}

/// Starts the recording appservice listener; returns its port.
async fn appservice_listener(seen: Transactions) -> u16 {
    let app = axum::Router::new()
        .route("/_matrix/app/v1/transactions/{txn}", put(transaction))
        .route("/_matrix/app/v1/ping", post(|| async { Json(json!({})) }))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"errcode": "M_NOT_FOUND"})),
            )
        })
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// Waits until a recorded transaction has an `m.room.message` with this body; returns its txn id.
async fn wait_for_transaction(seen: &Transactions, body: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = seen.lock().unwrap().iter().find_map(|(txn, t)| {
            t["events"]
                .as_array()?
                .iter()
                .any(|e| e["type"] == "m.room.message" && e["content"]["body"] == body)
                .then(|| txn.clone())
        });
        if let Some(txn) = found {
            return txn;
        }
        assert!(
            Instant::now() < deadline,
            "no transaction with {body:?}; got {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synapse_harness_users_rooms_appservice_restart() {
    let seen = Transactions::default();
    let as_port = appservice_listener(seen.clone()).await;
    let registration = format!(
        r#"id: mimi-harness
url: "http://127.0.0.1:{as_port}"
as_token: "{AS_TOKEN}"
hs_token: "{HS_TOKEN}"
sender_localpart: "mimibot"
rate_limited: false
namespaces:
  users:
    - exclusive: true
      regex: "@mimi_.*:localhost"
  aliases: []
  rooms: []
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let mut hs = Synapse::start(dir.path(), &registration);
    eprintln!("start took {:?}", t.elapsed());
    assert_eq!(hs.server_name(), "localhost");
    assert_eq!(hs.base_url(), format!("http://127.0.0.1:{}", hs.port()));

    let t = Instant::now();
    let alice = hs.register_user("alice", "alice-pass").await;
    eprintln!("register_user took {:?}", t.elapsed());
    let bob = hs.register_user("bob", "bob-pass").await;
    assert_eq!(alice.user_id, "@alice:localhost");
    assert_eq!(bob.whoami().await, "@bob:localhost");

    let room = alice.create_room(Some("harness"), &[&bob.user_id]).await;
    assert_eq!(bob.accept_invites().await, vec![room.clone()]);
    assert!(bob.joined_rooms().await.contains(&room));

    // The appservice's ghost joins; from then on Synapse pushes the room's events to it.
    let ghost = hs.register_ghost(AS_TOKEN, "mimi_x").await;
    assert_eq!(ghost.whoami().await, "@mimi_x:localhost");
    alice.invite(&room, &ghost.user_id).await;
    ghost.join(&room).await;
    let hello = alice.send_text(&room, "hello bridge").await;
    wait_for_transaction(&seen, "hello bridge").await;
    let got = bob
        .wait_for_text(&room, "hello bridge", Duration::from_secs(5))
        .await;
    assert_eq!(got["event_id"], hello.as_str());
    assert_eq!(got["sender"], "@alice:localhost");

    // The other helpers produce the events they should.
    let reply = bob.reply(&room, &hello, "hi back").await;
    let edit = alice.edit(&room, &hello, "hello, bridge").await;
    let reaction = bob.react(&room, &hello, "👍").await;
    let html = ghost.send_html(&room, "*bold*", "<b>bold</b>").await;
    bob.redact(&room, &reaction).await;
    alice.set_name(&room, "renamed").await;
    let events = alice.messages(&room).await;
    let by_id = |id: &str| {
        events
            .iter()
            .find(|e| e["event_id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(events[0]["type"], "m.room.create", "oldest first");
    assert_eq!(
        by_id(&reply)["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        hello.as_str()
    );
    assert_eq!(
        by_id(&edit)["content"]["m.new_content"]["body"],
        "hello, bridge"
    );
    assert_eq!(by_id(&html)["sender"], "@mimi_x:localhost");
    assert_eq!(by_id(&reaction)["content"], json!({}), "redacted");
    assert_eq!(
        alice.state(&room, "m.room.name", "").await.unwrap()["name"],
        "renamed"
    );
    alice.kick(&room, &ghost.user_id, Some("bye")).await;
    assert_eq!(
        alice.membership_of(&room, &ghost.user_id).await.as_deref(),
        Some("leave")
    );
    alice.invite(&room, &ghost.user_id).await;
    ghost.join(&room).await;
    let mxc = alice.upload(b"bytes".to_vec(), "text/plain", "a.txt").await;
    assert_eq!(bob.download(&mxc).await, b"bytes");
    let anonymous = reqwest::get(hs.media_url(&mxc)).await.unwrap();
    assert_eq!(anonymous.status(), 200, "unauthenticated media is on");
    assert_eq!(&anonymous.bytes().await.unwrap()[..], b"bytes");

    // Restart: same port and database; tokens, users, rooms and the appservice survive.
    let port = hs.port();
    let t = Instant::now();
    hs.restart();
    eprintln!("restart took {:?}", t.elapsed());
    assert_eq!(hs.port(), port);
    assert!(alice.joined_rooms().await.contains(&room));
    let members = bob.members(&room).await;
    for who in ["@alice:localhost", "@bob:localhost", "@mimi_x:localhost"] {
        assert!(
            members.contains(&(who.to_string(), "join".to_string())),
            "{who} in {members:?}"
        );
    }
    bob.wait_for_text(&room, "hello bridge", Duration::from_secs(5))
        .await;
    bob.send_text(&room, "after restart").await;
    wait_for_transaction(&seen, "after restart").await;
    if std::env::var_os("MIMI_SYNAPSE_DUMP").is_some() {
        for (txn, body) in seen.lock().unwrap().iter() {
            eprintln!("txn {txn}: {body}");
        }
        eprintln!("{}", hs.log_tail(400));
    }
    let again = hs.login("alice", "alice-pass").await;
    assert_eq!(again.user_id, alice.user_id);
}
