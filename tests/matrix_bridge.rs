//! A Matrix user on a real Synapse and a webhook provider's user share a MIMI room: Synapse ↔
//! bridge M (the Matrix connector, a.example, the room's hub) ↔ mutual TLS ↔ bridge W (the
//! webhook connector, b.example) ↔ W's receiver. Messages, formatted text, replies, edits,
//! redactions, reactions, invites, leaves and bans flow both ways; the bridge and Synapse are
//! restarted in the middle and nothing is lost or doubled.

mod common;
mod synapse;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{BIN, Daemon};
use mimi_bridge_connector::{
    BridgeCommand, CommandKind, ConnectorEvent, EventKind, MessageContent,
};
use mimi_bridge_webhook::{ProviderClient, Receiver, ReceiverOptions, WebhookSecret};
use serde_json::{Value, json};
use synapse::{MatrixUser, Synapse};

const AS_TOKEN: &str = "as_token_for_mimi_tests_0123456789";
const HS_TOKEN: &str = "hs_token_for_mimi_tests_0123456789";
const BOB_GHOST: &str = "@mimi_b.example_bob:localhost";
const WAIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mimi_tls(certs: &Path, domain: &str, port: u16, peer: &str, peer_port: u16) -> String {
    format!(
        "[mimi.tls]\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{certs}/{domain}.pem\"\n\
         private_key = \"{certs}/{domain}.key\"\ntrust_anchors = \"{certs}/ca.pem\"\n\
         [mimi.peers.\"{peer}\"]\naddress = \"127.0.0.1:{peer_port}\"\n",
        certs = certs.display()
    )
}

/// Bridge M's configuration file.
fn matrix_bridge_config(
    home: &Path,
    certs: &Path,
    http: u16,
    mimi: (u16, u16),
    hs: &str,
) -> PathBuf {
    std::fs::create_dir_all(home).unwrap();
    let config = home.join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[provider]\ndomain = \"a.example\"\n\
             [server]\nlisten = \"127.0.0.1:{http}\"\nshutdown_grace_seconds = 2\n\
             [database]\nurl = \"sqlite://{home}/bridge.db\"\n\
             {tls}\
             [matrix]\nhomeserver_url = \"{hs}\"\nserver_name = \"localhost\"\n\
             as_token = \"{AS_TOKEN}\"\nhs_token = \"{HS_TOKEN}\"\n\
             [bridge]\nconsent = \"grant\"\n",
            home = home.display(),
            tls = mimi_tls(certs, "a.example", mimi.0, "b.example", mimi.1),
        ),
    )
    .unwrap();
    config
}

struct World {
    synapse: Synapse,
    bridge: Option<Daemon>,
    bridge_home: PathBuf,
    bridge_config: PathBuf,
    receiver: Receiver,
    w: ProviderClient,
    _w_bridge: Daemon,
    alice: MatrixUser,
}

