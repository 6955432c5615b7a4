//! MIMI identifiers (`mimi://` URIs).
//!
//! draft-ietf-mimi-protocol-06 §3 and draft-mahy-mimi-identity-05 §4 name
//! every MIMI entity with a `mimi://` URI:
//!
//! | type      | example                                 | Rust type        |
//! |-----------|-----------------------------------------|------------------|
//! | provider  | `mimi://a.example`                      | [`ProviderId`]   |
//! | user      | `mimi://a.example/u/alice`              | [`UserUri`]      |
//! | client    | `mimi://a.example/d/ClientA1`, `mimi://a.example/d/alice/ClientA1` | [`ClientUri`] |
//! | room      | `mimi://a.example/r/clubhouse`          | [`RoomUri`]      |
//! | MLS group | `mimi://a.example/g/clubhouse`          | [`GroupUri`]     |
//! | pseudonym | `mimi://a.example/p/crazykoala75`       | [`PseudonymUri`] |
//! | team      | `mimi://a.example/t/engineering`        | [`TeamUri`]      |
//!
//! [`MimiUri`] holds any of them.
//!
//! # Syntax accepted
//!
//! * Scheme `mimi` (matched case-insensitively), then `//`.
//! * The authority is the provider: a DNS name, lower-cased on parse, with an
//!   optional `:port` (1..=65535) that is kept. Userinfo, IP literals, IDNs in
//!   U-label form, queries and fragments are rejected.
//! * The first path segment is the type (`u`, `d`, `r`, `g`, `p`, `t`,
//!   lower case). Users, rooms, groups, pseudonyms and teams have exactly one
//!   more segment; clients have one or more.
//! * Segments are percent-decoded and must be non-empty valid UTF-8. Raw
//!   characters must be RFC 3986 `pchar`s (unreserved, sub-delims, `:`, `@`);
//!   anything else must be percent-encoded.
//!
//! # Canonical form
//!
//! [`Display`](fmt::Display), `as_str()` and `to_bytes()` give the canonical
//! form: lower-case scheme and host, and every byte of a segment outside the
//! RFC 3986 unreserved set (`ALPHA / DIGIT / "-" / "." / "_" / "~"`)
//! percent-encoded with upper-case hex. So `parse(format(x)) == x`, and two
//! values are equal exactly when their canonical strings are equal. An input
//! that is not canonical (e.g. `mimi://A.example/u/j%40x` or
//! `.../u/jcapulet1583@example.com`) parses fine, but `as_str()` then differs
//! from the input: hash or sign the received bytes, not `as_str()`, when a
//! draft asks for "the URI as sent" (e.g. the content message ID).
//!
//! # HTTP path parameters
//!
//! The MIMI endpoints carry URIs as one percent-encoded path parameter
//! (`/notify/{roomId}`). `to_path_param()` percent-encodes the whole
//! canonical URI as one segment; `from_path_param()` takes the already
//! decoded parameter (as a router hands it over) with or without the
//! `mimi://` prefix; `from_encoded_path_param()` decodes first.

mod error;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

pub use error::{DomainProblem, UriError};

/// The URI scheme of MIMI identifiers.
pub const SCHEME: &str = "mimi";

/// `mimi://`, the prefix of every canonical MIMI URI.
pub const PREFIX: &str = "mimi://";

const MAX_DOMAIN_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// Every byte except the RFC 3986 unreserved characters.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The type of a MIMI identifier, given by the first path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UriKind {
    /// `mimi://a.example` (no path).
    Provider,
    /// `/u/`
    User,
    /// `/d/` (device)
    Client,
    /// `/r/`
    Room,
    /// `/g/` (MLS group)
    Group,
    /// `/p/`
    Pseudonym,
    /// `/t/`
    Team,
}

impl UriKind {
    /// All kinds, providers first.
    pub const ALL: [UriKind; 7] = [
        UriKind::Provider,
        UriKind::User,
        UriKind::Client,
        UriKind::Room,
        UriKind::Group,
        UriKind::Pseudonym,
        UriKind::Team,
    ];

