//! The hub's answers to followers, in process: every refusal carries the protocol-06 code
//! and a reason, and leaves the room as it was.

mod common;

use std::sync::Arc;

use common::TestDb;
use mimi_bridge::mls::bare_member::{BareMember, parse_key_package};
use mimi_bridge::mls::{ProxyMls, StateKey, UserAddition};
use mimi_bridge::protocol::service::{MimiService, ServiceError};
use mimi_bridge::protocol::wire::{
    HandshakeBundle, HandshakeBundleBody, IdentifierUri, MlsMessage, Protocol,
    SubmitMessageRequest, SubmitStatus, UpdateOutcome, UpdateRequest,
};
use mimi_bridge::room::code_points::ComponentCodePoints;
use mimi_bridge::room::wire::{self, ParticipantListData, ParticipantListUpdate, UserRolePair};
use mimi_bridge::store::{Store, StoreOptions};
use mimi_bridge::uri::{ClientUri, ProviderId, RoomUri};
use openmls::prelude::*;

fn room() -> RoomUri {
    "mimi://a.example/r/clubhouse".parse().unwrap()
}

fn b() -> ProviderId {
    ProviderId::new("b.example").unwrap()
}

/// a.example hosts a room with alice (local) and mallory, a bare member of b.example.
async fn hub_with_remote_member(db: &TestDb) -> (Arc<MimiService>, Arc<ProxyMls>, BareMember) {
    let store = Store::open_and_migrate(&StoreOptions::new(&db.url))
        .await
        .unwrap();
    let provider = ProviderId::new("a.example").unwrap();
    let mls = Arc::new(ProxyMls::new(
        store.clone(),
        StateKey::from_bytes([1; 32]),
        ComponentCodePoints::default(),
        provider.clone(),
    ));
    let service = Arc::new(MimiService::new(provider, store, mls.clone(), None));
    let alice: ClientUri = "mimi://a.example/d/alice/bridge".parse().unwrap();
    mls.create_client(&alice).await.unwrap();
    mls.create_room(&room(), &alice, 3).await.unwrap();
    let mut mallory = BareMember::new("mimi://b.example/d/mallory/laptop");
    // mallory's key material as b served it through the keyMaterial flow
    let kp = mallory.key_package();
    mls.bind_key_package(&kp, &b(), &"mimi://b.example/u/mallory".parse().unwrap())
        .await
        .unwrap();
    let out = mls
        .add_users(
            &room(),
            &alice,
            &[UserAddition {
                user: "mimi://b.example/u/mallory".parse().unwrap(),
                role: 2,
                key_packages: vec![kp],
            }],
        )
        .await
        .unwrap();
    // the commit goes to the hub, which is this daemon: delivery accepts it here
    service.deliver_due().await.unwrap();
    assert_eq!(mls.room_state(&room()).await.unwrap().epoch, 1);
    mallory.join(out.welcome.as_ref().unwrap()).unwrap();
    (service, mls, mallory)
}

async fn epoch(mls: &ProxyMls) -> u64 {
    mls.room_state(&room()).await.unwrap().epoch
}

both_backends!(
    a_commit_for_an_old_epoch_gets_wrong_epoch_with_the_current_one,
    an_add_of_a_non_participant_gets_invalid_proposal,
    a_valid_follower_commit_is_accepted_and_stamped,
    a_message_from_a_banned_user_is_not_allowed,
    a_message_sent_as_another_providers_user_is_not_allowed,
    an_unknown_room_is_refused,
);

async fn a_commit_for_an_old_epoch_gets_wrong_epoch_with_the_current_one(db: TestDb) {
    let (service, mls, mut mallory) = hub_with_remote_member(&db).await;
    let stale = mallory.commit(vec![], vec![], None, false);
    let alice: ClientUri = "mimi://a.example/d/alice/bridge".parse().unwrap();
    mls.self_update(&room(), &alice).await.unwrap();
    service.deliver_due().await.unwrap();
    assert_eq!(epoch(&mls).await, 2);
    let answer = service
        .hub_update(&room(), &b(), common::commit_request(&stale))
        .await
        .unwrap();
    assert_eq!(
        answer.outcome,
        UpdateOutcome::WrongEpoch { current_epoch: 2 }
    );
    assert!(
        answer.error_description.contains("epoch 1"),
        "{}",
        answer.error_description
    );
    assert_eq!(epoch(&mls).await, 2);
}

