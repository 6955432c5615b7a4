//! The provider's client for the bridge's inbound API: signed [`ConnectorEvent`]s POSTed to
//! `{bridge}/webhook/v1/events`.
//!
//! The bridge answers 2xx with `{"duplicate": bool}` once it has stored the event, and otherwise
//! an HTTP status with `{"error": code, "message": …}` (see [`InboundError`] for the codes).
//!
//! [`InboundError`]: crate::InboundError

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mimi_bridge_connector::ConnectorEvent;

use crate::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, WebhookSecret, sign_all};

/// The path of the bridge's inbound API, below its base URL.
pub const EVENTS_PATH: &str = "/webhook/v1/events";

/// Submits events to one bridge.
#[derive(Clone, Debug)]
pub struct ProviderClient {
    url: String,
    secrets: Vec<WebhookSecret>,
    http: reqwest::Client,
}

/// The bridge took the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubmitAnswer {
    pub status: u16,
    /// The bridge had already accepted this `webhook-id`; nothing changed.
    pub duplicate: bool,
}

/// Whatever the bridge answered to [`ProviderClient::submit_raw`].
#[derive(Clone, Debug, PartialEq)]
pub struct RawAnswer {
    pub status: u16,
    /// The JSON body; `Null` when empty, a JSON string holding the text when not JSON.
    pub body: serde_json::Value,
}

/// Why a submission did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The bridge answered with a non-2xx status. `error` is the code of its JSON body
    /// (`http_<status>` when there is none), `message` its explanation (or the body's text).
    /// (Status 0 with `unserialisable_event`: the event could not be written as JSON, nothing
    /// was sent.)
    #[error("the bridge refused the event ({status} {error}): {message}")]
    Refused {
        status: u16,
        error: String,
        message: String,
    },
    /// No answer: the bridge is unreachable, the connection broke, the call timed out.
    #[error("cannot reach the bridge: {0}")]
    Transport(String),
}

impl ProviderError {
    /// Whether submitting the same event (with the same webhook id) again can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Transport(_) => true,
            ProviderError::Refused { status, .. } => {
                *status == 408 || *status == 429 || *status >= 500
            }
        }
    }
}

impl ProviderClient {
    /// `url`: the bridge's base URL, e.g. `http://127.0.0.1:8080` (a URL already ending in
    /// `/webhook/v1/events` is used as it is). `secrets`: signed with each (several while one is
    /// rotated).
    pub fn new(
        url: impl Into<String>,
        secrets: Vec<WebhookSecret>,
    ) -> Result<ProviderClient, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProviderError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(ProviderClient {
            url: url.into(),
            secrets,
            http,
        })
    }

    /// Where events are POSTed.
    pub fn events_url(&self) -> String {
        let base = self.url.trim_end_matches('/');
        if base.ends_with(EVENTS_PATH) {
            base.to_string()
        } else {
            format!("{base}{EVENTS_PATH}")
        }
    }

    /// Submits `event` under a fresh webhook id. To retry a submission whose answer was lost,
    /// use [`submit_with_id`](Self::submit_with_id) with the same id, so the bridge sees a
    /// duplicate rather than a new call.
    pub async fn submit(&self, event: &ConnectorEvent) -> Result<SubmitAnswer, ProviderError> {
        self.submit_with_id(&new_webhook_id(), event).await
    }

    /// Submits `event` under `webhook_id`.
    pub async fn submit_with_id(
        &self,
        webhook_id: &str,
        event: &ConnectorEvent,
    ) -> Result<SubmitAnswer, ProviderError> {
        let body = serde_json::to_vec(event).map_err(|e| ProviderError::Refused {
            status: 0,
            error: "unserialisable_event".into(),
            message: e.to_string(),
        })?;
        let answer = self.submit_raw(webhook_id, unix_now(), body, None).await?;
        if (200..300).contains(&answer.status) {
            return Ok(SubmitAnswer {
                status: answer.status,
                duplicate: answer.body["duplicate"].as_bool().unwrap_or(false),
            });
        }
        let error = answer.body["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("http_{}", answer.status));
        let message = match &answer.body {
            serde_json::Value::String(text) => text.clone(),
            body => body["message"].as_str().unwrap_or_default().to_string(),
        };
        Err(ProviderError::Refused {
            status: answer.status,
            error,
            message,
        })
    }

    /// POSTs `body` as it is, with these `webhook-id` and `webhook-timestamp` values, and
    /// `webhook-signature` = `signature_header` verbatim, or when `None` the client's own
    /// signatures of exactly this id, timestamp and body. Any HTTP answer is `Ok`; for tests that
    /// tamper with a call.
    pub async fn submit_raw(
        &self,
        webhook_id: &str,
        timestamp: i64,
        body: Vec<u8>,
        signature_header: Option<String>,
    ) -> Result<RawAnswer, ProviderError> {
        let url = self.events_url();
        let signature = signature_header
            .unwrap_or_else(|| sign_all(&self.secrets, webhook_id, timestamp, &body));
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_ID, webhook_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| ProviderError::Transport(format!("{url}: {e}")))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| ProviderError::Transport(format!("{url}: reading the answer: {e}")))?;
        let body = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| serde_json::Value::String(text.chars().take(1000).collect()))
        };
        Ok(RawAnswer { status, body })
    }
}

/// A fresh webhook id, `msg_<16 hex digits>`: random where the system has randomness, from the
/// clock and a counter otherwise. Valid for [`Verifier`](crate::Verifier) (non-empty, ≤ 256
/// bytes).
pub fn new_webhook_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = getrandom::u64().unwrap_or_else(|_| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        nanos ^ count.rotate_left(48) ^ u64::from(std::process::id()).rotate_left(24)
    });
    format!("msg_{n:016x}")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_ids_are_fresh_and_well_formed() {
        let a = new_webhook_id();
        let b = new_webhook_id();
        assert_ne!(a, b);
        let hex = a.strip_prefix("msg_").unwrap();
        assert_eq!(hex.len(), 16);
        assert!(
            hex.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn the_events_url_is_below_the_base() {
        let c = |url: &str| ProviderClient::new(url, vec![]).unwrap().events_url();
        assert_eq!(
            c("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/webhook/v1/events"
        );
        assert_eq!(
            c("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/webhook/v1/events"
        );
        assert_eq!(
            c("https://b.example/bridge/webhook/v1/events"),
            "https://b.example/bridge/webhook/v1/events"
        );
    }

    #[test]
    fn only_transport_and_server_trouble_is_retryable() {
        let refused = |status| ProviderError::Refused {
            status,
            error: String::new(),
            message: String::new(),
        };
        assert!(ProviderError::Transport("x".into()).is_retryable());
        assert!(refused(503).is_retryable());
        assert!(refused(429).is_retryable());
        assert!(!refused(401).is_retryable());
        assert!(!refused(400).is_retryable());
    }
}
