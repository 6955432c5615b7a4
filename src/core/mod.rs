//! The bridge core: between a connector's legacy events and MIMI rooms. It knows no network of
//! its own; the connector ([`mimi_bridge_connector::Connector`]) and the MIMI service do the
//! talking.
//!
//! - Legacy → MIMI ([`events`]): [`Bridge`] is the connector's [`EventSink`]. A submitted event
//!   is stored (`legacy_events`) before `submit` answers; one worker then carries each legacy
//!   room's events out in order, as MIMI operations through the proxy MLS clients, settling each
//!   event in the transaction of its operation, so nothing is lost or done twice. A room waits
//!   while one of its commits is with the hub, so membership changes and messages reach MIMI in
//!   the order the legacy side made them.
//! - MIMI → legacy ([`commands`]): decrypted messages and journalled room changes form each
//!   room's inbound stream; the core turns it into [`BridgeCommand`]s in the durable outbox (one
//!   ordered queue per room), and delivers them to the connector with retries under the same
//!   command id, mapping ids both ways as the connector answers.
//! - [`identity`]: legacy users ↔ MIMI users ↔ proxy clients, legacy rooms ↔ MIMI rooms.
//! - [`content`]: legacy message content ↔ MIMI content.

mod commands;
pub mod content;
mod events;
pub mod identity;
mod membership;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mimi_bridge_connector::{
    Accepted, BridgeCommand, Connector, ConnectorEvent, EventSink, SinkError, async_trait,
};
use tokio_util::sync::CancellationToken;

use crate::mls::{MlsError, ProxyMls};
use crate::protocol::service::{Attempt, LegacyOutbox, MimiService, ServiceError};
use crate::store::outbox::OutboxRecord;
use crate::store::{Store, StoreError, legacy_events, pending_commits, room_log};
use crate::uri::ProviderId;

/// What can go wrong in the core; none of it is the connector's fault.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mls(#[from] MlsError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("stored {what} cannot be read: {reason}")]
    Corrupt { what: &'static str, reason: String },
}

/// The core's settings.
#[derive(Clone, Debug)]
pub struct BridgeOptions {
    /// How long an invitation of a remote user waits for their consent before it fails.
    pub consent_wait: Duration,
    /// Delivery attempts of one command before it is dead-lettered.
    pub max_delivery_attempts: i64,
    /// How long an event whose operation keeps failing (the store, an internal error) is
    /// retried, with growing pauses, before it is reported failed and its room moves on.
    pub retry_for: Duration,
    /// Content extension keys of a message's legacy id and time.
    pub origin_keys: crate::content::origin::OriginKeys,
}

impl Default for BridgeOptions {
    fn default() -> Self {
        BridgeOptions {
            consent_wait: Duration::from_secs(300),
            max_delivery_attempts: 16,
            retry_for: Duration::from_secs(600),
            origin_keys: Default::default(),
        }
    }
}

/// How many times an event whose commit loses an epoch race at the hub is carried out again
/// before it is reported failed.
const MAX_REBUILDS: u32 = 5;

/// A key-material fetch run for an invitation.
enum Fetch {
    Running,
    Done(Result<Vec<Vec<u8>>, ServiceError>),
}

/// The bridge core of one daemon and its one connector.
pub struct Bridge {
    provider: ProviderId,
    store: Store,
    mls: Arc<ProxyMls>,
    service: Arc<MimiService>,
    connector: Arc<dyn Connector>,
    options: BridgeOptions,
    wake: Arc<tokio::sync::Notify>,
    /// Legacy rooms whose head event waits (consent, a commit with the hub) until then.
    waiting: Mutex<HashMap<String, Instant>>,
    /// Events whose operation failed, by seq: since when, and how many times.
    failing: Mutex<HashMap<i64, (Instant, u32)>>,
    /// Events whose commits lost epoch races at the hub, by seq: how many times.
    rebuilt: Mutex<HashMap<i64, u32>>,
    /// Key material being fetched from other providers for invitations, by event seq: run
    /// off the core's worker, so a provider slow to answer holds up only its own room.
    fetches: Arc<Mutex<HashMap<i64, Fetch>>>,
    /// Legacy users whose proxy client exists (so carrying their events costs no lookup).
    known_puppets: Mutex<HashSet<String>>,
}

impl Bridge {
    pub fn new(
        store: Store,
        mls: Arc<ProxyMls>,
        service: Arc<MimiService>,
        connector: Arc<dyn Connector>,
        options: BridgeOptions,
    ) -> Arc<Bridge> {
        let bridge = Arc::new(Bridge {
            provider: service.domain.clone(),
            store,
            mls,
            service: service.clone(),
            connector,
            options,
            wake: Arc::new(tokio::sync::Notify::new()),
            fetches: Arc::new(Mutex::new(HashMap::new())),
            waiting: Mutex::new(HashMap::new()),
            failing: Mutex::new(HashMap::new()),
            rebuilt: Mutex::new(HashMap::new()),
            known_puppets: Mutex::new(HashSet::new()),
        });
        service.set_legacy_outbox(bridge.clone());
        bridge
    }

    pub fn connector(&self) -> &Arc<dyn Connector> {
        &self.connector
    }

