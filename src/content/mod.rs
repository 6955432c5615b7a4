//! MIMI content format (draft-ietf-mimi-content-09, whose CDDL and examples are
//! byte-identical to -08's: only prose moved, `franking_base_secret` is now
//! `salt_base_secret`): a typed model of the whole CDDL (`mimi-content.cddl` and
//! `implied.cddl`), a strict decoder, a deterministic encoder and the -08
//! message ID.
//!
//! * [`MimiContent::from_cbor`] never panics and accepts only what the CDDL and
//!   the -08 "CBOR Data Model and Encoding Restrictions" allow: RFC 8949
//!   §4.2.1 deterministic encoding (shortest integers, lengths, tags and
//!   floats; definite lengths; map keys sorted bytewise by their encoding; no
//!   duplicates), valid UTF-8, NestedPart depth ≤ 4, extension depth ≤ 4,
//!   integer map keys within ±(2^53−1), only the canonical NaN.
//! * [`MimiContent::to_cbor`] validates the same rules and emits the
//!   deterministic encoding, so `from_cbor(b)?.to_cbor()? == b`.
//! * [`MimiContent::message_id`] implements the -08 construction
//!   `0x01 || SHA-256(u16(len s) || s || u16(len r) || r || message || salt)[0..31]`.
//!
//! CBOR items are read and written with `minicbor`; the determinism checks
//! (item heads, key order, floats) and everything MIMI-specific are done here.
//! [`MessageDerivedValues`] models `implied.cddl`.

mod decode;
mod derived;
mod encode;
mod error;
mod message_id;
pub mod origin;
mod value;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

pub use derived::{EXTENDED_TIME_TAG, MessageDerivedValues, Timestamp};
pub use error::{ContentError, Location};
pub use message_id::{HASH_ALG_SHA256, compute_message_id};
pub use value::{ExtensionKey, MAX_SAFE_INTEGER, MapKey, Value};

/// Media type of a MIMI content document.
pub const MEDIA_TYPE: &str = "application/mimi-content";
/// Plain text content type every MIMI client must accept.
pub const TEXT_PLAIN: &str = "text/plain;charset=utf-8";
/// GitHub Flavored Markdown for MIMI, which every MIMI client must accept.
pub const TEXT_MARKDOWN: &str = "text/markdown;variant=GFM-MIMI";

/// Maximum nesting of NestedParts (the top-level part is level 1).
pub const MAX_NESTED_PART_DEPTH: usize = 4;
/// Maximum nesting of tags, maps and arrays in the extensions (the extensions
/// map is level 1).
pub const MAX_EXTENSION_DEPTH: usize = 4;

/// Extension key of the sender URI.
pub const EXT_SENDER_URI: i64 = 1;
/// Extension key of the room URI.
pub const EXT_ROOM_URI: i64 = 2;

/// A 32-byte MIMI message ID: a hash algorithm identifier (0x01 = SHA-256)
/// followed by the first 31 bytes of the hash.
///
/// Ordered bytewise ("the lexically lowest message ID sorts earlier").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash algorithm identifier (first byte; 0x01 for SHA-256).
    pub fn hash_alg(&self) -> u8 {
        self.0[0]
    }

    /// Builds an ID from a slice, if it is exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        Self::from_slice(&bytes)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.to_hex())
    }
}

/// Expiration hint: `relative` seconds after reading, or an absolute time in
/// seconds since the UNIX epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Expiration {
    /// `true`: `time` is relative to when the message is read.
    pub relative: bool,
    /// Seconds (`uint .size 4`).
    pub time: u32,
}

/// An unknown disposition value (9..=255), kept as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnknownDisposition(u8);

impl UnknownDisposition {
    /// `Some` for 9..=255 (values 0..=8 have named [`Disposition`]s).
    pub fn new(value: u8) -> Option<Self> {
        (value >= 9).then_some(Self(value))
    }

    /// The wire value.
    pub fn value(self) -> u8 {
        self.0
    }
}

/// Intended handling of a part (IANA "MIMI Disposition Values").
///
/// Receivers treat an unknown value as [`Disposition::Render`]; it is kept so
/// that re-encoding is lossless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// 0
    Unspecified,
    /// 1: render according to local policy.
    Render,
    /// 2: a reaction to another message.
    Reaction,
    /// 3
    Profile,
    /// 4: render inline in the chat.
    Inline,
    /// 5
    Icon,
    /// 6: download instead of rendering immediately.
    Attachment,
    /// 7: a multimedia session or a URI to join one.
    Session,
    /// 8: a sender-generated preview.
    Preview,
    /// 9..=255.
    Unknown(UnknownDisposition),
}

