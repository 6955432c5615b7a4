//! The bridge core in process, on a room this provider hosts, against SQLite and Postgres: each
//! event it cannot carry is settled as failed and reported to the connector; repeats and
//! crashes neither lose nor double anything.

mod common;

use common::text;

use std::sync::Arc;
use std::time::Duration;

use common::{RecordingConnector, TestDb};
use mimi_bridge::core::{Bridge, BridgeOptions};
use mimi_bridge::mls::{ProxyMls, StateKey};
use mimi_bridge::protocol::service::MimiService;
use mimi_bridge::room::code_points::ComponentCodePoints;
use mimi_bridge::store::legacy_events::{self, EventState};
use mimi_bridge::store::{Store, StoreOptions, outbox};
use mimi_bridge::uri::{ProviderId, RoomUri};
use mimi_bridge_connector::{
    Accepted, CommandKind, ConnectorEvent, EventKind, EventSink, MessageContent, SinkError, UserRef,
};

struct Harness {
    store: Store,
    mls: Arc<ProxyMls>,
    service: Arc<MimiService>,
    bridge: Arc<Bridge>,
    connector: Arc<RecordingConnector>,
}

const ROOM: &str = "mimi://a.example/r/general";

impl Harness {
    async fn new(db: &TestDb) -> Harness {
        Harness::with_options(db, BridgeOptions::default()).await
    }

    async fn with_options(db: &TestDb, options: BridgeOptions) -> Harness {
        Harness::build(db, options, mimi_bridge::mls::DEFAULT_CATCH_UP_BOUND).await
    }

    async fn build(db: &TestDb, options: BridgeOptions, catch_up_bound: u32) -> Harness {
        let store = Store::open_and_migrate(&StoreOptions::new(&db.url))
            .await
            .unwrap();
        let provider = ProviderId::new("a.example").unwrap();
        let mls = Arc::new(
            ProxyMls::new(
                store.clone(),
                StateKey::from_bytes([2; 32]),
                ComponentCodePoints::default(),
                provider.clone(),
            )
            .with_catch_up_bound(catch_up_bound),
        );
        let service = Arc::new(MimiService::new(provider, store.clone(), mls.clone(), None));
        let connector = Arc::new(RecordingConnector::default());
        let bridge = Bridge::new(
            store.clone(),
            mls.clone(),
            service.clone(),
            connector.clone(),
            options,
        );
        Harness {
            store,
            mls,
            service,
            bridge,
            connector,
        }
    }

    /// alice's room `general`, with mallory of b.example in it: a bare openmls member.
    async fn with_mallory(
        db: &TestDb,
    ) -> (Harness, RoomUri, mimi_bridge::mls::bare_member::BareMember) {
        Harness::add_mallory(Harness::new(db).await, &[]).await
    }

    /// As [`Harness::with_mallory`], with local users added by alice before mallory.
    async fn add_mallory(
        h: Harness,
        locals: &[&str],
    ) -> (Harness, RoomUri, mimi_bridge::mls::bare_member::BareMember) {
        use mimi_bridge::mls::UserAddition;
        use mimi_bridge::mls::bare_member::BareMember;
        h.submit("e1", "alice", EventKind::RoomCreated { name: None })
            .await;
        for local in locals {
            h.submit(
                &format!("add-{local}"),
                "alice",
                EventKind::UserAdded {
                    target: UserRef::legacy(*local),
                },
            )
            .await;
        }
        h.settle().await;
        let room: RoomUri = ROOM.parse().unwrap();
        let alice = "mimi://a.example/d/alice/bridge".parse().unwrap();
        let mut mallory = BareMember::new("mimi://b.example/d/mallory/laptop");
        let kp = mallory.key_package();
        let user: mimi_bridge::uri::UserUri = "mimi://b.example/u/mallory".parse().unwrap();
        h.mls
            .bind_key_package(&kp, user.provider(), &user)
            .await
            .unwrap();
        let out = h
            .mls
            .add_users(
                &room,
                &alice,
                &[UserAddition {
                    user,
                    role: 2,
                    key_packages: vec![kp],
                }],
            )
            .await
            .unwrap();
        h.service.deliver_due().await.unwrap();
        mallory.join(out.welcome.as_ref().unwrap()).unwrap();
        (h, room, mallory)
    }

