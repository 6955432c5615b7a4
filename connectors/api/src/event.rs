//! Legacy → MIMI: what a connector hands to the core.

use serde::{Deserialize, Serialize};

use crate::{
    Expiry, LegacyEventId, LegacyMessageId, LegacyRoomId, LegacyUserId, MessageContent,
    MimiUserRef, SinkError,
};

/// Something that happened on the legacy network, handed to the core with
/// [`EventSink::submit`](crate::EventSink::submit).
///
/// Every event names who acted (`sender`, a user of this connector) in which legacy room, and
/// carries an [`event_id`](Self::event_id) the core de-duplicates on. What happened is in
/// [`kind`](Self::kind), whose fields sit beside the common ones in JSON, under `"type"`:
///
/// ```json
/// {"type": "message", "event_id": "evt-42", "room_id": "general", "sender": "alice",
///  "timestamp_ms": 1767225600000, "message_id": "m-17",
///  "content": {"kind": "text", "body": "Hello **world**", "format": "markdown"},
///  "reply_to": "m-16"}
/// ```
///
/// Optional fields are left out when absent, and may be absent or `null` when parsing. Unknown
/// `type`s are rejected. Each [`EventKind`] variant documents its fields and what the core makes
/// of it.
///
/// The core processes the events of one room in the order they were accepted, so submit them in
/// the order they happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorEvent {
    /// What happened. In JSON its `"type"` and fields are flattened into the event object.
    #[serde(flatten)]
    pub kind: EventKind,
    /// The de-duplication key: the same happening always has the same id (see
    /// [`LegacyEventId`]).
    pub event_id: LegacyEventId,
    /// The legacy room it happened in. For [`EventKind::RoomCreated`], the new room.
    pub room_id: LegacyRoomId,
    /// The legacy user who acted: who sent, edited, reacted, invited, left… Must be a real user
    /// of this connector, not a ghost.
    pub sender: LegacyUserId,
    /// When it happened on the legacy network, in milliseconds since the UNIX epoch, if known.
    /// Informational: MIMI order and time are set by the room's hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<u64>,
}

impl ConnectorEvent {
    /// An event with no timestamp.
    pub fn new(
        event_id: impl Into<LegacyEventId>,
        room_id: impl Into<LegacyRoomId>,
        sender: impl Into<LegacyUserId>,
        kind: EventKind,
    ) -> Self {
        ConnectorEvent {
            kind,
            event_id: event_id.into(),
            room_id: room_id.into(),
            sender: sender.into(),
            timestamp_ms: None,
        }
    }