async fn an_add_of_a_non_participant_gets_invalid_proposal(db: TestDb) {
    let (service, mls, mut mallory) = hub_with_remote_member(&db).await;
    let eve = BareMember::new("mimi://b.example/d/eve/phone");
    let commit = mallory.commit(
        vec![],
        vec![parse_key_package(&eve.key_package()).unwrap()],
        None,
        false,
    );
    let answer = service
        .hub_update(&room(), &b(), common::commit_request(&commit))
        .await
        .unwrap();
    assert!(
        matches!(answer.outcome, UpdateOutcome::InvalidProposal { .. }),
        "{:?}",
        answer.outcome
    );
    assert!(
        answer.error_description.contains("eve"),
        "{}",
        answer.error_description
    );
    assert_eq!(epoch(&mls).await, 1);
    assert_eq!(mls.room_state(&room()).await.unwrap().members.len(), 2);
}

async fn a_valid_follower_commit_is_accepted_and_stamped(db: TestDb) {
    let (service, mls, mut mallory) = hub_with_remote_member(&db).await;
    let cp = ComponentCodePoints::default();
    let zoe = BareMember::new("mimi://b.example/d/zoe/phone");
    let mut list: ParticipantListData =
        wire::decode_exact(&mallory.component(cp.participant_list).unwrap()).unwrap();
    list.participants
        .push(UserRolePair::new("mimi://b.example/u/zoe", 2));
    let update_bytes = wire::encode(&ParticipantListUpdate {
        added_participants: vec![UserRolePair::new("mimi://b.example/u/zoe", 2)],
        ..Default::default()
    })
    .unwrap();
    let commit = mallory.commit(
        vec![Proposal::AppDataUpdate(Box::new(
            AppDataUpdateProposal::update(cp.participant_list, update_bytes),
        ))],
        vec![parse_key_package(&zoe.key_package()).unwrap()],
        Some((cp.participant_list, wire::encode(&list).unwrap())),
        true,
    );
    let answer = service
        .hub_update(&room(), &b(), common::commit_request(&commit))
        .await
        .unwrap();
    assert!(
        matches!(answer.outcome, UpdateOutcome::Success { accepted_timestamp } if accepted_timestamp > 0),
        "{answer:?}"
    );
    let queued_once =
        mimi_bridge::store::outbox::pending(mls.store().pool(), Some(room().as_str()))
            .await
            .unwrap()
            .len();
    // the follower retries (its answer was lost): the same answer, nothing applied or queued twice
    let again = service
        .hub_update(&room(), &b(), common::commit_request(&commit))
        .await
        .unwrap();
    assert!(
        matches!(again.outcome, UpdateOutcome::Success { .. }),
        "{again:?}"
    );
    assert_eq!(epoch(&mls).await, 2);
    assert_eq!(
        mimi_bridge::store::outbox::pending(mls.store().pool(), Some(room().as_str()))
            .await
            .unwrap()
            .len(),
        queued_once
    );
    let state = mls.room_state(&room()).await.unwrap();
    assert_eq!(state.epoch, 2);
    assert!(
        state
            .participants
            .contains(&"mimi://b.example/u/zoe".parse().unwrap())
    );
    // the commit is queued for b.example (mallory's provider and zoe's)
    let queued = mimi_bridge::store::outbox::pending(mls.store().pool(), Some(room().as_str()))
        .await
        .unwrap();
    assert!(
        queued
            .iter()
            .any(|i| i.kind == "notify" && i.destination == "b.example")
    );
}

async fn a_message_from_a_banned_user_is_not_allowed(db: TestDb) {
    let (service, mls, mut mallory) = hub_with_remote_member(&db).await;
    let message = mallory.encrypt(b"before the ban");
    let alice: ClientUri = "mimi://a.example/d/alice/bridge".parse().unwrap();
    mls.remove_user(
        &room(),
        &alice,
        &"mimi://b.example/u/mallory".parse().unwrap(),
        true,
    )
    .await
    .unwrap();
    service.deliver_due().await.unwrap();
    let request = SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: MlsMessage::from_bytes(&message).unwrap(),
        sending_uri: IdentifierUri::new("mimi://b.example/u/mallory"),
    };
    let answer = service.hub_submit(&room(), &b(), request).await.unwrap();
    assert_eq!(answer.status, SubmitStatus::NotAllowed);
}