    /// mallory commits (a path update) and the hub accepts it: the room moves on one epoch.
    async fn mallory_commits(
        &self,
        room: &RoomUri,
        mallory: &mut mimi_bridge::mls::bare_member::BareMember,
    ) {
        use mimi_bridge::protocol::wire::UpdateOutcome;
        let commit = mallory.commit(vec![], vec![], None, true);
        let answer = self
            .service
            .hub_update(
                room,
                &ProviderId::new("b.example").unwrap(),
                common::commit_request(&commit),
            )
            .await
            .unwrap();
        assert!(
            matches!(answer.outcome, UpdateOutcome::Success { .. }),
            "{answer:?}"
        );
    }

    async fn submit(&self, id: &str, sender: &str, kind: EventKind) -> Accepted {
        self.bridge
            .submit(ConnectorEvent::new(id, "general", sender, kind))
            .await
            .unwrap()
    }

    /// Runs the core and the outbox until nothing moves.
    async fn settle(&self) {
        for _ in 0..100 {
            let moved = self.bridge.run_once().await.unwrap();
            self.service.deliver_due().await.unwrap();
            // b.example is no daemon here: what the hub fans out to it stays queued.
            let pending: Vec<_> = outbox::pending(self.store.pool(), None)
                .await
                .unwrap()
                .into_iter()
                .filter(|i| i.destination != "b.example")
                .collect();
            let waiting = legacy_events::heads(self.store.pool(), 1).await.unwrap();
            if !moved && pending.is_empty() && waiting.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the core did not settle");
    }

    /// mallory processes what the hub fanned out to b.example after the first `seen` rows;
    /// returns the messages she could read.
    async fn follow_fan_out(
        &self,
        mallory: &mut mimi_bridge::mls::bare_member::BareMember,
        seen: &mut usize,
    ) -> Vec<String> {
        self.follow_fan_out_raw(mallory, seen)
            .await
            .iter()
            .map(|p| String::from_utf8_lossy(p).to_string())
            .collect()
    }

    /// As [`Harness::follow_fan_out`], the plaintexts as they are.
    async fn follow_fan_out_raw(
        &self,
        mallory: &mut mimi_bridge::mls::bare_member::BareMember,
        seen: &mut usize,
    ) -> Vec<Vec<u8>> {
        use mimi_bridge::protocol::wire::split_notify_body;
        use sqlx::Row;
        let rows =
            sqlx::query("SELECT body FROM outbox WHERE destination = 'b.example' ORDER BY seq")
                .fetch_all(self.store.pool())
                .await
                .unwrap();
        let mut read = Vec::new();
        for row in rows.iter().skip(*seen) {
            *seen += 1;
            let body: Vec<u8> = row.try_get("body").unwrap();
            for m in split_notify_body(&body).unwrap() {
                if let Ok(Some(plain)) = mallory.process(m.message.as_bytes()) {
                    read.push(plain);
                }
            }
        }
        read
    }

    async fn state_of(&self, event: &str) -> (EventState, Option<String>) {
        let e = legacy_events::get(self.store.pool(), event)
            .await
            .unwrap()
            .unwrap();
        (e.state, e.error)
    }

    fn failures(&self) -> Vec<(String, String)> {
        self.connector
            .commands
            .lock()
            .unwrap()
            .iter()
            .filter_map(|c| match &c.kind {
                CommandKind::EventFailed { event_id, reason } => {
                    Some((event_id.to_string(), reason.clone()))
                }
                _ => None,
            })
            .collect()
    }

    async fn messages_sent(&self) -> i64 {
        use sqlx::Row;
        sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'message'")
            .fetch_one(self.store.pool())
            .await
            .unwrap()
            .try_get::<i64, _>("n")
            .unwrap()
    }
}

both_backends!(
    events_that_cannot_be_carried_are_reported_to_the_connector,
    repeated_events_are_accepted_once,
    a_crash_around_a_send_neither_loses_nor_doubles_it,
    local_membership_and_rename_reach_the_room_state,
    a_run_of_messages_goes_in_one_transaction_once,
    an_event_that_keeps_failing_is_reported_and_its_room_moves_on,
    a_change_whose_commit_loses_an_epoch_race_is_carried_out_again,
    a_message_overtaken_by_a_commit_is_sent_again_at_the_new_epoch,
    a_user_silent_while_the_room_moved_on_rejoins_to_speak,
    a_bridged_message_carries_its_legacy_id_and_time,
);

/// alice's message goes out with its legacy id and send time in the content extensions
/// (draft-mimi-content-more-extensions-00, this bridge's private-range keys): mallory reads
/// them from the content she decrypts.
async fn a_bridged_message_carries_its_legacy_id_and_time(db: TestDb) {
    use mimi_bridge::content::MimiContent;
    use mimi_bridge::content::origin::{Origin, OriginKeys};
    let (h, _room, mut mallory) = Harness::with_mallory(&db).await;
    let mut seen = 0;
    h.follow_fan_out_raw(&mut mallory, &mut seen).await;
    let mut event = ConnectorEvent::new("e2", "general", "alice", text("m-17", "hello"));
    event.timestamp_ms = Some(1_765_000_000_123);
    h.bridge.submit(event).await.unwrap();
    h.settle().await;
    let read = h.follow_fan_out_raw(&mut mallory, &mut seen).await;
    assert_eq!(read.len(), 1);
    let content = MimiContent::from_cbor(&read[0]).unwrap();
    assert_eq!(
        content.origin(&OriginKeys::default()),
        Some(Origin {
            message_id: "m-17".into(),
            scope: "a.example".into(),
            sent_at_ms: Some(1_765_000_000_123),
        })
    );
}

/// The room log keeps 4 epochs. carol (a local user) says nothing while mallory (who follows
/// the hub's fan-out to b.example, given up on here as b.example is no daemon) commits 8
/// times: alice, the room's reader, is kept caught up and still reads mallory; carol's client
/// is too far behind to replay the log, so when carol speaks it rejoins by external commit
/// first, and mallory, following the fan-out, reads her message.
async fn a_user_silent_while_the_room_moved_on_rejoins_to_speak(db: TestDb) {
    use mimi_bridge::protocol::wire::{
        IdentifierUri, MlsMessage, Protocol, SubmitMessageRequest, SubmitStatus,
    };
    use mimi_bridge::store::inbound_messages;
    let h = Harness::build(&db, BridgeOptions::default(), 4).await;
    let (h, room, mut mallory) = Harness::add_mallory(h, &["carol"]).await;
    let mut fanned_out = 0;
    h.follow_fan_out(&mut mallory, &mut fanned_out).await;
    let start = h.mls.room_state(&room).await.unwrap().epoch;
    for _ in 0..8 {
        h.mallory_commits(&room, &mut mallory).await;
    }
    let epoch = h.mls.room_state(&room).await.unwrap().epoch;
    assert_eq!(epoch, start + 8);
    // the log holds the last 4 epochs at most
    let logged: Vec<i64> = {
        use sqlx::Row;
        sqlx::query("SELECT DISTINCT epoch FROM room_log WHERE room_id = $1")
            .bind(ROOM)
            .fetch_all(h.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<i64, _>("epoch").unwrap())
            .collect()
    };
    assert!(
        logged.iter().all(|e| *e >= epoch as i64 - 4),
        "log epochs {logged:?} at epoch {epoch}"
    );
    // alice, the reader, decrypts mallory's message at the new epoch
    let answer = h
        .service
        .hub_submit(
            &room,
            &ProviderId::new("b.example").unwrap(),
            SubmitMessageRequest {
                protocol: Protocol::Mls10,
                app_message: MlsMessage::from_bytes(&mallory.encrypt(b"still there?")).unwrap(),
                sending_uri: IdentifierUri::new("mimi://b.example/u/mallory"),
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(answer.status, SubmitStatus::Accepted { .. }),
        "{answer:?}"
    );
    let stored = inbound_messages::list(h.store.pool(), ROOM, 0)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "alice read mallory's message: {stored:?}");
    // carol speaks: her client rejoins, then her message goes
    h.submit("e3", "carol", text("c1", "back after a while"))
        .await;
    h.settle().await;
    assert_eq!(h.state_of("e3").await.0, EventState::Done);
    assert!(h.failures().is_empty(), "{:?}", h.failures());
    let read = h.follow_fan_out(&mut mallory, &mut fanned_out).await;
    assert_eq!(read.len(), 1, "{read:?}");
    assert!(read[0].contains("back after a while"), "{read:?}");
    assert_eq!(
        h.mls.room_state(&room).await.unwrap().epoch,
        epoch + 1,
        "carol's rejoin is one external commit"
    );
}

/// alice's message waits in the outbox while mallory's commit moves the room on: the hub (this
/// daemon) answers it `epochTooOld` as it would a peer's, and it goes again at the new epoch,
/// same content, which mallory (at the new epoch) can read.
async fn a_message_overtaken_by_a_commit_is_sent_again_at_the_new_epoch(db: TestDb) {
    use mimi_bridge::protocol::wire::split_notify_body;
    let (h, room, mut mallory) = Harness::with_mallory(&db).await;
    h.submit("e2", "alice", text("m1", "overtaken")).await;
    h.bridge.run_once().await.unwrap(); // encrypted at epoch 1, not yet delivered
    h.mallory_commits(&room, &mut mallory).await;
    for _ in 0..20 {
        h.service.deliver_due().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // what the hub fanned out to b.example: mallory reads the message at epoch 2
    let mut read = Vec::new();
    for item in outbox::pending(h.store.pool(), Some(ROOM)).await.unwrap() {
        if item.destination != "b.example" {
            continue;
        }
        for m in split_notify_body(&item.body).unwrap() {
            if m.message.epoch() == Some(2)
                && let Ok(Some(plain)) = mallory.process(m.message.as_bytes())
            {
                read.push(String::from_utf8_lossy(&plain).to_string());
            }
        }
    }
    assert_eq!(read.len(), 1, "{read:?}");
    assert!(read[0].contains("overtaken"));
    assert_eq!(
        h.messages_sent().await,
        1,
        "one outbox row, encrypted again in place"
    );
    assert_eq!(h.state_of("e2").await.0, EventState::Done);
    assert!(h.failures().is_empty(), "{:?}", h.failures());
}

async fn a_change_whose_commit_loses_an_epoch_race_is_carried_out_again(db: TestDb) {
    let (h, room, mut mallory) = Harness::with_mallory(&db).await;
    assert_eq!(h.mls.room_state(&room).await.unwrap().epoch, 1);

    // alice renames the room: her commit waits for the hub ...
    h.submit(
        "e2",
        "alice",
        EventKind::RoomRenamed {
            name: "Renamed".into(),
        },
    )
    .await;
    h.bridge.run_once().await.unwrap();
    // ... while mallory's commit gets there first
    h.mallory_commits(&room, &mut mallory).await;
    // alice's commit is answered wrongEpoch; the rename is carried out again, on epoch 2
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        h.service.deliver_due().await.unwrap();
        h.bridge.run_once().await.unwrap();
        let state = h.mls.room_state(&room).await.unwrap();
        if state.metadata.room_name.as_str() == Some("Renamed") {
            assert_eq!(state.epoch, 3, "mallory's commit, then the rename");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rename was not carried out again: {:?}, failures {:?}",
            h.state_of("e2").await,
            h.failures()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.state_of("e2").await.0, EventState::Done);
    assert!(h.failures().is_empty(), "{:?}", h.failures());
}

async fn an_event_that_keeps_failing_is_reported_and_its_room_moves_on(db: TestDb) {
    let h = Harness::with_options(
        &db,
        BridgeOptions {
            retry_for: Duration::from_secs(1),
            ..BridgeOptions::default()
        },
    )
    .await;
    h.submit("e1", "alice", EventKind::RoomCreated { name: None })
        .await;
    h.settle().await;
    // a table that carrying a message needs is gone: every attempt fails on this side
    sqlx::query("DROP TABLE message_map")
        .execute(h.store.pool())
        .await
        .unwrap();
    h.submit("e2", "alice", text("m1", "lost to a broken store"))
        .await;
    h.submit(
        "e3",
        "alice",
        EventKind::RoomRenamed {
            name: "Still moving".into(),
        },
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while h.state_of("e2").await.0 != EventState::Failed {
        assert!(std::time::Instant::now() < deadline, "e2 is still retried");
        h.bridge.run_once().await.unwrap();
        h.service.deliver_due().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.settle().await;
    let failures = h.failures();
    let (_, reason) = failures
        .iter()
        .find(|(id, _)| id == "e2")
        .unwrap_or_else(|| panic!("e2 reported: {failures:?}"));
    assert!(reason.contains("kept failing"), "{reason}");
    assert!(
        !reason.contains("message_map"),
        "no internal error text reaches the legacy side: {reason}"
    );
    // the room's next event was carried out behind it
    assert_eq!(h.state_of("e3").await.0, EventState::Done);
    let room: RoomUri = ROOM.parse().unwrap();
    let state = h.mls.room_state(&room).await.unwrap();
    assert_eq!(state.metadata.room_name.as_str(), Some("Still moving"));
}

async fn events_that_cannot_be_carried_are_reported_to_the_connector(db: TestDb) {
    let h = Harness::new(&db).await;
    // an event in a room the bridge never saw
    h.submit("e0", "alice", text("m0", "hello?")).await;
    h.settle().await;
    h.submit(
        "e1",
        "alice",
        EventKind::RoomCreated {
            name: Some("General".into()),
        },
    )
    .await;
    h.submit("e2", "alice", text("m1", "hello")).await;
    // relations to messages the bridge does not know
    h.submit(
        "e3",
        "alice",
        EventKind::Message {
            message_id: "m2".into(),
            content: MessageContent::text("re"),
            reply_to: Some("m-unknown".into()),
            expires: None,
        },
    )
    .await;
    h.submit(
        "e4",
        "alice",
        EventKind::Edit {
            message_id: "m-unknown".into(),
            content: MessageContent::text("x"),
        },
    )
    .await;
    h.submit(
        "e5",
        "alice",
        EventKind::ReactionRemoved {
            message_id: "m1".into(),
            key: "👍".into(),
        },
    )
    .await;
    // removing someone who is not in the room
    h.submit(
        "e6",
        "alice",
        EventKind::UserRemoved {
            target: UserRef::mimi("mimi://b.example/u/nobody"),
            reason: None,
        },
    )
    .await;
    // a user who is not in the room speaks
    h.submit("e7", "mallory", text("m3", "let me in")).await;
    // typing has no MIMI form: accepted, nothing happens
    h.submit(
        "e8",
        "alice",
        EventKind::Typing {
            active: true,
            timeout_ms: None,
        },
    )
    .await;
    h.settle().await;

    for (event, state) in [
        ("e0", EventState::Failed),
        ("e1", EventState::Done),
        ("e2", EventState::Done),
        ("e3", EventState::Failed),
        ("e4", EventState::Failed),
        ("e5", EventState::Failed),
        ("e6", EventState::Failed),
        ("e7", EventState::Failed),
        ("e8", EventState::Done),
    ] {
        assert_eq!(h.state_of(event).await.0, state, "{event}");
    }
    let failures = h.failures();
    let ids: Vec<_> = failures.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["e0", "e3", "e4", "e5", "e6", "e7"]);
    let reason = |id: &str| failures.iter().find(|(e, _)| e == id).unwrap().1.clone();
    assert!(reason("e0").contains("not bridged"), "{}", reason("e0"));
    assert!(reason("e3").contains("m-unknown"), "{}", reason("e3"));
    assert!(reason("e4").contains("m-unknown"), "{}", reason("e4"));
    assert!(reason("e5").contains("no reaction"), "{}", reason("e5"));
    assert!(
        reason("e6").contains("not a participant"),
        "{}",
        reason("e6")
    );
    assert!(reason("e7").contains("mallory"), "{}", reason("e7"));
    // only the one good message went to MIMI
    assert_eq!(h.messages_sent().await, 1);
}

async fn repeated_events_are_accepted_once(db: TestDb) {
    let h = Harness::new(&db).await;
    let created = EventKind::RoomCreated { name: None };
    assert_eq!(
        h.submit("e1", "alice", created.clone()).await,
        Accepted::NEW
    );
    assert_eq!(h.submit("e1", "alice", created).await, Accepted::DUPLICATE);
    // the same id for a different event is refused
    let err = h
        .bridge
        .submit(ConnectorEvent::new(
            "e1",
            "general",
            "alice",
            text("m", "x"),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Invalid { .. }), "{err}");
    // an invalid event is refused before it is stored
    let err = h
        .bridge
        .submit(ConnectorEvent::new("", "general", "alice", text("m", "x")))
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Invalid { .. }), "{err}");
    h.submit("e2", "alice", text("m1", "once")).await;
    h.submit("e2", "alice", text("m1", "once")).await;
    h.settle().await;
    assert_eq!(h.messages_sent().await, 1);
}

async fn a_crash_around_a_send_neither_loses_nor_doubles_it(db: TestDb) {
    let h = Harness::new(&db).await;
    h.submit("e1", "alice", EventKind::RoomCreated { name: None })
        .await;
    h.settle().await;
    for (i, point) in mimi_bridge::mls::FAULT_POINTS.iter().enumerate() {
        let event = format!("send-{i}");
        h.submit(&event, "alice", text(&format!("m{i}"), "survives"))
            .await;
        h.mls.inject_fault(point);
        // the first attempt fails inside the send's transaction: nothing is stored
        h.bridge.run_once().await.unwrap();
        assert_eq!(h.state_of(&event).await.0, EventState::Pending, "{point}");
        assert_eq!(h.messages_sent().await, i as i64, "{point}");
        // the room waits a moment, then the event is carried out exactly once
        tokio::time::sleep(Duration::from_millis(1100)).await;
        h.settle().await;
        assert_eq!(h.state_of(&event).await.0, EventState::Done, "{point}");
        assert_eq!(h.messages_sent().await, i as i64 + 1, "{point}");
    }
}

async fn local_membership_and_rename_reach_the_room_state(db: TestDb) {
    let h = Harness::new(&db).await;
    h.submit("e1", "alice", EventKind::RoomCreated { name: None })
        .await;
    h.submit(
        "e2",
        "alice",
        EventKind::UserAdded {
            target: UserRef::legacy("carol"),
        },
    )
    .await;
    h.submit(
        "e3",
        "alice",
        EventKind::RoomRenamed {
            name: "Lobby".into(),
        },
    )
    .await;
    h.submit("e4", "carol", text("c1", "hi all")).await;
    h.submit(
        "e5",
        "alice",
        EventKind::UserBanned {
            target: UserRef::legacy("carol"),
            reason: None,
        },
    )
    .await;
    h.submit("e6", "carol", text("c2", "still here?")).await;
    h.settle().await;
    let room: RoomUri = ROOM.parse().unwrap();
    let state = h.mls.room_state(&room).await.unwrap();
    assert_eq!(state.metadata.room_name.as_str(), Some("Lobby"));
    let carol = "mimi://a.example/u/carol".parse().unwrap();
    assert_eq!(state.participants.role_of(&carol), 1, "carol is banned");
    assert!(state.members.iter().all(|m| m.user != carol));
    for (event, expected) in [
        ("e2", EventState::Done),
        ("e3", EventState::Done),
        ("e4", EventState::Done),
        ("e5", EventState::Done),
        ("e6", EventState::Failed),
    ] {
        assert_eq!(h.state_of(event).await.0, expected, "{event}");
    }
    // everything here was done by the legacy side: nothing is echoed back to it
    let kinds: Vec<_> = h
        .connector
        .commands
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.kind.clone())
        .collect();
    assert!(
        kinds
            .iter()
            .all(|k| matches!(k, CommandKind::EventFailed { .. })),
        "{kinds:#?}"
    );
    assert_eq!(h.messages_sent().await, 1);
}

