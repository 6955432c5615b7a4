//! Deterministic encoding (RFC 8949 §4.2.1) with `minicbor::Encoder`, which
//! already writes shortest-form integers and definite lengths; map entries are
//! sorted here by their encoded keys and floats shortened here.

use std::collections::BTreeMap;
use std::convert::Infallible;

use minicbor::Encoder;

use super::decode::check_bignum;
use super::error::{ContentError, Location};
use super::value::{ExtensionKey, MAX_SAFE_INTEGER, MapKey, Value, float};
use super::{
    EXT_ROOM_URI, EXT_SENDER_URI, Extensions, MAX_EXTENSION_DEPTH, MAX_NESTED_PART_DEPTH,
    MessageId, MimiContent, NestedPart, Part,
};

type EncResult<'a> = Result<&'a mut Encoder<Vec<u8>>, minicbor::encode::Error<Infallible>>;

/// A CBOR writer into a `Vec<u8>`, which cannot fail.
pub(crate) struct Out {
    enc: Encoder<Vec<u8>>,
}

fn done(result: EncResult<'_>) {
    // Writing into a Vec is infallible and the raw encoder methods used here
    // produce no other error.
    debug_assert!(result.is_ok(), "writing CBOR into a Vec cannot fail");
}

impl Out {
    pub(crate) fn new() -> Self {
        Self {
            enc: Encoder::new(Vec::new()),
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.enc.into_writer()
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.enc.writer_mut().extend_from_slice(bytes);
    }

    pub(crate) fn uint(&mut self, v: u64) {
        done(self.enc.u64(v));
    }

    pub(crate) fn int(&mut self, v: i64) {
        done(self.enc.i64(v));
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        done(self.enc.bytes(v));
    }

    pub(crate) fn text(&mut self, v: &str) {
        done(self.enc.str(v));
    }

    pub(crate) fn array(&mut self, len: usize) {
        done(self.enc.array(len as u64));
    }

    fn map(&mut self, len: usize) {
        done(self.enc.map(len as u64));
    }

    fn bool(&mut self, v: bool) {
        done(self.enc.bool(v));
    }

    fn null(&mut self) {
        done(self.enc.null());
    }

    fn message_id(&mut self, id: Option<&MessageId>) {
        match id {
            Some(id) => self.bytes(id.as_bytes()),
            None => self.null(),
        }
    }

    fn float(&mut self, v: f64) {
        if let Some(bits) = float::to_f16_exact(v) {
            let [hi, lo] = bits.to_be_bytes();
            self.raw(&[0xf9, hi, lo]);
        } else if float::fits_f32(v) {
            done(self.enc.f32(v as f32));
        } else {
            done(self.enc.f64(v));
        }
    }

    pub(crate) fn value(&mut self, value: &Value) {
        match value {
            Value::Unsigned(n) => self.uint(*n),
            Value::Negative(n) => self.negative_arg(*n),
            Value::Bytes(b) => self.bytes(b),
            Value::Text(t) => self.text(t),
            Value::Array(items) => {
                self.array(items.len());
                for item in items {
                    self.value(item);
                }
            }
            Value::Map(entries) => {
                let encoded: Vec<(Vec<u8>, &Value)> = entries
                    .iter()
                    .map(|(k, v)| (encode_map_key(k), v))
                    .collect();
                self.sorted_map(encoded);
            }
            Value::Tag(tag, inner) => {
                done(self.enc.tag(minicbor::data::Tag::new(*tag)));
                self.value(inner);
            }
            Value::Bool(b) => self.bool(*b),
            Value::Null => self.null(),
            Value::Undefined => done(self.enc.undefined()),
            Value::Simple(v) => {
                if *v < 24 {
                    self.raw(&[0xe0 | *v]);
                } else {
                    self.raw(&[0xf8, *v]);
                }
            }
            Value::Float(v) => self.float(*v),
        }
    }

    /// Major type 1 with argument `n` (the integer `-1 - n`), for the whole
    /// range 0..=u64::MAX.
    fn negative_arg(&mut self, n: u64) {
        if let Ok(small) = i64::try_from(n) {
            done(self.enc.i64(-1 - small));
        } else {
            // -1 - n is below i64::MIN: write the head directly.
            let mut head = [0x3b; 9];
            head[1..].copy_from_slice(&n.to_be_bytes());
            self.raw(&head);
        }
    }

    /// Writes a map whose keys are already encoded, sorted bytewise.
    fn sorted_map(&mut self, mut entries: Vec<(Vec<u8>, &Value)>) {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        self.map(entries.len());
        for (key, value) in entries {
            self.raw(&key);
            self.value(value);
        }
    }
}

fn encode_map_key(key: &MapKey) -> Vec<u8> {
    let mut out = Out::new();
    match key {
        MapKey::Int(v) => out.int(*v),
        MapKey::Bytes(b) => out.bytes(b),
        MapKey::Text(t) => out.text(t),
    }
    out.finish()
}

fn encode_extension_key(key: &ExtensionKey) -> Vec<u8> {
    let mut out = Out::new();
    match key {
        ExtensionKey::Int(v) => out.int(*v),
        ExtensionKey::Text(t) => out.text(t),
    }
    out.finish()
}

/// Encodes a message; call [`validate_content`] first for untrusted values.
pub(crate) fn encode_content(c: &MimiContent) -> Vec<u8> {
    let mut out = Out::new();
    out.array(7);
    out.bytes(&c.salt);
    out.message_id(c.replaces.as_ref());
    out.bytes(&c.topic_id);
    match &c.expires {
        Some(e) => {
            out.array(2);
            out.bool(e.relative);
            out.uint(u64::from(e.time));
        }
        None => out.null(),
    }
    out.message_id(c.in_reply_to.as_ref());
    extensions(&mut out, &c.extensions);
    nested_part(&mut out, &c.nested_part);
    out.finish()
}

fn extensions(out: &mut Out, ext: &Extensions) {
    let sender = ext.sender_uri.as_ref().map(|s| Value::Text(s.clone()));
    let room = ext.room_uri.as_ref().map(|s| Value::Text(s.clone()));
    let mut entries: Vec<(Vec<u8>, &Value)> = Vec::new();
    if let Some(v) = &sender {
        entries.push((encode_extension_key(&ExtensionKey::Int(EXT_SENDER_URI)), v));
    }
    if let Some(v) = &room {
        entries.push((encode_extension_key(&ExtensionKey::Int(EXT_ROOM_URI)), v));
    }
    for (k, v) in &ext.other {
        entries.push((encode_extension_key(k), v));
    }
    out.sorted_map(entries);
}

fn nested_part(out: &mut Out, p: &NestedPart) {
    let len = match &p.part {
        Part::Null => 3,
        Part::Single { .. } | Part::Multi { .. } => 5,
        Part::External(_) => 15,
    };
    out.array(len);
    out.uint(u64::from(p.disposition.to_u8()));
    out.text(&p.language);
    match &p.part {
        Part::Null => out.uint(0),
        Part::Single {
            content_type,
            content,
        } => {
            out.uint(1);
            out.text(content_type);
            out.bytes(content);
        }
        Part::External(e) => {
            out.uint(2);
            out.text(&e.content_type);
            out.text(&e.url);
            out.uint(u64::from(e.expires));
            out.uint(e.size);
            out.uint(u64::from(e.enc_alg));
            out.bytes(&e.key);
            out.bytes(&e.nonce);
            out.bytes(&e.aad);
            out.uint(u64::from(e.hash_alg));
            out.bytes(&e.content_hash);
            out.text(&e.description);
            out.text(&e.filename);
        }
        Part::Multi { semantics, parts } => {
            out.uint(3);
            out.uint(u64::from(semantics.to_u8()));
            out.array(parts.len());
            for part in parts {
                nested_part(out, part);
            }
        }
    }
}

/// Checks what the types do not already guarantee.
pub(crate) fn validate_content(c: &MimiContent) -> Result<(), ContentError> {
    validate_extensions(&c.extensions, "mimiContent.mimiExtensions")?;
    validate_part(&c.nested_part, 1, "mimiContent.nestedPart".into())
}

fn validate_part(p: &NestedPart, depth: usize, path: String) -> Result<(), ContentError> {
    if depth > MAX_NESTED_PART_DEPTH {
        return Err(ContentError::NestedPartTooDeep {
            at: Location::path(path),
        });
    }
    if let Part::Multi { parts, .. } = &p.part {
        if parts.len() < 2 {
            return Err(ContentError::TooFewParts {
                at: Location::path(format!("{path}.parts")),
                got: parts.len() as u64,
            });
        }
        for (i, part) in parts.iter().enumerate() {
            validate_part(part, depth + 1, format!("{path}.parts[{i}]"))?;
        }
    }
    Ok(())
}

pub(crate) fn validate_extensions(ext: &Extensions, path: &str) -> Result<(), ContentError> {
    for (key, value) in &ext.other {
        let at = || Location::path(format!("{path}[{key}]"));
        match key {
            ExtensionKey::Int(k @ (EXT_SENDER_URI | EXT_ROOM_URI)) => {
                return Err(ContentError::ReservedExtensionKey { at: at(), key: *k });
            }
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
        validate_value(value, 2, MAX_EXTENSION_DEPTH, &format!("{path}[{key}]"))?;
    }
    Ok(())
}

/// Validates a generic value whose containers sit at `level`.
pub(crate) fn validate_value(
    value: &Value,
    level: usize,
    max: usize,
    path: &str,
) -> Result<(), ContentError> {
    let at = || Location::path(path);
    if matches!(value, Value::Array(_) | Value::Map(_) | Value::Tag(..)) && level > max {
        return Err(if max == MAX_EXTENSION_DEPTH {
            ContentError::ExtensionTooDeep { at: at() }
        } else {
            ContentError::ValueTooDeep { at: at(), max }
        });
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                validate_value(item, level + 1, max, &format!("{path}[{i}]"))?;
            }
        }
        Value::Map(entries) => {
            for (key, item) in entries {
                if let MapKey::Int(k) = key
                    && k.unsigned_abs() > MAX_SAFE_INTEGER as u64
                {
                    return Err(ContentError::MapKeyOutOfRange {
                        at: Location::path(format!("{path}[{key}]")),
                        value: i128::from(*k),
                    });
                }
                validate_value(item, level + 1, max, &format!("{path}[{key}]"))?;
            }
        }
        Value::Tag(tag, inner) => {
            if *tag == 2 || *tag == 3 {
                check_bignum(inner).map_err(|reason| ContentError::Bignum { at: at(), reason })?;
            }
            validate_value(inner, level + 1, max, &format!("{path}.tagContent"))?;
        }
        Value::Simple(v) if (20..32).contains(v) => {
            return Err(ContentError::InvalidSimpleValue {
                at: at(),
                value: *v,
            });
        }
        _ => {}
    }
    Ok(())
}

/// Encodes a map of generic values keyed by extension keys (used for the
/// RFC 9581 extended time of derived values).
pub(crate) fn extension_key_map(out: &mut Out, map: &BTreeMap<ExtensionKey, Value>) {
    let entries = map
        .iter()
        .map(|(k, v)| (encode_extension_key(k), v))
        .collect();
    out.sorted_map(entries);
}

/// Writes a tag head.
pub(crate) fn tag(out: &mut Out, tag: u64) {
    done(out.enc.tag(minicbor::data::Tag::new(tag)));
}
