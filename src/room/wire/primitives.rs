//! Small shared TLS types of the MIMI drafts: `bool`, `Uri`, `UTF8String`.

use std::io::{Read, Write};

use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

/// `enum { false(0), true(1) } bool;` — any other byte is a decoding error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsBool(pub bool);

impl Size for TlsBool {
    fn tls_serialized_len(&self) -> usize {
        1
    }
}

impl Serialize for TlsBool {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        u8::from(self.0).tls_serialize(writer)
    }
}

impl Deserialize for TlsBool {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        match u8::tls_deserialize(bytes)? {
            0 => Ok(TlsBool(false)),
            1 => Ok(TlsBool(true)),
            other => Err(tls_codec::Error::DecodingError(format!(
                "bool must be 0 or 1, got {other}"
            ))),
        }
    }
}

impl From<bool> for TlsBool {
    fn from(value: bool) -> Self {
        TlsBool(value)
    }
}

/// `struct { opaque uri<V>; } Uri;`
#[derive(Clone, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct Uri {
    pub uri: VLBytes,
}

impl Uri {
    pub fn new(uri: impl AsRef<str>) -> Self {
        Uri {
            uri: uri.as_ref().as_bytes().to_vec().into(),
        }
    }

    /// The URI text, or `None` when the bytes are not UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.uri.as_slice()).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.uri.as_slice().is_empty()
    }
}

/// `struct { opaque string<V>; } UTF8String;`
#[derive(Clone, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct Utf8String {
    pub string: VLBytes,
}

impl Utf8String {
    pub fn new(s: impl AsRef<str>) -> Self {
        Utf8String {
            string: s.as_ref().as_bytes().to_vec().into(),
        }
    }

    /// The text, or `None` when the bytes are not UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.string.as_slice()).ok()
    }
}

/// Checks that an opaque field the drafts declare as text is UTF-8.
pub(crate) fn check_utf8(field: &str, bytes: &[u8]) -> Result<(), String> {
    std::str::from_utf8(bytes)
        .map(|_| ())
        .map_err(|e| format!("{field} is not UTF-8 (at byte {})", e.valid_up_to()))
}

// tls_codec's VLBytes has no Default; an empty value is the natural one for all three types.
impl Default for Uri {
    fn default() -> Self {
        Uri::new("")
    }
}

impl Default for Utf8String {
    fn default() -> Self {
        Utf8String::new("")
    }
}

/// An empty `opaque<V>`.
pub(crate) fn empty() -> VLBytes {
    VLBytes::new(Vec::new())
}