async fn a_message_sent_as_another_providers_user_is_not_allowed(db: TestDb) {
    let (service, _mls, mut mallory) = hub_with_remote_member(&db).await;
    let request = SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: MlsMessage::from_bytes(&mallory.encrypt(b"hi")).unwrap(),
        sending_uri: IdentifierUri::new("mimi://b.example/u/mallory"),
    };
    // accepted from b.example ...
    let ok = service
        .hub_submit(&room(), &b(), request.clone())
        .await
        .unwrap();
    assert!(matches!(ok.status, SubmitStatus::Accepted { .. }), "{ok:?}");
    // a retry of the same message (its answer was lost) is accepted again and delivered once
    let retry = service
        .hub_submit(&room(), &b(), request.clone())
        .await
        .unwrap();
    assert!(
        matches!(retry.status, SubmitStatus::Accepted { .. }),
        "{retry:?}"
    );
    let delivered =
        mimi_bridge::store::inbound_messages::list(_mls.store().pool(), room().as_str(), 0)
            .await
            .unwrap();
    assert_eq!(delivered.len(), 1, "delivered once");
    assert_eq!(delivered[0].payload, b"hi");
    // ... refused when another provider claims to speak for mallory
    let c = ProviderId::new("c.example").unwrap();
    let answer = service.hub_submit(&room(), &c, request).await.unwrap();
    assert_eq!(answer.status, SubmitStatus::NotAllowed);
}

async fn an_unknown_room_is_refused(db: TestDb) {
    let (service, _mls, mut mallory) = hub_with_remote_member(&db).await;
    let other: RoomUri = "mimi://a.example/r/nowhere".parse().unwrap();
    let commit = mallory.commit(vec![], vec![], None, false);
    let err = service
        .hub_update(&other, &b(), common::commit_request(&commit))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::UnknownRoom(_)), "{err}");
    let err = service
        .follower_notify(&other, &ProviderId::new("a.example").unwrap(), b"\x00")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServiceError::Malformed { .. } | ServiceError::UnknownRoom(_)
        ),
        "{err}"
    );
}

mod lookups {
    use super::*;
    use mimi_bridge::protocol::wire::{
        AbuseReport, AbuseType, IdentifierQueryCode, IdentifierRequest, QueryElement, SearchType,
    };

    fn query(search_type: SearchType, value: &str) -> IdentifierRequest {
        IdentifierRequest {
            query_elements: vec![QueryElement {
                search_type,
                search_value: value.as_bytes().to_vec().into(),
            }],
            id_request_extensions: Default::default(),
        }
    }

    #[tokio::test]
    async fn identifier_queries_find_local_users_by_handle_and_nick() {
        let db = TestDb::sqlite();
        let (service, _mls, _mallory) = hub_with_remote_member(&db).await;
        // protocol-06 §5.8: `handle` is the whole handle, `nick` the user part
        for (search_type, value) in [
            (SearchType::Handle, "im:alice@a.example"),
            (SearchType::Handle, "alice@a.example"),
            (SearchType::Handle, "mimi://a.example/u/alice"),
            (SearchType::Nick, "alice"),
        ] {
            let found = service
                .identifier_query(&query(search_type.clone(), value))
                .await
                .unwrap();
            assert_eq!(found.response_code, IdentifierQueryCode::Success, "{value}");
            assert_eq!(found.uri[0].as_str(), Some("mimi://a.example/u/alice"));
        }
        for (search_type, value) in [
            (SearchType::Nick, "nobody"),
            (SearchType::Handle, "alice"),
            (SearchType::Handle, "im:alice@b.example"),
            (SearchType::Handle, "mimi://b.example/u/alice"),
        ] {
            let missing = service
                .identifier_query(&query(search_type, value))
                .await
                .unwrap();
            assert_eq!(
                missing.response_code,
                IdentifierQueryCode::NotFound,
                "{value}"
            );
            assert!(missing.uri.is_empty());
        }
        let email = service
            .identifier_query(&query(SearchType::Email, "a@x"))
            .await;
        // an e-mail search is not something a bridge can answer
        assert_eq!(
            email.unwrap().response_code,
            IdentifierQueryCode::UnsupportedField
        );
    }

