//! The connector API of mimi-bridge: the contract between the bridge core and a connector for one
//! legacy (non-MIMI) messaging network.
//!
//! ```text
//!  legacy network  ◄──►  connector  ──ConnectorEvent──►  core  ◄──►  MIMI rooms (MLS, hubs)
//!                       (you write)  ◄──BridgeCommand──
//! ```
//!
//! A connector translates between its network and the types of this crate; the core does
//! everything MIMI: proxy MLS clients for legacy users, the rooms' participant lists and policy,
//! the hubs, id mappings and per-room ordering. This crate knows nothing of MLS, hubs or MIMI wire
//! formats, and a connector needs nothing else from the bridge.
//!
//! # The contract
//!
//! **Identifiers.** Everything is named by opaque string newtypes ([`ids`]): the connector mints
//! the `Legacy*` ids, the core mints the MIMI ones ([`MimiUserRef`], [`MimiRoomRef`] as
//! `mimi://` URIs, [`MimiMessageId`] as hex) and [`CommandId`]s.
//!
//! **Legacy → MIMI.** When something happens on the legacy network, the connector builds a
//! [`ConnectorEvent`] (who, which room, a [`LegacyEventId`], and an [`EventKind`]: room created,
//! user invited, added, joined, left, removed or banned, message, edit, delete, reaction, reaction
//! removed, room renamed, typing, read receipt) and passes it to [`EventSink::submit`]. `Ok` means
//! the core has *stored* it, so only then acknowledge it to the legacy network. Submitting the same
//! event id again is harmless (de-duplication), so when in doubt, resubmit. Submit a room's events
//! in the order they happened: the core keeps that order. A [`SinkError`] says whether a retry can
//! help.
//!
//! **MIMI → legacy.** The core calls [`Connector::deliver`] with a [`BridgeCommand`] (the same
//! kinds, plus [`CommandKind::RoomCreated`] asking for a legacy room and
//! [`CommandKind::EventFailed`] reporting that a submitted event could not be carried into MIMI).
//! The MIMI sender comes with its ghost id where the connector has ghosts
//! ([`Connector::ghost_user_id`]), and messages come with their MIMI id and the hub's timestamp.
//! Return the legacy ids you created in a [`Delivery`], so later replies, edits and reactions can
//! name them. Delivery is at-least-once: the same [`CommandId`] may come again after a crash or
//! a retryable error, and must not take effect twice. One room's commands come one at a time, in
//! order. A [`ConnectorError`] says whether a retry can help.
//!
//! **Capabilities.** Plain messages and rooms are mandatory. Everything else (edits, deletes,
//! reactions, replies, typing, read receipts, media, room metadata, membership) is a [`Feature`]
//! the connector declares in [`Connector::capabilities`]. The core does not send commands a
//! connector cannot carry ([`BridgeCommand::required_capabilities`]); it tells the MIMI sender
//! theirs was not bridged instead of dropping it silently.
//!
//! **Content.** [`MessageContent`] is text (`text`, `notice` or `emote`; plain or GFM-MIMI
//! markdown) plus media by reference ([`MediaRef`], optionally encrypted). How events map to MIMI
//! content (draft-ietf-mimi-content):
//!
//! | here | MIMI content |
//! |---|---|
//! | message | a `render` message; `reply_to` → `inReplyTo`; `expires` → `expires` |
//! | edit | a new message whose `replaces` is the original's id |
//! | delete | a message whose `replaces` is the original's id, with an empty body |
//! | reaction | disposition `reaction`, `inReplyTo` the message, body = the key |
//! | reaction removed | `replaces` the reaction, `inReplyTo` the message, disposition `reaction`, empty body |
//! | markdown | `text/markdown;variant=GFM-MIMI` |
//! | media | an external part (URL, type, size, name, description, AEAD key/nonce/aad, SHA-256) |
//!
//! # JSON
//!
//! Events and commands are also a JSON API: the webhook connector puts exactly these shapes on
//! the wire, so a provider with nothing but an HTTP server can be a connector. The conventions:
//!
//! - an event or command is one object; its `"type"` (snake_case, e.g. `"reaction_removed"`) says
//!   which [`EventKind`] / [`CommandKind`] it is, and the kind's fields sit beside the common ones;
//! - ids are JSON strings; MIMI message ids and media keys are lowercase hex; times are
//!   milliseconds since the UNIX epoch (`*_ms`), except [`Expiry`] which is in seconds like MIMI;
//! - optional fields are left out when absent; when parsing, an optional (`Option`) field may be
//!   absent or `null`, and a field with a default (a list, a format) may be absent; unknown
//!   `type`s are an error;
//! - every type documents its JSON with an example.
//!
//! A message event from the provider:
//!
//! ```json
//! {"type": "message", "event_id": "evt-42", "room_id": "general", "sender": "alice",
//!  "message_id": "m-17", "content": {"kind": "text", "body": "Hello **MIMI**", "format": "markdown"}}
//! ```
//!
//! A reaction command to the provider:
//!
//! ```json
//! {"type": "reaction", "command_id": "c-982", "hub_timestamp_ms": 1767225600456,
//!  "room": {"uri": "mimi://a.example/r/general", "legacy_id": "general"},
//!  "sender": {"uri": "mimi://b.example/u/bob", "display_name": "Bob"},
//!  "mimi_message_id": "01d2a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5",
//!  "message": {"mimi_id": "017ce5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5", "legacy_id": "m-17"}, "key": "👍"}
//! ```
//!
//! # A complete connector
//!
//! The "legacy network" below is an in-process chat log; a real connector talks to a server
//! instead, but the shape is the same. It declares replies and reactions, carries out commands
//! idempotently, and submits its users' posts to the core. [`testing`] has the in-memory sink and
//! executor that run it here.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//!
//! use mimi_bridge_connector::{
//!     async_trait, Accepted, BridgeCommand, Capabilities, CommandId, CommandKind, Connector,
//!     ConnectorError, ConnectorEvent, Delivery, EventKind, EventSink, Feature, MessageContent,
//!     SinkError,
//! };
//!
//! #[derive(Default)]
//! struct LogConnector {
//!     /// The legacy network: lines of text, in order.
//!     log: Mutex<Vec<String>>,
//!     /// Commands already carried out, with what we answered (for redeliveries).
//!     done: Mutex<HashMap<CommandId, Delivery>>,
//!     /// Where inbound events go; set by `start`.
//!     sink: Mutex<Option<Arc<dyn EventSink>>>,
//! }
//!
//! #[async_trait]
//! impl Connector for LogConnector {
//!     fn name(&self) -> &str {
//!         "log"
//!     }
//!
//!     fn version(&self) -> &str {
//!         "0.1.0"
//!     }
//!
//!     fn capabilities(&self) -> Capabilities {
//!         Feature::Replies | Feature::Reactions
//!     }
//!
//!     async fn start(&self, sink: Arc<dyn EventSink>) -> Result<(), ConnectorError> {
//!         *self.sink.lock().unwrap() = Some(sink);
//!         Ok(())
//!     }
//!
//!     async fn stop(&self) -> Result<(), ConnectorError> {
//!         self.sink.lock().unwrap().take();
//!         Ok(())
//!     }
//!
//!     async fn deliver(&self, command: &BridgeCommand) -> Result<Delivery, ConnectorError> {
//!         // Refuse what we did not declare (the core should not send it anyway).
//!         self.capabilities().check(command)?;
//!         // At-least-once delivery: a redelivered command must not post twice.
//!         let mut done = self.done.lock().unwrap();
//!         if let Some(delivery) = done.get(&command.command_id) {
//!             return Ok(delivery.clone());
//!         }
//!         let who = command.sender.display_name.as_deref().unwrap_or(command.sender.uri.as_str());
//!         let mut log = self.log.lock().unwrap();
//!         let delivery = match &command.kind {
//!             CommandKind::RoomCreated { .. } => {
//!                 Delivery::room(format!("room-{}", command.room.uri))
//!             }
//!             CommandKind::Message { content, reply_to, .. } => {
//!                 let re = match reply_to.as_ref().and_then(|r| r.legacy_id.as_ref()) {
//!                     Some(id) => format!(" (re {id})"),
//!                     None => String::new(),
//!                 };
//!                 log.push(format!("{who}: {}{re}", content.body));
//!                 Delivery::message(format!("line-{}", log.len() - 1))
//!             }
//!             CommandKind::Reaction { message, key, .. } => {
//!                 let target = message.legacy_id.as_ref().map_or("?", |id| id.as_str());
//!                 log.push(format!("{who} reacted {key} to {target}"));
//!                 Delivery::done()
//!             }
//!             CommandKind::EventFailed { reason, .. } => {
//!                 log.push(format!("(not bridged: {reason})"));
//!                 Delivery::done()
//!             }
//!             // Everything else needs a feature we did not declare.
//!             _ => return Err(ConnectorError::permanent("not carried by this network")),
//!         };
//!         done.insert(command.command_id.clone(), delivery.clone());
//!         Ok(delivery)
//!     }
//! }
//!
//! impl LogConnector {
//!     /// The legacy network calls this when one of its users posts.
//!     async fn on_post(&self, room: &str, user: &str, post_id: &str, text: &str)
//!         -> Result<Accepted, SinkError>
//!     {
//!         let sink = self.sink.lock().unwrap().clone().ok_or(SinkError::Closed)?;
//!         let event = ConnectorEvent::new(
//!             format!("post:{post_id}"), // the same post always gets the same event id
//!             room,
//!             user,
//!             EventKind::Message {
//!                 message_id: post_id.into(),
//!                 content: MessageContent::text(text),
//!                 reply_to: None,
//!                 expires: None,
//!             },
//!         );
//!         sink.submit(event).await // Ok = stored by the core: now acknowledge the post
//!     }
//! }
//!
//! # use mimi_bridge_connector::{MessageRef, MimiMessageId, MimiRoom, MimiUser};
//! # use mimi_bridge_connector::testing::{block_on, MemorySink};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> { block_on(async {
//! // Wire it up as the core would, with an in-memory sink standing in for the core.
//! let connector = LogConnector::default();
//! let core = Arc::new(MemorySink::new());
//! connector.start(core.clone()).await?;
//!
//! // Legacy → MIMI: alice posts; posting the same thing twice is recognised.
//! assert_eq!(connector.on_post("general", "alice", "p1", "hello MIMI").await?, Accepted::NEW);
//! assert_eq!(connector.on_post("general", "alice", "p1", "hello MIMI").await?.duplicate, true);
//! assert_eq!(core.events().len(), 1);
//!
//! // MIMI → legacy: bob, on another provider, replies to alice's post.
//! let reply = BridgeCommand {
//!     kind: CommandKind::Message {
//!         mimi_message_id: MimiMessageId::new("01".repeat(32)),
//!         content: MessageContent::text("hi alice"),
//!         reply_to: Some(MessageRef {
//!             mimi_id: MimiMessageId::new("02".repeat(32)),
//!             legacy_id: Some("p1".into()),
//!         }),
//!         expires: None,
//!     },
//!     command_id: "c1".into(),
//!     room: MimiRoom {
//!         uri: "mimi://a.example/r/general".into(),
//!         legacy_id: Some("general".into()),
//!     },
//!     sender: MimiUser {
//!         display_name: Some("Bob".into()),
//!         ..MimiUser::new("mimi://b.example/u/bob")
//!     },
//!     hub_timestamp_ms: 1_767_225_600_000,
//! };
//! let delivery = connector.deliver(&reply).await?;
//! assert_eq!(delivery, Delivery::message("line-0"));
//! assert_eq!(connector.deliver(&reply).await?, delivery); // redelivered: not posted twice
//! assert_eq!(*connector.log.lock().unwrap(), ["Bob: hi alice (re p1)"]);
//!
//! // An edit needs a feature this connector did not declare.
//! let edit = BridgeCommand {
//!     kind: CommandKind::Edit {
//!         mimi_message_id: MimiMessageId::new("03".repeat(32)),
//!         message: MessageRef { mimi_id: MimiMessageId::new("01".repeat(32)), legacy_id: None },
//!         content: MessageContent::text("hi Alice"),
//!     },
//!     command_id: "c2".into(),
//!     ..reply.clone()
//! };
//! let err = connector.deliver(&edit).await.unwrap_err();
//! assert_eq!(err, ConnectorError::Unsupported { feature: Feature::Edits });
//! assert!(!err.is_retryable());
//!
//! connector.stop().await?;
//! # Ok(()) }) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod capabilities;
mod command;
mod connector;
mod content;
mod error;
mod event;
pub mod ids;
pub mod testing;

#[cfg(test)]
mod wire_tests;

/// The attribute macro for implementing [`Connector`] and [`EventSink`], re-exported so a
/// connector needs no direct dependency on `async-trait`.
pub use async_trait::async_trait;

pub use capabilities::{Capabilities, Feature};
pub use command::{BridgeCommand, CommandKind, MessageRef, MimiRoom, MimiUser};
pub use connector::{Accepted, Connector, Delivery, EventSink};
pub use content::{Expiry, MediaEncryption, MediaRef, MessageContent, MessageKind, TextFormat};
pub use error::{ConnectorError, SinkError};
pub use event::{ConnectorEvent, EventKind, UserRef};
pub use ids::{
    CommandId, LegacyEventId, LegacyMessageId, LegacyRoomId, LegacyUserId, MimiMessageId,
    MimiRoomRef, MimiUserRef,
};
