use std::collections::BTreeMap;

use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::value::float;
use super::*;

const SALT: [u8; 16] = [0x5a; 16];
const ALICE: &str = "mimi://example.com/u/alice-smith";
const ROOM: &str = "mimi://example.com/r/engineering_team";

/// The bytes of the draft's "original" example (examples/original.cbor).
const ORIGINAL_HEX: &str = "87505eed9406c2545547ab6f09f20a18b003f640f6f6a20178206d696d693a2f2f6578616d706c652e636f6d2f752f616c6963652d736d6974680278256d696d693a2f2f6578616d706c652e636f6d2f722f656e67696e656572696e675f7465616d85016001781e746578742f6d61726b646f776e3b76617269616e743d47464d2d4d494d49583948692065766572796f6e652c207765206a75737420736869707065642072656c6561736520322e302e205f5f476f6f642020776f726b5f5f21";

fn h(hex_text: &str) -> Vec<u8> {
    let clean: String = hex_text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).expect("test hex")
}

/// A message with the zero salt, no optional fields, the given extensions map
/// and NestedPart (both as hex).
fn msg(ext: &str, part: &str) -> Vec<u8> {
    h(&format!(
        "87 50 {} f6 40 f6 f6 {ext} {part}",
        "00".repeat(16)
    ))
}

/// `[1, "", 1, "text/plain", 'hi']`
const SIMPLE_PART: &str = "85 01 60 01 6a 746578742f706c61696e 42 6869";

fn decode_err(bytes: &[u8]) -> ContentError {
    MimiContent::from_cbor(bytes).expect_err("decoding should fail")
}

fn id(byte: u8) -> MessageId {
    MessageId([byte; 32])
}

#[test]
fn original_example_decodes_and_reencodes() {
    let bytes = h(ORIGINAL_HEX);
    let content = MimiContent::from_cbor(&bytes).unwrap();
    assert_eq!(content.extensions.sender_uri.as_deref(), Some(ALICE));
    assert_eq!(content.extensions.room_uri.as_deref(), Some(ROOM));
    assert_eq!(content.kind(), MessageKind::Message);
    assert_eq!(content.to_cbor().unwrap(), bytes);

    // Built with the helper, the same message encodes to the same bytes.
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&bytes[2..18]);
    let built = MimiContent::markdown(
        salt,
        "Hi everyone, we just shipped release 2.0. __Good  work__!",
    )
    .with_sender_uri(ALICE)
    .with_room_uri(ROOM);
    assert_eq!(built, content);
    assert_eq!(built.to_cbor().unwrap(), bytes);
}

#[test]
fn message_id_is_the_08_construction() {
    let content = MimiContent::markdown(SALT, "hello")
        .with_sender_uri(ALICE)
        .with_room_uri(ROOM);
    let bytes = content.to_cbor().unwrap();
    let mut input = Vec::new();
    input.extend_from_slice(&(ALICE.len() as u16).to_be_bytes());
    input.extend_from_slice(ALICE.as_bytes());
    input.extend_from_slice(&(ROOM.len() as u16).to_be_bytes());
    input.extend_from_slice(ROOM.as_bytes());
    input.extend_from_slice(&bytes);
    input.extend_from_slice(&SALT);
    let hash = Sha256::digest(&input);
    let mut expected = [0u8; 32];
    expected[0] = 0x01;
    expected[1..].copy_from_slice(&hash[..31]);

    let got = content.message_id_from_extensions().unwrap();
    assert_eq!(got, MessageId(expected));
    assert_eq!(got.hash_alg(), HASH_ALG_SHA256);
    assert_eq!(content.message_id(ALICE, ROOM).unwrap(), got);
    assert_eq!(compute_message_id(ALICE, ROOM, &bytes, &SALT).unwrap(), got);
    // Different URIs give a different ID; the length prefixes separate them.
    assert_ne!(
        content
            .message_id("mimi://example.com/u/alice-smit", &format!("h{ROOM}"))
            .unwrap(),
        got
    );
}

