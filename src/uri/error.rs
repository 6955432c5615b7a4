//! Errors returned when parsing or building MIMI identifiers.

use thiserror::Error;

use super::UriKind;

/// Why a MIMI URI (or one of its parts) was rejected.
///
/// Path-segment positions are 1-based and count the type segment: in
/// `mimi://a.example/d/alice/dev1`, `d` is at position 1, `alice` at 2 and
/// `dev1` at 3.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UriError {
    /// The input was the empty string (or zero bytes).
    #[error("empty URI: expected `mimi://<provider>[/<type>/<segment>...]`")]
    Empty,

    /// There is no `<scheme>://` prefix.
    #[error("missing scheme: expected `mimi://`")]
    MissingScheme,

    /// The scheme is well formed but is not `mimi`.
    #[error("unsupported scheme `{0}`: expected `mimi://`")]
    UnsupportedScheme(String),

    /// The authority has a `user@` part.
    #[error("userinfo not allowed: the provider of a MIMI URI is a bare domain")]
    UserinfoNotAllowed,

    /// The URI has a `?query` or a `#fragment`.
    #[error("query or fragment not allowed in a MIMI URI")]
    QueryOrFragment,

    /// The authority (or its host part) is empty, as in `mimi:///u/alice`.
    #[error("empty provider: expected a domain after `mimi://`")]
    EmptyProvider,

    /// The host is not a syntactically valid DNS name.
    #[error("invalid provider domain `{domain}`: {problem}")]
    InvalidDomain {
        /// The host as it appeared in the input.
        domain: String,
        /// What is wrong with it.
        problem: DomainProblem,
    },

    /// The `:port` after the host is not a number in 1..=65535.
    #[error("invalid port `{port}` in provider `{authority}`: expected a number from 1 to 65535")]
    InvalidPort {
        /// The whole `host:port` authority.
        authority: String,
        /// The text after the last `:`.
        port: String,
    },

    /// The first path segment is not one of the known type letters.
    #[error("unknown identifier type `{0}` (expected u, d, r, g, p or t)")]
    UnknownType(String),

    /// A path segment is empty (`//`, a trailing `/`, or an empty local part).
    #[error("empty path segment at position {position}")]
    EmptySegment {
        /// 1-based position; the type segment is position 1.
        position: usize,
    },

    /// A path segment holds a character that must be percent-encoded.
    #[error(
        "invalid character {ch:?} in path segment at position {position}: it must be percent-encoded"
    )]
    InvalidCharacter {
        /// The offending character.
        ch: char,
        /// 1-based position; the type segment is position 1.
        position: usize,
    },

    /// A `%` is not followed by two hexadecimal digits.
    #[error(
        "invalid percent-encoding in segment `{segment}` at position {position}: `%` must be followed by two hex digits"
    )]
    InvalidPercentEncoding {
        /// The raw (still encoded) segment.
        segment: String,
        /// 1-based position; the type segment is position 1.
        position: usize,
    },

    /// A path segment does not decode to valid UTF-8.
    #[error("segment at position {position} is not UTF-8 once percent-decoded")]
    SegmentNotUtf8 {
        /// 1-based position; the type segment is position 1.
        position: usize,
    },

    /// The byte form (`opaque uri<V>`) of a URI is not valid UTF-8.
    #[error("URI bytes are not UTF-8")]
    NotUtf8,

    /// The number of segments after the type segment does not fit the type.
    #[error("a {kind} URI has {} (found {found})", .kind.arity())]
    WrongSegmentCount {
        /// The identifier type given by the type segment.
        kind: UriKind,
        /// How many segments followed the type segment.
        found: usize,
    },

    /// The URI is well formed but of another type than the one asked for.
    #[error("expected a {expected} URI, got a {found} URI")]
    WrongKind {
        /// The type the caller asked for.
        expected: UriKind,
        /// The type the URI actually has.
        found: UriKind,
    },
}

/// What is wrong with a provider domain (see [`UriError::InvalidDomain`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DomainProblem {
    /// Two dots in a row, or a leading or trailing dot.
    #[error("empty label")]
    EmptyLabel,
    /// A label is longer than 63 octets.
    #[error("label `{0}` is longer than 63 octets")]
    LabelTooLong(String),
    /// The whole name is longer than 253 octets.
    #[error("name is {0} octets long, the maximum is 253")]
    TooLong(usize),
    /// A character other than a letter, digit, `-` or `.`.
    #[error(
        "invalid character {0:?} (only ASCII letters, digits, `-` and `.` are allowed; write IDNs as A-labels)"
    )]
    InvalidCharacter(char),
    /// A label starts or ends with `-`.
    #[error("label `{0}` starts or ends with `-`")]
    HyphenAtLabelEdge(String),
}
