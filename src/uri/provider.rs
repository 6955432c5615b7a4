//! [`ProviderId`]: the provider (host and optional port) of a MIMI URI, and DNS name validation.

use std::str::FromStr;

use super::shared_impls::common_impls;
use super::{DomainProblem, MimiUri, PREFIX, UriError, UriKind};

const MAX_DOMAIN_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

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

    pub(super) fn parse_authority(authority: &str) -> Result<Self, UriError> {
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
