//! The Matrix connector: the [`Connector`] the daemon runs when `[matrix]` is configured.
//!
//! This module holds the connector itself, its [`Connector`] implementation and the conversions
//! it shares; `commands` carries out bridge commands, `membership` manages ghosts, room
//! membership and power levels, and `sending` writes events and media to the homeserver.

mod commands;
mod membership;
mod sending;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use mimi_bridge_connector::{
    BridgeCommand, Capabilities, Connector, ConnectorError, Delivery, EventSink, LegacyUserId,
    MimiUserRef, async_trait,
};
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, UserId};
use serde_json::{Value, json};

use crate::client::{MatrixClient, MatrixError};
use crate::ghost::GhostNames;
use crate::settings::MatrixSettings;

/// Where the connector records the homeserver transactions it has processed, so that none is
/// processed twice, even across restarts. The daemon keeps it in its store.
#[async_trait]
pub trait TransactionLog: Send + Sync {
    /// Whether the transaction was processed already.
    async fn is_done(&self, txn_id: &str) -> Result<bool, String>;
    /// Records a processed transaction.
    async fn mark_done(&self, txn_id: &str) -> Result<(), String>;
}

/// The Matrix connector.
pub struct MatrixConnector {
    pub(crate) settings: MatrixSettings,
    pub(crate) ghosts: GhostNames,
    pub(crate) client: MatrixClient,
    pub(crate) bot: OwnedUserId,
    pub(crate) sink: Mutex<Option<Arc<dyn EventSink>>>,
    pub(crate) transactions: Arc<dyn TransactionLog>,
    /// Ghosts known to be registered (in this run).
    registered: Mutex<HashSet<String>>,
}

pub(crate) fn connector_error(e: MatrixError) -> ConnectorError {
    match e {
        MatrixError::RateLimited { retry_after } => ConnectorError::Transient {
            reason: "the homeserver rate-limits the bridge".into(),
            retry_after,
        },
        e if e.is_retryable() => ConnectorError::transient(e.to_string()),
        e => ConnectorError::permanent(e.to_string()),
    }
}

fn invalid(what: &str, value: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::permanent(format!("{what} `{value}` is not valid: {e}"))
}

pub(crate) fn user_id(value: &str) -> Result<OwnedUserId, ConnectorError> {
    UserId::parse(value).map_err(|e| invalid("Matrix user id", value, e))
}

pub(crate) fn room_id(value: &str) -> Result<OwnedRoomId, ConnectorError> {
    value
        .try_into()
        .map_err(|e| invalid("Matrix room id", value, e))
}

fn event_id(value: &str) -> Result<OwnedEventId, ConnectorError> {
    value
        .try_into()
        .map_err(|e| invalid("Matrix event id", value, e))
}

/// The Matrix power level of a MIMI role (default roles): group admins moderate (50), super
/// admins and policy enforcers get 75, below the bridge bot (the portal's creator) so the
/// bridge keeps control.
pub(crate) fn power_level(role: u32) -> i64 {
    match role {
        3 => 50,
        4 | 5 => 75,
        _ => 0,
    }
}

/// The MIMI role a Matrix power level stands for.
pub(crate) fn role_of_power_level(level: i64) -> u32 {
    match level {
        l if l >= 75 => 4,
        l if l >= 50 => 3,
        _ => 2,
    }
}

/// The `m.bridge` state of a portal (MSC2346), saying where end-to-end encryption ends.
pub(crate) fn bridge_state(bot: &str, room_uri: &str, name: Option<&str>) -> Value {
    json!({
        "bridgebot": bot,
        "protocol": {"id": "mimi", "displayname": "MIMI"},
        "channel": {"id": room_uri, "displayname": name.unwrap_or(room_uri)},
        "org.mimi-bridge.encryption": "MIMI messages are end-to-end encrypted up to this bridge, which decrypts them for this room"
    })
}

impl MatrixConnector {
    pub fn new(
        settings: MatrixSettings,
        transactions: Arc<dyn TransactionLog>,
    ) -> Result<Arc<MatrixConnector>, ConnectorError> {
        let client = MatrixClient::new(&settings.homeserver_url, &settings.as_token)
            .map_err(connector_error)?;
        let bot = user_id(&settings.bot_user_id())?;
        Ok(Arc::new(MatrixConnector {
            ghosts: settings.ghost_names(),
            settings,
            client,
            bot,
            sink: Mutex::new(None),
            transactions,
            registered: Mutex::new(HashSet::new()),
        }))
    }

    pub fn settings(&self) -> &MatrixSettings {
        &self.settings
    }

    /// The ghost that acts for a command's sender.
    fn sender_ghost(&self, command: &BridgeCommand) -> Result<OwnedUserId, ConnectorError> {
        let id = self
            .ghosts
            .user_id(command.sender.uri.as_str())
            .map_err(|e| ConnectorError::permanent(e.to_string()))?;
        user_id(&id)
    }

    /// The Matrix user id a command names: a ghost's, or a Matrix user's of this homeserver.
    fn matrix_user(
        &self,
        user: &mimi_bridge_connector::MimiUser,
    ) -> Result<OwnedUserId, ConnectorError> {
        match &user.legacy_id {
            Some(id) => user_id(id.as_str()),
            None => user_id(
                &self
                    .ghosts
                    .user_id(user.uri.as_str())
                    .map_err(|e| ConnectorError::permanent(e.to_string()))?,
            ),
        }
    }
}

#[async_trait]
impl Connector for MatrixConnector {
    fn name(&self) -> &str {
        "matrix"
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    async fn start(&self, sink: Arc<dyn EventSink>) -> Result<(), ConnectorError> {
        *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
        Ok(())
    }

    async fn stop(&self) -> Result<(), ConnectorError> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner()).take();
        Ok(())
    }

    async fn deliver(&self, command: &BridgeCommand) -> Result<Delivery, ConnectorError> {
        self.carry_out(command).await
    }

    fn ghost_user_id(&self, user: &MimiUserRef) -> Option<LegacyUserId> {
        self.ghosts
            .user_id(user.as_str())
            .ok()
            .map(LegacyUserId::new)
    }

    fn ghost_mimi_user(&self, ghost: &LegacyUserId) -> Option<MimiUserRef> {
        self.ghosts
            .mimi_user(ghost.as_str())
            .ok()
            .map(MimiUserRef::new)
    }
}