    /// The type segment (`"u"`, `"d"`, ...); `None` for providers.
    pub const fn type_segment(self) -> Option<&'static str> {
        match self {
            UriKind::Provider => None,
            UriKind::User => Some("u"),
            UriKind::Client => Some("d"),
            UriKind::Room => Some("r"),
            UriKind::Group => Some("g"),
            UriKind::Pseudonym => Some("p"),
            UriKind::Team => Some("t"),
        }
    }

    /// The kind named by a type segment (case-sensitive).
    pub fn from_type_segment(segment: &str) -> Option<Self> {
        match segment {
            "u" => Some(UriKind::User),
            "d" => Some(UriKind::Client),
            "r" => Some(UriKind::Room),
            "g" => Some(UriKind::Group),
            "p" => Some(UriKind::Pseudonym),
            "t" => Some(UriKind::Team),
            _ => None,
        }
    }

    /// A lower-case English name: `"user"`, `"client"`, ...
    pub const fn name(self) -> &'static str {
        match self {
            UriKind::Provider => "provider",
            UriKind::User => "user",
            UriKind::Client => "client",
            UriKind::Room => "room",
            UriKind::Group => "group",
            UriKind::Pseudonym => "pseudonym",
            UriKind::Team => "team",
        }
    }

    /// Whether `n` segments after the type segment are valid for this kind.
    const fn accepts_segment_count(self, n: usize) -> bool {
        match self {
            UriKind::Provider => n == 0,
            UriKind::Client => n >= 1,
            _ => n == 1,
        }
    }

    /// The segment-count rule, for error messages.
    pub(crate) const fn arity(self) -> &'static str {
        match self {
            UriKind::Provider => "no path",
            UriKind::User => "exactly one segment after /u/",
            UriKind::Client => "at least one segment after /d/",
            UriKind::Room => "exactly one segment after /r/",
            UriKind::Group => "exactly one segment after /g/",
            UriKind::Pseudonym => "exactly one segment after /p/",
            UriKind::Team => "exactly one segment after /t/",
        }
    }
}

impl fmt::Display for UriKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

// ---------------------------------------------------------------------------
// Shared parsing helpers
// ---------------------------------------------------------------------------

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 §3.1).
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Whether `s` starts with `<scheme>://`.
fn has_scheme(s: &str) -> bool {
    s.split_once(':')
        .is_some_and(|(scheme, rest)| is_scheme(scheme) && rest.starts_with("//"))
}

/// RFC 3986 `pchar` minus `pct-encoded`, for ASCII characters.
fn is_raw_pchar(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '_' | '~' // unreserved
            | '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | ';' | '=' // sub-delims
            | ':' | '@'
        )
}

/// Splits `mimi://authority[/path]` into the provider and the path after the
/// first `/` (`None` when there is no path at all).
fn split_uri(s: &str) -> Result<(ProviderId, Option<&str>), UriError> {
    if s.is_empty() {
        return Err(UriError::Empty);
    }
    let Some((scheme, after)) = s.split_once(':') else {
        return Err(UriError::MissingScheme);
    };
    let Some(rest) = after.strip_prefix("//").filter(|_| is_scheme(scheme)) else {
        return Err(UriError::MissingScheme);
    };
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(UriError::UnsupportedScheme(scheme.to_owned()));
    }
    if rest.contains(['?', '#']) {
        return Err(UriError::QueryOrFragment);
    }
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (rest, None),
    };
    Ok((ProviderId::parse_authority(authority)?, path))
}

