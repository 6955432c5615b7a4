//! The store against real databases: every test runs on SQLite and on Postgres.

mod common;

use common::TestDb;
use mimi_bridge::store::outbox::{self, OutboxRecord};
use mimi_bridge::store::pending_proposals::PendingProposalRecord;
use mimi_bridge::store::room_members::MemberRecord;
use mimi_bridge::store::rooms::{NewRoom, OurRole};
use mimi_bridge::store::{Store, StoreError, StoreOptions, pending_proposals, room_members, rooms};

const ROOM: &str = "mimi://a.example/r/clubhouse";

fn new_room(app_data: &[u8]) -> NewRoom<'_> {
    NewRoom {
        room_id: ROOM,
        hub_domain: "a.example",
        our_role: OurRole::Hub,
        epoch: 0,
        app_data,
    }
}

both_backends!(
    migrations_apply_and_are_idempotent,
    a_newer_schema_is_refused,
    rooms_insert_get_list_delete,
    a_room_cannot_be_created_twice,
    epochs_advance_only_from_the_expected_epoch,
    a_failed_transaction_changes_nothing,
    members_are_replaced_atomically,
    pending_proposals_are_cached_once_and_cleared_by_epoch,
    binary_data_survives_byte_for_byte,
    data_survives_reopening,
    the_outbox_keeps_items_until_delivered,
    dead_letters_leave_the_queue_and_can_be_resent,
    bridge_mappings_hold_both_ways,
    webhook_ids_are_recorded_once,
    legacy_events_queue_per_room_and_settle_once,
    consent_grants_are_not_undone_by_requests,
);

async fn migrations_apply_and_are_idempotent(db: TestDb) {
    let store = Store::open(&StoreOptions::new(&db.url)).await.unwrap();
    let before = store.schema_status().await.unwrap();
    assert_eq!(
        before.database, 0,
        "{}: a new database is empty",
        db.backend
    );
    assert!(before.binary >= 1);
    let after = store.migrate().await.unwrap();
    assert_eq!(after.database, after.binary);
    assert_eq!(
        store.migrate().await.unwrap(),
        after,
        "a second run changes nothing"
    );
    rooms::list(store.pool()).await.unwrap();
}

async fn a_newer_schema_is_refused(db: TestDb) {
    let store = db.store().await;
    let future = store.binary_schema_version() + 1;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from the future', TRUE, $2, 0)",
    )
    .bind(future)
    .bind(vec![0u8; 48])
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;
    let err = Store::open_and_migrate(&StoreOptions::new(&db.url))
        .await
        .unwrap_err();
    match err {
        StoreError::SchemaTooNew { database, binary } => {
            assert_eq!(database, future);
            assert_eq!(binary, future - 1);
        }
        other => panic!("{}: expected SchemaTooNew, got {other}", db.backend),
    }
}

async fn rooms_insert_get_list_delete(db: TestDb) {
    let store = db.store().await;
    assert_eq!(rooms::get(store.pool(), ROOM).await.unwrap(), None);
    rooms::insert(store.pool(), &new_room(&[1, 2, 3]))
        .await
        .unwrap();
    let got = rooms::get(store.pool(), ROOM).await.unwrap().unwrap();
    assert_eq!(got.room_id, ROOM);
    assert_eq!(got.hub_domain, "a.example");
    assert_eq!(got.our_role, OurRole::Hub);
    assert_eq!(got.epoch, 0);
    assert_eq!(got.app_data, vec![1, 2, 3]);
    assert!(got.created_at_ms > 0 && got.created_at_ms == got.updated_at_ms);
    let mut other = new_room(&[]);
    other.room_id = "mimi://b.example/r/elsewhere";
    other.our_role = OurRole::Follower;
    rooms::insert(store.pool(), &other).await.unwrap();
    let all = rooms::list(store.pool()).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        all.iter()
            .find(|r| r.room_id == other.room_id)
            .unwrap()
            .our_role,
        OurRole::Follower
    );
    assert!(rooms::delete(store.pool(), ROOM).await.unwrap());
    assert!(!rooms::delete(store.pool(), ROOM).await.unwrap());
    assert_eq!(rooms::list(store.pool()).await.unwrap().len(), 1);
}

