//! What becomes of a follower's messages and leaves the room's hub refuses, and of a follower
//! whose view falls behind: two providers in process, each with its own store, MIMI listener
//! and client over real mutual TLS on loopback. b.example follows a room that a.example hosts;
//! b's bridge core has a recording connector. carl of c.example is a bare openmls member whose
//! commits move the room on at the hub while b's fan-out is held back (or dropped), so every
//! race is made to happen, not hoped for.

mod common;

use common::text;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{RecordingConnector, TestDb, commit_request};
use mimi_bridge::content::MimiContent;
use mimi_bridge::core::{Bridge, BridgeOptions};
use mimi_bridge::mls::bare_member::BareMember;
use mimi_bridge::mls::{ProxyMls, StateKey, UserAddition};
use mimi_bridge::protocol::client::{MimiClient, PeerAddress};
use mimi_bridge::protocol::directory::Directory;
use mimi_bridge::protocol::listener::MimiListener;
use mimi_bridge::protocol::routes::{self, ProtocolState};
use mimi_bridge::protocol::service::MimiService;
use mimi_bridge::protocol::tls::{
    self, TlsIdentity, generate_dev_certificates, load_trust_anchors, write_dev_certificates,
};
use mimi_bridge::protocol::wire::UpdateOutcome;
use mimi_bridge::room::code_points::ComponentCodePoints;
use mimi_bridge::store::legacy_events::{self, EventState};
use mimi_bridge::store::{Store, StoreOptions, inbound_messages, message_map, outbox};
use mimi_bridge::uri::{ClientUri, ProviderId, RoomUri, UserUri};
use mimi_bridge_connector::{
    BridgeCommand, CommandKind, ConnectorEvent, EventKind, EventSink, MessageContent, MessageKind,
};
use tokio_util::sync::CancellationToken;

const ROOM: &str = "mimi://a.example/r/clubhouse";

fn room() -> RoomUri {
    ROOM.parse().unwrap()
}

fn provider(domain: &str) -> ProviderId {
    ProviderId::new(domain).unwrap()
}

/// One provider: its store, MLS engine, MIMI service and listener.
struct Side {
    store: Store,
    mls: Arc<ProxyMls>,
    service: Arc<MimiService>,
}

struct Pair {
    a: Side,
    b: Side,
    bridge: Arc<Bridge>,
    connector: Arc<RecordingConnector>,
    carl: BareMember,
    stop: CancellationToken,
    _dbs: (TestDb, TestDb),
    _certs: tempfile::TempDir,
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn side(
    db: &TestDb,
    domain: &str,
    certs: &std::path::Path,
    listener: MimiListener,
    peer: &str,
    peer_addr: std::net::SocketAddr,
    stop: &CancellationToken,
) -> Side {
    let store = Store::open_and_migrate(&StoreOptions::new(&db.url))
        .await
        .unwrap();
    let mls = Arc::new(ProxyMls::new(
        store.clone(),
        StateKey::from_bytes([7; 32]),
        ComponentCodePoints::default(),
        provider(domain),
    ));
    let identity = TlsIdentity::load(
        &certs.join(format!("{domain}.pem")),
        &certs.join(format!("{domain}.key")),
    )
    .unwrap();
    let roots = load_trust_anchors(&certs.join("ca.pem")).unwrap();
    // c.example (carl's provider) runs no server: a closed loopback port refuses at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let peers = BTreeMap::from([
        (peer.to_string(), PeerAddress { address: peer_addr }),
        ("c.example".to_string(), PeerAddress { address: closed }),
    ]);
    let client = MimiClient::new(provider(domain), &identity, roots, &peers).unwrap();
    let service = Arc::new(
        MimiService::new(
            provider(domain),
            store.clone(),
            mls.clone(),
            Some(Arc::new(client)),
        )
        .with_max_delivery_attempts(30),
    );
    let addr = listener.local_addr().unwrap();
    let state = ProtocolState {
        domain: provider(domain),
        directory: Arc::new(Directory::for_base(&format!(
            "https://{domain}:{}",
            addr.port()
        ))),
        store: store.clone(),
        mls: mls.clone(),
        service: service.clone(),
    };
    let stop = stop.clone();
    tokio::spawn(listener.serve(
        routes::router(state),
        stop.cancelled_owned(),
        Duration::from_secs(1),
    ));
    Side {
        store,
        mls,
        service,
    }
}