/// Parses a whole MIMI URI.
fn parse_uri(s: &str) -> Result<MimiUri, UriError> {
    let (provider, path) = split_uri(s)?;
    let Some(path) = path else {
        return Ok(MimiUri::Provider(provider));
    };
    let mut raw = path.split('/');
    let type_segment = raw.next().unwrap_or_default();
    if type_segment.is_empty() {
        return Err(UriError::EmptySegment { position: 1 });
    }
    let kind = UriKind::from_type_segment(type_segment)
        .ok_or_else(|| UriError::UnknownType(type_segment.to_owned()))?;
    let segments = raw
        .enumerate()
        .map(|(i, segment)| decode_segment(segment, i + 2))
        .collect::<Result<Vec<_>, _>>()?;
    MimiUri::from_parts(provider, kind, segments)
}

/// Percent-decodes one path segment, validating it strictly.
fn decode_segment(raw: &str, position: usize) -> Result<String, UriError> {
    if raw.is_empty() {
        return Err(UriError::EmptySegment { position });
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let hi = chars.next().and_then(|c| c.to_digit(16));
            let lo = chars.next().and_then(|c| c.to_digit(16));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(UriError::InvalidPercentEncoding {
                    segment: raw.to_owned(),
                    position,
                });
            };
            out.extend(u8::try_from(hi * 16 + lo).ok());
        } else if is_raw_pchar(c) {
            out.extend(u8::try_from(c).ok());
        } else {
            return Err(UriError::InvalidCharacter { ch: c, position });
        }
    }
    String::from_utf8(out).map_err(|_| UriError::SegmentNotUtf8 { position })
}

/// Checks that every segment is non-empty (positions start after the type).
fn check_segments<S: AsRef<str>>(segments: &[S]) -> Result<(), UriError> {
    match segments.iter().position(|s| s.as_ref().is_empty()) {
        Some(i) => Err(UriError::EmptySegment { position: i + 2 }),
        None => Ok(()),
    }
}

/// Builds the canonical string of a typed URI.
fn canonical<S: AsRef<str>>(provider: &ProviderId, kind: UriKind, segments: &[S]) -> String {
    let mut uri = provider.as_str().to_owned();
    if let Some(letter) = kind.type_segment() {
        uri.push('/');
        uri.push_str(letter);
    }
    for segment in segments {
        uri.push('/');
        uri.extend(utf8_percent_encode(segment.as_ref(), NOT_UNRESERVED));
    }
    uri
}

/// Adds `mimi://` to a decoded path parameter that lacks a scheme.
fn with_scheme(decoded: &str) -> Cow<'_, str> {
    if has_scheme(decoded) {
        Cow::Borrowed(decoded)
    } else {
        Cow::Owned(format!("{PREFIX}{decoded}"))
    }
}

/// Percent-decodes a raw path parameter.
fn decode_path_param(raw: &str) -> Result<Cow<'_, str>, UriError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| UriError::NotUtf8)
}

// ---------------------------------------------------------------------------
// Trait impls shared by every identifier type
// ---------------------------------------------------------------------------

macro_rules! common_impls {
    ($name:ident) => {
        impl $name {
            /// The canonical URI string.
            pub fn as_str(&self) -> &str {
                &self.uri
            }

            /// The canonical URI string, consuming `self`.
            pub fn into_string(self) -> String {
                self.uri
            }

            /// The canonical URI as UTF-8 bytes (as borrowed bytes).
            pub fn as_bytes(&self) -> &[u8] {
                self.uri.as_bytes()
            }

            /// The canonical URI as UTF-8 bytes, for a TLS `opaque uri<V>`.
            pub fn to_bytes(&self) -> Vec<u8> {
                self.uri.as_bytes().to_vec()
            }

            /// Parses the UTF-8 bytes of a TLS `opaque uri<V>`.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, UriError> {
                if bytes.is_empty() {
                    return Err(UriError::Empty);
                }
                std::str::from_utf8(bytes)
                    .map_err(|_| UriError::NotUtf8)?
                    .parse()
            }

            /// The canonical URI percent-encoded as a single HTTP path
            /// segment, e.g. `mimi%3A%2F%2Fa.example%2Fr%2Fclubhouse`.
            pub fn to_path_param(&self) -> String {
                utf8_percent_encode(&self.uri, NOT_UNRESERVED).to_string()
            }

            /// Parses a raw (still percent-encoded) path parameter: decodes
            /// it once, then calls `from_path_param`.
            pub fn from_encoded_path_param(raw: &str) -> Result<Self, UriError> {
                Self::from_path_param(&decode_path_param(raw)?)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.uri)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.uri).finish()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.uri
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.uri
            }
        }

        impl TryFrom<&str> for $name {
            type Error = UriError;
            fn try_from(value: &str) -> Result<Self, UriError> {
                value.parse()
            }
        }

        impl TryFrom<String> for $name {
            type Error = UriError;
            fn try_from(value: String) -> Result<Self, UriError> {
                value.parse()
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.uri)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(de::Error::custom)
            }
        }
    };
}

