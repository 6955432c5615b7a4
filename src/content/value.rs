//! Generic CBOR values, kept for extension fields the bridge does not
//! interpret, and the map-key types whose ordering matches RFC 8949 §4.2.1.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// Largest integer a double represents exactly (2^53 - 1). MIMI content -08
/// requires integer map keys to lie within ±this value.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// An arbitrary CBOR data item, as allowed for the value of an extension.
///
/// Maps may only have integer, text or byte-string keys (MIMI content -08
/// "Data model restrictions"); [`MapKey`] makes other keys unrepresentable and
/// its ordering is the deterministic encoding order, so a [`BTreeMap`] keeps
/// the entries in the order they are encoded in.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Major type 0.
    Unsigned(u64),
    /// Major type 1: the integer `-1 - n`.
    Negative(u64),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// Major type 3.
    Text(String),
    /// Major type 4.
    Array(Vec<Value>),
    /// Major type 5.
    Map(BTreeMap<MapKey, Value>),
    /// Major type 6: tag number and content.
    Tag(u64, Box<Value>),
    /// `false` / `true`.
    Bool(bool),
    /// `null`.
    Null,
    /// `undefined`.
    Undefined,
    /// Any other simple value: 0..=19 or 32..=255.
    Simple(u8),
    /// A float. Encoded in the shortest of half, single and double precision
    /// that keeps the value; every NaN is encoded as `0xf97e00`.
    Float(f64),
}

impl Value {
    /// Container nesting of this value: 0 for a scalar, else 1 + the deepest
    /// child (arrays, maps and tags each count as one level).
    pub fn depth(&self) -> usize {
        match self {
            Value::Array(items) => 1 + items.iter().map(Value::depth).max().unwrap_or(0),
            Value::Map(entries) => 1 + entries.values().map(Value::depth).max().unwrap_or(0),
            Value::Tag(_, inner) => 1 + inner.depth(),
            _ => 0,
        }
    }

    /// The integer value, for [`Value::Unsigned`] and [`Value::Negative`].
    pub fn as_integer(&self) -> Option<i128> {
        match *self {
            Value::Unsigned(n) => Some(i128::from(n)),
            Value::Negative(n) => Some(-1 - i128::from(n)),
            _ => None,
        }
    }

    /// An integer value; `None` outside the CBOR range −2^64..=2^64−1.
    pub fn integer(v: i128) -> Option<Self> {
        if v >= 0 {
            u64::try_from(v).ok().map(Value::Unsigned)
        } else {
            u64::try_from(-1 - v).ok().map(Value::Negative)
        }
    }
}

/// A key of a map nested inside an extension value: integer, text or bytes.
///
/// The [`Ord`] implementation is the bytewise order of the keys' deterministic
/// encodings (unsigned < negative < bytes < text; then by magnitude / length;
/// then by content).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MapKey {
    /// An integer within ±(2^53−1).
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A text string.
    Text(String),
}

/// A key of the `mimiExtensions` map other than 1 (senderUri) and 2 (roomUri):
/// an integer within ±(2^53−1) or a text string of 1..=255 bytes.
///
/// Positive integers are IANA registered; negative integers and text keys are
/// for private use. [`Ord`] is the deterministic encoding order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtensionKey {
    /// An integer key.
    Int(i64),
    /// A text key.
    Text(String),
}

/// Sort key equivalent to the bytewise comparison of encoded CBOR heads:
/// major type, then argument (value or length), then payload.
fn int_rank(v: i64) -> (u8, u64) {
    if v >= 0 {
        (0, v.unsigned_abs())
    } else {
        (1, (-1 - v).unsigned_abs())
    }
}

impl Ord for MapKey {
    fn cmp(&self, other: &Self) -> Ordering {
        fn rank(k: &MapKey) -> (u8, u64, &[u8]) {
            match k {
                MapKey::Int(v) => {
                    let (major, arg) = int_rank(*v);
                    (major, arg, &[])
                }
                MapKey::Bytes(b) => (2, b.len() as u64, b),
                MapKey::Text(t) => (3, t.len() as u64, t.as_bytes()),
            }
        }
        rank(self).cmp(&rank(other))
    }
}