#[test]
fn message_id_uri_fallbacks() {
    let bare = MimiContent::markdown(SALT, "x");
    assert!(matches!(
        bare.message_id_from_extensions(),
        Err(ContentError::MissingUri { what }) if what.contains("sender")
    ));
    let with_sender = bare.clone().with_sender_uri(ALICE);
    assert!(matches!(
        with_sender.message_id_from_extensions(),
        Err(ContentError::MissingUri { what }) if what.contains("room")
    ));
    let implied = MessageDerivedValues {
        message_id: id(1),
        hub_accepted_timestamp: Timestamp::Millis(1),
        mls_group_id: vec![1, 2],
        sender_leaf_index: 4,
        sender_client_url: "mimi://example.com/d/x/1".into(),
        sender_user_url: ALICE.into(),
        room_url: ROOM.into(),
    };
    assert_eq!(
        bare.message_id_with_implied(&implied).unwrap(),
        bare.message_id(ALICE, ROOM).unwrap()
    );
    // Extensions take precedence over the fallback.
    assert_eq!(
        with_sender
            .message_id_with_fallback(Some("mimi://other/u/x"), Some(ROOM))
            .unwrap(),
        with_sender.message_id(ALICE, ROOM).unwrap()
    );
    let long = "x".repeat(70_000);
    assert!(matches!(
        bare.message_id(&long, ROOM),
        Err(ContentError::UriTooLong { len: 70_000, .. })
    ));
}

#[test]
fn helpers_build_the_common_kinds() {
    let original = id(0x11);
    let reaction_id = id(0x22);

    let reply = MimiContent::reply(SALT, original, "Right on!");
    assert_eq!(reply.in_reply_to, Some(original));
    assert_eq!(reply.kind(), MessageKind::Reply);

    let edit = MimiContent::edit(SALT, original, "fixed").with_in_reply_to(id(3));
    assert_eq!(edit.replaces, Some(original));
    assert_eq!(edit.kind(), MessageKind::Edit);

    let delete = MimiContent::delete(SALT, original);
    assert_eq!(delete.nested_part, NestedPart::null(Disposition::Render));
    assert_eq!(delete.kind(), MessageKind::Delete);

    let reaction = MimiContent::reaction(SALT, original, "\u{2764}");
    assert_eq!(reaction.nested_part.disposition, Disposition::Reaction);
    assert_eq!(
        reaction.nested_part.part,
        Part::Single {
            content_type: TEXT_PLAIN.into(),
            content: "\u{2764}".into()
        }
    );
    assert_eq!(reaction.kind(), MessageKind::Reaction);

    let unlike = MimiContent::unlike(SALT, reaction_id, original);
    assert_eq!(unlike.replaces, Some(reaction_id));
    assert_eq!(unlike.in_reply_to, Some(original));
    assert_eq!(unlike.nested_part, NestedPart::null(Disposition::Reaction));
    assert_eq!(unlike.kind(), MessageKind::Unlike);

    let plain = MimiContent::plain_text(SALT, "hi")
        .with_topic_id(b"topic".to_vec())
        .with_expiration(Expiration {
            relative: true,
            time: 600,
        });
    for m in [reply, edit, delete, reaction, unlike, plain] {
        let bytes = m.to_cbor().unwrap();
        assert_eq!(MimiContent::from_cbor(&bytes).unwrap(), m);
    }
}

#[test]
fn dispositions_cover_every_byte() {
    for v in 0..=255u8 {
        let d = Disposition::from_u8(v);
        assert_eq!(d.to_u8(), v);
        assert_eq!(matches!(d, Disposition::Unknown(_)), v >= 9);
    }
    assert!(UnknownDisposition::new(8).is_none());
    assert_eq!(
        UnknownDisposition::new(200).map(UnknownDisposition::value),
        Some(200)
    );
    // An unknown disposition survives a round trip.
    let bytes = msg("a0", "85 18c8 60 01 60 40");
    let m = MimiContent::from_cbor(&bytes).unwrap();
    assert_eq!(m.nested_part.disposition.to_u8(), 200);
    assert_eq!(m.to_cbor().unwrap(), bytes);
}

#[test]
fn part_indices_are_depth_first() {
    let leaf = |n: u8| NestedPart::single(Disposition::Render, TEXT_PLAIN, vec![n]);
    let inner = NestedPart::multi(
        Disposition::Render,
        PartSemantics::ChooseOne,
        vec![leaf(3), leaf(4)],
    );
    let gif = NestedPart::multi(
        Disposition::Render,
        PartSemantics::ProcessAll,
        vec![inner, leaf(5)],
    );
    let root = NestedPart::multi(
        Disposition::Render,
        PartSemantics::ChooseOne,
        vec![gif, leaf(6)],
    );
    assert_eq!(root.part_count(), 7);
    assert_eq!(root.depth(), 4);
    for n in 3..=6u8 {
        let idx = match n {
            3 => 3,
            4 => 4,
            5 => 5,
            _ => 6,
        };
        assert_eq!(root.part_by_index(idx), Some(&leaf(n)));
    }
    assert!(matches!(
        root.part_by_index(2).map(|p| &p.part),
        Some(Part::Multi { .. })
    ));
    assert_eq!(root.part_by_index(7), None);
}

