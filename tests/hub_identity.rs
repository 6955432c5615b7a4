//! Every identity claim is bound to who is authenticated: the hub refuses handshakes a peer
//! sends for another provider's clients, Adds with key material the added user's provider did
//! not serve, and replays of handshakes it accepted before. Each refusal carries the draft's
//! code and a reason, and leaves the room as it was.

mod common;

use std::sync::Arc;

use common::TestDb;
use mimi_bridge::mls::bare_member::{BareMember, parse_key_package};
use mimi_bridge::mls::{ProxyMls, StateKey, UserAddition};
use mimi_bridge::protocol::service::MimiService;
use mimi_bridge::protocol::wire::{
    HandshakeBundle, HandshakeBundleBody, MlsMessage, UpdateOutcome, UpdateRequest,
};
use mimi_bridge::room::code_points::ComponentCodePoints;
use mimi_bridge::room::state::RoomState;
use mimi_bridge::room::wire::{self, ParticipantListUpdate, UserRolePair};
use mimi_bridge::store::{Store, StoreOptions};
use mimi_bridge::uri::{ClientUri, ProviderId, RoomUri, UserUri};
use openmls::prelude::*;

fn room() -> RoomUri {
    "mimi://a.example/r/clubhouse".parse().unwrap()
}

fn provider(domain: &str) -> ProviderId {
    ProviderId::new(domain).unwrap()
}

fn user(uri: &str) -> UserUri {
    uri.parse().unwrap()
}

/// a.example hosts a room with alice (local), mallory of b.example and carl of c.example (bare
/// openmls members, added with key material their providers served).
struct Room {
    service: Arc<MimiService>,
    mls: Arc<ProxyMls>,
    mallory: BareMember,
    carl: BareMember,
}

async fn hub(db: &TestDb) -> Room {
    let store = Store::open_and_migrate(&StoreOptions::new(&db.url))
        .await
        .unwrap();
    let mls = Arc::new(ProxyMls::new(
        store.clone(),
        StateKey::from_bytes([1; 32]),
        ComponentCodePoints::default(),
        provider("a.example"),
    ));
    let service = Arc::new(MimiService::new(
        provider("a.example"),
        store,
        mls.clone(),
        None,
    ));
    let alice: ClientUri = "mimi://a.example/d/alice/bridge".parse().unwrap();
    mls.create_client(&alice).await.unwrap();
    mls.create_room(&room(), &alice, 3).await.unwrap();
    let mut mallory = BareMember::new("mimi://b.example/d/mallory/laptop");
    let mut carl = BareMember::new("mimi://c.example/d/carl/laptop");
    let mut additions = Vec::new();
    for (member, uri) in [
        (&mallory, "mimi://b.example/u/mallory"),
        (&carl, "mimi://c.example/u/carl"),
    ] {
        let kp = member.key_package();
        let u = user(uri);
        mls.bind_key_package(&kp, u.provider(), &u).await.unwrap();
        additions.push(UserAddition {
            user: u,
            role: 2,
            key_packages: vec![kp],
        });
    }
    let out = mls.add_users(&room(), &alice, &additions).await.unwrap();
    service.deliver_due().await.unwrap();
    assert_eq!(state(&mls).await.epoch, 1);
    mallory.join(out.welcome.as_ref().unwrap()).unwrap();
    carl.join(out.welcome.as_ref().unwrap()).unwrap();
    Room {
        service,
        mls,
        mallory,
        carl,
    }
}

async fn state(mls: &ProxyMls) -> RoomState {
    mls.room_state(&room()).await.unwrap()
}

fn proposal_request(proposal: Vec<u8>) -> UpdateRequest {
    UpdateRequest {
        bundle: HandshakeBundle {
            proposal_or_commit: MlsMessage::from_bytes(&proposal).unwrap(),
            body: HandshakeBundleBody::Proposal {
                more_proposals: vec![],
            },
        },
    }
}