/// a.example hosts the room with alice and carl (c.example, bare); b.example follows with
/// `locals` (legacy users whose proxy clients b made), all in the room, b's portal linked.
async fn pair(locals: &[&str]) -> Pair {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("MIMI_TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let certs = tempfile::tempdir().unwrap();
    let generated =
        generate_dev_certificates(&["a.example".to_string(), "b.example".to_string()]).unwrap();
    write_dev_certificates(certs.path(), &generated).unwrap();
    let server_tls = |domain: &str| {
        let identity = TlsIdentity::load(
            &certs.path().join(format!("{domain}.pem")),
            &certs.path().join(format!("{domain}.key")),
        )
        .unwrap();
        tls::server_config(
            &identity,
            load_trust_anchors(&certs.path().join("ca.pem")).unwrap(),
        )
        .unwrap()
    };
    let loopback: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let la = MimiListener::bind(loopback, server_tls("a.example"))
        .await
        .unwrap();
    let lb = MimiListener::bind(loopback, server_tls("b.example"))
        .await
        .unwrap();
    let (addr_a, addr_b) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
    let stop = CancellationToken::new();
    let (db_a, db_b) = (TestDb::sqlite(), TestDb::sqlite());
    let a = side(
        &db_a,
        "a.example",
        certs.path(),
        la,
        "b.example",
        addr_b,
        &stop,
    )
    .await;
    let b = side(
        &db_b,
        "b.example",
        certs.path(),
        lb,
        "a.example",
        addr_a,
        &stop,
    )
    .await;
    let connector = Arc::new(RecordingConnector {
        room_id: Some("general"),
        ..Default::default()
    });
    let bridge = Bridge::new(
        b.store.clone(),
        b.mls.clone(),
        b.service.clone(),
        connector.clone(),
        BridgeOptions::default(),
    );

    let alice: ClientUri = "mimi://a.example/d/alice/bridge".parse().unwrap();
    a.mls.create_client(&alice).await.unwrap();
    a.mls.create_room(&room(), &alice, 3).await.unwrap();
    let mut carl = BareMember::new("mimi://c.example/d/carl/laptop");
    let mut additions = Vec::new();
    let carl_user: UserUri = "mimi://c.example/u/carl".parse().unwrap();
    let carl_kp = carl.key_package();
    a.mls
        .bind_key_package(&carl_kp, carl_user.provider(), &carl_user)
        .await
        .unwrap();
    additions.push(UserAddition {
        user: carl_user,
        role: 2,
        key_packages: vec![carl_kp],
    });
    for local in locals {
        let user: UserUri = format!("mimi://b.example/u/{local}").parse().unwrap();
        let client: ClientUri = format!("mimi://b.example/d/{local}/bridge")
            .parse()
            .unwrap();
        b.mls.create_client(&client).await.unwrap();
        let kp = b.mls.key_package(&client).await.unwrap();
        a.mls
            .bind_key_package(&kp, user.provider(), &user)
            .await
            .unwrap();
        additions.push(UserAddition {
            user,
            role: 2,
            key_packages: vec![kp],
        });
    }
    let out = a.mls.add_users(&room(), &alice, &additions).await.unwrap();
    carl.join(out.welcome.as_ref().unwrap()).unwrap();
    let pair = Pair {
        a,
        b,
        bridge,
        connector,
        carl,
        stop,
        _dbs: (db_a, db_b),
        _certs: certs,
    };
    // the commit at a, its fan-out to b, b's legacy room
    pair.until("b has the room and its portal", || async {
        pair.commands_of("room_created").await.len() == 1
    })
    .await;
    pair
}

impl Pair {
    /// Runs b's core and both outboxes until `done`, for at most 20 s.
    async fn until<F, Fut>(&self, what: &str, done: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.a.service.deliver_due().await.unwrap();
            self.bridge.run_once().await.unwrap();
            self.b.service.deliver_due().await.unwrap();
            if done().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not after 20 s; b's connector got {:?}",
                self.kinds()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn submit(&self, id: &str, sender: &str, kind: EventKind) {
        self.bridge
            .submit(ConnectorEvent::new(id, "general", sender, kind))
            .await
            .unwrap();
    }

    /// carl commits at the hub (an empty commit with a path): the room moves on one epoch, and
    /// the fan-out to b waits in a's outbox.
    async fn carl_commits(&mut self) -> u64 {
        let commit = self.carl.commit(vec![], vec![], None, true);
        let answer = self
            .a
            .service
            .hub_update(&room(), &provider("c.example"), commit_request(&commit))
            .await
            .unwrap();
        assert!(
            matches!(answer.outcome, UpdateOutcome::Success { .. }),
            "{answer:?}"
        );
        self.a.mls.room_state(&room()).await.unwrap().epoch
    }

    /// a's `/notify` rows for b, undelivered.
    async fn held_notifies(&self) -> Vec<outbox::OutboxRecord> {
        outbox::pending(self.a.store.pool(), Some(ROOM))
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.kind == "notify" && i.destination == "b.example")
            .collect()
    }

    /// alice removes bob at the hub; runs until b's connector is told of one failed event,
    /// `e1`, and returns it.
    async fn alice_removes_bob_then_failures(&self) -> Vec<(String, String)> {
        let alice: ClientUri = "mimi://a.example/d/alice/bridge".parse().unwrap();
        let bob: UserUri = "mimi://b.example/u/bob".parse().unwrap();
        self.a
            .mls
            .remove_user(&room(), &alice, &bob, false)
            .await
            .unwrap();
        self.until("bob's event is reported", || async {
            !self.failures().await.is_empty()
        })
        .await;
        let failures = self.failures().await;
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].0, "e1");
        failures
    }

    async fn b_epoch(&self) -> u64 {
        self.b.mls.room_state(&room()).await.unwrap().epoch
    }

    fn kinds(&self) -> Vec<String> {
        common::command_types(&self.connector.commands.lock().unwrap())
    }

    async fn commands_of(&self, kind: &str) -> Vec<BridgeCommand> {
        let commands = self.connector.commands.lock().unwrap().clone();
        let kinds = common::command_types(&commands);
        commands
            .into_iter()
            .zip(kinds)
            .filter(|(_, k)| k == kind)
            .map(|(c, _)| c)
            .collect()
    }

    async fn failures(&self) -> Vec<(String, String)> {
        self.commands_of("event_failed")
            .await
            .into_iter()
            .filter_map(|c| match c.kind {
                CommandKind::EventFailed { event_id, reason } => {
                    Some((event_id.to_string(), reason))
                }
                _ => None,
            })
            .collect()
    }

    async fn event_state(&self, id: &str) -> (EventState, Option<String>) {
        let e = legacy_events::get(self.b.store.pool(), id)
            .await
            .unwrap()
            .unwrap();
        (e.state, e.error)
    }

    /// The plaintexts a decrypted for its users, by sender client.
    async fn decrypted_at_a(&self) -> Vec<(String, MimiContent)> {
        inbound_messages::list(self.a.store.pool(), ROOM, 0)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.kind == inbound_messages::InboundKind::Message)
            .map(|m| (m.sender_client, MimiContent::from_cbor(&m.payload).unwrap()))
            .collect()
    }

    /// Texts of the messages b's connector was given.
    async fn messages_at_b(&self) -> Vec<(String, String, MessageKind)> {
        self.commands_of("message")
            .await
            .into_iter()
            .filter_map(|c| match c.kind {
                CommandKind::Message { content, .. } => {
                    Some((c.sender.uri.to_string(), content.body, content.kind))
                }
                _ => None,
            })
            .collect()
    }
}