async fn a_room_cannot_be_created_twice(db: TestDb) {
    let store = db.store().await;
    rooms::insert(store.pool(), &new_room(&[1])).await.unwrap();
    let err = rooms::insert(store.pool(), &new_room(&[2]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::RoomExists { .. }), "{err}");
    let got = rooms::get(store.pool(), ROOM).await.unwrap().unwrap();
    assert_eq!(got.app_data, vec![1], "the first room is untouched");
}

async fn epochs_advance_only_from_the_expected_epoch(db: TestDb) {
    let store = db.store().await;
    rooms::insert(store.pool(), &new_room(&[0])).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    rooms::advance_epoch(&mut tx, ROOM, 0, 1, &[1])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let err = rooms::advance_epoch(&mut tx, ROOM, 0, 1, &[9])
        .await
        .unwrap_err();
    match err {
        StoreError::EpochConflict {
            expected, actual, ..
        } => {
            assert_eq!(expected, 0);
            assert_eq!(actual, Some(1));
        }
        other => panic!("expected EpochConflict, got {other}"),
    }
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    let err = rooms::advance_epoch(&mut tx, "mimi://a.example/r/none", 0, 1, &[]).await;
    assert!(matches!(err, Err(StoreError::RoomNotFound { .. })));
    drop(tx);
    let got = rooms::get(store.pool(), ROOM).await.unwrap().unwrap();
    assert_eq!((got.epoch, got.app_data), (1, vec![1]));
}

async fn a_failed_transaction_changes_nothing(db: TestDb) {
    let store = db.store().await;
    rooms::insert(store.pool(), &new_room(&[0])).await.unwrap();
    {
        let mut tx = store.begin().await.unwrap();
        rooms::advance_epoch(&mut tx, ROOM, 0, 1, &[1])
            .await
            .unwrap();
        room_members::replace(
            &mut tx,
            ROOM,
            &[MemberRecord {
                client_uri: "mimi://a.example/d/alice/bridge".into(),
                user_uri: "mimi://a.example/u/alice".into(),
            }],
        )
        .await
        .unwrap();
        // dropped without commit: rolled back
    }
    let got = rooms::get(store.pool(), ROOM).await.unwrap().unwrap();
    assert_eq!(got.epoch, 0);
    assert!(
        room_members::list(store.pool(), ROOM)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn members_are_replaced_atomically(db: TestDb) {
    let store = db.store().await;
    rooms::insert(store.pool(), &new_room(&[])).await.unwrap();
    let alice = MemberRecord {
        client_uri: "mimi://a.example/d/alice/bridge".into(),
        user_uri: "mimi://a.example/u/alice".into(),
    };
    let bob = MemberRecord {
        client_uri: "mimi://b.example/d/bob/phone".into(),
        user_uri: "mimi://b.example/u/bob".into(),
    };
    let mut tx = store.begin().await.unwrap();
    room_members::replace(&mut tx, ROOM, &[alice.clone(), bob.clone()])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        room_members::list(store.pool(), ROOM).await.unwrap(),
        vec![alice.clone(), bob.clone()]
    );
    let mut tx = store.begin().await.unwrap();
    room_members::replace(&mut tx, ROOM, std::slice::from_ref(&bob))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        room_members::list(store.pool(), ROOM).await.unwrap(),
        vec![bob]
    );
    // a member of an unknown room violates the foreign key
    let mut tx = store.begin().await.unwrap();
    let err = room_members::replace(&mut tx, "mimi://a.example/r/none", &[alice]).await;
    assert!(err.is_err(), "{}: foreign keys are enforced", db.backend);
}