    /// Starts the connector (with this core as its sink) and the core's worker, which runs
    /// until `stop`; then stops the connector.
    pub async fn start(
        self: &Arc<Self>,
        stop: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, mimi_bridge_connector::ConnectorError> {
        self.connector.start(self.clone()).await?;
        tracing::info!(
            connector = self.connector.name(),
            version = self.connector.version(),
            "connector started"
        );
        let me = self.clone();
        Ok(tokio::spawn(async move {
            loop {
                let progressed = match me.run_once().await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "bridge core step failed");
                        false
                    }
                };
                if progressed {
                    continue;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    // Woken by new legacy events, by the MIMI side when the inbound stream
                    // grows, and by the end of the earliest wait; a slow poll is the safety net.
                    _ = me.wake.notified() => {}
                    _ = tokio::time::sleep(me.next_wait()) => {}
                }
            }
            if let Err(e) = me.connector.stop().await {
                tracing::warn!(error = %e, "connector stop failed");
            }
        }))
    }

    /// One pass: carries out due legacy events, turns new inbound entries into commands.
    /// Returns whether anything moved.
    pub async fn run_once(&self) -> Result<bool, BridgeError> {
        let events = self.process_events().await?;
        let commits = self.commit_cached_proposals().await?;
        let commands = self.translate_inbound().await?;
        if commands {
            self.service.wake();
        }
        Ok(events || commits || commands)
    }

    /// A local member commits the proposals a room has cached (users leaving): MIMI requires
    /// them in the next commit, and without a commit the leaving users would stay in the room.
    async fn commit_cached_proposals(&self) -> Result<bool, BridgeError> {
        let mut committed = false;
        for room_id in room_log::rooms_with_pending_proposals(self.store.pool()).await? {
            let key = format!("commit:{room_id}");
            let Ok(room) = room_id.parse::<crate::uri::RoomUri>() else {
                continue;
            };
            if self.room_waits(&key)
                || pending_commits::any_in_room(self.store.pool(), &room_id).await?
            {
                continue;
            }
            // The hub commits at once. A follower steps in when proposals stay uncommitted for
            // a while (the hub may have no member left that can commit them); should both
            // commit, the hub takes one and refuses the other.
            if room.provider() != &self.provider {
                let grace = format!("grace:{room_id}");
                if !self.has_wait(&grace) {
                    self.wait_room(&grace, Duration::from_secs(3));
                    continue;
                }
                if self.room_waits(&grace) {
                    continue;
                }
            }
            let state = self.mls.room_state(&room).await?;
            let candidates = state
                .members
                .iter()
                .filter(|m| self.is_local(&m.user))
                .map(|m| m.client.clone());
            let mut done = false;
            for client in candidates {
                match self.mls.commit_pending_proposals(&room, &client).await {
                    Ok(_) => {
                        done = true;
                        break;
                    }
                    // e.g. the client is itself leaving: another one may commit.
                    Err(e) => {
                        tracing::debug!(%room, %client, error = %e, "cannot commit the cached proposals")
                    }
                }
            }
            if done {
                self.service.wake();
                committed = true;
            } else {
                self.wait_room(&key, Duration::from_secs(5));
            }
        }
        Ok(committed)
    }

    /// Whether an event whose commit lost an epoch race may be carried out once more.
    fn may_rebuild(&self, seq: i64) -> bool {
        let mut rebuilt = self.rebuilt.lock().unwrap_or_else(|e| e.into_inner());
        let n = rebuilt.entry(seq).or_insert(0);
        *n += 1;
        *n <= MAX_REBUILDS
    }

    /// Until the earliest room wait ends (at most a second).
    fn next_wait(&self) -> Duration {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        waiting
            .values()
            .filter(|until| **until > now)
            .map(|until| *until - now)
            .min()
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(5))
    }

    fn wait_room(&self, legacy_room: &str, pause: Duration) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.insert(legacy_room.to_owned(), Instant::now() + pause);
    }

    fn has_wait(&self, key: &str) -> bool {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.contains_key(key)
    }

    fn room_waits(&self, legacy_room: &str) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        match waiting.get(legacy_room) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                waiting.remove(legacy_room);
                false
            }
            None => false,
        }
    }
}

#[async_trait]
impl EventSink for Bridge {
    async fn submit(&self, event: ConnectorEvent) -> Result<Accepted, SinkError> {
        event.validate()?;
        let body = serde_json::to_string(&event).map_err(|e| SinkError::invalid(e.to_string()))?;
        let new = legacy_events::accept(
            self.store.pool(),
            event.event_id.as_str(),
            event.room_id.as_str(),
            &body,
        )
        .await
        .map_err(unavailable)?;
        if new {
            self.wake.notify_one();
            return Ok(Accepted::NEW);
        }
        let earlier = legacy_events::get(self.store.pool(), event.event_id.as_str())
            .await
            .map_err(unavailable)?;
        match earlier {
            Some(e) if e.body != body => Err(SinkError::invalid(format!(
                "event id `{}` was used before for a different event",
                event.event_id
            ))),
            _ => Ok(Accepted::DUPLICATE),
        }
    }
}

#[async_trait]
impl LegacyOutbox for Bridge {
    async fn deliver(&self, item: &OutboxRecord) -> Attempt {
        match self.deliver_command(item).await {
            Ok(attempt) => attempt,
            Err(e) => {
                tracing::warn!(id = %item.id, error = %e, "command delivery failed");
                Attempt::Retry(None)
            }
        }
    }

    fn inbound(&self) {
        self.wake.notify_one();
    }
}

fn unavailable(e: StoreError) -> SinkError {
    SinkError::Unavailable {
        reason: e.to_string(),
        retry_after: Some(Duration::from_secs(1)),
    }
}

/// Serialises a command for the outbox.
fn command_body(command: &BridgeCommand) -> Result<Vec<u8>, BridgeError> {
    serde_json::to_vec(command).map_err(|e| BridgeError::Corrupt {
        what: "command",
        reason: e.to_string(),
    })
}
