//! [`ClientUri`]: a client (device), with one or more segments after `/d/`.

use std::str::FromStr;

use super::shared_impls::{common_impls, strict_path_param};
use super::syntax::{canonical, check_segments};
use super::{MimiUri, ProviderId, UriError, UriKind, UserUri};

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
        Self::new(user.provider().clone(), &[user.local(), device])
    }

    /// `segments` must be non-empty and hold no empty string.
    pub(super) fn from_parts(provider: ProviderId, segments: Vec<String>) -> Self {
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
