//! The bridge core: between a connector's legacy events and MIMI rooms.
//!
//! - [`content`]: legacy message content ↔ MIMI content (CBOR), relations through the id map.

pub mod content;
