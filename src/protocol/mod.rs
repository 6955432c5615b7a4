//! The MIMI server-to-server protocol (draft-ietf-mimi-protocol-06): mutual TLS between
//! providers, discovery, and the endpoint bodies.

pub mod client;
pub mod directory;
pub mod endpoints;
pub mod listener;
pub mod peer;
pub mod routes;
pub mod service;
pub mod tls;
pub mod wire;