impl Disposition {
    /// Maps a wire value to a disposition (every u8 is valid).
    pub fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Unspecified,
            1 => Self::Render,
            2 => Self::Reaction,
            3 => Self::Profile,
            4 => Self::Inline,
            5 => Self::Icon,
            6 => Self::Attachment,
            7 => Self::Session,
            8 => Self::Preview,
            v => Self::Unknown(UnknownDisposition(v)),
        }
    }

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::Render => 1,
            Self::Reaction => 2,
            Self::Profile => 3,
            Self::Inline => 4,
            Self::Icon => 5,
            Self::Attachment => 6,
            Self::Session => 7,
            Self::Preview => 8,
            Self::Unknown(u) => u.0,
        }
    }
}

/// How the parts of a MultiPart relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartSemantics {
    /// 0: the receiver picks exactly one part (like multipart/alternative).
    ChooseOne,
    /// 1: all parts form one unit (like multipart/related).
    SingleUnit,
    /// 2: process each part individually (like multipart/mixed).
    ProcessAll,
}

impl PartSemantics {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::ChooseOne => 0,
            Self::SingleUnit => 1,
            Self::ProcessAll => 2,
        }
    }

    /// Maps a wire value; `None` for values other than 0, 1, 2.
    pub fn from_u64(value: u64) -> Option<Self> {
        match value {
            0 => Some(Self::ChooseOne),
            1 => Some(Self::SingleUnit),
            2 => Some(Self::ProcessAll),
            _ => None,
        }
    }
}

/// Reference to content stored outside the message (cardinality 2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ExternalPart {
    /// IANA media type of the content.
    pub content_type: String,
    /// Where the content can be fetched.
    pub url: String,
    /// Expiry in seconds since the UNIX epoch, 0 = never.
    pub expires: u32,
    /// Size in octets, 0 = unknown.
    pub size: u64,
    /// IANA AEAD algorithm (1 = AES-128-GCM), 0 = not encrypted.
    pub enc_alg: u16,
    /// AEAD key.
    pub key: Vec<u8>,
    /// AEAD nonce.
    pub nonce: Vec<u8>,
    /// AEAD additional authenticated data.
    pub aad: Vec<u8>,
    /// IANA named-information hash algorithm (1 = sha-256), 0 = none.
    pub hash_alg: u8,
    /// Hash of the content at `url`.
    pub content_hash: Vec<u8>,
    /// Optional text description.
    pub description: String,
    /// Optional suggested file name.
    pub filename: String,
}

/// The body of a NestedPart, chosen by its cardinality.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    /// Cardinality 0: no content (delete, unlike).
    Null,
    /// Cardinality 1: inline content.
    Single {
        /// IANA media type with parameters.
        content_type: String,
        /// The content bytes.
        content: Vec<u8>,
    },
    /// Cardinality 2: external content.
    External(ExternalPart),
    /// Cardinality 3: two or more nested parts.
    Multi {
        /// How the parts relate.
        semantics: PartSemantics,
        /// At least two parts.
        parts: Vec<NestedPart>,
    },
}

/// A (possibly nested) body part.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NestedPart {
    /// Intended handling.
    pub disposition: Disposition,
    /// Empty, or a comma-separated list of RFC 5646 language tags.
    pub language: String,
    /// The part itself.
    pub part: Part,
}

impl NestedPart {
    /// A NullPart with the given disposition and no language.
    pub fn null(disposition: Disposition) -> Self {
        Self {
            disposition,
            language: String::new(),
            part: Part::Null,
        }
    }

