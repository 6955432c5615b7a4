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

mod client;
mod error;
mod kind;
mod provider;
mod shared_impls;
mod single_segment;
mod syntax;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use percent_encoding::utf8_percent_encode;
use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use syntax::{NOT_UNRESERVED, check_segments, decode_path_param, parse_uri, with_scheme};

pub use client::ClientUri;
pub use error::{DomainProblem, UriError};
pub use kind::UriKind;
pub use provider::ProviderId;
pub use single_segment::{GroupUri, PseudonymUri, RoomUri, TeamUri, UserUri};

/// The URI scheme of MIMI identifiers.
pub const SCHEME: &str = "mimi";

/// `mimi://`, the prefix of every canonical MIMI URI.
pub const PREFIX: &str = "mimi://";

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