// ---------------------------------------------------------------------------
// ProviderId
// ---------------------------------------------------------------------------

/// A MIMI provider: the host (and optional port) of a MIMI URI.
///
/// Canonical form `mimi://a.example` (or `mimi://a.example:8443`); use
/// [`domain`](Self::domain) for the bare DNS name (TLS, `Host`, `From:
/// mimi@...`) and [`authority`](Self::authority) for `host[:port]`.
///
/// [`FromStr`] accepts both `mimi://a.example` and a bare `a.example[:port]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderId {
    uri: String,
    domain: String,
    port: Option<u16>,
}

impl ProviderId {
    /// Builds a provider from a bare `host[:port]` (no scheme). The host is
    /// lower-cased.
    pub fn new(authority: &str) -> Result<Self, UriError> {
        Self::parse_authority(authority)
    }

    fn parse_authority(authority: &str) -> Result<Self, UriError> {
        if authority.is_empty() {
            return Err(UriError::EmptyProvider);
        }
        if authority.contains('@') {
            return Err(UriError::UserinfoNotAllowed);
        }
        if authority.starts_with('[') {
            // IP-literal (RFC 3986 §3.2.2): not a DNS name.
            return Err(UriError::InvalidDomain {
                domain: authority.to_owned(),
                problem: DomainProblem::InvalidCharacter('['),
            });
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(UriError::EmptyProvider);
        }
        let domain = validate_domain(host).map_err(|problem| UriError::InvalidDomain {
            domain: host.to_owned(),
            problem,
        })?;
        let port = port
            .map(|port| {
                port.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| port.parse::<u16>().ok())
                    .flatten()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| UriError::InvalidPort {
                        authority: authority.to_owned(),
                        port: port.to_owned(),
                    })
            })
            .transpose()?;
        let uri = match port {
            Some(port) => format!("{PREFIX}{domain}:{port}"),
            None => format!("{PREFIX}{domain}"),
        };
        Ok(Self { uri, domain, port })
    }

    /// The lower-cased DNS name, without the port.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The port, if the URI had one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// `domain[:port]`, i.e. the canonical URI without `mimi://`.
    pub fn authority(&self) -> &str {
        self.uri.strip_prefix(PREFIX).unwrap_or(&self.uri)
    }

    /// Returns `self`, so that every identifier type has `provider()`.
    pub fn provider(&self) -> &ProviderId {
        self
    }

    /// Parses a decoded path parameter: `mimi://a.example` or `a.example`.
    pub fn from_path_param(decoded: &str) -> Result<Self, UriError> {
        decoded.parse()
    }
}

/// Validates and lower-cases a DNS name (RFC 1035 / RFC 1123 label syntax).
fn validate_domain(host: &str) -> Result<String, DomainProblem> {
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.')))
    {
        return Err(DomainProblem::InvalidCharacter(c));
    }
    let domain = host.to_ascii_lowercase();
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(DomainProblem::TooLong(domain.len()));
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(DomainProblem::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(DomainProblem::LabelTooLong(label.to_owned()));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainProblem::HyphenAtLabelEdge(label.to_owned()));
        }
    }
    Ok(domain)
}