    /// A SinglePart with no language.
    pub fn single(
        disposition: Disposition,
        content_type: impl Into<String>,
        content: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            disposition,
            language: String::new(),
            part: Part::Single {
                content_type: content_type.into(),
                content: content.into(),
            },
        }
    }

    /// An ExternalPart with no language.
    pub fn external(disposition: Disposition, external: ExternalPart) -> Self {
        Self {
            disposition,
            language: String::new(),
            part: Part::External(external),
        }
    }

    /// A MultiPart with no language (`parts` must hold at least two parts
    /// for the message to encode).
    pub fn multi(
        disposition: Disposition,
        semantics: PartSemantics,
        parts: Vec<NestedPart>,
    ) -> Self {
        Self {
            disposition,
            language: String::new(),
            part: Part::Multi { semantics, parts },
        }
    }

    /// Sets the language.
    pub fn with_language(mut self, language: impl Into<String>) -> Self {
        self.language = language.into();
        self
    }

    /// Nesting depth: 1 for a part without children.
    pub fn depth(&self) -> usize {
        match &self.part {
            Part::Multi { parts, .. } => 1 + parts.iter().map(NestedPart::depth).max().unwrap_or(0),
            _ => 1,
        }
    }

    /// Number of parts including this one (part indices are 0..count).
    pub fn part_count(&self) -> usize {
        match &self.part {
            Part::Multi { parts, .. } => {
                1 + parts.iter().map(NestedPart::part_count).sum::<usize>()
            }
            _ => 1,
        }
    }

    /// The part with the given implied, zero-based, depth-first part index
    /// (this part is index 0), as referenced by `cid:<index>@local.invalid`.
    pub fn part_by_index(&self, index: usize) -> Option<&NestedPart> {
        if index == 0 {
            return Some(self);
        }
        let Part::Multi { parts, .. } = &self.part else {
            return None;
        };
        let mut base = 1;
        for child in parts {
            let count = child.part_count();
            if index < base + count {
                return child.part_by_index(index - base);
            }
            base += count;
        }
        None
    }
}

/// The `mimiExtensions` map.
///
/// Keys 1 and 2 have their own fields; every other key (registered or private)
/// is kept with its value in `other`, whose order is the encoding order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extensions {
    /// Key 1: sender URI.
    pub sender_uri: Option<String>,
    /// Key 2: room URI.
    pub room_uri: Option<String>,
    /// Every other key. Must not contain `Int(1)` or `Int(2)`.
    pub other: BTreeMap<ExtensionKey, Value>,
}

impl Extensions {
    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.sender_uri.is_none() && self.room_uri.is_none() && self.other.is_empty()
    }
}

/// A MIMI content message (`mimiContent`).
#[derive(Debug, Clone, PartialEq)]
pub struct MimiContent {
    /// Per-message random salt.
    pub salt: [u8; 16],
    /// The first instance of the message this one edits, deletes or unlikes.
    pub replaces: Option<MessageId>,
    /// Topic (thread) identifier; empty = no topic.
    pub topic_id: Vec<u8>,
    /// Expiration hint.
    pub expires: Option<Expiration>,
    /// The specific message version this one replies or reacts to.
    pub in_reply_to: Option<MessageId>,
    /// Extensions.
    pub extensions: Extensions,
    /// The body.
    pub nested_part: NestedPart,
}

/// What a message does, as derived from its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `replaces` + NullPart with a reaction disposition: remove a reaction.
    Unlike,
    /// `replaces` + NullPart: delete (retract) a message.
    Delete,
    /// `replaces` + content: a new version of a message.
    Edit,
    /// Reaction disposition + `inReplyTo`.
    Reaction,
    /// `inReplyTo` with other content.
    Reply,
    /// Anything else.
    Message,
}

impl MimiContent {
    /// A message with the given body and every optional field empty.
    pub fn new(salt: [u8; 16], nested_part: NestedPart) -> Self {
        Self {
            salt,
            replaces: None,
            topic_id: Vec::new(),
            expires: None,
            in_reply_to: None,
            extensions: Extensions::default(),
            nested_part,
        }
    }

    /// A GFM-MIMI Markdown message (`text/markdown;variant=GFM-MIMI`).
    pub fn markdown(salt: [u8; 16], text: &str) -> Self {
        Self::new(
            salt,
            NestedPart::single(Disposition::Render, TEXT_MARKDOWN, text),
        )
    }

    /// A plain text message (`text/plain;charset=utf-8`).
    pub fn plain_text(salt: [u8; 16], text: &str) -> Self {
        Self::new(
            salt,
            NestedPart::single(Disposition::Render, TEXT_PLAIN, text),
        )
    }

    /// A Markdown reply to a specific message version.
    pub fn reply(salt: [u8; 16], in_reply_to: MessageId, text: &str) -> Self {
        Self::markdown(salt, text).with_in_reply_to(in_reply_to)
    }

    /// A Markdown edit of the message whose first instance is `replaces`.
    pub fn edit(salt: [u8; 16], replaces: MessageId, text: &str) -> Self {
        Self::markdown(salt, text).with_replaces(replaces)
    }

    /// Deletes the message whose first instance is `replaces`
    /// (`replaces` + NullPart with disposition render).
    pub fn delete(salt: [u8; 16], replaces: MessageId) -> Self {
        Self::new(salt, NestedPart::null(Disposition::Render)).with_replaces(replaces)
    }