#[test]
fn error_messages_say_what_and_where() {
    // Salt of 12 bytes.
    let bytes = h(&format!(
        "87 4c {} f6 40 f6 f6 a0 {SIMPLE_PART}",
        "00".repeat(12)
    ));
    let err = decode_err(&bytes);
    assert!(matches!(err, ContentError::SaltLength { got: 12, .. }));
    assert_eq!(
        err.to_string(),
        "mimiContent.salt (byte 1): salt must be 16 bytes, got 12"
    );

    // Disposition 1 written as 0x18 0x01.
    let err = decode_err(&msg("a0", "85 1801 60 01 60 40"));
    assert!(
        matches!(
            err,
            ContentError::NonShortest {
                what: "integer",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "mimiContent.nestedPart.disposition (byte 24): non-shortest integer encoding"
    );

    // A string length written as 0x78 0x00.
    let err = decode_err(&msg("a0", "85 01 7800 01 60 40"));
    assert!(
        matches!(err, ContentError::NonShortest { what: "length", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("mimiContent.nestedPart.language"));

    // Indefinite-length array and byte string.
    let err = decode_err(&msg("a0", "9f 01 60 00 ff"));
    assert!(matches!(err, ContentError::IndefiniteLength { .. }));
    assert!(err.to_string().ends_with("indefinite-length item"));
    let err = decode_err(&msg("a0", "85 01 60 01 60 5f 41 00 ff"));
    assert!(
        matches!(err, ContentError::IndefiniteLength { .. }),
        "{err}"
    );

    // Map keys out of order and duplicated.
    let err = decode_err(&msg("a2 02 60 01 60", SIMPLE_PART));
    assert!(matches!(err, ContentError::UnsortedMapKeys { .. }));
    assert!(
        err.to_string()
            .ends_with("map keys not in deterministic order")
    );
    let err = decode_err(&msg("a2 01 60 01 60", SIMPLE_PART));
    assert!(matches!(err, ContentError::DuplicateMapKey { .. }));
    // "b" (0x61 0x62) sorts before 24 (0x18 0x18)? No: integers sort first.
    let err = decode_err(&msg("a2 61 62 00 18 18 00", SIMPLE_PART));
    assert!(matches!(err, ContentError::UnsortedMapKeys { .. }));
    // Shorter text keys sort before longer ones.
    let err = decode_err(&msg("a2 62 6161 00 61 62 00", SIMPLE_PART));
    assert!(matches!(err, ContentError::UnsortedMapKeys { .. }));
    MimiContent::from_cbor(&msg("a2 61 62 00 62 6161 00", SIMPLE_PART)).unwrap();
}

#[test]
fn nested_part_depth_is_limited_to_four() {
    let leaf = NestedPart::single(Disposition::Render, TEXT_PLAIN, "x");
    let mut part = leaf.clone();
    for _ in 0..3 {
        part = NestedPart::multi(
            Disposition::Render,
            PartSemantics::ProcessAll,
            vec![part, leaf.clone()],
        );
    }
    let ok = MimiContent::new(SALT, part.clone());
    assert_eq!(ok.nested_part.depth(), 4);
    let bytes = ok.to_cbor().unwrap();
    assert_eq!(MimiContent::from_cbor(&bytes).unwrap(), ok);

    let too_deep = MimiContent::new(
        SALT,
        NestedPart::multi(
            Disposition::Render,
            PartSemantics::ProcessAll,
            vec![part, leaf],
        ),
    );
    let err = too_deep.to_cbor().unwrap_err();
    assert!(matches!(err, ContentError::NestedPartTooDeep { .. }));
    assert!(
        err.to_string().ends_with("NestedPart depth exceeds 4"),
        "{err}"
    );
    // Bypass validation to produce the bytes, then decode them.
    let bytes = encode::encode_content(&too_deep);
    let err = decode_err(&bytes);
    assert!(matches!(err, ContentError::NestedPartTooDeep { .. }));
    assert!(
        err.to_string()
            .starts_with("mimiContent.nestedPart.parts[0].parts[0].parts[0].parts[0] (byte "),
        "{err}"
    );
}

#[test]
fn multipart_needs_two_parts() {
    let err = decode_err(&msg("a0", &format!("85 01 60 03 00 81 {SIMPLE_PART}")));
    assert!(matches!(err, ContentError::TooFewParts { got: 1, .. }));
    assert!(
        err.to_string()
            .ends_with("multipart needs at least 2 parts, got 1"),
        "{err}"
    );
    let one = MimiContent::new(
        SALT,
        NestedPart::multi(
            Disposition::Render,
            PartSemantics::ChooseOne,
            vec![NestedPart::null(Disposition::Render)],
        ),
    );
    assert!(matches!(
        one.to_cbor(),
        Err(ContentError::TooFewParts { got: 1, .. })
    ));
}

#[test]
fn structural_errors() {
    let err = decode_err(&msg("a0", "84 01 60 00 00"));
    assert!(
        matches!(err, ContentError::ArrayLength { got: 4, .. }),
        "{err}"
    );
    let err = decode_err(&msg("a0", "84 01 60 01 60"));
    assert!(
        matches!(err, ContentError::ArrayLength { got: 4, .. }),
        "{err}"
    );
    let err = decode_err(&msg("a0", "83 01 60 04"));
    assert!(matches!(
        err,
        ContentError::UnknownCardinality { value: 4, .. }
    ));
    let err = decode_err(&msg(
        "a0",
        &format!("85 01 60 03 03 82 {SIMPLE_PART} {SIMPLE_PART}"),
    ));
    assert!(matches!(
        err,
        ContentError::UnknownPartSemantics { value: 3, .. }
    ));
    let err = decode_err(&msg("a0", "83 190100 60 00"));
    assert!(matches!(
        err,
        ContentError::DispositionOutOfRange { value: 256, .. }
    ));
    let err = decode_err(&msg("a0", "83 01 41 00 00"));
    assert!(matches!(
        err,
        ContentError::UnexpectedType {
            expected: "text string",
            found: "byte string",
            ..
        }
    ));
    let err = decode_err(&msg("a0", "83 01 62 c328 00"));
    assert!(matches!(err, ContentError::InvalidUtf8 { .. }));
    let err = decode_err(&msg("a0", "83 01 60 1c"));
    assert!(matches!(err, ContentError::Malformed { .. }), "{err}");

    // Expiration time beyond u32.
    let bytes = h(&format!(
        "87 50 {} f6 40 82 f4 1b 0000000100000000 f6 a0 {SIMPLE_PART}",
        "00".repeat(16)
    ));
    assert!(matches!(
        decode_err(&bytes),
        ContentError::IntegerTooLarge {
            value: 4294967296,
            ..
        }
    ));
    // A 31-byte message ID.
    let bytes = h(&format!(
        "87 50 {} 58 1f {} 40 f6 f6 a0 {SIMPLE_PART}",
        "00".repeat(16),
        "01".repeat(31)
    ));
    assert!(matches!(
        decode_err(&bytes),
        ContentError::MessageIdLength { got: 31, .. }
    ));
    // Top level is not an array of 7.
    assert!(matches!(
        decode_err(&h("86 00 00 00 00 00 00")),
        ContentError::ArrayLength { got: 6, .. }
    ));
    assert!(matches!(
        decode_err(&h("86 00")),
        ContentError::Truncated { .. }
    ));
    assert!(matches!(
        decode_err(&h("a0")),
        ContentError::UnexpectedType { .. }
    ));
    assert!(matches!(decode_err(&[]), ContentError::Truncated { .. }));
    // Trailing bytes.
    let mut bytes = h(ORIGINAL_HEX);
    bytes.push(0);
    assert!(matches!(
        decode_err(&bytes),
        ContentError::TrailingBytes { count: 1, .. }
    ));
}

#[test]
fn every_strict_prefix_is_truncated() {
    let bytes = h(ORIGINAL_HEX);
    for len in 0..bytes.len() {
        let err = decode_err(&bytes[..len]);
        assert!(
            matches!(err, ContentError::Truncated { .. }),
            "prefix {len}: {err}"
        );
    }
}

#[test]
fn extension_rules() {
    // The draft's 4-level example: map, array, array, tag 32.
    let ext = "a2 01 78 18 6d696d693a2f2f612e6578616d706c652f752f616c696365
               190100 82 82 42 1234 d8 20 72 687474703a2f2f6578616d706c652e636f6d
                         82 42 3456 19 168b";
    let bytes = msg(ext, SIMPLE_PART);
    let m = MimiContent::from_cbor(&bytes).unwrap();
    assert_eq!(
        m.extensions.sender_uri.as_deref(),
        Some("mimi://a.example/u/alice")
    );
    let value = &m.extensions.other[&ExtensionKey::Int(256)];
    assert_eq!(value.depth(), 3);
    assert_eq!(m.to_cbor().unwrap(), bytes);

    // One more level is too deep.
    let err = decode_err(&msg("a1 18 64 81 81 81 81 00", SIMPLE_PART));
    assert!(
        matches!(err, ContentError::ExtensionTooDeep { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("extension depth exceeds 4"));
    MimiContent::from_cbor(&msg("a1 18 64 81 81 81 00", SIMPLE_PART)).unwrap();
    let mut deep = MimiContent::markdown(SALT, "x");
    deep.extensions.other.insert(
        ExtensionKey::Int(100),
        Value::Tag(
            7,
            Box::new(Value::Array(vec![Value::Map(BTreeMap::from([(
                MapKey::Int(1),
                Value::Array(vec![]),
            )]))])),
        ),
    );
    assert!(matches!(
        deep.to_cbor(),
        Err(ContentError::ExtensionTooDeep { .. })
    ));

    // Keys 1 and 2 must be text; other keys int or tstr(1..255).
    assert!(matches!(
        decode_err(&msg("a1 01 00", SIMPLE_PART)),
        ContentError::UnexpectedType {
            expected: "text string",
            ..
        }
    ));
    assert!(matches!(
        decode_err(&msg("a1 60 00", SIMPLE_PART)),
        ContentError::InvalidExtensionKey { .. }
    ));
    assert!(matches!(
        decode_err(&msg("a1 41 00 00", SIMPLE_PART)),
        ContentError::InvalidExtensionKey { .. }
    ));
    let long_key = format!("a1 78ff {} 00", "61".repeat(255));
    MimiContent::from_cbor(&msg(&long_key, SIMPLE_PART)).unwrap();
    let too_long = format!("a1 790100 {} 00", "61".repeat(256));
    assert!(matches!(
        decode_err(&msg(&too_long, SIMPLE_PART)),
        ContentError::InvalidExtensionKey { .. }
    ));

    // Integer keys within ±(2^53−1), here and in nested maps.
    MimiContent::from_cbor(&msg("a1 1b 001fffffffffffff 00", SIMPLE_PART)).unwrap();
    assert!(matches!(
        decode_err(&msg("a1 1b 0020000000000000 00", SIMPLE_PART)),
        ContentError::MapKeyOutOfRange { .. }
    ));
    MimiContent::from_cbor(&msg("a1 3b 001ffffffffffffe 00", SIMPLE_PART)).unwrap();
    assert!(matches!(
        decode_err(&msg("a1 3b 001fffffffffffff 00", SIMPLE_PART)),
        ContentError::MapKeyOutOfRange {
            value: -9007199254740992,
            ..
        }
    ));
    assert!(matches!(
        decode_err(&msg("a1 18 64 a1 1b 0020000000000000 00", SIMPLE_PART)),
        ContentError::MapKeyOutOfRange { .. }
    ));
    // Nested map keys: int, text, bytes only.
    MimiContent::from_cbor(&msg("a1 18 64 a3 00 00 41 00 00 61 61 00", SIMPLE_PART)).unwrap();
    assert!(matches!(
        decode_err(&msg("a1 18 64 a1 80 00", SIMPLE_PART)),
        ContentError::InvalidNestedMapKey { found: "array", .. }
    ));
    assert!(matches!(
        decode_err(&msg("a1 18 64 a2 41 00 00 00 00", SIMPLE_PART)),
        ContentError::UnsortedMapKeys { .. }
    ));

    // senderUri / roomUri are not allowed in `other`.
    let mut m = MimiContent::markdown(SALT, "x");
    m.extensions
        .other
        .insert(ExtensionKey::Int(1), Value::Text(ALICE.into()));
    assert!(matches!(
        m.to_cbor(),
        Err(ContentError::ReservedExtensionKey { key: 1, .. })
    ));
}

#[test]
fn extension_values_round_trip_in_deterministic_order() {
    let mut m = MimiContent::markdown(SALT, "x")
        .with_sender_uri(ALICE)
        .with_room_uri(ROOM);
    m.extensions
        .other
        .insert(ExtensionKey::from("zz"), Value::Bool(true));
    m.extensions
        .other
        .insert(ExtensionKey::from("a"), Value::Null);
    m.extensions
        .other
        .insert(ExtensionKey::Int(-1), Value::Negative(u64::MAX));
    m.extensions
        .other
        .insert(ExtensionKey::Int(0), Value::Unsigned(u64::MAX));
    m.extensions
        .other
        .insert(ExtensionKey::Int(300), Value::Float(1.5));
    m.extensions.other.insert(
        ExtensionKey::Int(-300),
        Value::Map(BTreeMap::from([
            (MapKey::from("b"), Value::Undefined),
            (MapKey::Bytes(vec![9]), Value::Simple(99)),
            (MapKey::Int(-5), Value::Simple(3)),
            (
                MapKey::Int(5),
                Value::Tag(2, Box::new(Value::Bytes(vec![1; 9]))),
            ),
        ])),
    );
    let bytes = m.to_cbor().unwrap();
    let back = MimiContent::from_cbor(&bytes).unwrap();
    assert_eq!(back, m);
    // Keys are written 0, 1, 2, 300, -1, -300, "a", "zz".
    let order: Vec<_> = back
        .extensions
        .other
        .keys()
        .map(ToString::to_string)
        .collect();
    assert_eq!(order, ["0", "300", "-1", "-300", "\"a\"", "\"zz\""]);
    let expected_prefix = h(&format!(
        "a8 00 1b ffffffffffffffff 01 78 20 {}",
        hex::encode(ALICE)
    ));
    let map_at = bytes
        .windows(expected_prefix.len())
        .position(|w| w == expected_prefix);
    assert!(map_at.is_some());
}

#[test]
fn floats_nan_simple_and_bignums() {
    let with = |value: &str| msg(&format!("a1 18 64 {value}"), SIMPLE_PART);
    // Shortest floats are accepted.
    for ok in [
        "f9 3c00",
        "f9 7e00",
        "f9 7c00",
        "f9 8000",
        "fa 47c35000",
        "fb 3ff199999999999a",
        "f9 0001",
    ] {
        let bytes = with(ok);
        let m = MimiContent::from_cbor(&bytes).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert_eq!(m.to_cbor().unwrap(), bytes, "{ok}");
    }
    // Longer than needed.
    for bad in ["fa 3f800000", "fb 3ff0000000000000", "fb 47efffffe0000000"] {
        assert!(
            matches!(
                decode_err(&with(bad)),
                ContentError::NonShortest { what: "float", .. }
            ),
            "{bad}"
        );
    }
    // Only the half-precision quiet NaN.
    for bad in ["f9 7e01", "f9 fe00", "fa 7fc00000", "fb 7ff8000000000000"] {
        assert!(
            matches!(decode_err(&with(bad)), ContentError::NonCanonicalNaN { .. }),
            "{bad}"
        );
    }
    let mut m = MimiContent::markdown(SALT, "x");
    m.extensions
        .other
        .insert(ExtensionKey::Int(100), Value::Float(f64::NAN));
    let bytes = m.to_cbor().unwrap();
    assert!(
        bytes.windows(6).any(|w| w == h("a1 1864 f97e00")),
        "NaN must be written as f97e00"
    );
    assert!(
        matches!(MimiContent::from_cbor(&bytes).unwrap().extensions.other[&ExtensionKey::Int(100)], Value::Float(f) if f.is_nan())
    );
    // Simple values.
    MimiContent::from_cbor(&with("f8 20")).unwrap();
    MimiContent::from_cbor(&with("f3")).unwrap();
    assert!(matches!(
        decode_err(&with("f8 10")),
        ContentError::Malformed { .. }
    ));
    assert!(matches!(
        decode_err(&with("f8 18")),
        ContentError::Malformed { .. }
    ));
    m.extensions
        .other
        .insert(ExtensionKey::Int(100), Value::Simple(21));
    assert!(matches!(
        m.to_cbor(),
        Err(ContentError::InvalidSimpleValue { value: 21, .. })
    ));
    // Bignums must need more than 8 bytes and have no leading zero.
    MimiContent::from_cbor(&with("c2 49 010000000000000000")).unwrap();
    assert!(matches!(
        decode_err(&with("c2 41 01")),
        ContentError::Bignum { .. }
    ));
    assert!(matches!(
        decode_err(&with("c3 49 000100000000000000")),
        ContentError::Bignum { .. }
    ));
    assert!(matches!(
        decode_err(&with("c2 00")),
        ContentError::Bignum { .. }
    ));
    // Non-shortest tag number.
    assert!(matches!(
        decode_err(&with("d8 01 00")),
        ContentError::NonShortest { what: "tag", .. }
    ));
    // Break outside an indefinite item.
    assert!(matches!(
        decode_err(&with("ff")),
        ContentError::Malformed { .. }
    ));
}

#[test]
fn f16_conversion_is_exact_for_every_non_nan_half() {
    for bits in 0..=u16::MAX {
        let v = float::from_f16(bits);
        if v.is_nan() {
            continue;
        }
        assert_eq!(float::to_f16_exact(v), Some(bits), "bits {bits:04x}");
    }
    assert_eq!(float::to_f16_exact(0.1), None);
    assert_eq!(float::to_f16_exact(65520.0), None);
    assert_eq!(float::to_f16_exact(2f64.powi(-25)), None);
    assert_eq!(float::shortest_width(1.0e10), 4);
    assert_eq!(float::shortest_width(0.1), 8);
}

#[test]
fn derived_values_round_trip() {
    let values = MessageDerivedValues {
        message_id: id(7),
        hub_accepted_timestamp: Timestamp::Millis(1644387225019),
        mls_group_id: vec![0xee; 32],
        sender_leaf_index: 4,
        sender_client_url: "mimi://example.com/d/3b52249d/0003".into(),
        sender_user_url: ALICE.into(),
        room_url: ROOM.into(),
    };
    let bytes = values.to_cbor().unwrap();
    assert_eq!(MessageDerivedValues::from_cbor(&bytes).unwrap(), values);

    let extended = MessageDerivedValues {
        hub_accepted_timestamp: Timestamp::Extended(BTreeMap::from([
            (ExtensionKey::Int(1), Value::Unsigned(1644387225)),
            (ExtensionKey::Int(-3), Value::Unsigned(19)),
        ])),
        ..values
    };
    let bytes = extended.to_cbor().unwrap();
    assert_eq!(&bytes[35..39], &h("d9 03e9 a2")[..]);
    assert_eq!(MessageDerivedValues::from_cbor(&bytes).unwrap(), extended);
    assert!(matches!(
        MimiContent::from_cbor(&bytes),
        Err(ContentError::SaltLength { got: 32, .. })
    ));

    // A text timestamp, and a byte-string key inside extended time.
    let derived = |timestamp: &str| {
        h(&format!(
            "87 5820 {} {timestamp} 41 00 04 60 60 60",
            "01".repeat(32)
        ))
    };
    MessageDerivedValues::from_cbor(&derived("1b 0000017edd1dcdbb")).unwrap();
    let err = MessageDerivedValues::from_cbor(&derived("61 78")).unwrap_err();
    assert!(
        matches!(
            err,
            ContentError::UnexpectedType {
                found: "text string",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("MessageDerivedValues.hubAcceptedTimestamp (byte 35)")
    );
    let err = MessageDerivedValues::from_cbor(&derived("d9 03e9 a1 41 00 00")).unwrap_err();
    assert!(
        matches!(err, ContentError::InvalidExtensionKey { .. }),
        "{err}"
    );
    // Milliseconds must use the shortest form too.
    let err = MessageDerivedValues::from_cbor(&derived("1b 0000000000000001")).unwrap_err();
    assert!(
        matches!(
            err,
            ContentError::NonShortest {
                what: "integer",
                ..
            }
        ),
        "{err}"
    );
}

fn arb_map_key() -> impl Strategy<Value = MapKey> {
    prop_oneof![
        (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).prop_map(MapKey::Int),
        (-30i64..30).prop_map(MapKey::Int),
        proptest::collection::vec(any::<u8>(), 0..6).prop_map(MapKey::Bytes),
        "[a-c]{0,3}|\\PC{0,5}".prop_map(MapKey::Text),
    ]
}

fn arb_extension_key() -> impl Strategy<Value = ExtensionKey> {
    prop_oneof![
        (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).prop_map(ExtensionKey::Int),
        (-30i64..30).prop_map(ExtensionKey::Int),
        "[a-c]{1,3}|\\PC{1,8}".prop_map(ExtensionKey::Text),
    ]
    .prop_filter("keys 1 and 2 have their own fields", |k| {
        !matches!(k, ExtensionKey::Int(EXT_SENDER_URI | EXT_ROOM_URI))
    })
}

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::Unsigned),
        any::<u64>().prop_map(Value::Negative),
        (0u64..30).prop_map(Value::Unsigned),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
        "\\PC{0,8}".prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        Just(Value::Undefined),
        prop_oneof![0u8..20, 32u8..=255].prop_map(Value::Simple),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
            .prop_map(Value::Float),
        any::<f32>()
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(|f| Value::Float(f64::from(f))),
        (any::<u16>().prop_map(float::from_f16))
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(Value::Float),
    ]
}

/// Values with at most three levels of containers (the extensions map is the
/// fourth).
fn arb_value() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(arb_map_key(), inner.clone(), 0..4)
                .prop_map(Value::Map),
            (
                any::<u64>().prop_filter("bignum tags need byte strings", |t| *t != 2 && *t != 3),
                inner
            )
                .prop_map(|(t, v)| Value::Tag(t, Box::new(v))),
        ]
    })
}

fn arb_disposition() -> impl Strategy<Value = Disposition> {
    any::<u8>().prop_map(Disposition::from_u8)
}

fn arb_external() -> impl Strategy<Value = ExternalPart> {
    (
        (
            "\\PC{0,10}",
            "\\PC{0,20}",
            any::<u32>(),
            any::<u64>(),
            any::<u16>(),
        ),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 4),
        (any::<u8>(), "\\PC{0,10}", "\\PC{0,10}"),
    )
        .prop_map(
            |(
                (content_type, url, expires, size, enc_alg),
                mut blobs,
                (hash_alg, description, filename),
            )| {
                ExternalPart {
                    content_type,
                    url,
                    expires,
                    size,
                    enc_alg,
                    content_hash: blobs.pop().unwrap_or_default(),
                    aad: blobs.pop().unwrap_or_default(),
                    nonce: blobs.pop().unwrap_or_default(),
                    key: blobs.pop().unwrap_or_default(),
                    hash_alg,
                    description,
                    filename,
                }
            },
        )
}