async fn pending_proposals_are_cached_once_and_cleared_by_epoch(db: TestDb) {
    let store = db.store().await;
    rooms::insert(store.pool(), &new_room(&[])).await.unwrap();
    let p1 = PendingProposalRecord {
        proposal_ref: vec![1; 32],
        epoch: 4,
        message: vec![0xAA; 10],
        accepted_at_ms: 1000,
    };
    let p2 = PendingProposalRecord {
        proposal_ref: vec![2; 32],
        epoch: 4,
        message: vec![0xBB; 10],
        accepted_at_ms: 1001,
    };
    assert!(
        pending_proposals::insert(store.pool(), ROOM, &p1)
            .await
            .unwrap()
    );
    assert!(
        !pending_proposals::insert(store.pool(), ROOM, &p1)
            .await
            .unwrap(),
        "retry is a no-op"
    );
    assert!(
        pending_proposals::insert(store.pool(), ROOM, &p2)
            .await
            .unwrap()
    );
    assert_eq!(
        pending_proposals::list(store.pool(), ROOM, 4)
            .await
            .unwrap(),
        vec![p1.clone(), p2.clone()]
    );
    assert!(
        pending_proposals::list(store.pool(), ROOM, 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        pending_proposals::clear_before(store.pool(), ROOM, 5)
            .await
            .unwrap(),
        2
    );
    assert!(
        pending_proposals::list(store.pool(), ROOM, 4)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn binary_data_survives_byte_for_byte(db: TestDb) {
    let store = db.store().await;
    let blob: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    rooms::insert(store.pool(), &new_room(&blob)).await.unwrap();
    let got = rooms::get(store.pool(), ROOM).await.unwrap().unwrap();
    assert_eq!(got.app_data, blob);
}

async fn data_survives_reopening(db: TestDb) {
    let store = db.store().await;
    rooms::insert(store.pool(), &new_room(&[7, 7]))
        .await
        .unwrap();
    store.close().await;
    let store = db.store().await;
    let got = rooms::get(store.pool(), ROOM).await.unwrap().unwrap();
    assert_eq!(got.app_data, vec![7, 7]);
}

async fn the_outbox_keeps_items_until_delivered(db: TestDb) {
    let store = db.store().await;
    let item = |id: &str, room: Option<&str>| OutboxRecord {
        id: id.into(),
        room_id: room.map(str::to_string),
        destination: "b.example".into(),
        kind: "message".into(),
        sender: None,
        body: id.as_bytes().to_vec(),
        attempts: 0,
    };
    outbox::enqueue(store.pool(), &item("one", Some(ROOM)))
        .await
        .unwrap();
    let err = outbox::enqueue(store.pool(), &item("one", Some(ROOM))).await;
    assert!(err.is_err(), "{}: an id is queued once", db.backend);
    let batch: Vec<OutboxRecord> = (0..700)
        .map(|i| item(&format!("batch-{i:04}"), None))
        .collect();
    let mut conn = store.pool().acquire().await.unwrap();
    outbox::enqueue_many(&mut conn, &batch).await.unwrap();
    drop(conn);
    assert_eq!(
        outbox::pending(store.pool(), Some(ROOM))
            .await
            .unwrap()
            .len(),
        1
    );
    let all = outbox::pending(store.pool(), None).await.unwrap();
    assert_eq!(all.len(), 701);
    assert_eq!(all[1].body, b"batch-0000");
    assert!(outbox::mark_delivered(store.pool(), "one").await.unwrap());
    assert!(
        !outbox::mark_delivered(store.pool(), "one").await.unwrap(),
        "delivered once"
    );
    assert_eq!(
        outbox::pending(store.pool(), None).await.unwrap().len(),
        700
    );
}

async fn dead_letters_leave_the_queue_and_can_be_resent(db: TestDb) {
    let store = db.store().await;
    for id in ["w1", "w2"] {
        outbox::enqueue(
            store.pool(),
            &OutboxRecord {
                id: id.into(),
                room_id: Some(ROOM.into()),
                destination: "legacy".into(),
                kind: "webhook".into(),
                sender: None,
                body: id.as_bytes().to_vec(),
                attempts: 0,
            },
        )
        .await
        .unwrap();
    }
    let heads = outbox::heads(store.pool()).await.unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].item.id, "w1", "one queue, in order");
    outbox::dead_letter(store.pool(), "w1").await.unwrap();
    let heads = outbox::heads(store.pool()).await.unwrap();
    assert_eq!(heads[0].item.id, "w2", "the queue moves on");
    let dead = outbox::dead_letters(store.pool(), "legacy").await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, "w1");
    assert!(outbox::resend(store.pool(), "w1").await.unwrap());
    assert!(
        !outbox::resend(store.pool(), "w1").await.unwrap(),
        "not dead any more"
    );
    assert!(
        outbox::dead_letters(store.pool(), "legacy")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        outbox::heads(store.pool()).await.unwrap()[0].item.id,
        "w1",
        "back at its place"
    );
}

