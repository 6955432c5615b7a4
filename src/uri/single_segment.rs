//! The identifiers with exactly one segment after the type: [`UserUri`], [`RoomUri`],
//! [`GroupUri`], [`PseudonymUri`] and [`TeamUri`].

use std::str::FromStr;

use super::shared_impls::{common_impls, strict_path_param};
use super::syntax::{canonical, check_segments, decode_segment, split_uri, with_scheme};
use super::{MimiUri, ProviderId, UriError, UriKind};

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
            pub(super) fn from_parts(provider: ProviderId, local: String) -> Self {
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
