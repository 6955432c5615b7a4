//! The bridge core's legacy → MIMI path: how fast legacy messages are accepted (stored) and
//! carried into a MIMI room (translated to MIMI content, encrypted by the sender's proxy client,
//! stored with the id mapping, queued and accepted by the hub).
//!
//!     cargo bench --bench bridge_core
//!
//! Environment: `EVENTS` (default 2000), `DATABASE_URL` (default: a SQLite file in a temporary
//! folder; a `postgres://…` URL of an existing, empty database measures on Postgres).
//!
//! Prints accepted events per second with submit latency percentiles, carried events per second
//! with per-event latency (submit → settled) percentiles, the hub's acceptance rate of the
//! queued messages, and the hub's acceptance of a follower's messages (`/submitMessage`, in
//! process) with a local member that decrypts them and with none, next to bare openmls
//! decrypting the same messages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mimi_bridge::core::{Bridge, BridgeOptions};
use mimi_bridge::mls::bare_member::BareMember;
use mimi_bridge::mls::{ProxyMls, StateKey, UserAddition};
use mimi_bridge::protocol::service::MimiService;
use mimi_bridge::protocol::wire::{
    self, FanoutBody, GroupInfoOption, HandshakeBundle, HandshakeBundleBody, IdentifierUri,
    MlsMessage, PartialGroupInfo, Protocol, RatchetTreeOption, RatchetTreePresence,
    SubmitMessageRequest, SubmitStatus, UpdateOutcome, UpdateRequest,
};
use mimi_bridge::room::code_points::ComponentCodePoints;
use mimi_bridge::store::legacy_events::{self, EventState};
use mimi_bridge::store::{Store, StoreOptions};
use mimi_bridge::uri::{ClientUri, ProviderId, RoomUri, UserUri};
use mimi_bridge_connector::{
    BridgeCommand, Capabilities, Connector, ConnectorError, ConnectorEvent, Delivery, EventKind,
    EventSink, MessageContent, async_trait,
};

/// A connector whose legacy network discards what it is given (this benchmark measures the
/// other direction).
struct NullConnector;