fn body_of(content: &MimiContent) -> String {
    String::from_utf8_lossy(&content.to_cbor().unwrap()).to_string()
}

#[tokio::test]
async fn a_message_refused_as_too_old_is_encrypted_again_with_the_same_id() {
    let mut p = pair(&["bob"]).await;
    p.submit("e1", "bob", text("m1", "hello from an old epoch"))
        .await;
    p.bridge.run_once().await.unwrap(); // encrypted at epoch 1, queued for a
    assert_eq!(p.carl_commits().await, 2);
    p.b.service.deliver_due().await.unwrap(); // epochTooOld: b is still at epoch 1
    assert!(p.decrypted_at_a().await.is_empty());
    assert_eq!(p.b_epoch().await, 1);
    // the fan-out of carl's commit reaches b; the message goes again, at epoch 2
    p.until("a decrypts bob's message", || async {
        !p.decrypted_at_a().await.is_empty()
    })
    .await;
    assert_eq!(p.b_epoch().await, 2);
    let got = p.decrypted_at_a().await;
    assert_eq!(got.len(), 1, "decrypted once");
    assert_eq!(got[0].0, "mimi://b.example/d/bob/bridge");
    assert!(body_of(&got[0].1).contains("hello from an old epoch"));
    let id = got[0].1.message_id("mimi://b.example/u/bob", ROOM).unwrap();
    let mapped = message_map::mimi_of(p.b.store.pool(), ROOM, "m1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        hex::encode(id.0),
        mapped,
        "the same MIMI message id as first sent"
    );
    // carl, at epoch 2, reads it too
    let fanned: Vec<_> = outbox::pending(p.a.store.pool(), Some(ROOM))
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.destination == "c.example")
        .collect();
    let mut read = 0;
    for item in fanned {
        for m in mimi_bridge::protocol::wire::split_notify_body(&item.body).unwrap() {
            if let Ok(Some(plain)) = p.carl.process(m.message.as_bytes()) {
                assert!(String::from_utf8_lossy(&plain).contains("hello from an old epoch"));
                read += 1;
            }
        }
    }
    assert_eq!(read, 1, "carl decrypts the message once");
    assert_eq!(p.event_state("e1").await.0, EventState::Done);
    assert!(p.failures().await.is_empty(), "{:?}", p.failures().await);
    // nothing left waiting at b, and no resync was needed
    assert!(
        outbox::pending(p.b.store.pool(), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        p.commands_of("message").await.is_empty(),
        "no notice: {:?}",
        p.kinds()
    );
}

