//! Proxy MLS clients against real stores: groups, restarts, rejections and injected crashes.

mod common;

use common::TestDb;
use mimi_bridge::mls::bare_member::{BareMember, parse_key_package};
use mimi_bridge::mls::{Incoming, MlsError, ProxyMls, StateKey, UserAddition};
use mimi_bridge::room::code_points::ComponentCodePoints;
use mimi_bridge::room::validation::RejectCode;
use mimi_bridge::store::{Store, StoreOptions, outbox, pending_commits, room_groups};
use mimi_bridge::uri::{ClientUri, ProviderId, RoomUri, UserUri};
use openmls::prelude::*;

const ADMIN: u32 = 3;
const ORDINARY: u32 = 2;

fn client(uri: &str) -> ClientUri {
    uri.parse().unwrap()
}

fn user(uri: &str) -> UserUri {
    uri.parse().unwrap()
}

fn room() -> RoomUri {
    "mimi://a.example/r/clubhouse".parse().unwrap()
}

async fn engine(db: &TestDb, domain: &str) -> ProxyMls {
    let store = Store::open_and_migrate(&StoreOptions::new(&db.url))
        .await
        .unwrap();
    ProxyMls::new(
        store,
        StateKey::from_bytes([42; 32]),
        ComponentCodePoints::default(),
        ProviderId::new(domain).unwrap(),
    )
    .with_key_package_pool(3)
}

/// A room on a.example with alice (admin) and carol, both proxy clients of the same daemon.
async fn room_with_two_local_clients(a: &ProxyMls) -> (ClientUri, ClientUri) {
    let alice = client("mimi://a.example/d/alice/bridge");
    let carol = client("mimi://a.example/d/carol/bridge");
    assert!(a.create_client(&alice).await.unwrap());
    assert!(a.create_client(&carol).await.unwrap());
    assert!(
        !a.create_client(&carol).await.unwrap(),
        "creating twice is a no-op"
    );
    a.create_room(&room(), &alice, ADMIN).await.unwrap();
    let kp = a.key_package(&carol).await.unwrap();
    a.add_users(
        &room(),
        &alice,
        &[UserAddition {
            user: user("mimi://a.example/u/carol"),
            role: ORDINARY,
            key_packages: vec![kp],
        }],
    )
    .await
    .unwrap();
    a.confirm_commit(&room(), &alice).await.unwrap();
    (alice, carol)
}

both_backends!(
    two_proxy_clients_of_one_daemon_share_a_group,
    a_reopened_daemon_continues_the_conversation,
    a_remote_member_joins_and_messages_flow_both_ways,
    an_invalid_participant_list_update_is_rejected,
    an_add_for_a_non_participant_is_rejected,
    a_crash_after_the_mls_step_leaves_a_retryable_state,
    a_crash_before_commit_of_a_confirmation_is_retried_after_restart,
    a_removed_user_loses_all_clients_in_one_commit,
    a_participants_second_device_joins_by_external_commit,
    key_packages_are_single_use_and_replenished,
    a_commit_the_hub_refuses_is_discarded,
    a_leaving_users_cached_proposals_are_committed_next,
    other_writers_go_on_while_a_commit_is_built,
    a_key_package_that_cannot_join_is_named_and_left_out,
    proxy_clients_advertise_the_components_they_understand,
);

