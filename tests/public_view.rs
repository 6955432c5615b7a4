//! A hub and a follower in process, each with its public view of the room: the follower takes
//! its own commit from the hub's fan-out as the confirmation, refuses a commit that gives one of
//! its users a client it never made, and the hub sends the room's messages only to providers
//! with a client that may receive them.

mod common;

use std::sync::Arc;

use common::TestDb;
use mimi_bridge::mls::bare_member::BareMember;
use mimi_bridge::mls::{MlsError, ProxyMls, StateKey, UserAddition};
use mimi_bridge::protocol::service::{MimiService, ServiceError};
use mimi_bridge::protocol::wire::{
    GroupInfoOption, HandshakeBundle, HandshakeBundleBody, IdentifierUri, MlsMessage, Protocol,
    RatchetTreeOption, SubmitMessageRequest, SubmitStatus, UpdateOutcome, UpdateRequest,
};
use mimi_bridge::room::code_points::ComponentCodePoints;
use mimi_bridge::room::wire::{self, ParticipantListUpdate};
use mimi_bridge::store::{Store, StoreOptions, inbound_messages, outbox, pending_commits};
use mimi_bridge::uri::{ClientUri, ProviderId, RoomUri, UserUri};

fn room() -> RoomUri {
    "mimi://a.example/r/clubhouse".parse().unwrap()
}

fn provider(domain: &str) -> ProviderId {
    ProviderId::new(domain).unwrap()
}

fn user(uri: &str) -> UserUri {
    uri.parse().unwrap()
}

async fn daemon(db: &TestDb, domain: &str) -> (Arc<MimiService>, Arc<ProxyMls>) {
    let store = Store::open_and_migrate(&StoreOptions::new(&db.url))
        .await
        .unwrap();
    let mls = Arc::new(ProxyMls::new(
        store.clone(),
        StateKey::from_bytes([1; 32]),
        ComponentCodePoints::default(),
        provider(domain),
    ));
    let service = Arc::new(MimiService::new(provider(domain), store, mls.clone(), None));
    (service, mls)
}

/// a.example hosts the room with alice; b.example follows with bob (a proxy client of its
/// own daemon); carl of c.example is a bare openmls member.
struct Rooms {
    a: Arc<MimiService>,
    a_mls: Arc<ProxyMls>,
    b: Arc<MimiService>,
    b_mls: Arc<ProxyMls>,
    carl: BareMember,
    _dbs: (TestDb, TestDb),
}

async fn rooms() -> Rooms {
    let (db_a, db_b) = (TestDb::sqlite(), TestDb::sqlite());
    let (a, a_mls) = daemon(&db_a, "a.example").await;
    let (b, b_mls) = daemon(&db_b, "b.example").await;
    let alice: ClientUri = "mimi://a.example/d/alice/bridge".parse().unwrap();
    let bob: ClientUri = "mimi://b.example/d/bob/bridge".parse().unwrap();
    a_mls.create_client(&alice).await.unwrap();
    b_mls.create_client(&bob).await.unwrap();
    a_mls.create_room(&room(), &alice, 3).await.unwrap();
    let bob_kp = b_mls.key_package(&bob).await.unwrap();
    let mut carl = BareMember::new("mimi://c.example/d/carl/laptop");
    let carl_kp = carl.key_package();
    let mut additions = Vec::new();
    for (kp, uri) in [
        (bob_kp, "mimi://b.example/u/bob"),
        (carl_kp, "mimi://c.example/u/carl"),
    ] {
        let u = user(uri);
        a_mls.bind_key_package(&kp, u.provider(), &u).await.unwrap();
        additions.push(UserAddition {
            user: u,
            role: 2,
            key_packages: vec![kp],
        });
    }
    let out = a_mls.add_users(&room(), &alice, &additions).await.unwrap();
    a.deliver_due().await.unwrap();
    carl.join(out.welcome.as_ref().unwrap()).unwrap();
    let rooms = Rooms {
        a,
        a_mls,
        b,
        b_mls,
        carl,
        _dbs: (db_a, db_b),
    };
    rooms.pump().await.unwrap();
    assert_eq!(rooms.b_mls.room_state(&room()).await.unwrap().epoch, 1);
    rooms
}