#[tokio::test]
async fn a_message_the_hub_refuses_is_reported_to_its_sender() {
    let p = pair(&["bob"]).await;
    p.submit("e1", "bob", text("m1", "too late")).await;
    p.bridge.run_once().await.unwrap(); // queued for a, not yet sent
    // alice removes bob at the hub; b learns of it
    let failures = p.alice_removes_bob_then_failures().await;
    assert!(
        failures[0].1.contains("refused the message")
            && failures[0].1.contains("may not send messages"),
        "{}",
        failures[0].1
    );
    assert_eq!(p.event_state("e1").await.0, EventState::Failed);
    assert!(p.decrypted_at_a().await.is_empty());
}

#[tokio::test]
async fn a_leave_that_loses_an_epoch_race_is_made_again() {
    let mut p = pair(&["bob"]).await;
    p.submit("e1", "bob", EventKind::UserLeft).await;
    p.bridge.run_once().await.unwrap(); // proposals at epoch 1, queued for a
    assert_eq!(p.carl_commits().await, 2);
    p.b.service.deliver_due().await.unwrap(); // wrongEpoch: b is still at epoch 1
    let bob: UserUri = "mimi://b.example/u/bob".parse().unwrap();
    assert!(
        p.a.mls
            .room_state(&room())
            .await
            .unwrap()
            .block_reason(&bob)
            .is_none()
    );
    p.until("bob is leaving at the hub", || async {
        p.a.mls
            .room_state(&room())
            .await
            .unwrap()
            .exiting_users()
            .contains(&bob)
    })
    .await;
    assert_eq!(p.event_state("e1").await.0, EventState::Done);
    assert!(p.failures().await.is_empty(), "{:?}", p.failures().await);
}

