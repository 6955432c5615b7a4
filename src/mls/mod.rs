//! The MLS layer: proxy MLS clients for legacy users (openmls), with durable state.
//!
//! - [`clients`]: identities (credential = MIMI client URI) and key package pools;
//! - [`storage`]: openmls storage per client namespace over the project's store;
//! - [`sealing`]: secrets sealed at rest under the configured state key;
//! - [`room_sync`]: room state in the GroupContext, AppDataUpdate through the room core;
//! - [`engine`]: the operations, each one database transaction.

pub mod bare_member;
pub mod clients;
pub mod engine;
pub mod error;
pub mod group_config;
pub mod room_sync;
pub mod sealing;
pub mod storage;

pub use engine::{
    CommitOp, CommitOutput, FAULT_POINTS, Incoming, ProxyMls, StorageReport, UserAddition,
};
pub use error::MlsError;
pub use sealing::StateKey;

/// The device name of the one proxy client the bridge runs for each legacy user.
pub const PROXY_DEVICE: &str = "bridge";

/// The proxy client the bridge runs for a legacy user: `mimi://DOMAIN/d/USER/bridge`.
pub fn proxy_client_of(
    user: &crate::uri::UserUri,
) -> Result<crate::uri::ClientUri, crate::uri::UriError> {
    crate::uri::ClientUri::for_user(user, PROXY_DEVICE)
}