#[async_trait]
impl Connector for NullConnector {
    fn name(&self) -> &str {
        "null"
    }
    fn version(&self) -> &str {
        "0"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }
    async fn start(&self, _: Arc<dyn EventSink>) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn stop(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn deliver(&self, _: &BridgeCommand) -> Result<Delivery, ConnectorError> {
        Ok(Delivery::done())
    }
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    format!(
        "p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.50),
        at(0.95),
        at(0.99),
        at(1.0)
    )
}

fn main() {
    let events: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.path().display()));
        let store = Store::open_and_migrate(&StoreOptions::new(&url))
            .await
            .unwrap();
        let provider = ProviderId::new("a.example").unwrap();
        let mls = Arc::new(ProxyMls::new(
            store.clone(),
            StateKey::from_bytes([3; 32]),
            ComponentCodePoints::default(),
            provider.clone(),
        ));
        let service = Arc::new(MimiService::new(provider, store.clone(), mls.clone(), None));
        let bridge = Bridge::new(
            store.clone(),
            mls,
            service.clone(),
            Arc::new(NullConnector),
            BridgeOptions::default(),
        );
        bridge
            .submit(ConnectorEvent::new(
                "create",
                "general",
                "alice",
                EventKind::RoomCreated { name: None },
            ))
            .await
            .unwrap();
        while bridge.run_once().await.unwrap() {}

        // 1. acceptance: each submit stores the event
        let mut submit = Vec::with_capacity(events);
        let mut submitted_at = Vec::with_capacity(events);
        let start = Instant::now();
        for i in 0..events {
            let event = ConnectorEvent::new(
                format!("e{i}"),
                "general",
                "alice",
                EventKind::Message {
                    message_id: format!("m{i}").into(),
                    content: MessageContent::markdown(format!("message **{i}** of the benchmark")),
                    reply_to: None,
                    expires: None,
                },
            );
            let t = Instant::now();
            bridge.submit(event).await.unwrap();
            submit.push(t.elapsed());
            submitted_at.push(t);
        }
        let accept_wall = start.elapsed();
        println!(
            "accepted {events} legacy messages in {:.2} s: {:.0} events/s; submit {}",
            accept_wall.as_secs_f64(),
            events as f64 / accept_wall.as_secs_f64(),
            percentiles(submit)
        );

        // 2. carrying into MIMI: the core's worker (translate, encrypt, store, queue)
        let start = Instant::now();
        let mut settled_after = vec![None; events];
        let mut done = 0;
        while done < events {
            bridge.run_once().await.unwrap();
            for (i, slot) in settled_after.iter_mut().enumerate() {
                if slot.is_none() {
                    let e = legacy_events::get(store.pool(), &format!("e{i}"))
                        .await
                        .unwrap()
                        .unwrap();
                    if e.state == EventState::Done {
                        *slot = Some(submitted_at[i].elapsed());
                        done += 1;
                    } else {
                        break;
                    }
                }
            }
        }
        let carry_wall = start.elapsed();
        println!(
            "carried {events} messages into MIMI in {:.2} s: {:.0} events/s; submit → settled {}",
            carry_wall.as_secs_f64(),
            events as f64 / carry_wall.as_secs_f64(),
            percentiles(settled_after.into_iter().flatten().collect())
        );
        println!("(settling time includes the wait behind the events submitted before it)");

        // 3. the hub accepting the queued messages (this daemon hosts the room)
        let start = Instant::now();
        while service.deliver_due().await.unwrap().is_some()
            || !mimi_bridge::store::outbox::pending(store.pool(), None)
                .await
                .unwrap()
                .is_empty()
        {}
        let hub_wall = start.elapsed();
        println!(
            "the hub accepted the {events} messages in {:.2} s: {:.0} messages/s",
            hub_wall.as_secs_f64(),
            events as f64 / hub_wall.as_secs_f64()
        );

        // 4. a follower's messages at the hub, with a local member that decrypts them for
        // local delivery, then with no local member left (the room is not a member)
        let mls = service.mls.clone();
        let room: RoomUri = "mimi://a.example/r/submit".parse().unwrap();
        let alice: ClientUri = "mimi://a.example/d/alice/bench".parse().unwrap();
        mls.create_client(&alice).await.unwrap();
        mls.create_room(&room, &alice, 3).await.unwrap();
        let mut mallory = BareMember::new("mimi://b.example/d/mallory/laptop");
        let mut reader = BareMember::new("mimi://b.example/d/rita/laptop");
        let mut additions = Vec::new();
        // mallory is an admin too, so that alice (the creator) may leave the room to her
        for (member, uri, role) in [
            (&mallory, "mimi://b.example/u/mallory", 3),
            (&reader, "mimi://b.example/u/rita", 2),
        ] {
            let user: UserUri = uri.parse().unwrap();
            let kp = member.key_package();
            mls.bind_key_package(&kp, user.provider(), &user)
                .await
                .unwrap();
            additions.push(UserAddition {
                user,
                role,
                key_packages: vec![kp],
            });
        }
        let out = mls.add_users(&room, &alice, &additions).await.unwrap();
        drain(&service, &store).await;
        mallory.join(out.welcome.as_ref().unwrap()).unwrap();
        reader.join(out.welcome.as_ref().unwrap()).unwrap();
        let b = ProviderId::new("b.example").unwrap();
        let messages = events.min(1000);
        let with_member = submit_messages(&service, &room, &b, &mut mallory, messages).await;
        drain(&service, &store).await;

        // bare openmls: the same number of messages encrypted and decrypted in memory
        let sealed: Vec<Vec<u8>> = (0..messages)
            .map(|i| mallory.encrypt(format!("message {i} of the benchmark").as_bytes()))
            .collect();
        let start = Instant::now();
        for m in &sealed {
            reader.process(m).unwrap();
        }
        let bare = messages as f64 / start.elapsed().as_secs_f64();

        // alice leaves; mallory commits her cached proposals: no local member is left
        mls.leave(&room, &alice).await.unwrap();
        service.deliver_due().await.unwrap();
        for item in mimi_bridge::store::outbox::pending(store.pool(), Some(room.as_str()))
            .await
            .unwrap()
        {
            if item.kind == "notify" {
                for fanout in wire::split_notify_body(&item.body).unwrap() {
                    if let FanoutBody::Proposal { more_proposals } = &fanout.body {
                        for proposal in std::iter::once(&fanout.message).chain(more_proposals) {
                            mallory.process(proposal.as_bytes()).unwrap();
                        }
                    }
                }
            }
        }
        // the commit carries alice's list removal: its new list is mallory's to give
        let cp = ComponentCodePoints::default();
        let mut list: mimi_bridge::room::wire::ParticipantListData =
            mimi_bridge::room::wire::decode_exact(&mallory.component(cp.participant_list).unwrap())
                .unwrap();
        list.participants
            .retain(|p| p.user.as_slice() != b"mimi://a.example/u/alice");
        let list = mimi_bridge::room::wire::encode(&list).unwrap();
        let commit = mallory.commit(vec![], vec![], Some((cp.participant_list, list)), true);
        let answer = service
            .hub_update(&room, &b, commit_request(commit))
            .await
            .unwrap();
        assert!(
            matches!(answer.outcome, UpdateOutcome::Success { .. }),
            "{answer:?}"
        );
        let left = mls.room_state(&room).await.unwrap();
        assert!(
            mls.local_members(&room).await.unwrap().is_empty(),
            "{:?} {:?}",
            mls.local_members(&room).await,
            left.members
        );
        drain(&service, &store).await;
        let without_member = submit_messages(&service, &room, &b, &mut mallory, messages).await;
        println!(
            "the hub accepted {messages} of a follower's messages (/submitMessage, one per \
             request): with a local member decrypting {:.0} messages/s; with no local member \
             {:.0} messages/s; bare openmls decrypts {bare:.0} messages/s",
            with_member, without_member
        );
    });
}