impl World {
    async fn commands(&self, count: usize, what: &str) -> Vec<BridgeCommand> {
        match self.receiver.wait_for(count, WAIT).await {
            Ok(c) => c,
            Err(got) => panic!(
                "timed out waiting for {what}: {} of {count}: {got:#?}\nbridge M: {:#?}\nsynapse: {}",
                got.len(),
                self.bridge.as_ref().map(|b| b.log()),
                self.synapse
                    .log_tail(3000)
                    .lines()
                    .filter(|l| l.contains("appservice")
                        || l.contains("ransaction")
                        || l.contains("ERROR")
                        || l.contains("WARN"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    async fn w_submit(&self, id: &str, room: &str, kind: EventKind) {
        self.w_submit_as(id, room, "bob", kind).await
    }

    async fn w_submit_as(&self, id: &str, room: &str, sender: &str, kind: EventKind) {
        let answer = self
            .w
            .submit(&ConnectorEvent::new(id, room, sender, kind))
            .await
            .unwrap();
        assert_eq!(answer.status, 202);
    }

    fn start_bridge(&mut self) {
        self.bridge = Some(Daemon::start(
            &self.bridge_home,
            &["run", "--config", self.bridge_config.to_str().unwrap()],
        ));
    }
}

async fn setup(dir: &Path) -> World {
    let certs = dir.join("certs");
    let out = Command::new(BIN)
        .args(["dev-certs", "--out"])
        .arg(&certs)
        .args(["--provider", "a.example", "--provider", "b.example"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (ma, mb, http_m) = (free_port(), free_port(), free_port());

    // The registration comes from the bridge's own generator.
    let home = dir.join("a.example");
    let config = matrix_bridge_config(&home, &certs, http_m, (ma, mb), "http://127.0.0.1:1");
    let out = Command::new(BIN)
        .args(["matrix-registration", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let registration = String::from_utf8(out.stdout).unwrap();
    let synapse = Synapse::start(&dir.join("synapse"), &registration);
    let config = matrix_bridge_config(&home, &certs, http_m, (ma, mb), &synapse.base_url());
    let alice = synapse.register_user("alice", "alice-password").await;

    // W: a webhook provider whose users can be added by anyone.
    let secret = WebhookSecret::from_bytes(vec![11; 32]).unwrap();
    let receiver = Receiver::new(ReceiverOptions {
        secrets: vec![secret.clone()],
        fail_first: 0,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(mimi_bridge_webhook::serve(
        listener,
        receiver.clone(),
        false,
    ));
    let w_home = dir.join("b.example");
    std::fs::create_dir_all(&w_home).unwrap();
    let w_config = w_home.join("bridge.toml");
    std::fs::write(
        &w_config,
        format!(
            "[provider]\ndomain = \"b.example\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
             [database]\nurl = \"sqlite://{home}/bridge.db\"\n{tls}\
             [bridge]\nconsent = \"grant\"\n\
             [webhook]\nurl = \"{receiver_url}\"\nsecrets = [\"{secret}\"]\n",
            home = w_home.display(),
            tls = mimi_tls(&certs, "b.example", mb, "a.example", ma),
            secret = secret.encoded(),
        ),
    )
    .unwrap();
    let w_bridge = Daemon::start(&w_home, &["run", "--config", w_config.to_str().unwrap()]);
    let w = ProviderClient::new(format!("http://{}", w_bridge.addr), vec![secret]).unwrap();
    let mut world = World {
        synapse,
        bridge: None,
        bridge_home: home,
        bridge_config: config,
        receiver,
        w,
        _w_bridge: w_bridge,
        alice,
    };
    world.start_bridge();
    world
}

fn sent_by<'a>(events: &'a [Value], sender: &str, event_type: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["sender"] == sender && e["type"] == event_type)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_user_and_a_webhook_user_share_a_mimi_room() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    if std::env::var_os("MIMI_TEST_KEEP").is_some() {
        eprintln!("keeping {}", dir.keep().display());
    }
    let dir = dir_path;
    let mut world = setup(&dir).await;
    let alice = world.alice.clone();

    // alice creates a room on Matrix and invites bob's ghost: the room becomes a MIMI room
    // hosted by bridge M, and bob (of b.example) is added.
    let room = alice.create_room(Some("Lobby"), &[BOB_GHOST]).await;
    alice
        .wait_for_membership(&room, BOB_GHOST, "join", WAIT)
        .await;
    let m1 = alice.send_text(&room, "hello from matrix").await;
    let got = world
        .commands(2, "the room and alice's first message at W")
        .await;
    let CommandKind::RoomCreated { name, participants } = &got[0].kind else {
        panic!("{got:#?}")
    };
    assert_eq!(name.as_deref(), Some("Lobby"));
    assert_eq!(participants.len(), 2, "{participants:#?}");
    let w_room = "room-1";
    let CommandKind::Message { content, .. } = &got[1].kind else {
        panic!("{got:#?}")
    };
    assert_eq!(content.body, "hello from matrix");
    assert_eq!(
        got[1].sender.uri.as_str(),
        "mimi://a.example/u/%40alice%3Alocalhost"
    );

    // formatted text becomes GFM-MIMI markdown
    let m2 = alice
        .send_html(&room, "bold move", "<strong>bold</strong> move")
        .await;
    let got = world.commands(3, "alice's formatted message").await;
    let CommandKind::Message { content, .. } = &got[2].kind else {
        panic!("{got:#?}")
    };
    assert_eq!(content.body, "**bold** move");

    // bob replies in markdown to alice's first message (msg-1 at W)
    world
        .w_submit(
            "w-1",
            w_room,
            EventKind::Message {
                message_id: "w-m-1".into(),
                content: MessageContent::markdown("*hi* alice"),
                reply_to: Some("msg-1".into()),
                expires: None,
            },
        )
        .await;
    let reply = alice
        .wait_for_event(
            &room,
            |e| e["sender"] == BOB_GHOST && e["content"]["body"] == "*hi* alice",
            WAIT,
        )
        .await;
    assert!(
        reply["content"]["formatted_body"]
            .as_str()
            .unwrap()
            .contains("<em>hi</em>"),
        "{reply}"
    );
    assert_eq!(
        reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        m1.as_str()
    );
    let bob_msg = reply["event_id"].as_str().unwrap().to_string();

    // alice edits her first message; bob reacts to it; alice redacts the bold one
    alice.edit(&room, &m1, "hello from matrix!").await;
    let got = world.commands(4, "the edit").await;
    let CommandKind::Edit {
        message, content, ..
    } = &got[3].kind
    else {
        panic!("{got:#?}")
    };
    assert_eq!(message.legacy_id.as_ref().unwrap().as_str(), "msg-1");
    assert_eq!(content.body, "hello from matrix!");
    world
        .w_submit(
            "w-2",
            w_room,
            EventKind::Reaction {
                message_id: "msg-1".into(),
                key: "👍".into(),
                reaction_id: None,
            },
        )
        .await;
    let reaction = alice
        .wait_for_event(
            &room,
            |e| e["type"] == "m.reaction" && e["sender"] == BOB_GHOST,
            WAIT,
        )
        .await;
    assert_eq!(reaction["content"]["m.relates_to"]["event_id"], m1.as_str());
    assert_eq!(reaction["content"]["m.relates_to"]["key"], "👍");
    alice.redact(&room, &m2).await;
    let got = world.commands(5, "the redaction").await;
    let CommandKind::Delete { message, .. } = &got[4].kind else {
        panic!("{got:#?}")
    };
    assert_eq!(message.legacy_id.as_ref().unwrap().as_str(), "msg-2");

    // alice reacts to bob's message: W learns which of its messages
    alice.react(&room, &bob_msg, "🎉").await;
    let got = world.commands(6, "alice's reaction").await;
    let CommandKind::Reaction { message, key, .. } = &got[5].kind else {
        panic!("{got:#?}")
    };
    assert_eq!(
        (message.legacy_id.as_ref().unwrap().as_str(), key.as_str()),
        ("w-m-1", "🎉")
    );

    // alice invites carol (of the same homeserver): carol becomes a MIMI participant
    let carol = world.synapse.register_user("carol", "carol-password").await;
    alice.invite(&room, &carol.user_id).await;
    let got = world.commands(7, "carol added").await;
    let CommandKind::UserAdded { target } = &got[6].kind else {
        panic!("{got:#?}")
    };
    assert_eq!(
        target.uri.as_str(),
        "mimi://a.example/u/%40carol%3Alocalhost"
    );
    carol.join(&room).await;

    // bridge M stops; alice writes meanwhile; Synapse keeps the transaction and re-sends it
    let status = world.bridge.take().unwrap().stop("-TERM");
    assert!(status.success());
    alice.send_text(&room, "while the bridge was away").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    world.start_bridge();
    let got = world
        .commands(8, "the message sent while bridge M was down")
        .await;
    let CommandKind::Message { content, .. } = &got[7].kind else {
        panic!("{got:#?}")
    };
    assert_eq!(content.body, "while the bridge was away");

    // Synapse restarts while bob writes: the bridge retries the same transaction id
    world.synapse.stop();
    world
        .w_submit(
            "w-3",
            w_room,
            EventKind::Message {
                message_id: "w-m-2".into(),
                content: MessageContent::text("while synapse was away"),
                reply_to: None,
                expires: None,
            },
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    world.synapse.start_again();
    alice
        .wait_for_text(&room, "while synapse was away", WAIT)
        .await;

    // carol leaves; alice bans bob's ghost: both reach W
    carol.leave(&room).await;
    let got = world.commands(9, "carol's leaving").await;
    assert!(matches!(got[8].kind, CommandKind::UserLeft), "{got:#?}");
    assert_eq!(
        got[8].sender.uri.as_str(),
        "mimi://a.example/u/%40carol%3Alocalhost"
    );
    // alice makes bob a moderator: a MIMI role change (group admin)
    let mut levels = alice.state(&room, "m.room.power_levels", "").await.unwrap();
    levels["users"][BOB_GHOST] = json!(50);
    alice
        .set_state(&room, "m.room.power_levels", "", levels)
        .await;
    let got = world.commands(10, "bob's new role").await;
    let CommandKind::RoleChanged { target } = &got[9].kind else {
        panic!("{got:#?}")
    };
    assert_eq!(
        (target.uri.as_str(), target.role),
        ("mimi://b.example/u/bob", Some(3))
    );
    alice.ban(&room, BOB_GHOST, Some("enough")).await;
    let got = world.commands(11, "bob's ban").await;
    let CommandKind::UserBanned { target, .. } = &got[10].kind else {
        panic!("{got:#?}")
    };
    assert_eq!(target.uri.as_str(), "mimi://b.example/u/bob");

    // an event the bridge cannot carry is reported to its sender
    alice
        .send_content(
            &room,
            "m.room.message",
            json!({"msgtype": "m.location", "body": "here", "geo_uri": "geo:52.5,13.4"}),
            None,
        )
        .await;
    let notice = alice
        .wait_for_event(
            &room,
            |e| {
                e["content"]["msgtype"] == "m.notice"
                    && e["content"]["body"]
                        .as_str()
                        .is_some_and(|b| b.contains("m.location"))
            },
            WAIT,
        )
        .await;
    assert!(
        notice["content"]["body"]
            .as_str()
            .unwrap()
            .contains(&alice.user_id)
    );

    // bob creates a room at W and adds alice: bridge M makes a portal for it (bot-created,
    // m.bridge state, alias) and invites her; media go both ways through the content repository.
    let picture: Vec<u8> = (0..2048u32).map(|i| (i * 7 % 251) as u8).collect();
    let served = picture.clone();
    let media_app = axum::Router::new().route(
        "/cat.png",
        axum::routing::get(move || {
            let body = served.clone();
            async move { ([("content-type", "image/png")], body) }
        }),
    );
    let media_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let media_url = format!("http://{}/cat.png", media_listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(media_listener, media_app).await });
    world
        .w_submit(
            "w-10",
            "w-room",
            EventKind::RoomCreated {
                name: Some("From W".into()),
            },
        )
        .await;
    world
        .w_submit(
            "w-11",
            "w-room",
            EventKind::UserInvited {
                target: mimi_bridge_connector::UserRef::mimi(
                    "mimi://a.example/u/%40alice%3Alocalhost",
                ),
            },
        )
        .await;
    let deadline = std::time::Instant::now() + WAIT;
    while alice.invites().await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "alice was not invited to a portal\nbridge M: {:#?}\nbridge W: {:#?}",
            world.bridge.as_ref().map(|b| b.log()),
            world._w_bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let invited = alice.accept_invites().await;
    assert_eq!(invited.len(), 1, "{invited:?}");
    let portal = invited[0].clone();
    let bridge_state = alice
        .state(&portal, "m.bridge", "mimi-bridge:mimi://b.example/r/w-room")
        .await
        .expect("the portal has m.bridge state");
    assert_eq!(bridge_state["channel"]["id"], "mimi://b.example/r/w-room");
    assert_eq!(
        alice.state(&portal, "m.room.name", "").await.unwrap()["name"],
        "From W"
    );
    let levels = alice
        .state(&portal, "m.room.power_levels", "")
        .await
        .unwrap();
    assert_eq!(
        levels["users"][BOB_GHOST], 50,
        "bob created the room: group admin; {levels}"
    );
    world
        .w_submit(
            "w-19",
            "w-room",
            EventKind::RoleChanged {
                target: mimi_bridge_connector::UserRef::mimi(
                    "mimi://a.example/u/%40alice%3Alocalhost",
                ),
                role: 3,
            },
        )
        .await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let levels = alice
            .state(&portal, "m.room.power_levels", "")
            .await
            .unwrap();
        if levels["users"][alice.user_id.as_str()] == 50 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alice's role did not reach Matrix: {levels}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut image = MessageContent::media(mimi_bridge_connector::MediaRef::new(
        &media_url,
        "image/png",
    ));
    image.attachments[0].name = Some("cat.png".into());
    world
        .w_submit(
            "w-12",
            "w-room",
            EventKind::Message {
                message_id: "w-m-3".into(),
                content: image,
                reply_to: None,
                expires: None,
            },
        )
        .await;
    let shown = alice
        .wait_for_event(&portal, |e| e["content"]["msgtype"] == "m.image", WAIT)
        .await;
    assert_eq!(shown["sender"], BOB_GHOST);
    let mxc = shown["content"]["url"].as_str().unwrap();
    assert_eq!(alice.download(mxc).await, picture);
    let mxc = alice
        .upload(b"a small file".to_vec(), "text/plain", "note.txt")
        .await;
    alice
        .send_content(
            &portal,
            "m.room.message",
            json!({"msgtype": "m.file", "body": "note.txt", "url": mxc, "info": {"mimetype": "text/plain", "size": 12}}),
            None,
        )
        .await;
    let got = world.commands(12, "alice's file in bob's room").await;
    let CommandKind::Message { content, .. } = &got[11].kind else {
        panic!("{got:#?}")
    };
    assert_eq!(got[11].room.legacy_id.as_ref().unwrap().as_str(), "w-room");
    let file = &content.attachments[0];
    assert_eq!(
        (file.name.as_deref(), file.media_type.as_str()),
        (Some("note.txt"), "text/plain")
    );
    let fetched = reqwest::get(&file.url)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(fetched.as_ref(), b"a small file");

    // In bob's room: alice replies to bob; bob edits and deletes his message; dave of W comes
    // and goes; bob bans alice.
    world
        .w_submit(
            "w-13",
            "w-room",
            EventKind::Message {
                message_id: "w-m-4".into(),
                content: MessageContent::text("welcome alice"),
                reply_to: None,
                expires: None,
            },
        )
        .await;
    let welcome = alice.wait_for_text(&portal, "welcome alice", WAIT).await;
    let welcome_id = welcome["event_id"].as_str().unwrap().to_string();
    alice.reply(&portal, &welcome_id, "thanks bob").await;
    let got = world.commands(13, "alice's reply in bob's room").await;
    let CommandKind::Message { reply_to, .. } = &got[12].kind else {
        panic!("{got:#?}")
    };
    assert_eq!(
        reply_to
            .as_ref()
            .unwrap()
            .legacy_id
            .as_ref()
            .unwrap()
            .as_str(),
        "w-m-4"
    );
    world
        .w_submit(
            "w-14",
            "w-room",
            EventKind::Edit {
                message_id: "w-m-4".into(),
                content: MessageContent::text("welcome, alice"),
            },
        )
        .await;
    let edit = alice
        .wait_for_event(
            &portal,
            |e| e["content"]["m.relates_to"]["rel_type"] == "m.replace",
            WAIT,
        )
        .await;
    assert_eq!(
        edit["content"]["m.relates_to"]["event_id"],
        welcome_id.as_str()
    );
    assert_eq!(edit["content"]["m.new_content"]["body"], "welcome, alice");
    world
        .w_submit(
            "w-15",
            "w-room",
            EventKind::Delete {
                message_id: "w-m-4".into(),
            },
        )
        .await;
    alice
        .wait_for_event(
            &portal,
            |e| {
                e["type"] == "m.room.redaction"
                    && (e["redacts"] == welcome_id.as_str()
                        || e["content"]["redacts"] == welcome_id.as_str())
            },
            WAIT,
        )
        .await;
    const DAVE_GHOST: &str = "@mimi_b.example_dave:localhost";
    world
        .w_submit(
            "w-16",
            "w-room",
            EventKind::UserInvited {
                target: mimi_bridge_connector::UserRef::legacy("dave"),
            },
        )
        .await;
    alice
        .wait_for_membership(&portal, DAVE_GHOST, "join", WAIT)
        .await;
    world
        .w_submit_as("w-17", "w-room", "dave", EventKind::UserLeft)
        .await;
    alice
        .wait_for_membership(&portal, DAVE_GHOST, "leave", WAIT)
        .await;
    world
        .w_submit(
            "w-18",
            "w-room",
            EventKind::UserBanned {
                target: mimi_bridge_connector::UserRef::mimi(
                    "mimi://a.example/u/%40alice%3Alocalhost",
                ),
                reason: None,
            },
        )
        .await;
    let bot = world.synapse.as_user(AS_TOKEN, "@mimibot:localhost");
    bot.wait_for_membership(&portal, &alice.user_id, "ban", WAIT)
        .await;

    // Exactly once, in order, on both sides.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        common::command_types(&world.receiver.commands()),
        [
            "room_created",
            "message",
            "message",
            "edit",
            "delete",
            "reaction",
            "user_added",
            "message",
            "user_left",
            "role_changed",
            "user_banned",
            "message",
            "message"
        ]
    );
    let events = alice.messages(&room).await;
    let from_bob: Vec<_> = sent_by(&events, BOB_GHOST, "m.room.message")
        .iter()
        .map(|e| {
            e["content"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(from_bob, ["*hi* alice", "while synapse was away"]);
    assert_eq!(sent_by(&events, BOB_GHOST, "m.reaction").len(), 1);
}

/// The appservice API refuses calls without the homeserver's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_appservice_api_checks_the_homeserver_token() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("m");
    let http = free_port();
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[provider]\ndomain = \"a.example\"\n[server]\nlisten = \"127.0.0.1:{http}\"\n\
             [database]\nurl = \"sqlite://{}/bridge.db\"\n\
             [matrix]\nhomeserver_url = \"http://127.0.0.1:9\"\nserver_name = \"localhost\"\n\
             as_token = \"{AS_TOKEN}\"\nhs_token = \"{HS_TOKEN}\"\n",
            home.display()
        ),
    )
    .unwrap();
    let bridge = Daemon::start(&home, &["run", "--config", config.to_str().unwrap()]);
    let http = reqwest::Client::new();
    let txn = json!({"events": []});
    let url = bridge.url("/_matrix/app/v1/transactions/1");
    let cases = [
        (None, 401, "M_UNAUTHORIZED"),
        (Some("wrong-token"), 403, "M_FORBIDDEN"),
        (Some(AS_TOKEN), 403, "M_FORBIDDEN"),
    ];
    for (token, status, errcode) in cases {
        let mut r = http.put(&url).json(&txn);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{token:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errcode"], errcode, "{token:?}: {body}");
    }
    // with the right token: accepted, and a replay of the same transaction id too
    for _ in 0..2 {
        let r = http
            .put(&url)
            .bearer_auth(HS_TOKEN)
            .json(&txn)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = http
        .post(bridge.url("/_matrix/app/v1/ping"))
        .bearer_auth(HS_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // a user query for something that is not a ghost
    let r = http
        .get(bridge.url("/_matrix/app/v1/users/%40alice%3Alocalhost"))
        .bearer_auth(HS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}