/// A commit of `member` adding `added` (a participant of role 2) with `kp`.
fn add_commit(member: &mut BareMember, added: &str, kp: &[u8]) -> Vec<u8> {
    let cp = ComponentCodePoints::default();
    let list_update = wire::encode(&ParticipantListUpdate {
        added_participants: vec![UserRolePair::new(added, 2)],
        ..Default::default()
    })
    .unwrap();
    let mut list: wire::ParticipantListData =
        wire::decode_exact(&member.component(cp.participant_list).unwrap()).unwrap();
    list.participants.push(UserRolePair::new(added, 2));
    member.commit(
        vec![Proposal::AppDataUpdate(Box::new(
            AppDataUpdateProposal::update(cp.participant_list, list_update),
        ))],
        vec![parse_key_package(kp).unwrap()],
        Some((cp.participant_list, wire::encode(&list).unwrap())),
        false,
    )
}

fn assert_refused(
    answer: &mimi_bridge::protocol::wire::UpdateRoomResponse,
    code: &str,
    says: &str,
) {
    let name = match &answer.outcome {
        UpdateOutcome::Success { .. } => "success",
        UpdateOutcome::WrongEpoch { .. } => "wrongEpoch",
        UpdateOutcome::NotAllowed => "notAllowed",
        UpdateOutcome::InvalidProposal { .. } => "invalidProposal",
        #[allow(unreachable_patterns)]
        _ => "other",
    };
    assert_eq!(name, code, "{answer:?}");
    assert!(
        answer.error_description.contains(says),
        "the reason names {says:?}: {}",
        answer.error_description
    );
}

both_backends!(
    an_external_commit_from_b_naming_a_user_of_a_is_not_allowed,
    an_add_with_key_material_another_provider_served_is_an_invalid_proposal,
    a_commit_of_bs_client_sent_by_c_is_not_allowed,
    a_proposal_of_cs_client_sent_by_b_is_not_allowed,
    an_earlier_epochs_accepted_commit_replayed_gets_wrong_epoch,
);

async fn an_external_commit_from_b_naming_a_user_of_a_is_not_allowed(db: TestDb) {
    let r = hub(&db).await;
    let before = state(&r.mls).await;
    let group_info = r.mls.group_info(&room()).await.unwrap().unwrap();
    let mut impostor = BareMember::new("mimi://a.example/d/alice/evil");
    let commit = impostor.external_join(&group_info).unwrap();
    let answer = r
        .service
        .hub_update(
            &room(),
            &provider("b.example"),
            common::commit_request(&commit),
        )
        .await
        .unwrap();
    assert_refused(&answer, "notAllowed", "mimi://a.example/d/alice/evil");
    assert_eq!(state(&r.mls).await, before, "the room is unchanged");

    // b's own user's new device may join that way
    let mut phone = BareMember::new("mimi://b.example/d/mallory/phone");
    let commit = phone.external_join(&group_info).unwrap();
    let answer = r
        .service
        .hub_update(
            &room(),
            &provider("b.example"),
            common::commit_request(&commit),
        )
        .await
        .unwrap();
    assert!(
        matches!(answer.outcome, UpdateOutcome::Success { .. }),
        "{answer:?}"
    );
    assert_eq!(state(&r.mls).await.epoch, 2);
}