    #[tokio::test]
    async fn abuse_reports_are_kept_for_the_hubs_operator() {
        let db = TestDb::sqlite();
        let (service, mls, _mallory) = hub_with_remote_member(&db).await;
        let report = AbuseReport {
            reporting_user: IdentifierUri::new("mimi://b.example/u/mallory"),
            alleged_abuser_uri: IdentifierUri::new("mimi://a.example/u/alice"),
            reason_code: AbuseType::Reserved,
            note: b"spam".to_vec().into(),
            messages: vec![],
            abuse_extensions: Default::default(),
        };
        service
            .report_abuse(&room(), &b(), &report, b"raw")
            .await
            .unwrap();
        let kept = mimi_bridge::store::abuse_reports::list(mls.store().pool(), room().as_str())
            .await
            .unwrap();
        assert_eq!(
            kept,
            vec![(
                "mimi://b.example/u/mallory".into(),
                "mimi://a.example/u/alice".into(),
                "spam".into()
            )]
        );
        // c.example cannot report as a user of b.example
        let c = ProviderId::new("c.example").unwrap();
        assert!(matches!(
            service.report_abuse(&room(), &c, &report, b"raw").await,
            Err(ServiceError::Forbidden(_))
        ));
        let other: RoomUri = "mimi://a.example/r/none".parse().unwrap();
        assert!(matches!(
            service.report_abuse(&other, &b(), &report, b"raw").await,
            Err(ServiceError::UnknownRoom(_))
        ));
    }
}

mod group_info {
    use super::*;
    use mimi_bridge::mls::group_config::CIPHERSUITE;
    use mimi_bridge::protocol::wire::{
        self as pw, GroupInfoRatchetTreeTbe, GroupInfoRequestTbs, GroupInfoStatus,
    };
    use mimi_bridge::room::wire::{RoomMetaData, Utf8String};
    use openmls_traits::crypto::OpenMlsCrypto;

