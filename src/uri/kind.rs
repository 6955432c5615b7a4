//! [`UriKind`]: the type of a MIMI identifier, named by the first path segment.

use std::fmt;

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
    pub(super) const fn accepts_segment_count(self, n: usize) -> bool {
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
