//! The two traits that join a connector and the core, and what their calls return.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    BridgeCommand, Capabilities, ConnectorError, ConnectorEvent, LegacyMessageId, LegacyRoomId,
    LegacyUserId, MimiUserRef, SinkError,
};

/// A legacy-network connector: what the core calls.
///
/// The mandatory surface is six methods: [`name`](Self::name), [`version`](Self::version),
/// [`capabilities`](Self::capabilities), [`start`](Self::start), [`stop`](Self::stop) and
/// [`deliver`](Self::deliver). The ghost methods have defaults for connectors whose network has
/// no puppets.
///
/// Life cycle: the daemon builds the connector from its configuration, then calls `start` once
/// with the [`EventSink`] that inbound events go to. From then on the connector submits
/// [`ConnectorEvent`]s to the sink whenever something happens on the legacy network, and the core
/// calls `deliver` for each [`BridgeCommand`]. On shutdown the core calls `stop`, after which it
/// delivers nothing more.
///
/// The trait is object-safe (through `async_trait`); the core holds connectors as
/// `Arc<dyn Connector>`. See the crate docs for a complete example.
#[async_trait]
pub trait Connector: Send + Sync {
    /// A short, stable name for this connector, e.g. `"matrix"` or `"webhook"`. The core keys its
    /// stored id mappings by it, so changing it orphans every bridged room.
    fn name(&self) -> &str;

    /// The connector's version, for logs and the admin API (e.g. `env!("CARGO_PKG_VERSION")`).
    fn version(&self) -> &str;

    /// What the connector can carry beyond plain messages and room creation. The core reads this
    /// before each delivery, so it may change at run time (e.g. after the legacy network
    /// announced its features).
    fn capabilities(&self) -> Capabilities;

    /// Starts the connector: connect to the legacy network, bind listeners, spawn tasks. Keep
    /// `sink` to submit inbound events. Return once the connector is ready to take
    /// [`deliver`](Self::deliver) calls; a retryable error makes the core try again later, a
    /// non-retryable one stops the daemon.
    async fn start(&self, sink: Arc<dyn EventSink>) -> Result<(), ConnectorError>;

    /// Stops the connector: stop submitting events, close connections, end the tasks `start`
    /// spawned. Called once, on shutdown; nothing is delivered afterwards.
    async fn stop(&self) -> Result<(), ConnectorError>;

    /// Carries out `command` on the legacy network.
    ///
    /// Return `Ok` only once the legacy network has taken it, with the legacy ids it assigned (see
    /// [`Delivery`]). The same command may be delivered more than once (same
    /// [`command_id`](BridgeCommand::command_id)); a redelivery of a command already carried out
    /// must not repeat its effect, and should return the same `Delivery`. On error, the
    /// [`ConnectorError`] variant tells the core whether to retry.
    ///
    /// The core calls this for one room at a time, in order, but for different rooms
    /// concurrently.
    async fn deliver(&self, command: &BridgeCommand) -> Result<Delivery, ConnectorError>;

    /// The legacy id of the ghost (legacy-side puppet) for MIMI user `user`, if this connector
    /// puppets MIMI users. The core puts it in
    /// [`MimiUser::legacy_id`](crate::MimiUser::legacy_id) of the commands it delivers.
    ///
    /// Must be deterministic and agree with [`ghost_mimi_user`](Self::ghost_mimi_user). The
    /// default: no ghosts.
    fn ghost_user_id(&self, user: &MimiUserRef) -> Option<LegacyUserId> {
        let _ = user;
        None
    }

    /// The MIMI user that legacy id `ghost` is a ghost of, or `None` if it is not a ghost. The
    /// core uses it to resolve [`UserRef::Legacy`](crate::UserRef::Legacy) targets of events
    /// (a legacy user inviting a ghost invites the MIMI user). The default: no ghosts.
    fn ghost_mimi_user(&self, ghost: &LegacyUserId) -> Option<MimiUserRef> {
        let _ = ghost;
        None
    }
}

/// Where a connector submits inbound events: given to it by the core in
/// [`Connector::start`].
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Hands `event` to the core.
    ///
    /// `Ok` means the event is durably stored (it will be carried into the MIMI room even if the
    /// daemon crashes right after), so only then may the connector acknowledge it to the legacy
    /// network. Submitting an event whose [`event_id`](ConnectorEvent::event_id) was already
    /// accepted is harmless and answers `Accepted { duplicate: true }`.
    ///
    /// Acceptance is not success in MIMI: the room's hub may still refuse the change later, in
    /// which case the core delivers a
    /// [`CommandKind::EventFailed`](crate::CommandKind::EventFailed) naming the event.
    async fn submit(&self, event: ConnectorEvent) -> Result<Accepted, SinkError>;
}

/// The answer to a successful [`EventSink::submit`]. JSON: `{"duplicate": false}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Accepted {
    /// `true` when an event with this [`LegacyEventId`](crate::LegacyEventId) had already been
    /// accepted; this submission changed nothing.
    #[serde(default)]
    pub duplicate: bool,
}

impl Accepted {
    /// A first acceptance.
    pub const NEW: Accepted = Accepted { duplicate: false };
    /// A re-submission of an event already accepted.
    pub const DUPLICATE: Accepted = Accepted { duplicate: true };
}

/// The answer to a successful [`Connector::deliver`]: the legacy ids the legacy network assigned,
/// so the core can map them to MIMI ids.
///
/// JSON (a webhook receiver may answer with it; every field is optional, `{}` is fine):
/// `{"message_id": "m-18"}` or `{"room_id": "general"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Delivery {
    /// The legacy id of the message (or reaction) the command created: set it for
    /// [`CommandKind::Message`](crate::CommandKind::Message), and for
    /// [`CommandKind::Reaction`](crate::CommandKind::Reaction) when reactions have ids. Without
    /// it, later commands name that message by MIMI id only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<LegacyMessageId>,
    /// The legacy room the command created: set it for
    /// [`CommandKind::RoomCreated`](crate::CommandKind::RoomCreated). Without it the room stays
    /// unbridged on this side, and later commands carry no `room.legacy_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<LegacyRoomId>,
}

impl Delivery {
    /// Done, with no new legacy id to report.
    pub fn done() -> Self {
        Delivery::default()
    }

    /// Done; the legacy network gave the new message (or reaction) this id.
    pub fn message(id: impl Into<LegacyMessageId>) -> Self {
        Delivery {
            message_id: Some(id.into()),
            room_id: None,
        }
    }

    /// Done; the legacy network gave the new room this id.
    pub fn room(id: impl Into<LegacyRoomId>) -> Self {
        Delivery {
            message_id: None,
            room_id: Some(id.into()),
        }
    }
}