async fn bridge_mappings_hold_both_ways(db: TestDb) {
    use mimi_bridge::store::{message_map, portals, puppets};
    let store = db.store().await;
    assert!(
        portals::link(store.pool(), "legacy-room-1", ROOM)
            .await
            .unwrap()
    );
    assert!(
        !portals::link(store.pool(), "legacy-room-1", "mimi://a.example/r/other")
            .await
            .unwrap()
    );
    assert_eq!(
        portals::room_of(store.pool(), "legacy-room-1")
            .await
            .unwrap()
            .as_deref(),
        Some(ROOM)
    );
    assert_eq!(
        portals::legacy_of(store.pool(), ROOM)
            .await
            .unwrap()
            .as_deref(),
        Some("legacy-room-1")
    );
    let alice = puppets::Puppet {
        legacy_user_id: "alice".into(),
        user_uri: "mimi://a.example/u/alice".into(),
        client_uri: Some("mimi://a.example/d/alice/bridge".into()),
        is_ghost: false,
    };
    assert!(puppets::insert(store.pool(), &alice).await.unwrap());
    assert!(!puppets::insert(store.pool(), &alice).await.unwrap());
    assert_eq!(
        puppets::by_legacy(store.pool(), "alice").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        puppets::by_user(store.pool(), "mimi://a.example/u/alice")
            .await
            .unwrap(),
        Some(alice)
    );
    assert!(
        message_map::insert(store.pool(), ROOM, "m1", "01ab")
            .await
            .unwrap()
    );
    assert!(
        !message_map::insert(store.pool(), ROOM, "m1", "01cd")
            .await
            .unwrap(),
        "a retry maps nothing new"
    );
    assert_eq!(
        message_map::mimi_of(store.pool(), ROOM, "m1")
            .await
            .unwrap()
            .as_deref(),
        Some("01ab")
    );
    assert_eq!(
        message_map::legacy_of(store.pool(), ROOM, "01ab")
            .await
            .unwrap()
            .as_deref(),
        Some("m1")
    );
    assert_eq!(
        message_map::legacy_of(store.pool(), ROOM, "01cd")
            .await
            .unwrap(),
        None
    );
}

async fn webhook_ids_are_recorded_once(db: TestDb) {
    use mimi_bridge::store::webhook_seen::{self, SeenWebhook};
    let store = db.store().await;
    assert_eq!(
        webhook_seen::get(store.pool(), "msg_1").await.unwrap(),
        None
    );
    let first = SeenWebhook {
        webhook_id: "msg_1".into(),
        signed_at: 1_700_000_000,
        body_hash: "ab".into(),
        response: "{\"ok\":true}".into(),
    };
    assert!(webhook_seen::record(store.pool(), &first).await.unwrap());
    let again = SeenWebhook {
        response: "{}".into(),
        signed_at: 1_700_000_001,
        ..first.clone()
    };
    assert!(!webhook_seen::record(store.pool(), &again).await.unwrap());
    assert_eq!(
        webhook_seen::get(store.pool(), "msg_1").await.unwrap(),
        Some(first)
    );
}

