//! Values derived for a message rather than carried in it (`implied.cddl`).

use std::collections::BTreeMap;

use super::decode::{DepthRule, Reader, ensure_round_trip};
use super::encode::{Out, extension_key_map, tag, validate_value};
use super::error::{ContentError, Location};
use super::value::{ExtensionKey, MAX_SAFE_INTEGER, MapKey};
use super::{MessageId, Value};

/// CBOR tag of RFC 9581 extended time.
pub const EXTENDED_TIME_TAG: u64 = 1001;

/// Nesting allowed in extended-time values (a local limit: the draft sets
/// none, but recursion must be bounded). The tag is level 1, its map level 2.
const DERIVED_VALUE_DEPTH: usize = 16;

const DERIVED_DEPTH: DepthRule = DepthRule {
    max: DERIVED_VALUE_DEPTH,
    error: |at, max| ContentError::ValueTooDeep { at, max },
};

/// The hub accepted timestamp.
#[derive(Debug, Clone, PartialEq)]
pub enum Timestamp {
    /// Milliseconds since the UNIX epoch (`uint .size 8`).
    Millis(u64),
    /// RFC 9581 extended time: `#6.1001({* name => value})`.
    Extended(BTreeMap<ExtensionKey, Value>),
}

/// `MessageDerivedValues`: what a receiver knows about a message besides its
/// content.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDerivedValues {
    /// The message ID.
    pub message_id: MessageId,
    /// When the hub accepted the message.
    pub hub_accepted_timestamp: Timestamp,
    /// MLS group ID.
    pub mls_group_id: Vec<u8>,
    /// Sender's MLS leaf index (`uint .size 4`).
    pub sender_leaf_index: u32,
    /// Sender's client URL.
    pub sender_client_url: String,
    /// Sender's user URL ("From"); the sender URI of the message ID.
    pub sender_user_url: String,
    /// Room URL ("To"); the room URI of the message ID.
    pub room_url: String,
}

impl MessageDerivedValues {
    /// Decodes with the same strict, deterministic-encoding rules as
    /// [`MimiContent::from_cbor`](super::MimiContent::from_cbor).
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ContentError> {
        let mut r = Reader::new(bytes, "MessageDerivedValues");
        let values = derived(&mut r)?;
        r.finish()?;
        ensure_round_trip(bytes, &values.encode())?;
        Ok(values)
    }

    /// Validates and returns the deterministic encoding.
    pub fn to_cbor(&self) -> Result<Vec<u8>, ContentError> {
        if let Timestamp::Extended(map) = &self.hub_accepted_timestamp {
            let path = "MessageDerivedValues.hubAcceptedTimestamp";
            for (key, value) in map {
                let at = || Location::path(format!("{path}[{key}]"));
                match key {
                    ExtensionKey::Int(k) if k.unsigned_abs() > MAX_SAFE_INTEGER as u64 => {
                        return Err(ContentError::MapKeyOutOfRange {
                            at: at(),
                            value: i128::from(*k),
                        });
                    }
                    ExtensionKey::Text(t) if t.is_empty() || t.len() > 255 => {
                        return Err(ContentError::InvalidExtensionKey {
                            at: at(),
                            reason: format!("text keys must be 1..=255 bytes, got {}", t.len()),
                        });
                    }
                    _ => {}
                }
                validate_value(value, 3, DERIVED_VALUE_DEPTH, &format!("{path}[{key}]"))?;
            }
        }
        Ok(self.encode())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Out::new();
        out.array(7);
        out.bytes(self.message_id.as_bytes());
        match &self.hub_accepted_timestamp {
            Timestamp::Millis(ms) => out.uint(*ms),
            Timestamp::Extended(map) => {
                tag(&mut out, EXTENDED_TIME_TAG);
                extension_key_map(&mut out, map);
            }
        }
        out.bytes(&self.mls_group_id);
        out.uint(u64::from(self.sender_leaf_index));
        out.text(&self.sender_client_url);
        out.text(&self.sender_user_url);
        out.text(&self.room_url);
        out.finish()
    }
}

fn derived(r: &mut Reader<'_>) -> Result<MessageDerivedValues, ContentError> {
    fn text(r: &mut Reader<'_>) -> Result<String, ContentError> {
        r.text().map(str::to_owned)
    }
    r.array_of(7, "7 (MessageDerivedValues)")?;
    Ok(MessageDerivedValues {
        message_id: r.field("messageId", Reader::message_id)?,
        hub_accepted_timestamp: r.field("hubAcceptedTimestamp", timestamp)?,
        mls_group_id: r.field("mlsGroupId", |r| r.bytes().map(<[u8]>::to_vec))?,
        sender_leaf_index: r.field("senderLeafIndex", |r| r.uint_max(u64::from(u32::MAX)))? as u32,
        sender_client_url: r.field("senderClientUrl", text)?,
        sender_user_url: r.field("senderUserUrl", text)?,
        room_url: r.field("roomUrl", text)?,
    })
}

fn timestamp(r: &mut Reader<'_>) -> Result<Timestamp, ContentError> {
    let head = r.head()?;
    let found = head.type_name();
    let unexpected = |r: &Reader<'_>, expected| ContentError::UnexpectedType {
        at: r.loc(head.start()),
        expected,
        found,
    };
    match r.value(1, DERIVED_DEPTH)? {
        Value::Unsigned(ms) => Ok(Timestamp::Millis(ms)),
        Value::Tag(EXTENDED_TIME_TAG, inner) => {
            let Value::Map(entries) = *inner else {
                return Err(ContentError::UnexpectedType {
                    at: r.loc(head.start()),
                    expected: "map inside tag 1001 (extended time)",
                    found: "another item",
                });
            };
            let mut map = BTreeMap::new();
            for (key, value) in entries {
                let key = match key {
                    MapKey::Int(v) => ExtensionKey::Int(v),
                    MapKey::Text(t) if !t.is_empty() && t.len() <= 255 => ExtensionKey::Text(t),
                    other => {
                        return Err(ContentError::InvalidExtensionKey {
                            at: r.loc(head.start()),
                            reason: format!(
                                "extended time key {other} is not an int or a tstr of 1..=255 bytes"
                            ),
                        });
                    }
                };
                map.insert(key, value);
            }
            Ok(Timestamp::Extended(map))
        }
        Value::Tag(..) => Err(unexpected(r, "tag 1001 (extended time)")),
        _ => Err(unexpected(
            r,
            "unsigned integer or tag 1001 (extended time)",
        )),
    }
}
