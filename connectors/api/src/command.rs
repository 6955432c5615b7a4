//! MIMI → legacy: what the core asks a connector to carry out.

use serde::{Deserialize, Serialize};

use crate::{
    Capabilities, CommandId, Expiry, Feature, LegacyEventId, LegacyMessageId, LegacyRoomId,
    LegacyUserId, MessageContent, MimiMessageId, MimiRoomRef, MimiUserRef,
};

/// Something that happened in a MIMI room, for the connector to show on its legacy network,
/// passed to [`Connector::deliver`](crate::Connector::deliver).
///
/// Every command names the MIMI room (and its legacy room, once there is one), the MIMI user who
/// acted (and their ghost, where the connector has one), and when the room's hub accepted it.
/// What happened is in [`kind`](Self::kind), whose fields sit beside the common ones in JSON,
/// under `"type"`:
///
/// ```json
/// {"type": "message", "command_id": "c-981", "hub_timestamp_ms": 1767225600123,
///  "room": {"uri": "mimi://a.example/r/general", "legacy_id": "general"},
///  "sender": {"uri": "mimi://b.example/u/bob", "display_name": "Bob"},
///  "mimi_message_id": "017ce54837404c3696e0c747b985cb172716d0ed0a3d249ca63ace7d82a096f4",
///  "content": {"kind": "text", "body": "Hi Alice", "format": "plain"},
///  "reply_to": {"mimi_id": "01b0084467273cc43d6f0ebeac13eb84229c4fffe8f6c3594c905f47779e5a79",
///               "legacy_id": "m-17"}}
/// ```
///
/// Optional fields are left out when absent. The core delivers the commands of one room one at
/// a time, in hub order, and retries a command (same [`command_id`](Self::command_id)) until the
/// connector succeeds or fails it with a non-retryable
/// [`ConnectorError`](crate::ConnectorError); commands of different rooms may be delivered
/// concurrently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeCommand {
    /// What happened. In JSON its `"type"` and fields are flattened into the command object.
    #[serde(flatten)]
    pub kind: CommandKind,
    /// Identifies this command across redeliveries (see [`CommandId`]).
    pub command_id: CommandId,
    /// The room it happened in.
    pub room: MimiRoom,
    /// Who acted: sent, edited, reacted, invited, left…
    pub sender: MimiUser,
    /// When the room's hub accepted it, in milliseconds since the UNIX epoch. This is the time to
    /// show (MIMI's `hubAcceptedTimestamp` for messages).
    pub hub_timestamp_ms: u64,
}

impl BridgeCommand {
    /// The features a connector must have to carry this command, given its kind and content. An
    /// empty set means every connector can carry it.
    pub fn required_capabilities(&self) -> Capabilities {
        self.kind.required_capabilities()
    }
}