impl FromStr for ProviderId {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, UriError> {
        if s.contains("://") {
            MimiUri::from_str(s)?.try_into()
        } else {
            Self::parse_authority(s)
        }
    }
}

impl TryFrom<MimiUri> for ProviderId {
    type Error = UriError;

    fn try_from(uri: MimiUri) -> Result<Self, UriError> {
        match uri {
            MimiUri::Provider(provider) => Ok(provider),
            other => Err(UriError::WrongKind {
                expected: UriKind::Provider,
                found: other.kind(),
            }),
        }
    }
}

impl From<ProviderId> for MimiUri {
    fn from(provider: ProviderId) -> Self {
        MimiUri::Provider(provider)
    }
}

common_impls!(ProviderId);

// ---------------------------------------------------------------------------
// Single-segment identifiers
// ---------------------------------------------------------------------------

macro_rules! single_segment_uri {
    ($(#[$meta:meta])* $name:ident, $kind:ident, $example:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            uri: String,
            provider: ProviderId,
            local: String,
        }

        impl $name {
            /// The kind of identifier this type holds.
            pub const KIND: UriKind = UriKind::$kind;

            /// Builds the identifier from a provider and a local part (any
            /// non-empty string; it is percent-encoded as needed).
            pub fn new(provider: ProviderId, local: &str) -> Result<Self, UriError> {
                check_segments(&[local])?;
                Ok(Self::from_parts(provider, local.to_owned()))
            }

            /// `local` must be non-empty.
            fn from_parts(provider: ProviderId, local: String) -> Self {
                let uri = canonical(&provider, UriKind::$kind, std::slice::from_ref(&local));
                Self { uri, provider, local }
            }

            /// The provider (URI host).
            pub fn provider(&self) -> &ProviderId {
                &self.provider
            }

            /// The decoded local part (the segment after the type).
            pub fn local(&self) -> &str {
                &self.local
            }

            /// The decoded segments after the type (always exactly one).
            pub fn segments(&self) -> &[String] {
                std::slice::from_ref(&self.local)
            }
        }

        impl FromStr for $name {
            type Err = UriError;

            #[doc = concat!("Parses e.g. `", $example, "`.")]
            fn from_str(s: &str) -> Result<Self, UriError> {
                MimiUri::from_str(s)?.try_into()
            }
        }

        impl TryFrom<MimiUri> for $name {
            type Error = UriError;

            fn try_from(uri: MimiUri) -> Result<Self, UriError> {
                match uri {
                    MimiUri::$kind(value) => Ok(value),
                    other => Err(UriError::WrongKind {
                        expected: UriKind::$kind,
                        found: other.kind(),
                    }),
                }
            }
        }

        impl From<$name> for MimiUri {
            fn from(value: $name) -> Self {
                MimiUri::$kind(value)
            }
        }

        common_impls!($name);
    };
}

macro_rules! strict_path_param {
    ($name:ident) => {
        impl $name {
            /// Parses a decoded path parameter, with or without `mimi://`
            /// (e.g. `a.example/u/alice`).
            pub fn from_path_param(decoded: &str) -> Result<Self, UriError> {
                with_scheme(decoded).parse()
            }
        }
    };
}

single_segment_uri!(
    /// A user: `mimi://a.example/u/alice`.
    UserUri,
    User,
    "mimi://a.example/u/alice"
);
strict_path_param!(UserUri);

single_segment_uri!(
    /// A room: `mimi://a.example/r/clubhouse`.
    RoomUri,
    Room,
    "mimi://a.example/r/clubhouse"
);