/// mls-extensions-10: whoever supports `app_data_dictionary` advertises `app_components` in its
/// LeafNodes: the proxy clients' key packages and their leaves in a room list
/// `app_components`, `safe_aad` and the room state's components.
async fn proxy_clients_advertise_the_components_they_understand(db: TestDb) {
    use mimi_bridge::mls::group_config::{APP_COMPONENTS, SAFE_AAD, advertised_components};
    let a = engine(&db, "a.example").await;
    let (alice, carol) = room_with_two_local_clients(&a).await;
    let cp = ComponentCodePoints::default();
    let expected = {
        let mut ids = vec![APP_COMPONENTS, SAFE_AAD];
        ids.extend(cp.named().iter().map(|(_, id)| *id));
        ids.sort_unstable();
        ids
    };
    let kp = parse_key_package(&a.key_package(&carol).await.unwrap()).unwrap();
    assert_eq!(
        advertised_components(kp.leaf_node()),
        Some(expected.clone())
    );
    // alice's leaf in the room she created, as carol sees it after joining
    a.send_messages(&room(), &carol, &[b"hi"]).await.unwrap();
    let mut bob = BareMember::new("mimi://b.example/d/bob/phone");
    let out = a
        .add_users(
            &room(),
            &alice,
            &[UserAddition {
                user: user("mimi://b.example/u/bob"),
                role: ORDINARY,
                key_packages: vec![bob.key_package()],
            }],
        )
        .await
        .unwrap();
    bob.join(out.welcome.as_ref().unwrap()).unwrap();
    let public = bob.group().public_group();
    let leaves: Vec<_> = public
        .members()
        .filter_map(|m| public.leaf(m.index).cloned())
        .collect();
    let with_list = leaves
        .iter()
        .filter(|l| advertised_components(l) == Some(expected.clone()))
        .count();
    assert_eq!(
        with_list, 2,
        "alice's and carol's leaves advertise; bob's bare one does not"
    );
}

/// A client whose key package does not support what MIMI rooms require (AppDataDictionary,
/// AppDataUpdate) is not added; the error names the client and each missing capability. With
/// another, capable client the user is added with that one alone.
async fn a_key_package_that_cannot_join_is_named_and_left_out(db: TestDb) {
    use mimi_bridge::mls::group_config::CIPHERSUITE;
    let a = engine(&db, "a.example").await;
    let alice = client("mimi://a.example/d/alice/bridge");
    a.create_client(&alice).await.unwrap();
    a.create_room(&room(), &alice, ADMIN).await.unwrap();
    let old = BareMember::new("mimi://b.example/d/bob/old-phone");
    let bare_caps = Capabilities::new(
        None,
        Some(&[CIPHERSUITE]),
        None,
        None,
        Some(&[CredentialType::Basic]),
    );
    let addition = |kps: Vec<Vec<u8>>| UserAddition {
        user: user("mimi://b.example/u/bob"),
        role: ORDINARY,
        key_packages: kps,
    };
    let err = a
        .add_users(
            &room(),
            &alice,
            &[addition(vec![old.key_package_with(bare_caps.clone())])],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MlsError::InsufficientCapabilities { .. }),
        "{err}"
    );
    let text = err.to_string();
    for needle in [
        "mimi://b.example/u/bob",
        "mimi://b.example/d/bob/old-phone",
        "AppDataDictionary",
        "AppDataUpdate",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from: {text}");
    }
    let laptop = BareMember::new("mimi://b.example/d/bob/laptop");
    let out = a
        .add_users(
            &room(),
            &alice,
            &[addition(vec![
                old.key_package_with(bare_caps),
                laptop.key_package(),
            ])],
        )
        .await
        .unwrap();
    let welcome = out.welcome.expect("the capable client is welcomed");
    let mut laptop = laptop;
    laptop.join(&welcome).unwrap();
    let members: Vec<String> = laptop
        .group()
        .members()
        .map(|m| String::from_utf8_lossy(m.credential.serialized_content()).to_string())
        .collect();
    assert!(
        members.iter().any(|m| m.ends_with("/bob/laptop")),
        "{members:?}"
    );
    assert!(
        !members.iter().any(|m| m.ends_with("/bob/old-phone")),
        "{members:?}"
    );
}

