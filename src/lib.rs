//! mimi-bridge: lets a messaging provider that does not speak MIMI take part in MIMI rooms.
//!
//! Layers, each depending only on the ones below it:
//! - [`core`]: the bridge core between a connector (`connectors/`) and MIMI rooms: legacy
//!   events carried into MIMI in room order, room streams turned into connector commands;
//! - [`delivery`]: the outbox, delivered in order per queue with backoff and dead letters;
//! - [`protocol`]: the MIMI server-to-server protocol (hub, follower, consent, key material,
//!   mutual TLS);
//! - [`mls`]: each room's public view, and proxy MLS clients (openmls) with durable,
//!   per-client state;
//! - [`room`]: room state, policy, authorization and hub validation (pure logic);
//! - [`content`]: the MIMI content format;
//! - [`store`]: sqlx repositories and migrations (SQLite default, Postgres);
//! - [`uri`]: MIMI identifiers;
//! - [`config`], [`server`]: the daemon around them.
#![forbid(unsafe_code)]

pub mod config;
pub mod content;
pub mod core;
pub mod delivery;
pub mod mls;
pub mod protocol;
pub mod room;
pub mod server;
pub mod store;
pub mod uri;