impl RoomUri {
    /// Parses a decoded path parameter, with or without `mimi://`
    /// (e.g. `a.example/r/clubhouse`).
    ///
    /// Because protocol-06 §3.5 shows `/notify/a.example/clubhouse`, a path
    /// with a single segment that is not a type letter (`a.example/clubhouse`)
    /// is also read as a room.
    pub fn from_path_param(decoded: &str) -> Result<Self, UriError> {
        let full = with_scheme(decoded);
        match full.parse() {
            Err(err @ UriError::UnknownType(_)) => {
                let Ok((provider, Some(path))) = split_uri(&full) else {
                    return Err(err);
                };
                if path.contains('/') {
                    return Err(err);
                }
                let local = decode_segment(path, 1)?;
                Ok(Self::from_parts(provider, local))
            }
            other => other,
        }
    }
}

single_segment_uri!(
    /// An MLS group: `mimi://a.example/g/clubhouse`.
    GroupUri,
    Group,
    "mimi://a.example/g/clubhouse"
);
strict_path_param!(GroupUri);

impl GroupUri {
    /// The group URI with the same provider and local part as `room`
    /// (protocol-06 §3.1 pairs room `clubhouse` with group `clubhouse`).
    pub fn for_room(room: &RoomUri) -> Self {
        Self::from_parts(room.provider.clone(), room.local.clone())
    }
}

single_segment_uri!(
    /// A pseudonym (identity-05): `mimi://a.example/p/crazykoala75`.
    PseudonymUri,
    Pseudonym,
    "mimi://a.example/p/crazykoala75"
);
strict_path_param!(PseudonymUri);

single_segment_uri!(
    /// A team or workspace (identity-05): `mimi://a.example/t/engineering`.
    TeamUri,
    Team,
    "mimi://a.example/t/engineering"
);
strict_path_param!(TeamUri);

// ---------------------------------------------------------------------------
// ClientUri
// ---------------------------------------------------------------------------

/// A client (device): `mimi://a.example/d/ClientA1` or
/// `mimi://a.example/d/alice/ClientA1` (one or more segments).
///
/// The bridge issues its proxy clients as `/d/<user>/<device>`; see
/// [`for_user`](Self::for_user) and [`user_hint`](Self::user_hint).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientUri {
    uri: String,
    provider: ProviderId,
    segments: Vec<String>,
}

impl ClientUri {
    /// The kind of identifier this type holds.
    pub const KIND: UriKind = UriKind::Client;

    /// Builds a client URI from one or more non-empty segments.
    pub fn new(provider: ProviderId, segments: &[&str]) -> Result<Self, UriError> {
        if segments.is_empty() {
            return Err(UriError::WrongSegmentCount {
                kind: UriKind::Client,
                found: 0,
            });
        }
        check_segments(segments)?;
        Ok(Self::from_parts(
            provider,
            segments.iter().map(|&s| s.to_owned()).collect(),
        ))
    }

    /// `/d/<user local part>/<device>` on the user's provider.
    pub fn for_user(user: &UserUri, device: &str) -> Result<Self, UriError> {
        Self::new(user.provider.clone(), &[user.local(), device])
    }

    /// `segments` must be non-empty and hold no empty string.
    fn from_parts(provider: ProviderId, segments: Vec<String>) -> Self {
        let uri = canonical(&provider, UriKind::Client, &segments);
        Self {
            uri,
            provider,
            segments,
        }
    }

    /// The provider (URI host).
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }

    /// The decoded segments after `/d/` (at least one).
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The decoded segments joined with `/` (not re-encoded, so ambiguous if
    /// a segment contains `/`: use [`segments`](Self::segments) to compare).
    pub fn local(&self) -> String {
        self.segments.join("/")
    }

    /// The last segment (the device part).
    pub fn device(&self) -> &str {
        self.segments.last().map_or("", String::as_str)
    }

    /// For the two-segment form `/d/alice/dev1`, the user `/u/alice` on the
    /// same provider. `None` for any other number of segments. This is only
    /// a hint: the drafts do not tie client URIs to user URIs.
    pub fn user_hint(&self) -> Option<UserUri> {
        match self.segments.as_slice() {
            [user, _device] => Some(UserUri::from_parts(self.provider.clone(), user.clone())),
            _ => None,
        }
    }
}