    /// The same event with its legacy timestamp set (milliseconds since the UNIX epoch).
    pub fn at(mut self, timestamp_ms: u64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Checks what can be checked without the core's state: ids are non-empty, content is
    /// well-formed, a reaction has a key, a name is not empty. The core runs this on every
    /// submission; connectors may run it first to report errors closer to their source.
    pub fn validate(&self) -> Result<(), SinkError> {
        fn non_empty(what: &str, value: &str) -> Result<(), SinkError> {
            if value.is_empty() {
                Err(SinkError::invalid(format!("{what} is empty")))
            } else {
                Ok(())
            }
        }
        non_empty("event_id", self.event_id.as_str())?;
        non_empty("room_id", self.room_id.as_str())?;
        non_empty("sender", self.sender.as_str())?;
        match &self.kind {
            EventKind::RoomCreated { name } => {
                if let Some(name) = name {
                    non_empty("name", name)?;
                }
            }
            EventKind::UserInvited { target }
            | EventKind::UserAdded { target }
            | EventKind::UserRemoved { target, .. }
            | EventKind::UserBanned { target, .. }
            | EventKind::RoleChanged { target, .. } => target.validate()?,
            EventKind::UserJoined | EventKind::UserLeft => {}
            EventKind::Message {
                message_id,
                content,
                reply_to,
                ..
            } => {
                non_empty("message_id", message_id.as_str())?;
                if let Some(reply_to) = reply_to {
                    non_empty("reply_to", reply_to.as_str())?;
                }
                content.validate().map_err(SinkError::invalid)?;
            }
            EventKind::Edit {
                message_id,
                content,
            } => {
                non_empty("message_id", message_id.as_str())?;
                content.validate().map_err(SinkError::invalid)?;
            }
            EventKind::Delete { message_id } | EventKind::ReadReceipt { message_id } => {
                non_empty("message_id", message_id.as_str())?;
            }
            EventKind::Reaction {
                message_id,
                key,
                reaction_id,
            } => {
                non_empty("message_id", message_id.as_str())?;
                non_empty("key", key)?;
                if let Some(reaction_id) = reaction_id {
                    non_empty("reaction_id", reaction_id.as_str())?;
                }
            }
            EventKind::ReactionRemoved { message_id, key } => {
                non_empty("message_id", message_id.as_str())?;
                non_empty("key", key)?;
            }
            EventKind::RoomRenamed { name } => non_empty("name", name)?,
            EventKind::Typing { .. } => {}
        }
        Ok(())
    }
}

/// What happened, with the fields particular to it. JSON: `"type"` is the snake_case variant name
/// (`"message"`, `"user_invited"`, …), the fields sit beside it.
///
/// Messages are referred to by the [`LegacyMessageId`] the connector gave them in
/// [`Message`](Self::Message) (or that it returned in
/// [`Delivery::message_id`](crate::Delivery::message_id) for messages that came from MIMI); the
/// core maps these to MIMI message ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The sender created the legacy room `room_id` and wants it bridged. The core creates a
    /// MIMI room hosted by this bridge, with the sender as its first participant.
    /// `{"type": "room_created", "name": "Project X"}`
    RoomCreated {
        /// The room's name, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The sender invited `target`; the core puts the target on the room's participant list
    /// (asking the target's provider for consent where MIMI requires it).
    /// `{"type": "user_invited", "target": {"uri": "mimi://b.example/u/bob"}}`
    UserInvited {
        /// Who was invited.
        target: UserRef,
    },
    /// The sender added `target` directly, with no acceptance step on the legacy network. For
    /// MIMI this is the same as an invite; the difference only matters to other legacy networks.
    /// `{"type": "user_added", "target": {"legacy_id": "carol"}}`
    UserAdded {
        /// Who was added.
        target: UserRef,
    },
    /// The sender joined the room themselves (accepted an invite, or joined an open room).
    /// `{"type": "user_joined"}`
    UserJoined,
    /// The sender left the room. The core removes them and their proxy clients from the MIMI
    /// room. `{"type": "user_left"}`
    UserLeft,
    /// The sender removed (kicked) `target` from the room. The target may come back if invited
    /// again. `{"type": "user_removed", "target": {"legacy_id": "carol"}, "reason": "spam"}`
    UserRemoved {
        /// Who was removed.
        target: UserRef,
        /// Why, if the legacy network says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The sender banned `target`: removed and kept out. In MIMI the target stays on the
    /// participant list with the banned role.
    UserBanned {
        /// Who was banned.
        target: UserRef,
        /// Why, if the legacy network says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The sender changed `target`'s role in the room to `role` (a MIMI role index, see
    /// [`MimiUser::role`](crate::MimiUser::role)). JSON:
    /// `{"type": "role_changed", "event_id": "e-9", "room_id": "general", "sender": "alice",
    /// "target": {"legacy_id": "carol"}, "role": 3}`.
    RoleChanged {
        /// Whose role changed.
        target: UserRef,
        /// The new role index.
        role: u32,
    },
    /// The sender sent a message. It becomes a MIMI message whose `inReplyTo` is the MIMI id of
    /// `reply_to`, if given.
    /// `{"type": "message", "message_id": "m-17", "content": {"body": "hi"}, "reply_to": "m-16"}`
    Message {
        /// The legacy id of this message, for later replies, edits, deletes and reactions.
        message_id: LegacyMessageId,
        /// What it says.
        content: MessageContent,
        /// The message this one replies to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<LegacyMessageId>,
        /// When the message disappears, if it does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<Expiry>,
    },
    /// The sender edited message `message_id`; `content` is the whole new version, not a diff.
    /// It becomes a MIMI message that `replaces` the original.
    /// `{"type": "edit", "message_id": "m-17", "content": {"body": "hi!"}}`
    Edit {
        /// The message edited (its id when first sent).
        message_id: LegacyMessageId,
        /// The new content.
        content: MessageContent,
    },
    /// The sender deleted (retracted) message `message_id`. It becomes a MIMI message that
    /// `replaces` the original with nothing. If `message_id` is the `reaction_id` of a reaction,
    /// the reaction is removed instead. `{"type": "delete", "message_id": "m-17"}`
    Delete {
        /// The message deleted.
        message_id: LegacyMessageId,
    },
    /// The sender reacted to message `message_id` with `key`. It becomes a MIMI reaction
    /// (disposition `reaction`, `inReplyTo` the message).
    /// `{"type": "reaction", "message_id": "m-17", "key": "👍", "reaction_id": "r-3"}`
    Reaction {
        /// The message reacted to.
        message_id: LegacyMessageId,
        /// The reaction itself, usually one emoji.
        key: String,
        /// The legacy id of the reaction, if the legacy network gives reactions ids (then a later
        /// [`Delete`](Self::Delete) of that id removes it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reaction_id: Option<LegacyMessageId>,
    },
    /// The sender took back their reaction `key` to message `message_id`.
    /// `{"type": "reaction_removed", "message_id": "m-17", "key": "👍"}`
    ReactionRemoved {
        /// The message that had been reacted to.
        message_id: LegacyMessageId,
        /// The reaction taken back.
        key: String,
    },
    /// The sender renamed the room. It becomes a MIMI room-metadata update.
    /// `{"type": "room_renamed", "name": "Project Y"}`
    RoomRenamed {
        /// The new name.
        name: String,
    },
    /// The sender started or stopped typing. Ephemeral: the core forwards it only where the MIMI
    /// side can carry it, and never stores it for long.
    /// `{"type": "typing", "active": true, "timeout_ms": 5000}`
    Typing {
        /// `true` while typing, `false` when stopped.
        active: bool,
        /// How long the typing state lasts unless renewed, if the legacy network says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u32>,
    },
    /// The sender has read the room up to and including message `message_id`.
    /// `{"type": "read_receipt", "message_id": "m-17"}`
    ReadReceipt {
        /// The last message read.
        message_id: LegacyMessageId,
    },
}

/// A user named in a legacy event: either a user of this connector's network, or a MIMI user
/// given by URI (a user on another provider).
///
/// JSON: an object with exactly one key, `{"legacy_id": "carol"}` or
/// `{"uri": "mimi://b.example/u/bob"}`.
///
/// A ghost (the legacy-side puppet of a MIMI user) may be named by its legacy id; the core then
/// finds the MIMI user through [`Connector::ghost_mimi_user`](crate::Connector::ghost_mimi_user).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserRef {
    /// A user of the legacy network, or a ghost.
    #[serde(rename = "legacy_id")]
    Legacy(LegacyUserId),
    /// A MIMI user, by URI.
    #[serde(rename = "uri")]
    Mimi(MimiUserRef),
}

impl UserRef {
    /// A legacy user.
    pub fn legacy(id: impl Into<LegacyUserId>) -> Self {
        UserRef::Legacy(id.into())
    }

    /// A MIMI user, by URI.
    pub fn mimi(uri: impl Into<MimiUserRef>) -> Self {
        UserRef::Mimi(uri.into())
    }

    fn validate(&self) -> Result<(), SinkError> {
        match self {
            UserRef::Legacy(id) if id.as_str().is_empty() => {
                Err(SinkError::invalid("target legacy_id is empty"))
            }
            UserRef::Mimi(uri) if !uri.as_str().starts_with("mimi://") => Err(SinkError::invalid(
                format!("target uri {uri:?} is not a mimi:// URI"),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_catches_what_it_can_see() {
        let ok = ConnectorEvent::new(
            "e1",
            "r",
            "alice",
            EventKind::Reaction {
                message_id: "m1".into(),
                key: "👍".into(),
                reaction_id: None,
            },
        );
        assert!(ok.validate().is_ok());

        let mut bad = ok.clone();
        bad.event_id = "".into();
        assert!(matches!(bad.validate(), Err(SinkError::Invalid { .. })));

        let mut bad = ok.clone();
        bad.kind = EventKind::Reaction {
            message_id: "m1".into(),
            key: String::new(),
            reaction_id: None,
        };
        assert!(bad.validate().is_err());

        let mut bad = ok.clone();
        bad.kind = EventKind::Message {
            message_id: "m2".into(),
            content: MessageContent::default(),
            reply_to: None,
            expires: None,
        };
        assert!(bad.validate().is_err());

        let mut bad = ok.clone();
        bad.kind = EventKind::UserInvited {
            target: UserRef::mimi("https://b.example/u/bob"),
        };
        assert!(bad.validate().is_err());

        let mut bad = ok;
        bad.kind = EventKind::RoomRenamed {
            name: String::new(),
        };
        assert!(bad.validate().is_err());
    }
}
