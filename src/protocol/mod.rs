//! The MIMI server-to-server protocol.

pub mod wire;