/// An operation does its MLS work (here a commit adding 20 users, one HPKE encryption each)
/// before it takes the store's write lock, which on SQLite is the whole database's: another
/// writer commits meanwhile, and nothing of the commit is written until it goes on.
async fn other_writers_go_on_while_a_commit_is_built(db: TestDb) {
    let a = std::sync::Arc::new(engine(&db, "a.example").await);
    let alice = client("mimi://a.example/d/alice/bridge");
    a.create_client(&alice).await.unwrap();
    a.create_room(&room(), &alice, ADMIN).await.unwrap();
    let mut additions = Vec::new();
    for i in 0..20 {
        let c = client(&format!("mimi://a.example/d/u{i}/bridge"));
        a.create_client(&c).await.unwrap();
        additions.push(UserAddition {
            user: user(&format!("mimi://a.example/u/u{i}")),
            role: ORDINARY,
            key_packages: vec![a.key_package(&c).await.unwrap()],
        });
    }
    let paused = a.pause_before_writing();
    let task = {
        let (a, alice) = (a.clone(), alice.clone());
        tokio::spawn(async move { a.add_users(&room(), &alice, &additions).await })
    };
    paused.reached.await.unwrap();
    let mut tx = a.store().begin().await.unwrap();
    outbox::enqueue(
        &mut *tx,
        &outbox::OutboxRecord {
            id: "another-writer".into(),
            room_id: None,
            destination: "c.example".into(),
            kind: "message".into(),
            sender: None,
            body: b"meanwhile".to_vec(),
            attempts: 0,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let pending = || async {
        pending_commits::get(a.store().pool(), room().as_str(), alice.as_str())
            .await
            .unwrap()
    };
    assert!(
        pending().await.is_none(),
        "nothing written before the write phase"
    );
    paused.resume.send(()).unwrap();
    let out = task.await.unwrap().unwrap();
    assert!(out.welcome.is_some());
    assert!(pending().await.is_some());
    assert_eq!(
        outbox::pending(a.store().pool(), None).await.unwrap().len(),
        2
    );
}

async fn two_proxy_clients_of_one_daemon_share_a_group(db: TestDb) {
    let a = engine(&db, "a.example").await;
    let (alice, carol) = room_with_two_local_clients(&a).await;
    let state = a.room_state(&room()).await.unwrap();
    assert_eq!(state.epoch, 1);
    // the base policy names the roles and preauthorization components (room-policy-03 §5)
    let cp = ComponentCodePoints::default();
    assert_eq!(
        state.policy.policy_component_ids,
        vec![cp.roles_list, cp.preauth_list]
    );
    assert_eq!(
        state
            .participants
            .role_of(&user("mimi://a.example/u/carol")),
        ORDINARY
    );
    assert_eq!(state.members.len(), 2);

    // carol has not processed her Welcome yet; sending makes her join and catch up
    let sent = a
        .send_messages(&room(), &carol, &[b"hello from carol"])
        .await
        .unwrap();
    let received = a.receive_messages(&room(), &sent).await.unwrap();
    assert_eq!(
        received,
        vec![(carol.clone(), b"hello from carol".to_vec())]
    );

    let (alice_view, alice_auth) = a.member_view(&room(), &alice).await.unwrap();
    let (carol_view, carol_auth) = a.member_view(&room(), &carol).await.unwrap();
    assert_eq!(
        alice_view, carol_view,
        "both clients confirm the same room state"
    );
    assert_eq!(alice_auth, carol_auth, "and agree on the epoch's keys");

    // carol commits too (a path update); the reader processes nothing it does not need to
    a.self_update(&room(), &carol).await.unwrap();
    let state = a.confirm_commit(&room(), &carol).await.unwrap();
    assert_eq!(state.epoch, 2);
    // the room's reader (alice) decrypts for local delivery; her own messages need none
    let sent = a
        .send_messages(&room(), &alice, &[b"after carol's update"])
        .await
        .unwrap();
    assert!(a.receive_messages(&room(), &sent).await.unwrap().is_empty());
    let sent = a
        .send_messages(&room(), &carol, &[b"after carol's update"])
        .await
        .unwrap();
    let received = a.receive_messages(&room(), &sent).await.unwrap();
    assert_eq!(received[0].0, carol);
    let (alice_view, alice_auth) = a.member_view(&room(), &alice).await.unwrap();
    let (carol_view, carol_auth) = a.member_view(&room(), &carol).await.unwrap();
    assert_eq!(
        (alice_view.epoch, &alice_auth),
        (carol_view.epoch, &carol_auth)
    );
}

async fn a_reopened_daemon_continues_the_conversation(db: TestDb) {
    let (alice, carol) = {
        let a = engine(&db, "a.example").await;
        let ids = room_with_two_local_clients(&a).await;
        let sent = a
            .send_messages(&room(), &ids.1, &[b"before restart"])
            .await
            .unwrap();
        a.receive_messages(&room(), &sent).await.unwrap();
        a.store().close().await;
        ids
    };
    // a new engine on the same database: nothing in memory survives
    let a = engine(&db, "a.example").await;
    let sent = a
        .send_messages(&room(), &carol, &[b"after restart 1", b"after restart 2"])
        .await
        .unwrap();
    let received = a.receive_messages(&room(), &sent).await.unwrap();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1], (carol.clone(), b"after restart 2".to_vec()));
    a.self_update(&room(), &alice).await.unwrap();
    a.store().close().await;
    let a = engine(&db, "a.example").await;
    let state = a.confirm_commit(&room(), &alice).await.unwrap();
    assert_eq!(state.epoch, 2);
    let sent = a
        .send_messages(&room(), &carol, &[b"epoch 2"])
        .await
        .unwrap();
    assert_eq!(
        a.receive_messages(&room(), &sent).await.unwrap()[0].1,
        b"epoch 2"
    );
}