/// What happened, with the fields particular to it. JSON: `"type"` is the snake_case variant name,
/// the fields sit beside it.
///
/// Messages are referred to by [`MessageRef`]: the MIMI id always, and the legacy id when the
/// connector has one for that message (it sent it, or returned it in
/// [`Delivery::message_id`](crate::Delivery::message_id)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CommandKind {
    /// A MIMI room that users of this connector take part in needs a legacy room: create it and
    /// return its id in [`Delivery::room_id`](crate::Delivery::room_id). Sent once per room,
    /// before any other command for it; `room.legacy_id` is absent. Mandatory for every
    /// connector.
    /// `{"type": "room_created", "name": "Project X", "participants": [{"uri": "mimi://…"}]}`
    RoomCreated {
        /// The room's name, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Everyone on the participant list at this point, including this connector's own users
        /// (with their `legacy_id`).
        #[serde(default)]
        participants: Vec<MimiUser>,
    },
    /// The sender invited `target` to the room. Needs [`Feature::Membership`].
    /// `{"type": "user_invited", "target": {"uri": "mimi://a.example/u/carol", "legacy_id": "carol"}}`
    UserInvited {
        /// Who was invited. When `legacy_id` is one of the connector's own users, that user is
        /// being invited to the room.
        target: MimiUser,
    },
    /// The sender added `target` to the room directly. Needs [`Feature::Membership`].
    UserAdded {
        /// Who was added.
        target: MimiUser,
    },
    /// The sender joined the room. Needs [`Feature::Membership`]. `{"type": "user_joined"}`
    UserJoined,
    /// The sender left the room. Needs [`Feature::Membership`]. `{"type": "user_left"}`
    UserLeft,
    /// The sender removed `target` from the room. Needs [`Feature::Membership`].
    UserRemoved {
        /// Who was removed.
        target: MimiUser,
        /// Why, if given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The sender banned `target` from the room. Needs [`Feature::Membership`].
    UserBanned {
        /// Who was banned.
        target: MimiUser,
        /// Why, if given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// `target`'s role in the room changed to `target.role` (e.g. made an admin). JSON:
    /// `{"type": "role_changed", "target": {"uri": "mimi://b.example/u/bob", "role": 3}, …}`.
    RoleChanged {
        /// Whose role changed; `role` is the new one.
        target: MimiUser,
    },
    /// The sender sent a message. Mandatory, but a reply needs [`Feature::Replies`] and
    /// attachments need [`Feature::Media`]. Return the legacy id of the message in
    /// [`Delivery::message_id`](crate::Delivery::message_id) so later edits, replies and
    /// reactions can name it.
    Message {
        /// The MIMI id of this message.
        mimi_message_id: MimiMessageId,
        /// What it says.
        content: MessageContent,
        /// The message this one replies to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<MessageRef>,
        /// When the message disappears, if it does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<Expiry>,
    },
    /// The sender edited `message`; `content` is the whole new version. Needs [`Feature::Edits`]
    /// (and [`Feature::Media`] if it has attachments).
    Edit {
        /// The MIMI id of the edit itself.
        mimi_message_id: MimiMessageId,
        /// The message edited (its first version).
        message: MessageRef,
        /// The new content.
        content: MessageContent,
    },
    /// The sender deleted `message`. Needs [`Feature::Deletes`].
    /// `{"type": "delete", "mimi_message_id": "01…", "message": {"mimi_id": "01…", "legacy_id": "m-17"}}`
    Delete {
        /// The MIMI id of the delete itself.
        mimi_message_id: MimiMessageId,
        /// The message deleted.
        message: MessageRef,
    },
    /// The sender reacted to `message` with `key`. Needs [`Feature::Reactions`]. Return the
    /// reaction's legacy id, if it has one, in
    /// [`Delivery::message_id`](crate::Delivery::message_id).
    Reaction {
        /// The MIMI id of the reaction.
        mimi_message_id: MimiMessageId,
        /// The message reacted to.
        message: MessageRef,
        /// The reaction itself, usually one emoji.
        key: String,
    },
    /// The sender took back their reaction `key` to `message`. Needs [`Feature::Reactions`].
    ReactionRemoved {
        /// The MIMI id of the removal itself.
        mimi_message_id: MimiMessageId,
        /// The message that had been reacted to.
        message: MessageRef,
        /// The reaction taken back.
        key: String,
        /// The reaction being removed (its `legacy_id` is what the connector returned for it).
        reaction: MessageRef,
    },
    /// The sender renamed the room. Needs [`Feature::RoomMetadata`].
    /// `{"type": "room_renamed", "name": "Project Y"}`
    RoomRenamed {
        /// The new name.
        name: String,
    },
    /// The sender started or stopped typing. Needs [`Feature::Typing`]. Not retried for long:
    /// a late typing notification is worthless.
    Typing {
        /// `true` while typing, `false` when stopped.
        active: bool,
        /// How long the typing state lasts unless renewed, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u32>,
    },
    /// The sender has read the room up to and including `message`. Needs
    /// [`Feature::ReadReceipts`].
    ReadReceipt {
        /// The last message read.
        message: MessageRef,
    },
    /// An event this connector submitted was accepted by the core but could not be carried into
    /// the MIMI room (the hub refused it, the sender is not allowed to do that, the relation
    /// target is unknown). The `sender` is the legacy user who acted. Mandatory, but a connector
    /// that has no way to show it may simply return [`Delivery::done`](crate::Delivery::done).
    /// `{"type": "event_failed", "event_id": "evt-42", "reason": "not allowed to rename the room"}`
    EventFailed {
        /// The event that failed, as submitted.
        event_id: LegacyEventId,
        /// Why, readable by the user.
        reason: String,
    },
}

impl CommandKind {
    /// The features a connector must have to carry this kind (see
    /// [`BridgeCommand::required_capabilities`]).
    pub fn required_capabilities(&self) -> Capabilities {
        fn content_needs(content: &MessageContent) -> Capabilities {
            if content.has_media() {
                Feature::Media.into()
            } else {
                Capabilities::empty()
            }
        }
        match self {
            CommandKind::RoomCreated { .. } | CommandKind::EventFailed { .. } => {
                Capabilities::empty()
            }
            CommandKind::UserInvited { .. }
            | CommandKind::UserAdded { .. }
            | CommandKind::UserJoined
            | CommandKind::UserLeft
            | CommandKind::UserRemoved { .. }
            | CommandKind::UserBanned { .. }
            | CommandKind::RoleChanged { .. } => Feature::Membership.into(),
            CommandKind::Message {
                content, reply_to, ..
            } => {
                let mut caps = content_needs(content);
                if reply_to.is_some() {
                    caps.insert(Feature::Replies);
                }
                caps
            }
            CommandKind::Edit { content, .. } => content_needs(content) | Feature::Edits,
            CommandKind::Delete { .. } => Feature::Deletes.into(),
            CommandKind::Reaction { .. } | CommandKind::ReactionRemoved { .. } => {
                Feature::Reactions.into()
            }
            CommandKind::RoomRenamed { .. } => Feature::RoomMetadata.into(),
            CommandKind::Typing { .. } => Feature::Typing.into(),
            CommandKind::ReadReceipt { .. } => Feature::ReadReceipts.into(),
        }
    }
}

/// A MIMI room as a command presents it.
///
/// JSON: `{"uri": "mimi://a.example/r/general", "legacy_id": "general"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MimiRoom {
    /// The room's MIMI URI.
    pub uri: MimiRoomRef,
    /// The legacy room bridged to it. Absent only in [`CommandKind::RoomCreated`], which asks the
    /// connector to make one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_id: Option<LegacyRoomId>,
}

