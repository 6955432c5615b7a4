//! Who is calling: the provider a request speaks for, proven by its client certificate.
//!
//! protocol-06 §4.1 names the source provider in `From: mimi@<domain>`; the listener already
//! verified the client certificate chain, and [`AuthenticatedPeer`] accepts the request only
//! when that certificate is valid for the claimed domain.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use rustls::pki_types::CertificateDer;

use super::tls::certificate_covers;
use crate::server::ApiError;
use crate::uri::ProviderId;

/// The verified end-entity certificate of the connection, set by the listener.
#[derive(Clone, Debug)]
pub struct PeerCertificate(pub CertificateDer<'static>);

/// The provider a request comes from, checked against its client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedPeer(pub ProviderId);

impl<S: Send + Sync> FromRequestParts<S> for AuthenticatedPeer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let cert = parts.extensions.get::<PeerCertificate>().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "client_certificate_required",
                "MIMI endpoints need a client certificate (mutual TLS)",
            )
        })?;
        let from = parts
            .headers
            .get(axum::http::header::FROM)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "missing_from",
                    "the From header must name the source provider: From: mimi@<domain>",
                )
            })?
            .to_str()
            .map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_from",
                    "the From header is not ASCII",
                )
            })?;
        let domain = from.strip_prefix("mimi@").ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_from",
                format!("the From header `{from}` is not of the form mimi@<domain>"),
            )
        })?;
        let provider = ProviderId::new(domain).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_from",
                format!("the From header names `{domain}`, which is not a provider domain: {e}"),
            )
        })?;
        if !certificate_covers(&cert.0, provider.domain()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "source_mismatch",
                format!(
                    "the request claims to come from {}, but the client certificate is not valid for that domain",
                    provider.domain()
                ),
            ));
        }
        Ok(AuthenticatedPeer(provider))
    }
}