    #[tokio::test]
    async fn a_participants_new_device_gets_the_group_info_with_the_pending_proposals() {
        let db = TestDb::sqlite();
        let (service, mls, mut mallory) = hub_with_remote_member(&db).await;
        let cp = ComponentCodePoints::default();
        // mallory renames the room by proposal; the hub caches it
        let mut meta: RoomMetaData =
            wire::decode_exact(&mallory.component(cp.room_metadata).unwrap()).unwrap();
        meta.room_name = Utf8String::new("The Clubhouse");
        let group = mallory.group.as_mut().unwrap();
        let (proposal, _) = group
            .propose_app_data_update(
                &mallory.provider,
                &mallory.signer,
                cp.room_metadata,
                AppDataUpdateOperation::Update(wire::encode(&meta).unwrap().into()),
            )
            .unwrap();
        let bundle = UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: MlsMessage::from_bytes(&proposal.to_bytes().unwrap()).unwrap(),
                body: HandshakeBundleBody::Proposal {
                    more_proposals: vec![],
                },
            },
        };
        let answer = service.hub_update(&room(), &b(), bundle).await.unwrap();
        assert!(
            matches!(answer.outcome, UpdateOutcome::Success { .. }),
            "{answer:?}"
        );

        // mallory's phone asks for the GroupInfo
        let phone = BareMember::new("mimi://b.example/d/mallory/phone");
        let crypto = openmls_rust_crypto::RustCrypto::default();
        let keys = crypto
            .derive_hpke_keypair(CIPHERSUITE.hpke_config(), &[7; 32])
            .unwrap();
        let tbs = GroupInfoRequestTbs {
            protocol: Protocol::Mls10,
            cipher_suite: CIPHERSUITE.into(),
            requesting_signature_key: phone.credential.signature_key.clone(),
            requesting_credential: phone.credential.credential.clone(),
            group_info_public_key: keys.public.clone().into(),
            joining_code: vec![].into(),
        };
        let content = tls_codec::Serialize::tls_serialize_detached(&tbs).unwrap();
        let signature = pw::common::sign_with_label(
            &phone.signer,
            pw::group_info::GROUP_INFO_REQUEST_LABEL,
            &content,
        )
        .unwrap();
        let response = service
            .group_info_request(&room(), &b(), &tbs.clone().with_signature(signature))
            .await
            .unwrap();
        let GroupInfoStatus::Success(success) = &response.status else {
            panic!("expected the GroupInfo, got {:?}", response.status.code())
        };
        let tbe = GroupInfoRatchetTreeTbe::open(
            &crypto,
            CIPHERSUITE,
            &keys.private,
            room().as_str().as_bytes(),
            &success.encrypted_groupinfo_and_tree,
        )
        .unwrap();
        assert_eq!(
            tbe.pending_proposals.len(),
            1,
            "the cached rename is stapled"
        );
        assert!(tbe.group_info.parse().is_ok());

        // a bad signature is refused; a stranger is not authorized
        let forged = service
            .group_info_request(&room(), &b(), &tbs.clone().with_signature(vec![0; 64]))
            .await;
        assert!(matches!(forged, Err(ServiceError::Forbidden(_))));
        let zed = BareMember::new("mimi://b.example/d/zed/phone");
        let tbs = GroupInfoRequestTbs {
            requesting_signature_key: zed.credential.signature_key.clone(),
            requesting_credential: zed.credential.credential.clone(),
            ..tbs
        };
        let content = tls_codec::Serialize::tls_serialize_detached(&tbs).unwrap();
        let signature = pw::common::sign_with_label(
            &zed.signer,
            pw::group_info::GROUP_INFO_REQUEST_LABEL,
            &content,
        )
        .unwrap();
        let response = service
            .group_info_request(&room(), &b(), &tbs.with_signature(signature))
            .await
            .unwrap();
        assert_eq!(response.status, GroupInfoStatus::NotAuthorized);
        assert_eq!(mls.room_state(&room()).await.unwrap().epoch, 1);
    }
}

mod key_material {
    use super::*;
    use mimi_bridge::mls::group_config::{CIPHERSUITE, required_capabilities};
    use mimi_bridge::protocol::wire::{self as pw, KeyMaterialRequestTbs, KeyMaterialUserCode};

    fn request(member: &BareMember, requesting_user: &str, tamper: bool) -> pw::KeyMaterialRequest {
        let tbs = KeyMaterialRequestTbs {
            protocol: Protocol::Mls10,
            requesting_user: IdentifierUri::new(requesting_user),
            target_user: IdentifierUri::new("mimi://a.example/u/alice"),
            room_id: IdentifierUri::new(room().as_str()),
            acceptable_ciphersuites: vec![CIPHERSUITE.into()],
            required_capabilities: required_capabilities(),
            requester_signature_key: member.credential.signature_key.clone(),
            requester_credential: member.credential.credential.clone(),
        };
        let content = tls_codec::Serialize::tls_serialize_detached(&tbs).unwrap();
        let mut signature = pw::common::sign_with_label(
            &member.signer,
            pw::key_material::KEY_MATERIAL_REQUEST_LABEL,
            &content,
        )
        .unwrap();
        if tamper {
            signature[0] ^= 1;
        }
        tbs.with_signature(signature)
    }

