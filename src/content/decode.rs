//! Strict decoding: a thin layer over `minicbor::Decoder` that checks every
//! item head for RFC 8949 §4.2.1 deterministic encoding before reading it, plus
//! the MIMI-specific structure.

use std::collections::BTreeMap;

use minicbor::Decoder;

use super::error::{ContentError, Location};
use super::value::{ExtensionKey, MAX_SAFE_INTEGER, MapKey, Value, float};
use super::{
    Disposition, EXT_ROOM_URI, EXT_SENDER_URI, Expiration, Extensions, ExternalPart,
    MAX_EXTENSION_DEPTH, MAX_NESTED_PART_DEPTH, MessageId, MimiContent, NestedPart, Part,
    PartSemantics, encode,
};

/// One step of the path reported in errors.
enum Seg {
    Field(&'static str),
    Index(u64),
    Key(String),
}

/// A decoded item head.
#[derive(Clone, Copy)]
pub(crate) struct Head {
    major: u8,
    info: u8,
    /// Value, length, tag number, simple value or float bits.
    arg: u64,
    /// Size of the head in bytes.
    len: usize,
    /// Offset of the first byte.
    start: usize,
}

impl Head {
    /// Offset of the item's first byte.
    pub(crate) fn start(&self) -> usize {
        self.start
    }

    pub(crate) fn type_name(&self) -> &'static str {
        match (self.major, self.info) {
            (0, _) => "unsigned integer",
            (1, _) => "negative integer",
            (2, _) => "byte string",
            (3, _) => "text string",
            (4, _) => "array",
            (5, _) => "map",
            (6, _) => "tag",
            (_, 20 | 21) => "bool",
            (_, 22) => "null",
            (_, 23) => "undefined",
            (_, 25..=27) => "float",
            _ => "simple value",
        }
    }
}

/// How deep generic values may nest, and the error for exceeding it.
#[derive(Clone, Copy)]
pub(crate) struct DepthRule {
    /// Highest level a container may occupy.
    pub(crate) max: usize,
    pub(crate) error: fn(Location, usize) -> ContentError,
}

/// The extension rule: the extensions map is level 1, containers up to 4.
pub(crate) const EXTENSION_DEPTH: DepthRule = DepthRule {
    max: MAX_EXTENSION_DEPTH,
    error: |at, _| ContentError::ExtensionTooDeep { at },
};

pub(crate) struct Reader<'b> {
    dec: Decoder<'b>,
    path: Vec<Seg>,
}

impl<'b> Reader<'b> {
    pub(crate) fn new(input: &'b [u8], root: &'static str) -> Self {
        Self {
            dec: Decoder::new(input),
            path: vec![Seg::Field(root)],
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.dec.position()
    }

    fn input(&self) -> &'b [u8] {
        self.dec.input()
    }