impl Rooms {
    /// Hands a's queued `/notify` bodies for b.example to b, in order, as delivery would.
    async fn pump(&self) -> Result<usize, ServiceError> {
        let pool = self.a_mls.store().pool();
        let mut n = 0;
        for item in outbox::pending(pool, Some(room().as_str())).await.unwrap() {
            if item.kind != "notify" || item.destination != "b.example" {
                continue;
            }
            self.b
                .follower_notify(&room(), &provider("a.example"), &item.body)
                .await?;
            outbox::mark_delivered(pool, &item.id).await.unwrap();
            n += 1;
        }
        Ok(n)
    }

    /// The destinations of a's queued `/notify` rows.
    async fn notify_targets(&self) -> Vec<String> {
        outbox::pending(self.a_mls.store().pool(), Some(room().as_str()))
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.kind == "notify")
            .map(|i| i.destination)
            .collect()
    }
}

#[tokio::test]
async fn a_follower_takes_its_own_commit_from_the_fan_out_as_its_confirmation() {
    let r = rooms().await;
    let bob: ClientUri = "mimi://b.example/d/bob/bridge".parse().unwrap();
    let out = r.b_mls.self_update(&room(), &bob).await.unwrap();
    let group_info = MlsMessage::from_bytes(out.group_info.as_ref().unwrap())
        .unwrap()
        .group_info()
        .unwrap();
    let request = UpdateRequest {
        bundle: HandshakeBundle {
            proposal_or_commit: MlsMessage::from_bytes(&out.commit).unwrap(),
            body: HandshakeBundleBody::Commit {
                welcome: None,
                group_info_option: GroupInfoOption::Full(group_info),
                ratchet_tree_option: RatchetTreeOption::DistributionService,
            },
        },
    };
    let answer =
        r.a.hub_update(&room(), &provider("b.example"), request)
            .await
            .unwrap();
    assert!(
        matches!(answer.outcome, UpdateOutcome::Success { .. }),
        "{answer:?}"
    );
    // the hub's answer is lost on the way; its fan-out reaches b first
    assert_eq!(r.pump().await.unwrap(), 1);
    assert!(
        pending_commits::get(r.b_mls.store().pool(), room().as_str(), bob.as_str())
            .await
            .unwrap()
            .is_none(),
        "the fan-out confirmed b's commit"
    );
    assert_eq!(r.b_mls.room_state(&room()).await.unwrap().epoch, 2);
    let (_, b_auth) = r.b_mls.member_view(&room(), &bob).await.unwrap();
    let (_, a_auth) = r.a_mls.room_view(&room()).await.unwrap();
    assert_eq!(Some(b_auth), a_auth, "both agree on the new epoch's keys");
    // b's outbox row for the commit settles without asking the hub again
    r.b.deliver_due().await.unwrap();
    assert!(
        outbox::pending(r.b_mls.store().pool(), Some(room().as_str()))
            .await
            .unwrap()
            .iter()
            .all(|i| i.kind != "commit"),
    );
    // and the room goes on: alice's message reaches bob
    let alice: ClientUri = "mimi://a.example/d/alice/bridge".parse().unwrap();
    r.a_mls
        .send_messages(&room(), &alice, &[b"after bob's update"])
        .await
        .unwrap();
    r.a.deliver_due().await.unwrap();
    r.pump().await.unwrap();
    let got = inbound_messages::list(r.b_mls.store().pool(), room().as_str(), 0)
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .filter(|m| m.payload == b"after bob's update")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_follower_refuses_a_commit_giving_its_user_a_client_it_never_made() {
    let r = rooms().await;
    // alice adds eve of b.example with key material b never made, and a was told b served it
    // (a relay that lied): the hub admits it ...
    let forged = BareMember::new("mimi://b.example/d/eve/evil");
    let kp = forged.key_package();
    let eve = user("mimi://b.example/u/eve");
    r.a_mls
        .bind_key_package(&kp, &provider("b.example"), &eve)
        .await
        .unwrap();
    let alice: ClientUri = "mimi://a.example/d/alice/bridge".parse().unwrap();
    r.a_mls
        .add_users(
            &room(),
            &alice,
            &[UserAddition {
                user: eve.clone(),
                role: 2,
                key_packages: vec![kp],
            }],
        )
        .await
        .unwrap();
    r.a.deliver_due().await.unwrap();
    assert_eq!(r.a_mls.room_state(&room()).await.unwrap().epoch, 2);
    // ... b, whose user it claims to be, does not
    let err = r.pump().await.unwrap_err();
    assert!(
        matches!(&err, ServiceError::Mls(MlsError::Rejected { rejection, .. })
            if rejection.reason.contains("mimi://b.example/d/eve/evil")),
        "{err}"
    );
    let state = r.b_mls.room_state(&room()).await.unwrap();
    assert_eq!(state.epoch, 1, "b's view of the room is unchanged");
    assert!(!state.participants.contains(&eve));
}

#[tokio::test]
async fn messages_go_only_to_providers_with_a_client_that_may_receive_them() {
    let mut r = rooms().await;
    let cp = ComponentCodePoints::default();
    let answer =
        r.a.hub_submit(&room(), &provider("b.example"), bobs_message(&r).await)
            .await
            .unwrap();
    assert!(matches!(answer.status, SubmitStatus::Accepted { .. }));
    let targets = r.notify_targets().await;
    assert!(targets.contains(&"c.example".to_string()), "{targets:?}");
    outbox_clear(&r).await;

    // carl leaves: his removal from the list and his SelfRemove wait for the next commit
    let list = wire::encode(&ParticipantListUpdate {
        removed_indices: vec![2],
        ..Default::default()
    })
    .unwrap();
    let removal = r.carl.propose_app_data(cp.participant_list, list);
    let self_remove = r.carl.self_remove_proposal();
    let answer =
        r.a.hub_update(
            &room(),
            &provider("c.example"),
            UpdateRequest {
                bundle: HandshakeBundle {
                    proposal_or_commit: MlsMessage::from_bytes(&removal).unwrap(),
                    body: HandshakeBundleBody::Proposal {
                        more_proposals: vec![MlsMessage::from_bytes(&self_remove).unwrap()],
                    },
                },
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(answer.outcome, UpdateOutcome::Success { .. }),
        "{answer:?}"
    );
    outbox_clear(&r).await;
    // exiting, carl may not receive the room's messages: c.example gets none (bob wrote
    // before the proposals reached b: openmls sends nothing while proposals are pending)
    let answer =
        r.a.hub_submit(&room(), &provider("b.example"), bobs_message(&r).await)
            .await
            .unwrap();
    assert!(matches!(answer.status, SubmitStatus::Accepted { .. }));
    let targets = r.notify_targets().await;
    assert!(!targets.contains(&"c.example".to_string()), "{targets:?}");
}

/// A message of bob's, as b submits it to the hub.
async fn bobs_message(r: &Rooms) -> SubmitMessageRequest {
    let bob: ClientUri = "mimi://b.example/d/bob/bridge".parse().unwrap();
    let sent = r
        .b_mls
        .send_messages(&room(), &bob, &[b"hello"])
        .await
        .unwrap()
        .remove(0);
    SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: MlsMessage::from_bytes(&sent).unwrap(),
        sending_uri: IdentifierUri::new("mimi://b.example/u/bob"),
    }
}

async fn outbox_clear(r: &Rooms) {
    let pool = r.a_mls.store().pool();
    for item in outbox::pending(pool, Some(room().as_str())).await.unwrap() {
        outbox::mark_delivered(pool, &item.id).await.unwrap();
    }
}

#[tokio::test]
async fn a_commit_the_hub_never_answers_is_dropped_after_the_last_attempt() {
    let r = rooms().await;
    // b reaches no hub at all (no MIMI client): every attempt fails
    let b = MimiService::new(
        provider("b.example"),
        r.b_mls.store().clone(),
        r.b_mls.clone(),
        None,
    )
    .with_max_delivery_attempts(3);
    let bob: ClientUri = "mimi://b.example/d/bob/bridge".parse().unwrap();
    r.b_mls.self_update(&room(), &bob).await.unwrap();
    let pool = r.b_mls.store().pool();
    let mut rounds = 0;
    while outbox::all_dead_letters(pool).await.unwrap().is_empty() {
        rounds += 1;
        assert!(rounds < 10, "still not dead-lettered after {rounds} rounds");
        if let Some(wait) = b.deliver_due().await.unwrap() {
            tokio::time::sleep(wait).await;
        }
    }
    let dead = outbox::all_dead_letters(pool).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0.kind, "commit");
    assert_eq!(
        dead[0].0.attempts, 2,
        "three attempts: two rescheduled, the last gave up"
    );
    // the commit no longer holds up the room: bob can commit again
    assert!(
        pending_commits::get(pool, room().as_str(), bob.as_str())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(r.b_mls.room_state(&room()).await.unwrap().epoch, 1);
    r.b_mls.self_update(&room(), &bob).await.unwrap();
}