fn arb_leaf_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        Just(Part::Null),
        ("\\PC{0,12}", proptest::collection::vec(any::<u8>(), 0..24)).prop_map(
            |(content_type, content)| Part::Single {
                content_type,
                content
            }
        ),
        arb_external().prop_map(Part::External),
    ]
}

fn arb_nested_part() -> impl Strategy<Value = NestedPart> {
    let leaf = (arb_disposition(), "[a-z]{0,2}(-[A-Z]{2})?", arb_leaf_part()).prop_map(
        |(disposition, language, part)| NestedPart {
            disposition,
            language,
            part,
        },
    );
    // Three levels of recursion below the top-level part: depth <= 4.
    leaf.prop_recursive(3, 16, 3, |inner| {
        (
            arb_disposition(),
            "[a-z]{0,2}",
            prop_oneof![
                Just(PartSemantics::ChooseOne),
                Just(PartSemantics::SingleUnit),
                Just(PartSemantics::ProcessAll)
            ],
            proptest::collection::vec(inner, 2..4),
        )
            .prop_map(|(disposition, language, semantics, parts)| NestedPart {
                disposition,
                language,
                part: Part::Multi { semantics, parts },
            })
    })
}

fn arb_id() -> impl Strategy<Value = MessageId> {
    any::<[u8; 32]>().prop_map(MessageId)
}