    fn path_string(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                Seg::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
                Seg::Key(k) => out.push_str(&format!("[{k}]")),
            }
        }
        out
    }

    pub(crate) fn loc(&self, offset: usize) -> Location {
        Location {
            path: self.path_string(),
            offset: Some(offset),
        }
    }

    fn within<T>(
        &mut self,
        seg: Seg,
        f: impl FnOnce(&mut Self) -> Result<T, ContentError>,
    ) -> Result<T, ContentError> {
        self.path.push(seg);
        let out = f(self);
        self.path.pop();
        out
    }

    pub(crate) fn field<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, ContentError>,
    ) -> Result<T, ContentError> {
        self.within(Seg::Field(name), f)
    }

    /// Reads and checks the head at the current position without consuming it.
    pub(crate) fn head(&self) -> Result<Head, ContentError> {
        let input = self.input();
        let start = self.pos();
        let truncated = || ContentError::Truncated {
            at: self.loc(start),
        };
        let first = *input.get(start).ok_or_else(truncated)?;
        let major = first >> 5;
        let info = first & 0x1f;
        let (arg, len) = match info {
            0..=23 => (u64::from(info), 1),
            24..=27 => {
                let n = 1usize << (info - 24);
                let bytes = input.get(start + 1..start + 1 + n).ok_or_else(truncated)?;
                let arg = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                (arg, 1 + n)
            }
            28..=30 => {
                return Err(ContentError::Malformed {
                    at: self.loc(start),
                    reason: format!(
                        "reserved additional information {info} (initial byte 0x{first:02x})"
                    ),
                });
            }
            _ => {
                return Err(match major {
                    2..=5 => ContentError::IndefiniteLength {
                        at: self.loc(start),
                    },
                    7 => ContentError::Malformed {
                        at: self.loc(start),
                        reason: "unexpected break (0xff)".into(),
                    },
                    _ => ContentError::Malformed {
                        at: self.loc(start),
                        reason: format!(
                            "additional information 31 is not allowed for major type {major}"
                        ),
                    },
                });
            }
        };
        let head = Head {
            major,
            info,
            arg,
            len,
            start,
        };
        if major == 7 {
            // 24: one-byte simple value; values below 32 are not well-formed.
            // 25..=27: floats, checked when the value is read.
            if info == 24 && arg < 32 {
                return Err(ContentError::Malformed {
                    at: self.loc(start),
                    reason: format!("simple value {arg} in two-byte form is not well-formed"),
                });
            }
        } else {
            let shortest = match info {
                24 => arg >= 24,
                25 => arg > 0xff,
                26 => arg > 0xffff,
                27 => arg > 0xffff_ffff,
                _ => true,
            };
            if !shortest {
                let what = match major {
                    0 | 1 => "integer",
                    6 => "tag",
                    _ => "length",
                };
                return Err(ContentError::NonShortest {
                    at: self.loc(start),
                    what,
                });
            }
        }
        Ok(head)
    }

    fn expect(&self, head: &Head, major: u8, expected: &'static str) -> Result<(), ContentError> {
        if head.major == major {
            Ok(())
        } else {
            Err(ContentError::UnexpectedType {
                at: self.loc(head.start),
                expected,
                found: head.type_name(),
            })
        }
    }

    /// Consumes a head that has no payload.
    fn skip_head(&mut self, head: &Head) {
        self.dec.set_position(head.start + head.len);
    }

    /// Maps an error from minicbor (which should not happen after the head
    /// checks) to a located error.
    fn cbor_error(&self, offset: usize, err: minicbor::decode::Error) -> ContentError {
        if err.is_end_of_input() {
            ContentError::Truncated {
                at: self.loc(offset),
            }
        } else {
            ContentError::Malformed {
                at: self.loc(offset),
                reason: err.to_string(),
            }
        }
    }

    /// Checks that a payload of `len` bytes after `head` is present.
    fn check_payload(&self, head: &Head, len: u64) -> Result<(), ContentError> {
        let available = self.input().len() - (head.start + head.len);
        if len > available as u64 {
            return Err(ContentError::Truncated {
                at: self.loc(head.start),
            });
        }
        Ok(())
    }

    pub(crate) fn uint(&mut self) -> Result<u64, ContentError> {
        let head = self.head()?;
        self.expect(&head, 0, "unsigned integer")?;
        self.dec.u64().map_err(|e| self.cbor_error(head.start, e))
    }

    pub(crate) fn uint_max(&mut self, max: u64) -> Result<u64, ContentError> {
        let start = self.pos();
        let value = self.uint()?;
        if value > max {
            return Err(ContentError::IntegerTooLarge {
                at: self.loc(start),
                value,
                max,
            });
        }
        Ok(value)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'b [u8], ContentError> {
        let head = self.head()?;
        self.expect(&head, 2, "byte string")?;
        self.check_payload(&head, head.arg)?;
        self.dec.bytes().map_err(|e| self.cbor_error(head.start, e))
    }

    pub(crate) fn text(&mut self) -> Result<&'b str, ContentError> {
        let head = self.head()?;
        self.expect(&head, 3, "text string")?;
        self.check_payload(&head, head.arg)?;
        // The payload is present, so the only possible failure is UTF-8.
        self.dec.str().map_err(|_| ContentError::InvalidUtf8 {
            at: self.loc(head.start),
        })
    }

    pub(crate) fn bool(&mut self) -> Result<bool, ContentError> {
        let head = self.head()?;
        if head.major != 7 || !matches!(head.info, 20 | 21) {
            return Err(ContentError::UnexpectedType {
                at: self.loc(head.start),
                expected: "bool",
                found: head.type_name(),
            });
        }
        self.dec.bool().map_err(|e| self.cbor_error(head.start, e))
    }

    /// Consumes a `null` if one is next.
    pub(crate) fn null(&mut self) -> Result<bool, ContentError> {
        let head = self.head()?;
        if head.major == 7 && head.info == 22 {
            self.skip_head(&head);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Reads an array head (at least one byte per item must remain); returns
    /// the item count and the head's offset.
    pub(crate) fn array(&mut self) -> Result<(u64, usize), ContentError> {
        let head = self.head()?;
        self.expect(&head, 4, "array")?;
        self.check_payload(&head, head.arg)?;
        match self
            .dec
            .array()
            .map_err(|e| self.cbor_error(head.start, e))?
        {
            Some(n) => Ok((n, head.start)),
            None => Err(ContentError::IndefiniteLength {
                at: self.loc(head.start),
            }),
        }
    }

    /// Reads an array head and requires exactly `n` items.
    pub(crate) fn array_of(&mut self, n: u64, expected: &'static str) -> Result<(), ContentError> {
        let (got, start) = self.array()?;
        if got != n {
            return Err(ContentError::ArrayLength {
                at: self.loc(start),
                expected,
                got,
            });
        }
        Ok(())
    }

    pub(crate) fn map(&mut self) -> Result<u64, ContentError> {
        let head = self.head()?;
        self.expect(&head, 5, "map")?;
        // Every entry needs at least two bytes.
        self.check_payload(&head, head.arg.saturating_mul(2))?;
        match self.dec.map().map_err(|e| self.cbor_error(head.start, e))? {
            Some(n) => Ok(n),
            None => Err(ContentError::IndefiniteLength {
                at: self.loc(head.start),
            }),
        }
    }

    pub(crate) fn message_id(&mut self) -> Result<MessageId, ContentError> {
        let start = self.pos();
        let bytes = self.bytes()?;
        MessageId::from_slice(bytes).ok_or(ContentError::MessageIdLength {
            at: self.loc(start),
            got: bytes.len(),
        })
    }

    /// Fails if input remains after the top-level item.
    pub(crate) fn finish(&self) -> Result<(), ContentError> {
        let offset = self.pos();
        let count = self.input().len() - offset;
        if count == 0 {
            Ok(())
        } else {
            Err(ContentError::TrailingBytes { offset, count })
        }
    }

    /// Reads the encoded key at the current position and checks that it sorts
    /// after `previous` (the encoded previous key).
    fn check_key_order(
        &self,
        key_start: usize,
        previous: Option<&[u8]>,
    ) -> Result<&'b [u8], ContentError> {
        let key = &self.input()[key_start..self.pos()];
        if let Some(prev) = previous {
            match prev.cmp(key) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(ContentError::DuplicateMapKey {
                        at: self.loc(key_start),
                    });
                }
                std::cmp::Ordering::Greater => {
                    return Err(ContentError::UnsortedMapKeys {
                        at: self.loc(key_start),
                    });
                }
            }
        }
        Ok(key)
    }

    /// An integer map key, limited to ±(2^53−1).
    fn int_key(&mut self, head: &Head) -> Result<i64, ContentError> {
        let value = if head.major == 0 {
            i128::from(head.arg)
        } else {
            -1 - i128::from(head.arg)
        };
        if value.unsigned_abs() > MAX_SAFE_INTEGER as u128 {
            return Err(ContentError::MapKeyOutOfRange {
                at: self.loc(head.start),
                value,
            });
        }
        self.skip_head(head);
        // In range, so the conversion cannot fail.
        Ok(value as i64)
    }

    fn map_key(&mut self) -> Result<MapKey, ContentError> {
        let head = self.head()?;
        match head.major {
            0 | 1 => self.int_key(&head).map(MapKey::Int),
            2 => Ok(MapKey::Bytes(self.bytes()?.to_vec())),
            3 => Ok(MapKey::Text(self.text()?.to_owned())),
            _ => Err(ContentError::InvalidNestedMapKey {
                at: self.loc(head.start),
                found: head.type_name(),
            }),
        }
    }

    /// Reads any data item. `level` is the level a container at this position
    /// occupies; containers deeper than `rule.max` are rejected.
    pub(crate) fn value(&mut self, level: usize, rule: DepthRule) -> Result<Value, ContentError> {
        let head = self.head()?;
        if matches!(head.major, 4..=6) && level > rule.max {
            return Err((rule.error)(self.loc(head.start), rule.max));
        }
        match head.major {
            0 => {
                self.skip_head(&head);
                Ok(Value::Unsigned(head.arg))
            }
            1 => {
                self.skip_head(&head);
                Ok(Value::Negative(head.arg))
            }
            2 => Ok(Value::Bytes(self.bytes()?.to_vec())),
            3 => Ok(Value::Text(self.text()?.to_owned())),
            4 => {
                let (n, _) = self.array()?;
                let mut items = Vec::new();
                for i in 0..n {
                    items.push(self.within(Seg::Index(i), |r| r.value(level + 1, rule))?);
                }
                Ok(Value::Array(items))
            }
            5 => {
                let n = self.map()?;
                let mut entries = BTreeMap::new();
                let mut previous: Option<&[u8]> = None;
                for _ in 0..n {
                    let key_start = self.pos();
                    let key = self.map_key()?;
                    previous = Some(self.check_key_order(key_start, previous)?);
                    let value =
                        self.within(Seg::Key(key.to_string()), |r| r.value(level + 1, rule))?;
                    entries.insert(key, value);
                }
                Ok(Value::Map(entries))
            }
            6 => {
                self.skip_head(&head);
                let content =
                    self.within(Seg::Field("tagContent"), |r| r.value(level + 1, rule))?;
                if head.arg == 2 || head.arg == 3 {
                    check_bignum(&content).map_err(|reason| ContentError::Bignum {
                        at: self.loc(head.start),
                        reason,
                    })?;
                }
                Ok(Value::Tag(head.arg, Box::new(content)))
            }
            _ => self.simple_or_float(&head),
        }
    }

    fn simple_or_float(&mut self, head: &Head) -> Result<Value, ContentError> {
        let value = match head.info {
            20 => Value::Bool(false),
            21 => Value::Bool(true),
            22 => Value::Null,
            23 => Value::Undefined,
            25..=27 => return self.float(head),
            // 0..=19, or 32..=255 in the two-byte form (checked in `head`).
            _ => Value::Simple(head.arg as u8),
        };
        self.skip_head(head);
        Ok(value)
    }

    fn float(&mut self, head: &Head) -> Result<Value, ContentError> {
        let value = match head.info {
            25 => float::from_f16(head.arg as u16),
            26 => f64::from(f32::from_bits(head.arg as u32)),
            _ => f64::from_bits(head.arg),
        };
        if value.is_nan() {
            if head.info != 25 || head.arg != 0x7e00 {
                return Err(ContentError::NonCanonicalNaN {
                    at: self.loc(head.start),
                });
            }
        } else if float::shortest_width(value) < head.len - 1 {
            return Err(ContentError::NonShortest {
                at: self.loc(head.start),
                what: "float",
            });
        }
        self.skip_head(head);
        Ok(Value::Float(value))
    }
}

