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
//! with per-event latency (submit → settled) percentiles, and the hub's acceptance rate of the
//! queued messages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mimi_bridge::core::{Bridge, BridgeOptions};
use mimi_bridge::mls::{ProxyMls, StateKey};
use mimi_bridge::protocol::service::MimiService;
use mimi_bridge::room::code_points::ComponentCodePoints;
use mimi_bridge::store::legacy_events::{self, EventState};
use mimi_bridge::store::{Store, StoreOptions};
use mimi_bridge::uri::ProviderId;
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
    });
}