async fn an_add_with_key_material_another_provider_served_is_an_invalid_proposal(db: TestDb) {
    let mut r = hub(&db).await;
    let before = state(&r.mls).await;
    let b = provider("b.example");
    // dave is c's user; the KeyPackage claiming to be his device was never served by c
    let dave = BareMember::new("mimi://c.example/d/dave/phone");
    let kp = dave.key_package();
    let commit = add_commit(&mut r.mallory, "mimi://c.example/u/dave", &kp);
    let answer = r
        .service
        .hub_update(&room(), &b, common::commit_request(&commit))
        .await
        .unwrap();
    assert_refused(&answer, "invalidProposal", "never relayed");
    assert_eq!(state(&r.mls).await, before);

    // served, but by b (for dave): still not c's word
    r.mls
        .bind_key_package(&kp, &b, &user("mimi://c.example/u/dave"))
        .await
        .unwrap();
    let commit = add_commit(&mut r.mallory, "mimi://c.example/u/dave", &kp);
    let answer = r
        .service
        .hub_update(&room(), &b, common::commit_request(&commit))
        .await
        .unwrap();
    assert_refused(&answer, "invalidProposal", "served by b.example");
    assert_eq!(state(&r.mls).await, before);

    // served by c for another of its users (carl): not dave's
    let dave2 = BareMember::new("mimi://c.example/d/dave/tablet");
    let kp2 = dave2.key_package();
    r.mls
        .bind_key_package(
            &kp2,
            &provider("c.example"),
            &user("mimi://c.example/u/carl"),
        )
        .await
        .unwrap();
    let commit = add_commit(&mut r.mallory, "mimi://c.example/u/dave", &kp2);
    let answer = r
        .service
        .hub_update(&room(), &b, common::commit_request(&commit))
        .await
        .unwrap();
    assert_refused(&answer, "invalidProposal", "mimi://c.example/u/carl");
    assert_eq!(state(&r.mls).await, before);

    // served by c for dave: accepted
    let dave3 = BareMember::new("mimi://c.example/d/dave/laptop");
    let kp3 = dave3.key_package();
    r.mls
        .bind_key_package(
            &kp3,
            &provider("c.example"),
            &user("mimi://c.example/u/dave"),
        )
        .await
        .unwrap();
    let commit = add_commit(&mut r.mallory, "mimi://c.example/u/dave", &kp3);
    let answer = r
        .service
        .hub_update(&room(), &b, common::commit_request(&commit))
        .await
        .unwrap();
    assert!(
        matches!(answer.outcome, UpdateOutcome::Success { .. }),
        "{answer:?}"
    );
    let after = state(&r.mls).await;
    assert!(
        after
            .participants
            .contains(&user("mimi://c.example/u/dave"))
    );
}

async fn a_commit_of_bs_client_sent_by_c_is_not_allowed(db: TestDb) {
    let mut r = hub(&db).await;
    let before = state(&r.mls).await;
    let commit = r.mallory.commit(vec![], vec![], None, false);
    let answer = r
        .service
        .hub_update(
            &room(),
            &provider("c.example"),
            common::commit_request(&commit),
        )
        .await
        .unwrap();
    assert_refused(&answer, "notAllowed", "mimi://b.example/d/mallory/laptop");
    assert_eq!(state(&r.mls).await, before);
    // from b it is accepted
    let answer = r
        .service
        .hub_update(
            &room(),
            &provider("b.example"),
            common::commit_request(&commit),
        )
        .await
        .unwrap();
    assert!(
        matches!(answer.outcome, UpdateOutcome::Success { .. }),
        "{answer:?}"
    );
}

async fn a_proposal_of_cs_client_sent_by_b_is_not_allowed(db: TestDb) {
    let mut r = hub(&db).await;
    let before = state(&r.mls).await;
    let proposal = r.carl.self_remove_proposal();
    let answer = r
        .service
        .hub_update(
            &room(),
            &provider("b.example"),
            proposal_request(proposal.clone()),
        )
        .await
        .unwrap();
    assert_refused(&answer, "notAllowed", "mimi://c.example/d/carl/laptop");
    assert_eq!(state(&r.mls).await, before);
    assert!(before.pending.is_empty());
    // from c it is accepted and waits for the next commit
    let answer = r
        .service
        .hub_update(&room(), &provider("c.example"), proposal_request(proposal))
        .await
        .unwrap();
    assert!(
        matches!(answer.outcome, UpdateOutcome::Success { .. }),
        "{answer:?}"
    );
    assert_eq!(state(&r.mls).await.pending.len(), 1);
}