    /// A text reaction (typically one emoji) to a specific message version.
    pub fn reaction(salt: [u8; 16], in_reply_to: MessageId, reaction: &str) -> Self {
        Self::new(
            salt,
            NestedPart::single(Disposition::Reaction, TEXT_PLAIN, reaction),
        )
        .with_in_reply_to(in_reply_to)
    }

    /// Removes the reaction `reaction` that was made to `in_reply_to`
    /// (`replaces` + `inReplyTo` + reaction disposition + NullPart).
    pub fn unlike(salt: [u8; 16], reaction: MessageId, in_reply_to: MessageId) -> Self {
        Self::new(salt, NestedPart::null(Disposition::Reaction))
            .with_replaces(reaction)
            .with_in_reply_to(in_reply_to)
    }

    /// Sets `replaces`.
    pub fn with_replaces(mut self, id: MessageId) -> Self {
        self.replaces = Some(id);
        self
    }

    /// Sets `inReplyTo`.
    pub fn with_in_reply_to(mut self, id: MessageId) -> Self {
        self.in_reply_to = Some(id);
        self
    }

    /// Sets `topicId`.
    pub fn with_topic_id(mut self, topic_id: impl Into<Vec<u8>>) -> Self {
        self.topic_id = topic_id.into();
        self
    }

    /// Sets `expires`.
    pub fn with_expiration(mut self, expires: Expiration) -> Self {
        self.expires = Some(expires);
        self
    }

    /// Sets extension 1 (senderUri).
    pub fn with_sender_uri(mut self, uri: impl Into<String>) -> Self {
        self.extensions.sender_uri = Some(uri.into());
        self
    }

    /// Sets extension 2 (roomUri).
    pub fn with_room_uri(mut self, uri: impl Into<String>) -> Self {
        self.extensions.room_uri = Some(uri.into());
        self
    }

    /// Classifies the message.
    pub fn kind(&self) -> MessageKind {
        let reaction = self.nested_part.disposition == Disposition::Reaction;
        let null = self.nested_part.part == Part::Null;
        match (self.replaces.is_some(), null) {
            (true, true) if reaction => MessageKind::Unlike,
            (true, true) => MessageKind::Delete,
            (true, false) => MessageKind::Edit,
            (false, _) if self.in_reply_to.is_some() && reaction => MessageKind::Reaction,
            (false, _) if self.in_reply_to.is_some() => MessageKind::Reply,
            (false, _) => MessageKind::Message,
        }
    }

    /// Decodes and validates a MIMI content document.
    ///
    /// Never panics. Rejects anything that is not the deterministic encoding
    /// of a value the CDDL and the -08 restrictions allow.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ContentError> {
        decode::decode_content(bytes)
    }

    /// Validates the message and returns its deterministic encoding.
    pub fn to_cbor(&self) -> Result<Vec<u8>, ContentError> {
        encode::validate_content(self)?;
        Ok(encode::encode_content(self))
    }

    /// Checks the rules [`to_cbor`](Self::to_cbor) enforces without encoding.
    pub fn validate(&self) -> Result<(), ContentError> {
        encode::validate_content(self)
    }

    /// The -08 message ID for the given sender and room URIs.
    pub fn message_id(&self, sender_uri: &str, room_uri: &str) -> Result<MessageId, ContentError> {
        let bytes = self.to_cbor()?;
        compute_message_id(sender_uri, room_uri, &bytes, &self.salt)
    }

    /// The message ID using the senderUri (1) and roomUri (2) extensions.
    pub fn message_id_from_extensions(&self) -> Result<MessageId, ContentError> {
        self.message_id_with_fallback(None, None)
    }

    /// The message ID using the extensions where present and otherwise the
    /// implied values `senderUserUrl` and `roomUrl` of the message.
    pub fn message_id_with_implied(
        &self,
        implied: &MessageDerivedValues,
    ) -> Result<MessageId, ContentError> {
        self.message_id_with_fallback(Some(&implied.sender_user_url), Some(&implied.room_url))
    }

    /// The message ID using the extensions where present and otherwise the
    /// given fallback URIs.
    pub fn message_id_with_fallback(
        &self,
        sender_uri: Option<&str>,
        room_uri: Option<&str>,
    ) -> Result<MessageId, ContentError> {
        let sender = self.extensions.sender_uri.as_deref().or(sender_uri).ok_or(
            ContentError::MissingUri {
                what: "the sender URI (extension 1)",
            },
        )?;
        let room =
            self.extensions
                .room_uri
                .as_deref()
                .or(room_uri)
                .ok_or(ContentError::MissingUri {
                    what: "the room URI (extension 2)",
                })?;
        self.message_id(sender, room)
    }
}