/// Preferred serialization of bignums (RFC 8949 §3.4.3): a byte string
/// without leading zeros that does not fit in a plain integer.
pub(crate) fn check_bignum(content: &Value) -> Result<(), &'static str> {
    match content {
        Value::Bytes(b) if b.len() <= 8 => {
            Err("fits in a regular integer and must be encoded as one")
        }
        Value::Bytes(b) if b[0] == 0 => Err("has leading zero bytes"),
        Value::Bytes(_) => Ok(()),
        _ => Err("content must be a byte string"),
    }
}

pub(crate) fn decode_content(bytes: &[u8]) -> Result<MimiContent, ContentError> {
    let mut r = Reader::new(bytes, "mimiContent");
    let content = mimi_content(&mut r)?;
    r.finish()?;
    ensure_round_trip(bytes, &encode::encode_content(&content))?;
    Ok(content)
}

/// Safety net: the checks above should make this unreachable.
pub(crate) fn ensure_round_trip(input: &[u8], reencoded: &[u8]) -> Result<(), ContentError> {
    if input == reencoded {
        return Ok(());
    }
    let offset = input
        .iter()
        .zip(reencoded)
        .position(|(a, b)| a != b)
        .unwrap_or(input.len().min(reencoded.len()));
    Err(ContentError::NotDeterministic { offset })
}