async fn an_earlier_epochs_accepted_commit_replayed_gets_wrong_epoch(db: TestDb) {
    let mut r = hub(&db).await;
    let b = provider("b.example");
    let commit = r.mallory.commit(vec![], vec![], None, true);
    let first = r
        .service
        .hub_update(&room(), &b, common::commit_request(&commit))
        .await
        .unwrap();
    let UpdateOutcome::Success {
        accepted_timestamp: first_at,
    } = first.outcome
    else {
        panic!("{first:?}")
    };
    let notifies = async |mls: &ProxyMls| {
        mimi_bridge::store::outbox::pending(mls.store().pool(), Some(room().as_str()))
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.kind == "notify")
            .count()
    };
    let queued = notifies(&r.mls).await;
    // a retry of the latest accepted handshake by the same peer: its first answer again
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let retry = r
        .service
        .hub_update(&room(), &b, common::commit_request(&commit))
        .await
        .unwrap();
    assert_eq!(
        retry.outcome,
        UpdateOutcome::Success {
            accepted_timestamp: first_at
        }
    );
    // the same bytes from another peer are a replay
    let answer = r
        .service
        .hub_update(
            &room(),
            &provider("c.example"),
            common::commit_request(&commit),
        )
        .await
        .unwrap();
    assert_refused(&answer, "wrongEpoch", "replay");
    // the room moves on; the old commit replayed by b gets wrongEpoch with the current epoch
    let alice: ClientUri = "mimi://a.example/d/alice/bridge".parse().unwrap();
    r.mls.self_update(&room(), &alice).await.unwrap();
    r.service.deliver_due().await.unwrap();
    assert_eq!(state(&r.mls).await.epoch, 3);
    let queued_now = notifies(&r.mls).await;
    assert!(queued_now > queued);
    let answer = r
        .service
        .hub_update(&room(), &b, common::commit_request(&commit))
        .await
        .unwrap();
    assert_eq!(
        answer.outcome,
        UpdateOutcome::WrongEpoch { current_epoch: 3 }
    );
    assert!(answer.error_description.contains("replay"), "{answer:?}");
    assert_eq!(state(&r.mls).await.epoch, 3);
    assert_eq!(
        notifies(&r.mls).await,
        queued_now,
        "nothing fanned out again"
    );
}

#[tokio::test]
async fn a_message_the_hub_cannot_decrypt_for_its_users_still_reaches_the_others() {
    use mimi_bridge::protocol::wire::{
        IdentifierUri, Protocol, SubmitMessageRequest, SubmitStatus,
    };
    let db = TestDb::sqlite();
    let mut r = hub(&db).await;
    // alice's (the hub's only local member's) stored state is gone: local delivery fails
    sqlx::query("DELETE FROM mls_kv WHERE namespace = 'mimi://a.example/d/alice/bridge'")
        .execute(r.mls.store().pool())
        .await
        .unwrap();
    // a fresh daemon on the same store (nothing cached)
    let mls = Arc::new(ProxyMls::new(
        r.mls.store().clone(),
        StateKey::from_bytes([1; 32]),
        ComponentCodePoints::default(),
        provider("a.example"),
    ));
    let service = MimiService::new(
        provider("a.example"),
        r.mls.store().clone(),
        mls.clone(),
        None,
    );
    let to_c = async || {
        mimi_bridge::store::outbox::pending(mls.store().pool(), Some(room().as_str()))
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.kind == "notify" && i.destination == "c.example")
            .count()
    };
    let before = to_c().await;
    let request = SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: MlsMessage::from_bytes(&r.mallory.encrypt(b"for carl")).unwrap(),
        sending_uri: IdentifierUri::new("mimi://b.example/u/mallory"),
    };
    let answer = service
        .hub_submit(&room(), &provider("b.example"), request)
        .await
        .unwrap();
    assert!(
        matches!(answer.status, SubmitStatus::Accepted { .. }),
        "{answer:?}"
    );
    assert_eq!(to_c().await, before + 1, "carl's provider gets the message");
    drop(r.service);
}