async fn a_remote_member_joins_and_messages_flow_both_ways(db: TestDb) {
    let db_b = TestDb::sqlite();
    let a = engine(&db, "a.example").await;
    let b = engine(&db_b, "b.example").await;
    let (alice, _carol) = room_with_two_local_clients(&a).await;
    let bob = client("mimi://b.example/d/bob/bridge");
    b.create_client(&bob).await.unwrap();
    let kp = b.key_package(&bob).await.unwrap();
    let out = a
        .add_users(
            &room(),
            &alice,
            &[UserAddition {
                user: user("mimi://b.example/u/bob"),
                role: ORDINARY,
                key_packages: vec![kp],
            }],
        )
        .await
        .unwrap();
    let a_state = a.confirm_commit(&room(), &alice).await.unwrap();
    let joined = b
        .join_from_welcome(&room(), out.welcome.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(joined, vec![bob.clone()]);
    let b_state = b.room_state(&room()).await.unwrap();
    assert_eq!(
        a_state, b_state,
        "both daemons read the same state from the group context"
    );

    let to_b = a
        .send_messages(&room(), &alice, &[b"hi bob"])
        .await
        .unwrap();
    assert_eq!(
        b.receive_messages(&room(), &to_b).await.unwrap(),
        vec![(alice.clone(), b"hi bob".to_vec())]
    );
    let to_a = b
        .send_messages(&room(), &bob, &[b"hi alice"])
        .await
        .unwrap();
    match a.process_incoming(&room(), &to_a[0]).await.unwrap() {
        Incoming::Application { sender, payload } => {
            assert_eq!(sender, bob);
            assert_eq!(payload, b"hi alice");
        }
        other => panic!("expected a message, got {other:?}"),
    }

    // a commit by the remote member is processed through the room core
    let update = b.self_update(&room(), &bob).await.unwrap();
    b.confirm_commit(&room(), &bob).await.unwrap();
    match a.process_incoming(&room(), &update.commit).await.unwrap() {
        Incoming::Commit { state } => assert_eq!(state.epoch, 3),
        other => panic!("expected a commit, got {other:?}"),
    }
    let to_b = a
        .send_messages(&room(), &alice, &[b"epoch 3"])
        .await
        .unwrap();
    assert_eq!(
        b.receive_messages(&room(), &to_b).await.unwrap()[0].1,
        b"epoch 3"
    );
}

/// alice (a.example) adds mallory, a client driven with openmls directly.
async fn room_with_raw_member(a: &ProxyMls) -> (ClientUri, BareMember) {
    let alice = client("mimi://a.example/d/alice/bridge");
    a.create_client(&alice).await.unwrap();
    a.create_room(&room(), &alice, ADMIN).await.unwrap();
    let mut mallory = BareMember::new("mimi://b.example/d/mallory/laptop");
    let out = a
        .add_users(
            &room(),
            &alice,
            &[UserAddition {
                user: user("mimi://b.example/u/mallory"),
                role: ADMIN,
                key_packages: vec![mallory.key_package()],
            }],
        )
        .await
        .unwrap();
    a.confirm_commit(&room(), &alice).await.unwrap();
    mallory.join(out.welcome.as_ref().unwrap()).unwrap();
    (alice, mallory)
}

async fn assert_unchanged(a: &ProxyMls, epoch: u64) {
    let state = a.room_state(&room()).await.unwrap();
    assert_eq!(state.epoch, epoch, "the rejected commit changed nothing");
    let g = room_groups::get(a.store().pool(), room().as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(g.epoch as u64, epoch);
}

async fn an_invalid_participant_list_update_is_rejected(db: TestDb) {
    let a = engine(&db, "a.example").await;
    let (alice, mut mallory) = room_with_raw_member(&a).await;
    let cp = ComponentCodePoints::default();
    // removes index 7 of a two-entry list
    let bad = vec![0x00, 0x04, 0x07, 0x00, 0x00, 0x00, 0x00];
    let commit = mallory.commit(
        vec![Proposal::AppDataUpdate(Box::new(
            AppDataUpdateProposal::update(cp.participant_list, bad.clone()),
        ))],
        vec![],
        Some((cp.participant_list, bad)),
        false,
    );
    let err = a.process_incoming(&room(), &commit).await.unwrap_err();
    assert!(
        matches!(
            err,
            MlsError::InvalidRoomState { .. } | MlsError::Rejected { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("participant"), "{err}");
    assert_unchanged(&a, 1).await;

    // garbage bytes are rejected as well
    let commit = mallory.commit(
        vec![Proposal::AppDataUpdate(Box::new(
            AppDataUpdateProposal::update(cp.participant_list, vec![0xff; 3]),
        ))],
        vec![],
        Some((cp.participant_list, vec![0xff; 3])),
        false,
    );
    assert!(a.process_incoming(&room(), &commit).await.is_err());
    assert_unchanged(&a, 1).await;
    // the room still works: mallory reads alice's next message
    let sent = a
        .send_messages(&room(), &alice, &[b"still here"])
        .await
        .unwrap();
    assert_eq!(mallory.process(&sent[0]).unwrap().unwrap(), b"still here");
}

async fn an_add_for_a_non_participant_is_rejected(db: TestDb) {
    let a = engine(&db, "a.example").await;
    let (_alice, mut mallory) = room_with_raw_member(&a).await;
    let eve = BareMember::new("mimi://b.example/d/eve/phone");
    let commit = mallory.commit(
        vec![],
        vec![parse_key_package(&eve.key_package()).unwrap()],
        None,
        false,
    );
    let err = a.process_incoming(&room(), &commit).await.unwrap_err();
    match &err {
        MlsError::Rejected { rejection, .. } => {
            assert!(
                matches!(rejection.code, RejectCode::InvalidProposal { .. }),
                "{err}"
            );
            assert!(rejection.reason.contains("eve"), "{err}");
        }
        other => panic!("expected a rejection, got {other}"),
    }
    assert_unchanged(&a, 1).await;
}

async fn a_crash_after_the_mls_step_leaves_a_retryable_state(db: TestDb) {
    let a = engine(&db, "a.example").await;
    let alice = client("mimi://a.example/d/alice/bridge");
    let carol = client("mimi://a.example/d/carol/bridge");
    a.create_client(&alice).await.unwrap();
    a.create_client(&carol).await.unwrap();
    a.create_room(&room(), &alice, ADMIN).await.unwrap();
    let addition = UserAddition {
        user: user("mimi://a.example/u/carol"),
        role: ORDINARY,
        key_packages: vec![a.key_package(&carol).await.unwrap()],
    };
    for point in mimi_bridge::mls::FAULT_POINTS {
        a.inject_fault(point);
        let err = a
            .add_users(&room(), &alice, std::slice::from_ref(&addition))
            .await
            .unwrap_err();
        assert!(matches!(err, MlsError::Injected(p) if p == *point), "{err}");
        assert!(
            pending_commits::get(a.store().pool(), room().as_str(), alice.as_str())
                .await
                .unwrap()
                .is_none(),
            "no pending commit after a crash at {point}"
        );
        assert!(
            outbox::pending(a.store().pool(), None)
                .await
                .unwrap()
                .is_empty(),
            "nothing queued"
        );
        assert_eq!(a.room_state(&room()).await.unwrap().epoch, 0);
    }
    // the retry goes through, and exactly one commit is queued for the hub
    a.add_users(&room(), &alice, &[addition]).await.unwrap();
    let queued = outbox::pending(a.store().pool(), None).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].kind, "commit");
    a.confirm_commit(&room(), &alice).await.unwrap();

    // a crash while sending: nothing queued, ratchet not advanced in the store; the retry works
    a.inject_fault("before-commit");
    assert!(a.send_messages(&room(), &carol, &[b"lost?"]).await.is_err());
    assert_eq!(
        outbox::pending(a.store().pool(), None).await.unwrap().len(),
        1
    );
    let sent = a
        .send_messages(&room(), &carol, &[b"retried"])
        .await
        .unwrap();
    assert_eq!(
        a.receive_messages(&room(), &sent).await.unwrap()[0].1,
        b"retried"
    );
}

async fn a_crash_before_commit_of_a_confirmation_is_retried_after_restart(db: TestDb) {
    let carol;
    {
        let a = engine(&db, "a.example").await;
        let alice = client("mimi://a.example/d/alice/bridge");
        carol = client("mimi://a.example/d/carol/bridge");
        a.create_client(&alice).await.unwrap();
        a.create_client(&carol).await.unwrap();
        a.create_room(&room(), &alice, ADMIN).await.unwrap();
        let kp = a.key_package(&carol).await.unwrap();
        a.add_users(
            &room(),
            &alice,
            &[UserAddition {
                user: user("mimi://a.example/u/carol"),
                role: ORDINARY,
                key_packages: vec![kp],
            }],
        )
        .await
        .unwrap();
        a.inject_fault("before-commit");
        assert!(a.confirm_commit(&room(), &alice).await.is_err());
        a.store().close().await;
    }
    let a = engine(&db, "a.example").await;
    let alice = client("mimi://a.example/d/alice/bridge");
    assert_eq!(
        a.room_state(&room()).await.unwrap().epoch,
        0,
        "the merge was not stored"
    );
    let state = a.confirm_commit(&room(), &alice).await.unwrap();
    assert_eq!(state.epoch, 1);
    let sent = a
        .send_messages(&room(), &carol, &[b"joined after all"])
        .await
        .unwrap();
    assert_eq!(
        a.receive_messages(&room(), &sent).await.unwrap()[0].0,
        carol
    );
}

async fn a_removed_user_loses_all_clients_in_one_commit(db: TestDb) {
    let a = engine(&db, "a.example").await;
    let (alice, carol) = room_with_two_local_clients(&a).await;
    let carol_phone = client("mimi://a.example/d/carol/phone");
    a.create_client(&carol_phone).await.unwrap();
    let gi = a.group_info(&room()).await.unwrap().unwrap();
    a.join_by_external_commit(&room(), &carol_phone, &gi)
        .await
        .unwrap();
    assert_eq!(
        a.room_state(&room()).await.unwrap().epoch,
        1,
        "the room moves when the hub accepts the join"
    );
    a.confirm_commit(&room(), &carol_phone).await.unwrap();
    let state = a.room_state(&room()).await.unwrap();
    assert_eq!(
        state
            .active_clients(&user("mimi://a.example/u/carol"))
            .len(),
        2
    );

    a.remove_user(&room(), &alice, &user("mimi://a.example/u/carol"), true)
        .await
        .unwrap();
    let state = a.confirm_commit(&room(), &alice).await.unwrap();
    assert_eq!(
        state
            .participants
            .role_of(&user("mimi://a.example/u/carol")),
        1,
        "banned"
    );
    assert!(
        state
            .active_clients(&user("mimi://a.example/u/carol"))
            .is_empty()
    );
    assert_eq!(state.members.len(), 1);
    let err = a
        .send_messages(&room(), &carol, &[b"let me in"])
        .await
        .unwrap_err();
    assert!(matches!(err, MlsError::NotAMember { .. }), "{err}");
}

async fn a_participants_second_device_joins_by_external_commit(db: TestDb) {
    let db_b = TestDb::sqlite();
    let a = engine(&db, "a.example").await;
    let b = engine(&db_b, "b.example").await;
    let alice = client("mimi://a.example/d/alice/bridge");
    a.create_client(&alice).await.unwrap();
    a.create_room(&room(), &alice, ADMIN).await.unwrap();
    let bob = client("mimi://b.example/d/bob/bridge");
    let bob_phone = client("mimi://b.example/d/bob/phone");
    b.create_client(&bob).await.unwrap();
    b.create_client(&bob_phone).await.unwrap();
    let out = a
        .add_users(
            &room(),
            &alice,
            &[UserAddition {
                user: user("mimi://b.example/u/bob"),
                role: ORDINARY,
                key_packages: vec![b.key_package(&bob).await.unwrap()],
            }],
        )
        .await
        .unwrap();
    a.confirm_commit(&room(), &alice).await.unwrap();
    b.join_from_welcome(&room(), out.welcome.as_ref().unwrap())
        .await
        .unwrap();

    let gi = a.group_info(&room()).await.unwrap().unwrap();
    let joined = b
        .join_by_external_commit(&room(), &bob_phone, &gi)
        .await
        .unwrap();
    match a.process_incoming(&room(), &joined.commit).await.unwrap() {
        Incoming::Commit { state } => {
            assert_eq!(
                state.active_clients(&user("mimi://b.example/u/bob")).len(),
                2
            );
        }
        other => panic!("expected a commit, got {other:?}"),
    }
    // b hears the hub accepted the join
    b.confirm_commit(&room(), &bob_phone).await.unwrap();
    // a stranger cannot join the same way
    let stranger = client("mimi://b.example/d/zed/phone");
    b.create_client(&stranger).await.unwrap();
    let gi = a.group_info(&room()).await.unwrap().unwrap();
    let err = b
        .join_by_external_commit(&room(), &stranger, &gi)
        .await
        .unwrap_err();
    assert!(matches!(err, MlsError::Rejected { .. }), "{err}");
    let to_phone = a
        .send_messages(&room(), &alice, &[b"hello phone"])
        .await
        .unwrap();
    assert_eq!(
        b.receive_messages(&room(), &to_phone).await.unwrap()[0].1,
        b"hello phone"
    );
}

async fn key_packages_are_single_use_and_replenished(db: TestDb) {
    let a = engine(&db, "a.example").await;
    let carol = client("mimi://a.example/d/carol/bridge");
    a.create_client(&carol).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        let kp = a.key_package(&carol).await.unwrap();
        assert!(seen.insert(kp), "a key package was handed out twice");
    }
    let (left, last_resort) =
        mimi_bridge::store::key_packages::available(a.store().pool(), carol.as_str())
            .await
            .unwrap();
    assert!(left >= 1, "the pool is refilled");
    assert!(last_resort);
}

async fn a_commit_the_hub_refuses_is_discarded(db: TestDb) {
    let a = engine(&db, "a.example").await;
    let (alice, carol) = room_with_two_local_clients(&a).await;
    let dave = client("mimi://a.example/d/dave/bridge");
    a.create_client(&dave).await.unwrap();
    let kp = a.key_package(&dave).await.unwrap();
    let addition = UserAddition {
        user: user("mimi://a.example/u/dave"),
        role: ORDINARY,
        key_packages: vec![kp],
    };
    a.add_users(&room(), &alice, std::slice::from_ref(&addition))
        .await
        .unwrap();
    let err = a
        .add_users(&room(), &alice, std::slice::from_ref(&addition))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("already has a commit waiting"),
        "{err}"
    );
    a.discard_commit(&room(), &alice, "refused").await.unwrap();
    assert!(
        pending_commits::get(a.store().pool(), room().as_str(), alice.as_str())
            .await
            .unwrap()
            .is_none()
    );
    let err = a.confirm_commit(&room(), &alice).await.unwrap_err();
    assert!(matches!(err, MlsError::NoPendingCommit { .. }), "{err}");
    let state = a.room_state(&room()).await.unwrap();
    assert_eq!(state.epoch, 1);
    assert!(
        !state
            .participants
            .contains(&user("mimi://a.example/u/dave"))
    );
    // the room goes on: another member commits and messages flow
    a.self_update(&room(), &carol).await.unwrap();
    assert_eq!(a.confirm_commit(&room(), &carol).await.unwrap().epoch, 2);
    let sent = a
        .send_messages(&room(), &carol, &[b"after the refusal"])
        .await
        .unwrap();
    assert_eq!(
        a.receive_messages(&room(), &sent).await.unwrap()[0].1,
        b"after the refusal"
    );
}