fn mimi_content(r: &mut Reader<'_>) -> Result<MimiContent, ContentError> {
    r.array_of(7, "7 (mimiContent)")?;
    let salt = r.field("salt", |r| {
        let start = r.pos();
        let bytes = r.bytes()?;
        <[u8; 16]>::try_from(bytes).map_err(|_| ContentError::SaltLength {
            at: r.loc(start),
            got: bytes.len(),
        })
    })?;
    let replaces = r.field("replaces", |r| optional(r, Reader::message_id))?;
    let topic_id = r.field("topicId", |r| r.bytes().map(<[u8]>::to_vec))?;
    let expires = r.field("expires", |r| {
        optional(r, |r| {
            r.array_of(2, "2 (Expiration)")?;
            let relative = r.field("relative", Reader::bool)?;
            let time = r.field("time", |r| r.uint_max(u64::from(u32::MAX)))? as u32;
            Ok(Expiration { relative, time })
        })
    })?;
    let in_reply_to = r.field("inReplyTo", |r| optional(r, Reader::message_id))?;
    let extensions = r.field("mimiExtensions", extensions)?;
    let nested_part = r.field("nestedPart", |r| nested_part(r, 1))?;
    Ok(MimiContent {
        salt,
        replaces,
        topic_id,
        expires,
        in_reply_to,
        extensions,
        nested_part,
    })
}