#[tokio::test]
async fn a_follower_whose_fan_out_was_dropped_resynchronises() {
    let mut p = pair(&["bob", "bert"]).await;
    // carl's commit reaches b ...
    assert_eq!(p.carl_commits().await, 2);
    p.until("b at epoch 2", || async { p.b_epoch().await == 2 })
        .await;
    // ... the next one is lost on the way (a dead-lettered notify) ...
    assert_eq!(p.carl_commits().await, 3);
    for item in p.held_notifies().await {
        outbox::dead_letter(p.a.store.pool(), &item.id)
            .await
            .unwrap();
    }
    // ... and the one after shows b the gap; b crashes in the middle of its first resync
    p.b.mls.inject_fault("after-mls-step");
    assert_eq!(p.carl_commits().await, 4);
    let alice: ClientUri = "mimi://a.example/d/alice/bridge".parse().unwrap();
    p.until("b resynchronised and both its users rejoined", || async {
        let a_state = p.a.mls.room_state(&room()).await.unwrap();
        let bob_in = a_state
            .members
            .iter()
            .filter(|m| m.user.as_str() == "mimi://b.example/u/bob")
            .count();
        let noticed = p
            .messages_at_b()
            .await
            .iter()
            .any(|(_, _, kind)| *kind == MessageKind::Notice);
        p.b_epoch().await == a_state.epoch && a_state.epoch == 6 && bob_in == 1 && noticed
    })
    .await;
    let notices: Vec<_> = p
        .messages_at_b()
        .await
        .into_iter()
        .filter(|(_, _, kind)| *kind == MessageKind::Notice)
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let resync_attempts: i64 = sqlx::Row::get(
        &sqlx::query("SELECT attempts FROM outbox WHERE id = $1")
            .bind(format!("resync:{ROOM}:2"))
            .fetch_one(p.b.store.pool())
            .await
            .unwrap(),
        "attempts",
    );
    assert_eq!(
        resync_attempts, 2,
        "the grace, then the crash; the third attempt resynced"
    );
    assert!(
        notices[0].1.contains("lost track of the room"),
        "{}",
        notices[0].1
    );
    assert_eq!(notices[0].0, "mimi://a.example");
    // one leaf each for bob and bert: their earlier ones went with their rejoins
    let a_state = p.a.mls.room_state(&room()).await.unwrap();
    for user in ["mimi://b.example/u/bob", "mimi://b.example/u/bert"] {
        assert_eq!(
            a_state
                .members
                .iter()
                .filter(|m| m.user.as_str() == user)
                .count(),
            1,
            "{user}: {:?}",
            a_state.members
        );
    }
    // the room carries on both ways: alice's message reaches b, bob's reaches a
    let content = mimi_bridge::core::content::message(
        [9; 16],
        &MessageContent::text("after the resync"),
        None,
        None,
    )
    .unwrap();
    p.a.mls
        .send_messages(&room(), &alice, &[content.to_cbor().unwrap().as_slice()])
        .await
        .unwrap();
    p.until("alice's message reaches b", || async {
        p.messages_at_b()
            .await
            .iter()
            .any(|(_, body, _)| body == "after the resync")
    })
    .await;
    p.submit("e1", "bob", text("m1", "bob is back in step"))
        .await;
    p.until("bob's message decrypted at a", || async {
        p.decrypted_at_a()
            .await
            .iter()
            .any(|(_, c)| body_of(c).contains("bob is back in step"))
    })
    .await;
    assert!(p.failures().await.is_empty(), "{:?}", p.failures().await);
}

#[tokio::test]
async fn a_leave_of_a_user_removed_meanwhile_is_reported() {
    let p = pair(&["bob"]).await;
    p.submit("e1", "bob", EventKind::UserLeft).await;
    p.bridge.run_once().await.unwrap(); // proposals at epoch 1, queued for a
    let failures = p.alice_removes_bob_then_failures().await;
    assert!(
        failures[0].1.contains("not in this room"),
        "{}",
        failures[0].1
    );
    assert_eq!(p.event_state("e1").await.0, EventState::Failed);
    // b saw the removal, and nothing waits at b any more
    assert_eq!(
        p.commands_of("user_removed").await.len(),
        1,
        "{:?}",
        p.kinds()
    );
    assert!(
        outbox::pending(p.b.store.pool(), None)
            .await
            .unwrap()
            .is_empty()
    );
}
