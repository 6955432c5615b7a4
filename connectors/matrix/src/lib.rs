//! The Matrix connector of mimi-bridge: an application service (built with ruma) that brings a
//! homeserver's users into MIMI rooms.
//!
//! - [`appservice`]: the API the homeserver calls (transactions, queries, ping), `hs_token`
//!   checked, transactions recorded so none is processed twice;
//! - [`connector`]: [`MatrixConnector`], carrying out the core's commands as the bridge bot and
//!   as ghosts (identity assertion), each message under its command id as transaction id;
//! - [`ghost`]: MIMI users ↔ ghost user ids, reversibly;
//! - [`content`], [`format`]: Matrix message content ↔ the connector API's, HTML ↔ GFM-MIMI
//!   markdown;
//! - [`client`]: typed ruma requests to the homeserver, rate limits kept apart;
//! - [`settings`]: the connector's settings and the registration it generates.
//!
//! Mapping: a Matrix user `@alice:hs` is the legacy user `@alice:hs`, i.e. the MIMI user
//! `mimi://<provider>/u/%40alice%3Ahs`; a MIMI user of another provider is the ghost
//! `@mimi_<provider>_<name>:hs`. A Matrix room becomes a MIMI room hosted here when a Matrix
//! user invites a ghost into it; a MIMI room hosted elsewhere gets a portal (created by the bot,
//! with an `m.bridge` state event) when one of its participants is a Matrix user.
#![forbid(unsafe_code)]

pub mod appservice;
pub mod client;
pub mod connector;
pub mod content;
pub mod format;
pub mod ghost;
pub mod settings;

pub use connector::{MatrixConnector, TransactionLog};
pub use ghost::GhostNames;
pub use settings::MatrixSettings;