fn optional<'b, T>(
    r: &mut Reader<'b>,
    f: impl FnOnce(&mut Reader<'b>) -> Result<T, ContentError>,
) -> Result<Option<T>, ContentError> {
    if r.null()? { Ok(None) } else { f(r).map(Some) }
}

fn extensions(r: &mut Reader<'_>) -> Result<Extensions, ContentError> {
    let n = r.map()?;
    let mut ext = Extensions::default();
    let mut previous: Option<&[u8]> = None;
    for _ in 0..n {
        let key_start = r.pos();
        let head = r.head()?;
        let key = match head.major {
            0 | 1 => ExtensionKey::Int(r.int_key(&head)?),
            3 => {
                let text = r.text()?;
                if text.is_empty() || text.len() > 255 {
                    return Err(ContentError::InvalidExtensionKey {
                        at: r.loc(key_start),
                        reason: format!("text keys must be 1..=255 bytes, got {}", text.len()),
                    });
                }
                ExtensionKey::Text(text.to_owned())
            }
            _ => {
                return Err(ContentError::InvalidExtensionKey {
                    at: r.loc(key_start),
                    reason: format!(
                        "expected an integer or a text string, got {}",
                        head.type_name()
                    ),
                });
            }
        };
        previous = Some(r.check_key_order(key_start, previous)?);
        match key {
            ExtensionKey::Int(EXT_SENDER_URI) => {
                ext.sender_uri = Some(
                    r.within(Seg::Key("1 senderUri".into()), |r| r.text())?
                        .to_owned(),
                );
            }
            ExtensionKey::Int(EXT_ROOM_URI) => {
                ext.room_uri = Some(
                    r.within(Seg::Key("2 roomUri".into()), |r| r.text())?
                        .to_owned(),
                );
            }
            key => {
                // The extensions map is level 1, so a container value is level 2.
                let value = r.within(Seg::Key(key.to_string()), |r| r.value(2, EXTENSION_DEPTH))?;
                ext.other.insert(key, value);
            }
        }
    }
    Ok(ext)
}