impl PartialOrd for MapKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ExtensionKey {
    fn cmp(&self, other: &Self) -> Ordering {
        fn rank(k: &ExtensionKey) -> (u8, u64, &[u8]) {
            match k {
                ExtensionKey::Int(v) => {
                    let (major, arg) = int_rank(*v);
                    (major, arg, &[])
                }
                ExtensionKey::Text(t) => (3, t.len() as u64, t.as_bytes()),
            }
        }
        rank(self).cmp(&rank(other))
    }
}

impl PartialOrd for ExtensionKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapKey::Int(v) => write!(f, "{v}"),
            MapKey::Bytes(b) => write!(f, "h'{}'", hex::encode(b)),
            MapKey::Text(t) => write!(f, "{t:?}"),
        }
    }
}

impl fmt::Display for ExtensionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionKey::Int(v) => write!(f, "{v}"),
            ExtensionKey::Text(t) => write!(f, "{t:?}"),
        }
    }
}

impl From<i64> for ExtensionKey {
    fn from(v: i64) -> Self {
        ExtensionKey::Int(v)
    }
}

impl From<&str> for ExtensionKey {
    fn from(v: &str) -> Self {
        ExtensionKey::Text(v.to_owned())
    }
}

impl From<i64> for MapKey {
    fn from(v: i64) -> Self {
        MapKey::Int(v)
    }
}

impl From<&str> for MapKey {
    fn from(v: &str) -> Self {
        MapKey::Text(v.to_owned())
    }
}

/// Shortest-form helpers for floats (RFC 8949 §4.2.1: "floating-point values
/// also MUST use the shortest form that preserves the value").
pub(crate) mod float {
    /// The half-precision bits of `v` if it is exactly representable as an
    /// IEEE 754 binary16 (NaN maps to the canonical quiet NaN `0x7e00`).
    pub(crate) fn to_f16_exact(v: f64) -> Option<u16> {
        if v.is_nan() {
            return Some(0x7e00);
        }
        let bits = v.to_bits();
        let sign = if bits >> 63 == 1 { 0x8000u16 } else { 0 };
        if v == 0.0 {
            return Some(sign);
        }
        if v.is_infinite() {
            return Some(sign | 0x7c00);
        }
        let biased = ((bits >> 52) & 0x7ff) as i32;
        if biased == 0 {
            // f64 subnormals are far below the f16 range.
            return None;
        }
        let exp = biased - 1023;
        let full = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
        if (-14..=15).contains(&exp) {
            // Normal f16: 10 mantissa bits, so the low 42 bits must be zero.
            if full & ((1u64 << 42) - 1) != 0 {
                return None;
            }
            let mant = ((full >> 42) & 0x3ff) as u16;
            return Some(sign | (((exp + 15) as u16) << 10) | mant);
        }
        if (-24..=-15).contains(&exp) {
            // Subnormal f16: value = m * 2^-24 with m in 1..=1023.
            let shift = (52 - (exp + 24)) as u32;
            if full & ((1u64 << shift) - 1) != 0 {
                return None;
            }
            return Some(sign | (full >> shift) as u16);
        }
        None
    }

    /// Decodes IEEE 754 binary16 bits.
    pub(crate) fn from_f16(bits: u16) -> f64 {
        let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
        let exp = i32::from((bits >> 10) & 0x1f);
        let mant = f64::from(bits & 0x3ff);
        match exp {
            0 => sign * mant * 2f64.powi(-24),
            31 if mant == 0.0 => sign * f64::INFINITY,
            31 => f64::NAN,
            e => sign * (1.0 + mant / 1024.0) * 2f64.powi(e - 15),
        }
    }

    /// Whether `v` survives a round trip through binary32.
    pub(crate) fn fits_f32(v: f64) -> bool {
        (v as f32) as f64 == v
    }

    /// Width in bytes (2, 4 or 8) of the shortest encoding of `v`.
    pub(crate) fn shortest_width(v: f64) -> usize {
        if to_f16_exact(v).is_some() {
            2
        } else if fits_f32(v) {
            4
        } else {
            8
        }
    }
}
