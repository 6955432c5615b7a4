//! The MLS layer: rooms as public views, and proxy MLS clients for legacy users (openmls), with
//! durable state.
//!
//! - [`clients`]: identities (credential = MIMI client URI) and key package pools;
//! - [`storage`]: openmls storage per namespace (a client, or a room's public view) over the
//!   project's store;
//! - [`sealing`]: secrets sealed at rest under the configured state key;
//! - [`room_sync`]: room state in the GroupContext, AppDataUpdate through the room core;
//! - [`engine`]: the engine, its caches and the operations' shared steps;
//! - [`public`]: each room's public view;
//! - [`handshakes`]: handshakes applied to the view, with all they cause;
//! - [`membership`]: which local clients are in a room;
//! - [`admission`]: identities bound to the providers that bring them;
//! - [`member`]: proxy members, caught up lazily from the room log;
//! - [`rooms`], [`commits`], [`messages`]: the operations.

pub mod admission;
pub mod bare_member;
pub mod clients;
pub mod commits;
pub mod engine;
pub mod error;
pub mod group_config;
pub mod handshakes;
pub mod member;
pub mod membership;
pub mod messages;
pub mod outgoing;
pub mod public;
pub mod resync;
pub mod room_sync;
pub mod rooms;
pub mod sealing;
pub mod storage;

pub use admission::Origin;
pub use engine::{
    CommitOp, CommitOutput, DEFAULT_CATCH_UP_BOUND, FAULT_POINTS, Incoming, PausedOperation,
    ProxyMls, StorageReport, UserAddition,
};
pub use error::MlsError;
pub use handshakes::{Applied, CommitSource, FanOut, no_fan_out};
pub use outgoing::Reencryption;
pub use public::PublicView;
pub use sealing::StateKey;

/// The device name of the one proxy client the bridge runs for each legacy user.
pub const PROXY_DEVICE: &str = "bridge";

/// The proxy client the bridge runs for a legacy user: `mimi://DOMAIN/d/USER/bridge`.
pub fn proxy_client_of(
    user: &crate::uri::UserUri,
) -> Result<crate::uri::ClientUri, crate::uri::UriError> {
    crate::uri::ClientUri::for_user(user, PROXY_DEVICE)
}
