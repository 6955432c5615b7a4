//! Identifier queries (protocol-06 §5.8): answering them for this provider's users, and sending
//! them to a peer to resolve a handle or a nickname to one of its users.
//!
//! The draft's forms: `handle` is the whole handle URI (`im:alice.smith@a.example`; this bridge
//! also reads `alice.smith@a.example` and a MIMI user URI `mimi://a.example/u/alice.smith`),
//! `nick` is the user part alone (`alice.smith`). A bridge knows its users by the local part of
//! their MIMI user URI, which is both. Other search types are `unsupportedField`.

use super::directory::Endpoint;
use super::service::{MimiService, ServiceError, malformed};
use super::wire::{self, IdentifierQueryCode, IdentifierUri, QueryElement, SearchType};
use crate::store::proxy_clients;
use crate::uri::{ProviderId, UserUri};

/// What to look up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The whole handle, e.g. `im:bob@b.example`.
    Handle(String),
    /// The user part, e.g. `bob`.
    Nick(String),
}

/// A peer's answer to a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub code: IdentifierQueryCode,
    /// The users it named, each a user of the provider asked.
    pub users: Vec<UserUri>,
}

impl Lookup {
    fn element(&self) -> QueryElement {
        let (search_type, value) = match self {
            Lookup::Handle(v) => (SearchType::Handle, v),
            Lookup::Nick(v) => (SearchType::Nick, v),
        };
        QueryElement {
            search_type,
            search_value: value.as_bytes().to_vec().into(),
        }
    }
}

impl MimiService {
    /// `/identifierQuery/{domain}`: every query element must match the same user of this
    /// provider, one with a proxy client.
    pub async fn identifier_query(
        &self,
        request: &wire::IdentifierRequest,
    ) -> Result<wire::IdentifierResponse, ServiceError> {
        let answer = |code, uri: Vec<IdentifierUri>| wire::IdentifierResponse {
            response_code: code,
            uri,
            found_profiles: Vec::new(),
            id_response_extensions: Default::default(),
        };
        let mut found: Option<UserUri> = None;
        for element in &request.query_elements {
            let value = std::str::from_utf8(element.search_value.as_slice()).unwrap_or_default();
            let local = match element.search_type {
                SearchType::Handle => self.handle_local_part(value),
                SearchType::Nick => Some(value.to_owned()),
                _ => return Ok(answer(IdentifierQueryCode::UnsupportedField, vec![])),
            };
            let Some(user) = local.and_then(|l| UserUri::new(self.domain.clone(), &l).ok()) else {
                return Ok(answer(IdentifierQueryCode::NotFound, vec![]));
            };
            if found.as_ref().is_some_and(|f| f != &user) {
                return Ok(answer(IdentifierQueryCode::NotFound, vec![]));
            }
            found = Some(user);
        }
        match found {
            Some(user)
                if !proxy_clients::for_user(self.store.pool(), user.as_str())
                    .await?
                    .is_empty() =>
            {
                Ok(answer(
                    IdentifierQueryCode::Success,
                    vec![IdentifierUri::new(user.as_str())],
                ))
            }
            _ => Ok(answer(IdentifierQueryCode::NotFound, vec![])),
        }
    }

    /// The local part a handle names on this provider, if it names one here.
    fn handle_local_part(&self, handle: &str) -> Option<String> {
        if let Ok(user) = handle.parse::<UserUri>() {
            return (user.provider() == &self.domain).then(|| user.local().to_owned());
        }
        let bare = handle.strip_prefix("im:").unwrap_or(handle);
        let (local, domain) = bare.rsplit_once('@')?;
        (domain.eq_ignore_ascii_case(self.domain.domain()) && !local.is_empty())
            .then(|| local.to_owned())
    }

    /// Asks `provider` who `lookup` is. A provider answers only for its own users: a URI of
    /// another provider's user in its answer is left out.
    pub async fn look_up(
        &self,
        provider: &ProviderId,
        lookup: &Lookup,
    ) -> Result<Found, ServiceError> {
        let request = wire::IdentifierRequest {
            query_elements: vec![lookup.element()],
            id_request_extensions: Default::default(),
        };
        let response = if provider == &self.domain {
            self.identifier_query(&request).await?
        } else {
            let body = wire::encode(&request)
                .map_err(|e| malformed("IdentifierRequest")(e.to_string()))?;
            let answer = self
                .client()?
                .post(provider, Endpoint::IdentifierQuery, provider.domain(), body)
                .await?;
            if answer.status != 200 {
                return Err(ServiceError::Forbidden(format!(
                    "{} answered the identifier query with HTTP {}: {}",
                    provider.domain(),
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                )));
            }
            wire::decode_exact(&answer.body)
                .map_err(|e| malformed("IdentifierResponse")(e.to_string()))?
        };
        let mut users = Vec::new();
        for uri in &response.uri {
            match uri.as_str().map(str::parse::<UserUri>) {
                Some(Ok(user)) if user.provider() == provider => users.push(user),
                _ => {
                    tracing::warn!(peer = %provider.domain(), uri = ?uri.as_str(), "an identifier query answer names a user that is not the peer's: left out")
                }
            }
        }
        Ok(Found {
            code: response.response_code,
            users,
        })
    }
}