/// Delivers the outbox until nothing is due (the room's own fan-out has no peer here).
async fn drain(service: &MimiService, store: &Store) {
    let _ = service.deliver_due().await;
    for item in mimi_bridge::store::outbox::pending(store.pool(), None)
        .await
        .unwrap()
    {
        mimi_bridge::store::outbox::mark_delivered(store.pool(), &item.id)
            .await
            .unwrap();
    }
}

/// Submits `n` messages of `member` to the hub one by one; messages per second.
async fn submit_messages(
    service: &MimiService,
    room: &RoomUri,
    peer: &ProviderId,
    member: &mut BareMember,
    n: usize,
) -> f64 {
    let requests: Vec<SubmitMessageRequest> = (0..n)
        .map(|i| SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: MlsMessage::from_bytes(
                &member.encrypt(format!("message {i} of the benchmark").as_bytes()),
            )
            .unwrap(),
            sending_uri: IdentifierUri::new("mimi://b.example/u/mallory"),
        })
        .collect();
    let start = Instant::now();
    let mut latency = Vec::with_capacity(n);
    for request in requests {
        let t = Instant::now();
        let answer = service.hub_submit(room, peer, request).await.unwrap();
        assert!(
            matches!(answer.status, SubmitStatus::Accepted { .. }),
            "{answer:?}"
        );
        latency.push(t.elapsed());
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!("  /submitMessage latency {}", percentiles(latency));
    rate
}

fn commit_request(commit: Vec<u8>) -> UpdateRequest {
    UpdateRequest {
        bundle: HandshakeBundle {
            proposal_or_commit: MlsMessage::from_bytes(&commit).unwrap(),
            body: HandshakeBundleBody::Commit {
                welcome: None,
                group_info_option: GroupInfoOption::Partial(PartialGroupInfo {
                    ratchet_tree_presence: RatchetTreePresence::NoRatchetTree,
                    group_info_extensions: vec![],
                    signature: vec![].into(),
                }),
                ratchet_tree_option: RatchetTreeOption::DistributionService,
            },
        },
    }
}