fn nested_part(r: &mut Reader<'_>, depth: usize) -> Result<NestedPart, ContentError> {
    let start = r.pos();
    if depth > MAX_NESTED_PART_DEPTH {
        return Err(ContentError::NestedPartTooDeep { at: r.loc(start) });
    }
    let (n, _) = r.array()?;
    if n < 3 {
        return Err(ContentError::ArrayLength {
            at: r.loc(start),
            expected: "at least 3 (NestedPart)",
            got: n,
        });
    }
    let disposition = r.field("disposition", |r| {
        let at = r.pos();
        let value = r.uint()?;
        u8::try_from(value).map(Disposition::from_u8).map_err(|_| {
            ContentError::DispositionOutOfRange {
                at: r.loc(at),
                value,
            }
        })
    })?;
    let language = r.field("language", |r| r.text().map(str::to_owned))?;
    let cardinality = r.field("cardinality", |r| {
        let at = r.pos();
        let value = r.uint()?;
        let expected: (u64, &'static str) = match value {
            0 => (3, "3 (NestedPart with NullPart)"),
            1 => (5, "5 (NestedPart with SinglePart)"),
            2 => (15, "15 (NestedPart with ExternalPart)"),
            3 => (5, "5 (NestedPart with MultiPart)"),
            _ => {
                return Err(ContentError::UnknownCardinality {
                    at: r.loc(at),
                    value,
                });
            }
        };
        Ok((value, expected))
    })?;
    let (cardinality, (len, expected)) = cardinality;
    if n != len {
        return Err(ContentError::ArrayLength {
            at: r.loc(start),
            expected,
            got: n,
        });
    }
    let part = match cardinality {
        0 => Part::Null,
        1 => Part::Single {
            content_type: r.field("contentType", |r| r.text().map(str::to_owned))?,
            content: r.field("content", |r| r.bytes().map(<[u8]>::to_vec))?,
        },
        2 => Part::External(external_part(r)?),
        _ => {
            let semantics = r.field("partSemantics", |r| {
                let at = r.pos();
                let value = r.uint()?;
                PartSemantics::from_u64(value).ok_or(ContentError::UnknownPartSemantics {
                    at: r.loc(at),
                    value,
                })
            })?;
            let parts = r.field("parts", |r| {
                let (m, at) = r.array()?;
                if m < 2 {
                    return Err(ContentError::TooFewParts {
                        at: r.loc(at),
                        got: m,
                    });
                }
                let mut parts = Vec::new();
                for i in 0..m {
                    parts.push(r.within(Seg::Index(i), |r| nested_part(r, depth + 1))?);
                }
                Ok(parts)
            })?;
            Part::Multi { semantics, parts }
        }
    };
    Ok(NestedPart {
        disposition,
        language,
        part,
    })
}

fn external_part(r: &mut Reader<'_>) -> Result<ExternalPart, ContentError> {
    fn text(r: &mut Reader<'_>) -> Result<String, ContentError> {
        r.text().map(str::to_owned)
    }
    fn bytes(r: &mut Reader<'_>) -> Result<Vec<u8>, ContentError> {
        r.bytes().map(<[u8]>::to_vec)
    }
    Ok(ExternalPart {
        content_type: r.field("contentType", text)?,
        url: r.field("url", text)?,
        expires: r.field("expires", |r| r.uint_max(u64::from(u32::MAX)))? as u32,
        size: r.field("size", Reader::uint)?,
        enc_alg: r.field("encAlg", |r| r.uint_max(u64::from(u16::MAX)))? as u16,
        key: r.field("key", bytes)?,
        nonce: r.field("nonce", bytes)?,
        aad: r.field("aad", bytes)?,
        hash_alg: r.field("hashAlg", |r| r.uint_max(u64::from(u8::MAX)))? as u8,
        content_hash: r.field("contentHash", bytes)?,
        description: r.field("description", text)?,
        filename: r.field("filename", text)?,
    })
}