impl FromStr for ClientUri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, UriError> {
        MimiUri::from_str(s)?.try_into()
    }
}

impl TryFrom<MimiUri> for ClientUri {
    type Error = UriError;

    fn try_from(uri: MimiUri) -> Result<Self, UriError> {
        match uri {
            MimiUri::Client(client) => Ok(client),
            other => Err(UriError::WrongKind {
                expected: UriKind::Client,
                found: other.kind(),
            }),
        }
    }
}

impl From<ClientUri> for MimiUri {
    fn from(client: ClientUri) -> Self {
        MimiUri::Client(client)
    }
}

common_impls!(ClientUri);
strict_path_param!(ClientUri);

// ---------------------------------------------------------------------------
// MimiUri
// ---------------------------------------------------------------------------

/// Any MIMI identifier.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MimiUri {
    /// `mimi://a.example`
    Provider(ProviderId),
    /// `mimi://a.example/u/alice`
    User(UserUri),
    /// `mimi://a.example/d/ClientA1`
    Client(ClientUri),
    /// `mimi://a.example/r/clubhouse`
    Room(RoomUri),
    /// `mimi://a.example/g/clubhouse`
    Group(GroupUri),
    /// `mimi://a.example/p/crazykoala75`
    Pseudonym(PseudonymUri),
    /// `mimi://a.example/t/engineering`
    Team(TeamUri),
}

impl MimiUri {
    /// Checks the segment count for `kind` and builds the value.
    fn from_parts(
        provider: ProviderId,
        kind: UriKind,
        segments: Vec<String>,
    ) -> Result<Self, UriError> {
        if !kind.accepts_segment_count(segments.len()) {
            return Err(UriError::WrongSegmentCount {
                kind,
                found: segments.len(),
            });
        }
        check_segments(&segments)?;
        if kind == UriKind::Client {
            return Ok(MimiUri::Client(ClientUri::from_parts(provider, segments)));
        }
        let local = segments.into_iter().next();
        Ok(match (kind, local) {
            (UriKind::Provider, _) => MimiUri::Provider(provider),
            (UriKind::User, Some(local)) => MimiUri::User(UserUri::from_parts(provider, local)),
            (UriKind::Room, Some(local)) => MimiUri::Room(RoomUri::from_parts(provider, local)),
            (UriKind::Group, Some(local)) => MimiUri::Group(GroupUri::from_parts(provider, local)),
            (UriKind::Pseudonym, Some(local)) => {
                MimiUri::Pseudonym(PseudonymUri::from_parts(provider, local))
            }
            (UriKind::Team, Some(local)) => MimiUri::Team(TeamUri::from_parts(provider, local)),
            // Not reached: clients are handled above and counts were checked.
            (kind, _) => return Err(UriError::WrongSegmentCount { kind, found: 0 }),
        })
    }

    /// The identifier type.
    pub fn kind(&self) -> UriKind {
        match self {
            MimiUri::Provider(_) => UriKind::Provider,
            MimiUri::User(_) => UriKind::User,
            MimiUri::Client(_) => UriKind::Client,
            MimiUri::Room(_) => UriKind::Room,
            MimiUri::Group(_) => UriKind::Group,
            MimiUri::Pseudonym(_) => UriKind::Pseudonym,
            MimiUri::Team(_) => UriKind::Team,
        }
    }

    /// The provider (URI host).
    pub fn provider(&self) -> &ProviderId {
        match self {
            MimiUri::Provider(p) => p,
            MimiUri::User(u) => u.provider(),
            MimiUri::Client(c) => c.provider(),
            MimiUri::Room(r) => r.provider(),
            MimiUri::Group(g) => g.provider(),
            MimiUri::Pseudonym(p) => p.provider(),
            MimiUri::Team(t) => t.provider(),
        }
    }