async fn legacy_events_queue_per_room_and_settle_once(db: TestDb) {
    use mimi_bridge::store::legacy_events::{self, EventState, Settlement};
    use mimi_bridge::store::message_map;
    let store = db.store().await;
    assert!(
        legacy_events::accept(store.pool(), "e1", "r1", "{}")
            .await
            .unwrap()
    );
    assert!(
        !legacy_events::accept(store.pool(), "e1", "r1", "{\"x\":1}")
            .await
            .unwrap()
    );
    assert!(
        legacy_events::accept(store.pool(), "e2", "r1", "{}")
            .await
            .unwrap()
    );
    assert!(
        legacy_events::accept(store.pool(), "e3", "r2", "{}")
            .await
            .unwrap()
    );
    let heads = legacy_events::heads(store.pool(), 10).await.unwrap();
    let ids: Vec<_> = heads.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["e1", "e3"]);
    let e1 = &heads[0];
    let settlement = Settlement {
        message_map: Some((ROOM.into(), "m1".into(), "01ab".into())),
        ..Settlement::new(e1.seq)
    };
    let mut conn = store.pool().acquire().await.unwrap();
    assert!(settlement.apply(&mut conn).await.unwrap());
    // a second outcome does not overwrite the first
    assert!(!settlement.apply(&mut conn).await.unwrap());
    assert!(
        !legacy_events::settle(&mut *conn, e1.seq, EventState::Failed, Some("late"))
            .await
            .unwrap()
    );
    drop(conn);
    assert_eq!(
        message_map::mimi_of(store.pool(), ROOM, "m1")
            .await
            .unwrap()
            .as_deref(),
        Some("01ab")
    );
    let e1 = legacy_events::get(store.pool(), "e1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e1.state, e1.error), (EventState::Done, None));
    let ids: Vec<_> = legacy_events::heads(store.pool(), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, ["e2", "e3"]);
}

async fn consent_grants_are_not_undone_by_requests(db: TestDb) {
    use mimi_bridge::store::consents::{self, ConsentState};
    let store = db.store().await;
    let (a, b) = ("mimi://a.example/u/alice", "mimi://b.example/u/bob");
    assert_eq!(
        consents::effective(store.pool(), a, b, ROOM).await.unwrap(),
        None
    );
    consents::request(store.pool(), a, b, Some(ROOM))
        .await
        .unwrap();
    assert_eq!(
        consents::effective(store.pool(), a, b, ROOM).await.unwrap(),
        Some(ConsentState::Requested)
    );
    consents::set(store.pool(), a, b, Some(ROOM), ConsentState::Granted)
        .await
        .unwrap();
    consents::request(store.pool(), a, b, Some(ROOM))
        .await
        .unwrap();
    assert_eq!(
        consents::effective(store.pool(), a, b, ROOM).await.unwrap(),
        Some(ConsentState::Granted)
    );
    // a grant for every room is not hidden by a pending request for one room
    let other = "mimi://a.example/r/other";
    consents::set(store.pool(), a, b, None, ConsentState::Granted)
        .await
        .unwrap();
    consents::request(store.pool(), a, b, Some(other))
        .await
        .unwrap();
    assert_eq!(
        consents::effective(store.pool(), a, b, other)
            .await
            .unwrap(),
        Some(ConsentState::Granted)
    );
    // but the room's own revocation wins
    consents::set(store.pool(), a, b, Some(other), ConsentState::Revoked)
        .await
        .unwrap();
    assert_eq!(
        consents::effective(store.pool(), a, b, other)
            .await
            .unwrap(),
        Some(ConsentState::Revoked)
    );
}
