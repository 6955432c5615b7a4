//! The MIMI server-to-server protocol (draft-ietf-mimi-protocol-06): mutual TLS between
//! providers, discovery, and the endpoint bodies.

pub mod client;
pub mod consent;
pub mod directory;
pub mod endpoints;
pub mod follower;
pub mod hub;
pub mod key_material;
pub mod listener;
pub mod lookup;
pub mod peer;
pub mod resync;
pub mod routes;
pub mod service;
pub mod tls;
pub mod vectors;
pub mod wire;