    /// The decoded segments after the type (empty for a provider).
    pub fn segments(&self) -> &[String] {
        match self {
            MimiUri::Provider(_) => &[],
            MimiUri::User(u) => u.segments(),
            MimiUri::Client(c) => c.segments(),
            MimiUri::Room(r) => r.segments(),
            MimiUri::Group(g) => g.segments(),
            MimiUri::Pseudonym(p) => p.segments(),
            MimiUri::Team(t) => t.segments(),
        }
    }

    /// The canonical URI string.
    pub fn as_str(&self) -> &str {
        match self {
            MimiUri::Provider(p) => p.as_str(),
            MimiUri::User(u) => u.as_str(),
            MimiUri::Client(c) => c.as_str(),
            MimiUri::Room(r) => r.as_str(),
            MimiUri::Group(g) => g.as_str(),
            MimiUri::Pseudonym(p) => p.as_str(),
            MimiUri::Team(t) => t.as_str(),
        }
    }

    /// The canonical URI string, consuming `self`.
    pub fn into_string(self) -> String {
        match self {
            MimiUri::Provider(p) => p.into_string(),
            MimiUri::User(u) => u.into_string(),
            MimiUri::Client(c) => c.into_string(),
            MimiUri::Room(r) => r.into_string(),
            MimiUri::Group(g) => g.into_string(),
            MimiUri::Pseudonym(p) => p.into_string(),
            MimiUri::Team(t) => t.into_string(),
        }
    }

    /// The canonical URI as UTF-8 bytes (as borrowed bytes).
    pub fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }

    /// The canonical URI as UTF-8 bytes, for a TLS `opaque uri<V>`.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    /// Parses the UTF-8 bytes of a TLS `opaque uri<V>`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, UriError> {
        if bytes.is_empty() {
            return Err(UriError::Empty);
        }
        std::str::from_utf8(bytes)
            .map_err(|_| UriError::NotUtf8)?
            .parse()
    }

    /// The canonical URI percent-encoded as a single HTTP path segment.
    pub fn to_path_param(&self) -> String {
        utf8_percent_encode(self.as_str(), NOT_UNRESERVED).to_string()
    }

    /// Parses a decoded path parameter, with or without `mimi://`.
    pub fn from_path_param(decoded: &str) -> Result<Self, UriError> {
        with_scheme(decoded).parse()
    }

    /// Parses a raw (still percent-encoded) path parameter.
    pub fn from_encoded_path_param(raw: &str) -> Result<Self, UriError> {
        Self::from_path_param(&decode_path_param(raw)?)
    }
}

impl FromStr for MimiUri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, UriError> {
        parse_uri(s)
    }
}

impl fmt::Display for MimiUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for MimiUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MimiUri::Provider(p) => f.debug_tuple("Provider").field(p).finish(),
            MimiUri::User(u) => f.debug_tuple("User").field(u).finish(),
            MimiUri::Client(c) => f.debug_tuple("Client").field(c).finish(),
            MimiUri::Room(r) => f.debug_tuple("Room").field(r).finish(),
            MimiUri::Group(g) => f.debug_tuple("Group").field(g).finish(),
            MimiUri::Pseudonym(p) => f.debug_tuple("Pseudonym").field(p).finish(),
            MimiUri::Team(t) => f.debug_tuple("Team").field(t).finish(),
        }
    }
}

impl AsRef<str> for MimiUri {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<MimiUri> for String {
    fn from(value: MimiUri) -> String {
        value.into_string()
    }
}

impl TryFrom<&str> for MimiUri {
    type Error = UriError;
    fn try_from(value: &str) -> Result<Self, UriError> {
        value.parse()
    }
}

impl TryFrom<String> for MimiUri {
    type Error = UriError;
    fn try_from(value: String) -> Result<Self, UriError> {
        value.parse()
    }
}

impl Serialize for MimiUri {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MimiUri {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(de::Error::custom)
    }
}
