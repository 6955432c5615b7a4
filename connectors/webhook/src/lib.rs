//! The generic webhook connector of mimi-bridge: a provider with nothing but an HTTP server
//! receives signed JSON events and calls a small signed JSON API.
//!
//! - [`connector`]: the [`WebhookConnector`] the daemon runs;
//! - [`signature`]: Standard Webhooks 1.0 signing and verification (`whsec_` secrets, several
//!   signatures during a rotation, a 5-minute timestamp window);
//! - [`outbound`]: one signed POST per command;
//! - [`inbound`]: checks of the provider's signed calls;
//! - [`provider`], [`receiver`]: the provider's side of both directions, for providers written
//!   in Rust, for tests and for the `mimi-bridge webhook-receiver` / `webhook-send` commands.
//!
//! The JSON of both directions is documented in `openapi.json` (served by the daemon at
//! `/webhook/v1/openapi.json`).
#![forbid(unsafe_code)]

pub mod connector;
pub mod inbound;
pub mod outbound;
pub mod provider;
pub mod receiver;
pub mod signature;

pub use connector::WebhookConnector;
pub use inbound::{CheckedCall, InboundError, check};
pub use outbound::WebhookSender;
pub use provider::{ProviderClient, ProviderError, RawAnswer, SubmitAnswer, new_webhook_id};
pub use receiver::{Receiver, ReceiverOptions, serve};
pub use signature::{SignatureError, Verifier, WebhookSecret, sign_all};
