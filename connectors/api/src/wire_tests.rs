//! The JSON wire shapes, pinned: one golden document per event and command kind.
//!
//! Each case checks that the golden JSON parses into the expected value, that the value
//! serialises to exactly the golden JSON (as a JSON value, so key order and spacing do not
//! matter), and that a serialise → parse round trip is lossless. Changing a golden document here
//! is changing the webhook API.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::*;

const MID_1: &str = "017ce54837404c3696e0c747b985cb172716d0ed0a3d249ca63ace7d82a096f4";
const MID_2: &str = "01b0084467273cc43d6f0ebeac13eb84229c4fffe8f6c3594c905f47779e5a79";
const MID_3: &str = "01d2a7c3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9f";

fn assert_wire<T>(value: &T, golden: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let golden_value: Value = serde_json::from_str(golden).expect("golden JSON is valid");
    let parsed: T = serde_json::from_str(golden).expect("golden JSON parses");
    assert_eq!(&parsed, value, "golden JSON parses into the expected value");
    let serialized = serde_json::to_string(value).unwrap();
    assert!(
        serialized.starts_with(r#"{"type":"#),
        "\"type\" comes first: {serialized}"
    );
    let serialized_value: Value = serde_json::from_str(&serialized).unwrap();
    assert_eq!(
        serialized_value, golden_value,
        "serialises to the golden JSON"
    );
    let back: T = serde_json::from_str(&serialized).unwrap();
    assert_eq!(&back, value, "round trip");
}

fn event(kind: EventKind) -> ConnectorEvent {
    ConnectorEvent::new("evt-1", "general", "alice", kind)
}

/// The common fields of the golden events.
const EV: &str = r#""event_id": "evt-1", "room_id": "general", "sender": "alice""#;

fn ev(golden_rest: &str) -> String {
    format!("{{{golden_rest}, {EV}}}")
}

#[test]
fn event_room_created() {
    assert_wire(
        &event(EventKind::RoomCreated {
            name: Some("Project X".into()),
        })
        .at(1_767_225_600_000),
        &format!(
            r#"{{"type": "room_created", "name": "Project X", {EV}, "timestamp_ms": 1767225600000}}"#
        ),
    );
    // Without a name or a timestamp.
    assert_wire(
        &event(EventKind::RoomCreated { name: None }),
        &ev(r#""type": "room_created""#),
    );
}

#[test]
fn event_user_invited() {
    assert_wire(
        &event(EventKind::UserInvited {
            target: UserRef::mimi("mimi://b.example/u/bob"),
        }),
        &ev(r#""type": "user_invited", "target": {"uri": "mimi://b.example/u/bob"}"#),
    );
}

#[test]
fn event_user_added() {
    assert_wire(
        &event(EventKind::UserAdded {
            target: UserRef::legacy("carol"),
        }),
        &ev(r#""type": "user_added", "target": {"legacy_id": "carol"}"#),
    );
}

#[test]
fn event_user_joined() {
    assert_wire(
        &event(EventKind::UserJoined),
        &ev(r#""type": "user_joined""#),
    );
}

#[test]
fn event_user_left() {
    assert_wire(&event(EventKind::UserLeft), &ev(r#""type": "user_left""#));
}

#[test]
fn event_user_removed() {
    assert_wire(
        &event(EventKind::UserRemoved {
            target: UserRef::legacy("carol"),
            reason: Some("spam".into()),
        }),
        &ev(r#""type": "user_removed", "target": {"legacy_id": "carol"}, "reason": "spam""#),
    );
}

#[test]
fn event_user_banned() {
    assert_wire(
        &event(EventKind::UserBanned {
            target: UserRef::mimi("mimi://b.example/u/mallory"),
            reason: None,
        }),
        &ev(r#""type": "user_banned", "target": {"uri": "mimi://b.example/u/mallory"}"#),
    );
}

#[test]
fn event_message() {
    assert_wire(
        &event(EventKind::Message {
            message_id: "m-17".into(),
            content: MessageContent::markdown("Hello **MIMI**"),
            reply_to: Some("m-16".into()),
            expires: Some(Expiry::AfterRead { seconds: 3600 }),
        }),
        &ev(r#""type": "message", "message_id": "m-17",
            "content": {"kind": "text", "body": "Hello **MIMI**", "format": "markdown"},
            "reply_to": "m-16", "expires": {"kind": "after_read", "seconds": 3600}"#),
    );
}

#[test]
fn event_message_with_media() {
    let media = MediaRef {
        url: "https://media.example/f/1".into(),
        media_type: "image/png".into(),
        size: Some(48213),
        name: Some("cat.png".into()),
        description: Some("a cat".into()),
        encryption: Some(MediaEncryption {
            aead: 1,
            key: "000102030405060708090a0b0c0d0e0f".into(),
            nonce: "000102030405060708090a0b".into(),
            aad: String::new(),
        }),
        sha256: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
    };
    assert_wire(
        &event(EventKind::Message {
            message_id: "m-18".into(),
            content: MessageContent::emote("shares a cat").with_attachment(media),
            reply_to: None,
            expires: Some(Expiry::At {
                unix_seconds: 1_767_225_600,
            }),
        }),
        &ev(r#""type": "message", "message_id": "m-18",
            "content": {"kind": "emote", "body": "shares a cat", "format": "plain",
              "attachments": [{"url": "https://media.example/f/1", "media_type": "image/png",
                "size": 48213, "name": "cat.png", "description": "a cat",
                "encryption": {"aead": 1, "key": "000102030405060708090a0b0c0d0e0f",
                               "nonce": "000102030405060708090a0b", "aad": ""},
                "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}]},
            "expires": {"kind": "at", "unix_seconds": 1767225600}"#),
    );
}

#[test]
fn event_edit() {
    assert_wire(
        &event(EventKind::Edit {
            message_id: "m-17".into(),
            content: MessageContent::notice("edited"),
        }),
        &ev(r#""type": "edit", "message_id": "m-17",
            "content": {"kind": "notice", "body": "edited", "format": "plain"}"#),
    );
}

#[test]
fn event_delete() {
    assert_wire(
        &event(EventKind::Delete {
            message_id: "m-17".into(),
        }),
        &ev(r#""type": "delete", "message_id": "m-17""#),
    );
}

#[test]
fn event_reaction() {
    assert_wire(
        &event(EventKind::Reaction {
            message_id: "m-17".into(),
            key: "👍".into(),
            reaction_id: Some("r-3".into()),
        }),
        &ev(r#""type": "reaction", "message_id": "m-17", "key": "👍", "reaction_id": "r-3""#),
    );
}

#[test]
fn event_reaction_removed() {
    assert_wire(
        &event(EventKind::ReactionRemoved {
            message_id: "m-17".into(),
            key: "👍".into(),
        }),
        &ev(r#""type": "reaction_removed", "message_id": "m-17", "key": "👍""#),
    );
}

#[test]
fn event_room_renamed() {
    assert_wire(
        &event(EventKind::RoomRenamed {
            name: "Project Y".into(),
        }),
        &ev(r#""type": "room_renamed", "name": "Project Y""#),
    );
}

#[test]
fn event_typing() {
    assert_wire(
        &event(EventKind::Typing {
            active: true,
            timeout_ms: Some(5000),
        }),
        &ev(r#""type": "typing", "active": true, "timeout_ms": 5000"#),
    );
}

#[test]
fn event_read_receipt() {
    assert_wire(
        &event(EventKind::ReadReceipt {
            message_id: "m-17".into(),
        }),
        &ev(r#""type": "read_receipt", "message_id": "m-17""#),
    );
}

#[test]
fn events_accept_nulls_and_minimal_content_and_reject_unknown_types() {
    let parsed: ConnectorEvent = serde_json::from_str(
        r#"{"type": "message", "event_id": "e", "room_id": "r", "sender": "s",
            "timestamp_ms": null, "message_id": "m", "content": {"body": "hi"},
            "reply_to": null, "expires": null}"#,
    )
    .unwrap();
    assert_eq!(
        parsed,
        ConnectorEvent::new(
            "e",
            "r",
            "s",
            EventKind::Message {
                message_id: "m".into(),
                content: MessageContent::text("hi"),
                reply_to: None,
                expires: None,
            }
        )
    );
    for bad in [
        r#"{"type": "poke", "event_id": "e", "room_id": "r", "sender": "s"}"#,
        r#"{"event_id": "e", "room_id": "r", "sender": "s"}"#,
        r#"{"type": "user_left", "room_id": "r", "sender": "s"}"#,
        r#"{"type": "delete", "event_id": "e", "room_id": "r", "sender": "s"}"#,
        r#"{"type": "user_invited", "event_id": "e", "room_id": "r", "sender": "s",
            "target": {"legacy_id": "a", "uri": "mimi://b/u/c"}}"#,
    ] {
        assert!(
            serde_json::from_str::<ConnectorEvent>(bad).is_err(),
            "should be rejected: {bad}"
        );
    }
}

fn command(kind: CommandKind) -> BridgeCommand {
    BridgeCommand {
        kind,
        command_id: "c-1".into(),
        room: MimiRoom {
            uri: "mimi://a.example/r/general".into(),
            legacy_id: Some("general".into()),
        },
        sender: MimiUser {
            uri: "mimi://b.example/u/bob".into(),
            legacy_id: Some("@mimi_bob:hs.example".into()),
            display_name: Some("Bob".into()),
            role: None,
        },
        hub_timestamp_ms: 1_767_225_600_123,
    }
}

/// The common fields of the golden commands.
const CMD: &str = r#""command_id": "c-1", "hub_timestamp_ms": 1767225600123,
    "room": {"uri": "mimi://a.example/r/general", "legacy_id": "general"},
    "sender": {"uri": "mimi://b.example/u/bob", "legacy_id": "@mimi_bob:hs.example",
               "display_name": "Bob"}"#;

fn cmd(golden_rest: &str) -> String {
    format!("{{{golden_rest}, {CMD}}}")
}

fn mref(mimi: &str, legacy: Option<&str>) -> MessageRef {
    MessageRef {
        mimi_id: MimiMessageId::new(mimi),
        legacy_id: legacy.map(LegacyMessageId::new),
    }
}

fn carol() -> MimiUser {
    MimiUser {
        uri: "mimi://a.example/u/carol".into(),
        legacy_id: Some("carol".into()),
        display_name: None,
        role: None,
    }
}

#[test]
fn command_room_created() {
    let mut c = command(CommandKind::RoomCreated {
        name: Some("Project X".into()),
        participants: vec![MimiUser::new("mimi://b.example/u/bob"), carol()],
    });
    c.room.legacy_id = None;
    assert_wire(
        &c,
        r#"{"type": "room_created", "name": "Project X",
            "participants": [{"uri": "mimi://b.example/u/bob"},
                             {"uri": "mimi://a.example/u/carol", "legacy_id": "carol"}],
            "command_id": "c-1", "hub_timestamp_ms": 1767225600123,
            "room": {"uri": "mimi://a.example/r/general"},
            "sender": {"uri": "mimi://b.example/u/bob", "legacy_id": "@mimi_bob:hs.example",
                       "display_name": "Bob"}}"#,
    );
}

#[test]
fn command_user_invited() {
    assert_wire(
        &command(CommandKind::UserInvited { target: carol() }),
        &cmd(
            r#""type": "user_invited", "target": {"uri": "mimi://a.example/u/carol", "legacy_id": "carol"}"#,
        ),
    );
}

#[test]
fn command_user_added() {
    assert_wire(
        &command(CommandKind::UserAdded {
            target: MimiUser::new("mimi://c.example/u/dave"),
        }),
        &cmd(r#""type": "user_added", "target": {"uri": "mimi://c.example/u/dave"}"#),
    );
}

#[test]
fn command_user_joined() {
    assert_wire(
        &command(CommandKind::UserJoined),
        &cmd(r#""type": "user_joined""#),
    );
}

#[test]
fn command_user_left() {
    assert_wire(
        &command(CommandKind::UserLeft),
        &cmd(r#""type": "user_left""#),
    );
}

#[test]
fn command_user_removed() {
    assert_wire(
        &command(CommandKind::UserRemoved {
            target: carol(),
            reason: Some("spam".into()),
        }),
        &cmd(r#""type": "user_removed", "reason": "spam",
                "target": {"uri": "mimi://a.example/u/carol", "legacy_id": "carol"}"#),
    );
}

#[test]
fn command_user_banned() {
    assert_wire(
        &command(CommandKind::UserBanned {
            target: carol(),
            reason: None,
        }),
        &cmd(r#""type": "user_banned",
                "target": {"uri": "mimi://a.example/u/carol", "legacy_id": "carol"}"#),
    );
}

#[test]
fn command_message() {
    assert_wire(
        &command(CommandKind::Message {
            mimi_message_id: MimiMessageId::new(MID_1),
            content: MessageContent::text("Hi Alice"),
            reply_to: Some(mref(MID_2, Some("m-17"))),
            expires: None,
        }),
        &cmd(&format!(
            r#""type": "message", "mimi_message_id": "{MID_1}",
                "content": {{"kind": "text", "body": "Hi Alice", "format": "plain"}},
                "reply_to": {{"mimi_id": "{MID_2}", "legacy_id": "m-17"}}"#
        )),
    );
}

#[test]
fn command_edit() {
    assert_wire(
        &command(CommandKind::Edit {
            mimi_message_id: MimiMessageId::new(MID_3),
            message: mref(MID_1, Some("m-18")),
            content: MessageContent::markdown("Hi *Alice*"),
        }),
        &cmd(&format!(
            r#""type": "edit", "mimi_message_id": "{MID_3}",
                "message": {{"mimi_id": "{MID_1}", "legacy_id": "m-18"}},
                "content": {{"kind": "text", "body": "Hi *Alice*", "format": "markdown"}}"#
        )),
    );
}

#[test]
fn command_delete() {
    assert_wire(
        &command(CommandKind::Delete {
            mimi_message_id: MimiMessageId::new(MID_3),
            message: mref(MID_1, None),
        }),
        &cmd(&format!(
            r#""type": "delete", "mimi_message_id": "{MID_3}", "message": {{"mimi_id": "{MID_1}"}}"#
        )),
    );
}

#[test]
fn command_reaction() {
    assert_wire(
        &command(CommandKind::Reaction {
            mimi_message_id: MimiMessageId::new(MID_3),
            message: mref(MID_1, Some("m-17")),
            key: "👍".into(),
        }),
        &cmd(&format!(
            r#""type": "reaction", "mimi_message_id": "{MID_3}",
                "message": {{"mimi_id": "{MID_1}", "legacy_id": "m-17"}}, "key": "👍""#
        )),
    );
}

#[test]
fn command_reaction_removed() {
    assert_wire(
        &command(CommandKind::ReactionRemoved {
            mimi_message_id: MimiMessageId::new(MID_2),
            message: mref(MID_1, Some("m-17")),
            key: "👍".into(),
            reaction: mref(MID_3, Some("r-9")),
        }),
        &cmd(&format!(
            r#""type": "reaction_removed", "mimi_message_id": "{MID_2}",
                "message": {{"mimi_id": "{MID_1}", "legacy_id": "m-17"}}, "key": "👍",
                "reaction": {{"mimi_id": "{MID_3}", "legacy_id": "r-9"}}"#
        )),
    );
}

#[test]
fn command_room_renamed() {
    assert_wire(
        &command(CommandKind::RoomRenamed {
            name: "Project Y".into(),
        }),
        &cmd(r#""type": "room_renamed", "name": "Project Y""#),
    );
}

#[test]
fn command_typing() {
    assert_wire(
        &command(CommandKind::Typing {
            active: false,
            timeout_ms: None,
        }),
        &cmd(r#""type": "typing", "active": false"#),
    );
}

#[test]
fn command_read_receipt() {
    assert_wire(
        &command(CommandKind::ReadReceipt {
            message: mref(MID_1, Some("m-17")),
        }),
        &cmd(&format!(
            r#""type": "read_receipt", "message": {{"mimi_id": "{MID_1}", "legacy_id": "m-17"}}"#
        )),
    );
}

#[test]
fn command_event_failed() {
    let mut c = command(CommandKind::EventFailed {
        event_id: "evt-42".into(),
        reason: "not allowed to rename the room".into(),
    });
    c.sender = MimiUser {
        uri: "mimi://a.example/u/alice".into(),
        legacy_id: Some("alice".into()),
        display_name: None,
        role: None,
    };
    assert_wire(
        &c,
        r#"{"type": "event_failed", "event_id": "evt-42",
            "reason": "not allowed to rename the room",
            "command_id": "c-1", "hub_timestamp_ms": 1767225600123,
            "room": {"uri": "mimi://a.example/r/general", "legacy_id": "general"},
            "sender": {"uri": "mimi://a.example/u/alice", "legacy_id": "alice"}}"#,
    );
}

#[test]
fn delivery_and_accepted_shapes() {
    let d: Delivery = serde_json::from_str("{}").unwrap();
    assert_eq!(d, Delivery::done());
    assert_eq!(serde_json::to_string(&Delivery::done()).unwrap(), "{}");
    assert_eq!(
        serde_json::to_string(&Delivery::message("m-18")).unwrap(),
        r#"{"message_id":"m-18"}"#
    );
    assert_eq!(
        serde_json::from_str::<Delivery>(r#"{"room_id":"general","message_id":null}"#).unwrap(),
        Delivery::room("general")
    );
    assert_eq!(
        serde_json::to_string(&Accepted::DUPLICATE).unwrap(),
        r#"{"duplicate":true}"#
    );
    assert_eq!(
        serde_json::from_str::<Accepted>("{}").unwrap(),
        Accepted::NEW
    );
}

#[test]
fn role_changes_both_ways() {
    assert_wire(
        &event(EventKind::RoleChanged {
            target: UserRef::legacy("carol"),
            role: 3,
        }),
        &ev(r#""type": "role_changed", "target": {"legacy_id": "carol"}, "role": 3"#),
    );
    assert_wire(
        &command(CommandKind::RoleChanged {
            target: MimiUser {
                role: Some(3),
                ..carol()
            },
        }),
        &cmd(r#""type": "role_changed",
            "target": {"uri": "mimi://a.example/u/carol", "legacy_id": "carol", "role": 3}"#),
    );
}
