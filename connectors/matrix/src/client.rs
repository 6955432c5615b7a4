//! The application service's client of the homeserver: typed ruma requests, sent as the bridge
//! bot or as a ghost (identity assertion with `?user_id=`), with the homeserver's errors (and
//! its `M_LIMIT_EXCEEDED` wait) kept apart.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use ruma::UserId;
use ruma::api::auth_scheme::{AuthScheme, SendAccessToken};
use ruma::api::path_builder::VersionHistory;
use ruma::api::{
    AppserviceUserIdentity, IncomingResponseExt, OutgoingRequest, OutgoingRequestAppserviceExt,
    SupportedVersions,
};

/// Why a call to the homeserver failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixError {
    #[error("the homeserver asks to slow down (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the homeserver answered {status} {errcode}: {error}")]
    Refused {
        status: u16,
        errcode: String,
        error: String,
    },
    #[error("cannot reach the homeserver: {0}")]
    Transport(String),
    #[error("{0}")]
    Invalid(String),
}

impl MatrixError {
    /// Whether trying again later can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            MatrixError::RateLimited { .. } | MatrixError::Transport(_) => true,
            MatrixError::Refused { status, .. } => *status >= 500 || *status == 408,
            MatrixError::Invalid(_) => false,
        }
    }

    /// The Matrix error code, for refusals.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            MatrixError::Refused { errcode, .. } => Some(errcode),
            _ => None,
        }
    }
}

/// A client of the client-server API with the appservice's token.
#[derive(Clone, Debug)]
pub struct MatrixClient {
    http: reqwest::Client,
    base: String,
    as_token: String,
    versions: SupportedVersions,
}

impl MatrixClient {
    pub fn new(base: &str, as_token: &str) -> Result<MatrixClient, MatrixError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| MatrixError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        // Every stable version this connector's requests exist in; ruma picks the newest path.
        let versions: Vec<String> = (1..=11).map(|minor| format!("v1.{minor}")).collect();
        Ok(MatrixClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            as_token: as_token.to_owned(),
            versions: SupportedVersions::from_parts(&versions, &BTreeMap::new()),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Fetches a MIMI message's external part (at most `limit` bytes), to put it in the
    /// homeserver's content repository.
    pub async fn fetch(&self, url: &str, limit: usize) -> Result<Vec<u8>, MatrixError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| MatrixError::Transport(format!("{url}: {e}")))?;
        if !response.status().is_success() {
            return Err(MatrixError::Refused {
                status: response.status().as_u16(),
                errcode: "M_UNKNOWN".into(),
                error: format!("{url} answered {}", response.status()),
            });
        }
        if response
            .content_length()
            .is_some_and(|n| n as usize > limit)
        {
            return Err(MatrixError::Invalid(format!(
                "{url} is larger than {limit} bytes"
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| MatrixError::Transport(format!("{url}: {e}")))?;
        if bytes.len() > limit {
            return Err(MatrixError::Invalid(format!(
                "{url} is larger than {limit} bytes"
            )));
        }
        Ok(bytes.to_vec())
    }

    /// Sends `request` as `user` (a ghost), or as the bridge bot when `None`.
    pub async fn call<R>(
        &self,
        request: R,
        user: Option<&UserId>,
    ) -> Result<R::IncomingResponse, MatrixError>
    where
        R: OutgoingRequest<PathBuilder = VersionHistory>,
        for<'a> R::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
    {
        let identity = match user {
            Some(user) => AppserviceUserIdentity::new(user),
            None => AppserviceUserIdentity::default(),
        };
        let http_request: http::Request<Vec<u8>> = request
            .try_into_http_request_with_identity(
                &self.base,
                SendAccessToken::Appservice(&self.as_token),
                identity,
                Cow::Borrowed(&self.versions),
            )
            .map_err(|e| MatrixError::Invalid(format!("cannot build the request: {e}")))?;
        let request = reqwest::Request::try_from(http_request)
            .map_err(|e| MatrixError::Invalid(format!("cannot build the request: {e}")))?;
        let path = request.url().path().to_owned();
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| MatrixError::Transport(format!("{path}: {e}")))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| MatrixError::Transport(format!("{path}: {e}")))?;
        if !status.is_success() {
            return Err(refusal(status.as_u16(), &headers, &body));
        }
        let mut builder = http::Response::builder().status(status.as_u16());
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        let http_response = builder
            .body(body.as_ref())
            .map_err(|e| MatrixError::Invalid(e.to_string()))?;
        R::IncomingResponse::try_from_http_response(http_response)
            .map_err(|e| MatrixError::Invalid(format!("{path}: unexpected answer: {e}")))
    }
}

/// A homeserver refusal, with the wait it asks for on `M_LIMIT_EXCEEDED`.
fn refusal(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> MatrixError {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let errcode = json["errcode"].as_str().unwrap_or("M_UNKNOWN").to_owned();
    if status == 429 || errcode == "M_LIMIT_EXCEEDED" {
        let retry_after = json["retry_after_ms"]
            .as_u64()
            .map(Duration::from_millis)
            .or_else(|| {
                headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
            });
        return MatrixError::RateLimited { retry_after };
    }
    MatrixError::Refused {
        status,
        errcode,
        error: json["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_are_told_apart_with_their_wait() {
        let headers = reqwest::header::HeaderMap::new();
        let e = refusal(
            429,
            &headers,
            br#"{"errcode":"M_LIMIT_EXCEEDED","error":"slow down","retry_after_ms":1500}"#,
        );
        assert_eq!(
            e,
            MatrixError::RateLimited {
                retry_after: Some(Duration::from_millis(1500))
            }
        );
        assert!(e.is_retryable());
        let e = refusal(403, &headers, br#"{"errcode":"M_FORBIDDEN","error":"no"}"#);
        assert_eq!(e.errcode(), Some("M_FORBIDDEN"));
        assert!(!e.is_retryable());
        assert!(refusal(502, &headers, b"bad gateway").is_retryable());
    }
}