/// A MIMI user as a command presents it.
///
/// JSON: `{"uri": "mimi://b.example/u/bob", "legacy_id": "@mimi_bob:hs.example", "display_name": "Bob"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MimiUser {
    /// The user's MIMI URI.
    pub uri: MimiUserRef,
    /// The legacy id for this user, when there is one: one of the connector's own users, or the
    /// ghost the connector named in [`Connector::ghost_user_id`](crate::Connector::ghost_user_id).
    /// Absent for a MIMI user the connector has no ghost for; show the URI or display name then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_id: Option<LegacyUserId>,
    /// A name to show, if the core knows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The user's role in the room, where the command is about membership (`room_created`
    /// participants, `user_added` and `role_changed` targets): a MIMI role index, in the
    /// default roles 0 no role, 1 banned, 2 ordinary user, 3 group admin, 4 super admin,
    /// 5 policy enforcer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<u32>,
}

impl MimiUser {
    /// A user known only by URI.
    pub fn new(uri: impl Into<MimiUserRef>) -> Self {
        MimiUser {
            uri: uri.into(),
            legacy_id: None,
            display_name: None,
            role: None,
        }
    }
}

/// A message named in a command: by MIMI id always, and by legacy id when the connector has one.
///
/// JSON: `{"mimi_id": "017c…96f4", "legacy_id": "m-17"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageRef {
    /// The MIMI message id (of the first version, for edited messages).
    pub mimi_id: MimiMessageId,
    /// The legacy id: the one the connector submitted, or returned in
    /// [`Delivery::message_id`](crate::Delivery::message_id). Absent when the message never
    /// reached this connector (e.g. it was sent before its users joined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_id: Option<LegacyMessageId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(kind: CommandKind) -> BridgeCommand {
        BridgeCommand {
            kind,
            command_id: "c1".into(),
            room: MimiRoom {
                uri: "mimi://a.example/r/x".into(),
                legacy_id: Some("x".into()),
            },
            sender: MimiUser::new("mimi://b.example/u/bob"),
            hub_timestamp_ms: 1,
        }
    }

    fn msg_ref() -> MessageRef {
        MessageRef {
            mimi_id: MimiMessageId::new("01".repeat(32)),
            legacy_id: None,
        }
    }

    #[test]
    fn required_capabilities_follow_kind_and_content() {
        let plain = command(CommandKind::Message {
            mimi_message_id: MimiMessageId::new("01".repeat(32)),
            content: MessageContent::text("hi"),
            reply_to: None,
            expires: None,
        });
        assert!(plain.required_capabilities().is_empty());
        assert!(Capabilities::empty().check(&plain).is_ok());

        let reply_with_media = command(CommandKind::Message {
            mimi_message_id: MimiMessageId::new("01".repeat(32)),
            content: MessageContent::media(crate::MediaRef::new("https://m/1", "image/png")),
            reply_to: Some(msg_ref()),
            expires: None,
        });
        assert_eq!(
            reply_with_media.required_capabilities(),
            Feature::Replies | Feature::Media
        );
        assert_eq!(
            Capabilities::from(Feature::Media).check(&reply_with_media),
            Err(crate::ConnectorError::Unsupported {
                feature: Feature::Replies
            })
        );
        assert!(
            (Feature::Media | Feature::Replies)
                .check(&reply_with_media)
                .is_ok()
        );

        let cases = [
            (CommandKind::UserLeft, Feature::Membership),
            (
                CommandKind::Delete {
                    mimi_message_id: MimiMessageId::new("01".repeat(32)),
                    message: msg_ref(),
                },
                Feature::Deletes,
            ),
            (
                CommandKind::ReactionRemoved {
                    mimi_message_id: MimiMessageId::new("01".repeat(32)),
                    message: msg_ref(),
                    key: "👍".into(),
                    reaction: msg_ref(),
                },
                Feature::Reactions,
            ),
            (
                CommandKind::RoomRenamed { name: "n".into() },
                Feature::RoomMetadata,
            ),
            (
                CommandKind::Typing {
                    active: true,
                    timeout_ms: None,
                },
                Feature::Typing,
            ),
            (
                CommandKind::ReadReceipt { message: msg_ref() },
                Feature::ReadReceipts,
            ),
        ];
        for (kind, feature) in cases {
            let cmd = command(kind);
            assert_eq!(cmd.required_capabilities(), Capabilities::from(feature));
            assert_eq!(
                Capabilities::all().without(feature).check(&cmd),
                Err(crate::ConnectorError::Unsupported { feature })
            );
            assert!(Capabilities::all().check(&cmd).is_ok());
        }

        let failed = command(CommandKind::EventFailed {
            event_id: "e1".into(),
            reason: "nope".into(),
        });
        assert!(Capabilities::empty().check(&failed).is_ok());
    }
}
