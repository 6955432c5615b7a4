//! Errors of the MLS layer: each names the room or client and what went wrong.

use crate::room::validation::Rejection;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum MlsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Seal(#[from] super::sealing::SealError),
    #[error("stored MLS state is corrupt: {0}")]
    Corrupt(String),
    #[error("proxy client {0} does not exist")]
    UnknownClient(String),
    #[error("room {0} has no MLS group here")]
    UnknownRoom(String),
    #[error("room {room}: proxy client {client} is not a member")]
    NotAMember { room: String, client: String },
    #[error("room {0} already has an MLS group")]
    RoomExists(String),
    #[error("proxy client {client} has no key package left")]
    NoKeyPackage { client: String },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("room {room}: the room core rejects the handshake: {rejection}")]
    Rejected { room: String, rejection: Rejection },
    #[error("room {room}: invalid room state update: {reason}")]
    InvalidRoomState { room: String, reason: String },
    #[error("room {room}: no pending commit of {client} to confirm")]
    NoPendingCommit { room: String, client: String },
    #[error("openmls {operation}: {reason}")]
    Openmls {
        operation: &'static str,
        reason: String,
    },
    #[error("the Welcome into {0} welcomes none of this provider's clients")]
    WelcomeNotForUs(String),
    #[error(
        "room {room}: proxy client {client} stands at epoch {epoch}, too far behind the room's \
         epoch {room_epoch} to catch up from the room log: it has to rejoin"
    )]
    Behind {
        room: String,
        client: String,
        epoch: i64,
        room_epoch: i64,
    },
    #[error(
        "{user} cannot be added: no key package of theirs has what MIMI rooms require ({})",
        .missing.join("; ")
    )]
    InsufficientCapabilities {
        user: String,
        /// For each client: what its key package lacks.
        missing: Vec<String>,
    },
    #[error("injected failure at {0}")]
    Injected(&'static str),
}

/// Maps any openmls error into [`MlsError::Openmls`] with the operation's name.
pub(crate) trait OpenmlsResult<T> {
    fn during(self, operation: &'static str) -> Result<T, MlsError>;
}

impl<T, E: std::fmt::Debug> OpenmlsResult<T> for Result<T, E> {
    fn during(self, operation: &'static str) -> Result<T, MlsError> {
        self.map_err(|e| MlsError::Openmls {
            operation,
            reason: format!("{e:?}"),
        })
    }
}
