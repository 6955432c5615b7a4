//! mimi-bridge: lets a messaging provider that does not speak MIMI take part in MIMI rooms.
//!
//! Layers, each depending only on the ones below it:
//! - [`room`]: room state, policy, authorization and hub validation (pure logic);
//! - [`store`]: sqlx repositories and migrations (SQLite default, Postgres);
//! - [`uri`]: MIMI identifiers;
//! - [`config`], [`server`]: the daemon around them.
#![forbid(unsafe_code)]

pub mod config;
pub mod content;
pub mod core;
pub mod mls;
pub mod protocol;
pub mod room;
pub mod server;
pub mod store;
pub mod uri;