    #[tokio::test]
    async fn only_the_requesters_provider_with_a_valid_signature_and_consent_gets_key_packages() {
        let db = TestDb::sqlite();
        let (service, _mls, mallory) = hub_with_remote_member(&db).await;
        let alice: mimi_bridge::uri::UserUri = "mimi://a.example/u/alice".parse().unwrap();
        let ask = async |peer: &ProviderId, requester: &str, forged: bool| {
            service
                .key_material(peer, &alice, &request(&mallory, requester, forged))
                .await
        };
        let grant = async |room: Option<&str>| {
            mimi_bridge::store::consents::set(
                _mls.store().pool(),
                "mimi://b.example/u/mallory",
                alice.as_str(),
                room,
                mimi_bridge::store::consents::ConsentState::Granted,
            )
            .await
            .unwrap()
        };
        let mallory_uri = "mimi://b.example/u/mallory";
        // no consent yet: refused with the protocol's code
        let answer = ask(&b(), mallory_uri, false).await.unwrap();
        assert_eq!(answer.user_status, KeyMaterialUserCode::NoConsent);
        assert!(answer.clients.is_empty());
        // consent for another room only: noConsentForThisRoom (protocol-06 §5.2)
        grant(Some("mimi://a.example/r/elsewhere")).await;
        let answer = ask(&b(), mallory_uri, false).await.unwrap();
        assert_eq!(
            answer.user_status,
            KeyMaterialUserCode::NoConsentForThisRoom
        );
        assert!(answer.clients.is_empty());
        // another provider cannot ask on mallory's behalf
        let c = ProviderId::new("c.example").unwrap();
        let err = ask(&c, mallory_uri, false).await.unwrap_err();
        assert!(matches!(err, ServiceError::Forbidden(_)), "{err}");
        // a forged signature, and a peer claiming to be one of our own users, are refused
        let err = ask(&b(), mallory_uri, true).await.unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
        let err = ask(&b(), "mimi://a.example/u/carol", false)
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::Forbidden(_)), "{err}");
        // with alice's consent, mallory's provider gets one key package of each of her clients
        grant(None).await;
        let answer = ask(&b(), mallory_uri, false).await.unwrap();
        assert_eq!(answer.user_status, KeyMaterialUserCode::Success);
        assert_eq!(answer.clients.len(), 1);
    }
}

#[tokio::test]
async fn a_local_commit_that_loses_its_epoch_to_a_follower_is_discarded() {
    let db = TestDb::sqlite();
    let (service, mls, mut mallory) = hub_with_remote_member(&db).await;
    let alice: ClientUri = "mimi://a.example/d/alice/bridge".parse().unwrap();
    // alice's commit is staged for epoch 1 but not yet handed to the hub ...
    mls.self_update(&room(), &alice).await.unwrap();
    // ... when mallory's commit for epoch 1 is accepted
    let commit = mallory.commit(vec![], vec![], None, true);
    let answer = service
        .hub_update(&room(), &b(), common::commit_request(&commit))
        .await
        .unwrap();
    assert!(
        matches!(answer.outcome, UpdateOutcome::Success { .. }),
        "{answer:?}"
    );
    assert_eq!(epoch(&mls).await, 2);
    // delivering alice's commit now discards it instead of wedging the room's queue
    service.deliver_due().await.unwrap();
    assert!(
        mimi_bridge::store::pending_commits::get(
            mls.store().pool(),
            room().as_str(),
            alice.as_str()
        )
        .await
        .unwrap()
        .is_none()
    );
    assert_eq!(epoch(&mls).await, 2);
    // alice commits again, at the new epoch
    mls.self_update(&room(), &alice).await.unwrap();
    service.deliver_due().await.unwrap();
    assert_eq!(epoch(&mls).await, 3);
}

#[tokio::test]
async fn a_crash_while_the_hub_accepts_a_local_commit_leaves_both_or_neither_of_it_and_its_fan_out()
{
    let db = TestDb::sqlite();
    let (service, mls, _mallory) = hub_with_remote_member(&db).await;
    let alice: ClientUri = "mimi://a.example/d/alice/bridge".parse().unwrap();
    let notifies = async || {
        mimi_bridge::store::outbox::pending(mls.store().pool(), Some(room().as_str()))
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.kind == "notify" && i.destination == "b.example")
            .count()
    };
    let before = notifies().await;
    mls.self_update(&room(), &alice).await.unwrap();
    // the hub accepts its own client's commit ... and "crashes" before its transaction commits
    mls.inject_fault("before-commit");
    service.deliver_due().await.unwrap();
    assert_eq!(epoch(&mls).await, 1, "nothing of the acceptance is left");
    assert_eq!(notifies().await, before, "nor of its fan-out");
    // the commit row is retried: accepted, fanned out to b.example once
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    service.deliver_due().await.unwrap();
    assert_eq!(epoch(&mls).await, 2);
    assert_eq!(
        notifies().await,
        before + 1,
        "the commit goes out to b.example"
    );
    service.deliver_due().await.unwrap();
    assert_eq!(notifies().await, before + 1, "once");
}