async fn a_run_of_messages_goes_in_one_transaction_once(db: TestDb) {
    use mimi_bridge::store::message_map;
    let h = Harness::new(&db).await;
    h.submit("e0", "alice", EventKind::RoomCreated { name: None })
        .await;
    h.settle().await;
    for i in 0..5 {
        h.submit(
            &format!("e{}", i + 1),
            "alice",
            text(&format!("m{i}"), "in a run"),
        )
        .await;
    }
    // a reply to a message of the run: its relation is known only once the run is stored
    h.submit(
        "e6",
        "alice",
        EventKind::Message {
            message_id: "m5".into(),
            content: MessageContent::text("re"),
            reply_to: Some("m1".into()),
            expires: None,
        },
    )
    .await;
    // the run's transaction fails once: nothing of it is stored, and it is carried out later
    h.mls.inject_fault("before-commit");
    let _ = h.bridge.run_once().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.settle().await;
    assert_eq!(h.messages_sent().await, 6);
    for i in 1..=6 {
        assert_eq!(
            h.state_of(&format!("e{i}")).await.0,
            EventState::Done,
            "e{i}"
        );
    }
    for i in 0..6 {
        assert!(
            message_map::mimi_of(h.store.pool(), ROOM, &format!("m{i}"))
                .await
                .unwrap()
                .is_some(),
            "m{i}"
        );
    }
    assert!(h.failures().is_empty(), "{:?}", h.failures());
}
