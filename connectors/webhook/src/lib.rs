//! The generic webhook connector of mimi-bridge: a provider with nothing but an HTTP server
//! receives signed JSON events and calls a small signed JSON API.
#![forbid(unsafe_code)]

pub mod inbound;
pub mod outbound;
pub mod signature;

pub use inbound::{CheckedCall, InboundError, check};
pub use outbound::WebhookSender;
pub use signature::{SignatureError, Verifier, WebhookSecret, sign_all};