fn arb_content() -> impl Strategy<Value = MimiContent> {
    (
        (
            any::<[u8; 16]>(),
            proptest::option::of(arb_id()),
            proptest::collection::vec(any::<u8>(), 0..12),
        ),
        (
            proptest::option::of(
                (any::<bool>(), any::<u32>())
                    .prop_map(|(relative, time)| Expiration { relative, time }),
            ),
            proptest::option::of(arb_id()),
        ),
        (
            proptest::option::of("\\PC{0,30}"),
            proptest::option::of("\\PC{0,30}"),
            proptest::collection::btree_map(arb_extension_key(), arb_value(), 0..4),
        ),
        arb_nested_part(),
    )
        .prop_map(
            |(
                (salt, replaces, topic_id),
                (expires, in_reply_to),
                (sender_uri, room_uri, other),
                nested_part,
            )| {
                MimiContent {
                    salt,
                    replaces,
                    topic_id,
                    expires,
                    in_reply_to,
                    extensions: Extensions {
                        sender_uri,
                        room_uri,
                        other,
                    },
                    nested_part,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_content_round_trips(content in arb_content()) {
        let bytes = content.to_cbor().unwrap();
        let back = MimiContent::from_cbor(&bytes).unwrap();
        prop_assert_eq!(&back, &content);
        prop_assert_eq!(back.to_cbor().unwrap(), bytes);
        if let (Some(s), Some(r)) = (&content.extensions.sender_uri, &content.extensions.room_uri) {
            prop_assert_eq!(back.message_id_from_extensions().unwrap(), content.message_id(s, r).unwrap());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(content) = MimiContent::from_cbor(&bytes) {
            prop_assert_eq!(content.to_cbor().unwrap(), bytes.clone());
        }
        if let Ok(values) = MessageDerivedValues::from_cbor(&bytes) {
            prop_assert_eq!(values.to_cbor().unwrap(), bytes);
        }
    }

    #[test]
    fn mutated_valid_encodings_never_panic(
        content in arb_content(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut bytes = content.to_cbor().unwrap();
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        // Whatever is accepted is exactly a deterministic encoding.
        if let Ok(decoded) = MimiContent::from_cbor(&bytes) {
            prop_assert_eq!(decoded.to_cbor().unwrap(), bytes);
        }
    }

    #[test]
    fn key_order_is_encoded_byte_order(a in arb_map_key(), b in arb_map_key()) {
        let enc = |k: &MapKey| {
            let mut out = encode::Out::new();
            match k {
                MapKey::Int(i) => out.int(*i),
                MapKey::Bytes(x) => out.bytes(x),
                MapKey::Text(t) => out.text(t),
            }
            out.finish()
        };
        prop_assert_eq!(a.cmp(&b), enc(&a).cmp(&enc(&b)));
        let ext = |k: &MapKey| match k {
            MapKey::Int(i) => Some(ExtensionKey::Int(*i)),
            MapKey::Text(t) => Some(ExtensionKey::Text(t.clone())),
            MapKey::Bytes(_) => None,
        };
        if let (Some(x), Some(y)) = (ext(&a), ext(&b)) {
            prop_assert_eq!(x.cmp(&y), enc(&a).cmp(&enc(&b)));
        }
    }
}