async fn a_leaving_users_cached_proposals_are_committed_next(db: TestDb) {
    let a = engine(&db, "a.example").await;
    let (alice, mut mallory) = room_with_raw_member(&a).await;
    let cp = ComponentCodePoints::default();
    let mallory_user = user("mimi://b.example/u/mallory");
    let index = a
        .room_state(&room())
        .await
        .unwrap()
        .participants
        .index_of(&mallory_user)
        .unwrap();
    // mallory leaves: the participant-list removal and a SelfRemove, as one bundle
    let update = mimi_bridge::room::wire::ParticipantListUpdate {
        removed_indices: vec![index as u32],
        ..Default::default()
    };
    let group = mallory.group.as_mut().unwrap();
    let (list_removal, _) = group
        .propose_app_data_update(
            &mallory.provider,
            &mallory.signer,
            cp.participant_list,
            AppDataUpdateOperation::Update(
                mimi_bridge::room::wire::encode(&update).unwrap().into(),
            ),
        )
        .unwrap();
    let self_remove = group
        .leave_group_via_self_remove(&mallory.provider, &mallory.signer)
        .unwrap();
    let list_removal = list_removal.to_bytes().unwrap();
    let self_remove = self_remove.to_bytes().unwrap();

    // alone, the list removal would leave mallory's client behind
    let err = a
        .process_proposals(&room(), &[&list_removal])
        .await
        .unwrap_err();
    assert!(matches!(err, MlsError::Rejected { .. }), "{err}");
    // together they are accepted and cached
    a.process_proposals(&room(), &[&list_removal, &self_remove])
        .await
        .unwrap();
    let state = a.room_state(&room()).await.unwrap();
    assert_eq!(state.pending.len(), 2, "cached for the next commit");
    assert!(
        state.participants.contains(&mallory_user),
        "not gone until committed"
    );

    // the next commit, by a local client, includes them
    a.commit_pending_proposals(&room(), &alice).await.unwrap();
    let state = a.confirm_commit(&room(), &alice).await.unwrap();
    assert!(!state.participants.contains(&mallory_user));
    assert!(state.active_clients(&mallory_user).is_empty());
    assert!(state.pending.is_empty());
    assert_eq!(state.members.len(), 1);
}
