//! Errors of the MIMI content codec.

use std::fmt;

/// Where a problem was found: a path into the message (for example
/// `mimiContent.nestedPart.parts[1].contentType`) and, when decoding, the byte
/// offset of the offending CBOR item in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Dotted path of the field, rooted at the decoded structure's CDDL name.
    pub path: String,
    /// Byte offset of the CBOR item's first byte, when known (decoding only).
    pub offset: Option<usize>,
}

impl Location {
    /// A location known only by its path (used when validating a value before
    /// encoding).
    pub fn path(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            offset: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(offset) => write!(f, "{} (byte {offset})", self.path),
            None => f.write_str(&self.path),
        }
    }
}

/// Everything that can go wrong when decoding, validating or encoding MIMI
/// content or computing a message ID.
///
/// Each located variant names the field and (when decoding) the byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// The input ended in the middle of an item.
    #[error("{at}: unexpected end of input")]
    Truncated { at: Location },
    /// Bytes follow the single top-level item.
    #[error("{count} trailing byte(s) after the top-level item, starting at byte {offset}")]
    TrailingBytes { offset: usize, count: usize },
    /// The input is not well-formed CBOR.
    #[error("{at}: malformed CBOR: {reason}")]
    Malformed { at: Location, reason: String },
    /// Indefinite-length strings, arrays and maps are forbidden (RFC 8949 §4.2.1).
    #[error("{at}: indefinite-length item")]
    IndefiniteLength { at: Location },
    /// An integer, length, tag number or float does not use its shortest form.
    #[error("{at}: non-shortest {what} encoding")]
    NonShortest { at: Location, what: &'static str },
    /// Map keys are not sorted by the bytewise order of their encoding.
    #[error("{at}: map keys not in deterministic order")]
    UnsortedMapKeys { at: Location },
    /// The same map key appears twice.
    #[error("{at}: duplicate map key")]
    DuplicateMapKey { at: Location },
    /// An item has the wrong CBOR type for its place in the CDDL.
    #[error("{at}: expected {expected}, got {found}")]
    UnexpectedType {
        at: Location,
        expected: &'static str,
        found: &'static str,
    },
    /// An array has the wrong number of items.
    #[error("{at}: expected an array of {expected} items, got {got}")]
    ArrayLength {
        at: Location,
        expected: &'static str,
        got: u64,
    },
    /// `salt` is not 16 bytes.
    #[error("{at}: salt must be 16 bytes, got {got}")]
    SaltLength { at: Location, got: usize },
    /// A message ID is not 32 bytes.
    #[error("{at}: message ID must be 32 bytes, got {got}")]
    MessageIdLength { at: Location, got: usize },
    /// An unsigned integer does not fit its `uint .size N` field.
    #[error("{at}: value {value} exceeds the maximum {max} of this field")]
    IntegerTooLarge { at: Location, value: u64, max: u64 },
    /// A disposition outside 0..=255.
    #[error("{at}: disposition {value} is outside 0..=255")]
    DispositionOutOfRange { at: Location, value: u64 },
    /// Cardinality other than 0 (null), 1 (single), 2 (external), 3 (multi).
    #[error("{at}: unknown cardinality {value} (0 null, 1 single, 2 external, 3 multi)")]
    UnknownCardinality { at: Location, value: u64 },
    /// partSemantics other than 0 (chooseOne), 1 (singleUnit), 2 (processAll).
    #[error("{at}: unknown partSemantics {value} (0 chooseOne, 1 singleUnit, 2 processAll)")]
    UnknownPartSemantics { at: Location, value: u64 },
    /// A MultiPart with fewer than two parts.
    #[error("{at}: multipart needs at least 2 parts, got {got}")]
    TooFewParts { at: Location, got: u64 },
    /// A NestedPart nested more than four levels deep.
    #[error("{at}: NestedPart depth exceeds 4")]
    NestedPartTooDeep { at: Location },
    /// Tags, maps and arrays in the extensions nested more than four levels
    /// deep (the extensions map itself is level 1).
    #[error("{at}: extension depth exceeds 4 (the extensions map is level 1)")]
    ExtensionTooDeep { at: Location },
    /// A generic CBOR value nested deeper than the decoder allows.
    #[error("{at}: value nesting exceeds {max} levels")]
    ValueTooDeep { at: Location, max: usize },
    /// An extensions map key that is not an int or a tstr of 1..=255 bytes.
    #[error("{at}: invalid extension key: {reason}")]
    InvalidExtensionKey { at: Location, reason: String },
    /// A map key inside an extension value that is not an int, tstr or bstr.
    #[error("{at}: map keys inside extensions must be integers, text or byte strings, got {found}")]
    InvalidNestedMapKey { at: Location, found: &'static str },
    /// An integer map key that a double cannot represent exactly.
    #[error("{at}: integer map key {value} is outside ±(2^53-1)")]
    MapKeyOutOfRange { at: Location, value: i128 },
    /// Key 1 (senderUri) or 2 (roomUri) put in [`Extensions::other`](super::Extensions::other).
    #[error("{at}: extension key {key} has its own field in Extensions")]
    ReservedExtensionKey { at: Location, key: i64 },
    /// A NaN other than the half-precision quiet NaN `0xf97e00`.
    #[error("{at}: NaN must be encoded as the half-precision quiet NaN 0xf97e00")]
    NonCanonicalNaN { at: Location },
    /// A bignum (tag 2/3) that breaks preferred serialization.
    #[error("{at}: bignum {reason}")]
    Bignum { at: Location, reason: &'static str },
    /// A simple value that has a dedicated form or is reserved.
    #[error("{at}: invalid simple value {value}")]
    InvalidSimpleValue { at: Location, value: u8 },
    /// A text string that is not valid UTF-8.
    #[error("{at}: text string is not valid UTF-8")]
    InvalidUtf8 { at: Location },
    /// Internal safety net: the decoded value re-encodes to different bytes.
    #[error("input is not in deterministic encoding (re-encoding differs from byte {offset})")]
    NotDeterministic { offset: usize },
    /// The sender or room URI needed for the message ID is not known.
    #[error("cannot compute the message ID: {what} is not known")]
    MissingUri { what: &'static str },
    /// A URI longer than the u16 length prefix of the message ID input allows.
    #[error("cannot compute the message ID: {what} is {len} bytes, more than 65535")]
    UriTooLong { what: &'static str, len: usize },
}
