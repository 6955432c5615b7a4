//! What another MIMI implementation may send that this one did not expect, in process: each
//! is refused with a 4xx that says why (the sender's mistake, not to be retried), and leaves
//! nothing behind.

mod common;

use std::sync::Arc;

use common::TestDb;
use mimi_bridge::mls::bare_member::{BareMember, parse_key_package};
use mimi_bridge::mls::{ProxyMls, StateKey};
use mimi_bridge::protocol::service::MimiService;
use mimi_bridge::protocol::wire::{
    FanoutBody, FanoutMessage, MlsMessage, RatchetTreeOption, join_notify_body,
};
use mimi_bridge::room::code_points::ComponentCodePoints;
use mimi_bridge::server::ApiError;
use mimi_bridge::store::{Store, StoreOptions, room_groups};
use mimi_bridge::uri::{ClientUri, ProviderId, RoomUri};

async fn daemon(db: &TestDb, domain: &str) -> (Arc<MimiService>, Arc<ProxyMls>) {
    let store = Store::open_and_migrate(&StoreOptions::new(&db.url))
        .await
        .unwrap();
    let provider = ProviderId::new(domain).unwrap();
    let mls = Arc::new(ProxyMls::new(
        store.clone(),
        StateKey::from_bytes([3; 32]),
        ComponentCodePoints::default(),
        provider.clone(),
    ));
    (
        Arc::new(MimiService::new(provider, store, mls.clone(), None)),
        mls,
    )
}

/// A hub of another implementation welcomes bob into a plain MLS group (no participant list,
/// no room state): 422 `invalid_room_state` (it was a 500, retried for ever), no room here.
#[tokio::test]
async fn a_welcome_into_a_group_without_room_state_is_the_senders_fault() {
    let db = TestDb::sqlite();
    let (b, b_mls) = daemon(&db, "b.example").await;
    let bob: ClientUri = "mimi://b.example/d/bob/bridge".parse().unwrap();
    b_mls.create_client(&bob).await.unwrap();
    let kp = parse_key_package(&b_mls.key_package(&bob).await.unwrap()).unwrap();
    let mut alice = BareMember::new("mimi://a.example/d/alice/laptop");
    alice.create_group(b"mimi://a.example/g/plain");
    let welcome = alice.add(&[kp]);
    let body = join_notify_body(&[FanoutMessage {
        timestamp: 1,
        message: MlsMessage::from_bytes(&welcome).unwrap(),
        body: FanoutBody::Welcome {
            ratchet_tree_option: RatchetTreeOption::DistributionService,
        },
    }])
    .unwrap();
    let room: RoomUri = "mimi://a.example/r/plain".parse().unwrap();
    let err = b
        .follower_notify(&room, &ProviderId::new("a.example").unwrap(), &body)
        .await
        .unwrap_err();
    let api = ApiError::from(err);
    assert_eq!(api.status.as_u16(), 422, "{}: {}", api.error, api.message);
    assert_eq!(api.error, "invalid_room_state", "{}", api.message);
    assert!(
        room_groups::get(b_mls.store().pool(), room.as_str())
            .await
            .unwrap()
            .is_none(),
        "nothing of the room is kept"
    );
}
