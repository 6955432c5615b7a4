//! Outbound: bridge commands POSTed as signed JSON to the provider's URL.
//!
//! One call is one attempt. The daemon keeps every command in its durable outbox and calls
//! [`WebhookSender::send`] until it succeeds, with the same `webhook-id` (the command id) every
//! time, so the provider can drop duplicates. The answer says whether a retry can help.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mimi_bridge_connector::{BridgeCommand, ConnectorError, Delivery};

use crate::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, WebhookSecret, sign_all};

/// Sends commands to one provider endpoint.
#[derive(Clone, Debug)]
pub struct WebhookSender {
    url: String,
    secrets: Vec<WebhookSecret>,
    http: reqwest::Client,
}

impl WebhookSender {
    /// `secrets`: every secret the provider may check with (several while one is rotated).
    pub fn new(
        url: impl Into<String>,
        secrets: Vec<WebhookSecret>,
    ) -> Result<WebhookSender, ConnectorError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConnectorError::Permanent {
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(WebhookSender {
            url: url.into(),
            secrets,
            http,
        })
    }

    /// One delivery attempt. A 2xx answer may carry a JSON [`Delivery`] (the legacy ids the
    /// provider created); 408, 429, 5xx and transport failures are transient; other answers are
    /// permanent.
    pub async fn send(&self, command: &BridgeCommand) -> Result<Delivery, ConnectorError> {
        let body = serde_json::to_vec(command).map_err(|e| ConnectorError::Permanent {
            reason: format!("the command does not serialise: {e}"),
        })?;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let id = command.command_id.as_str();
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_ID, id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(
                HEADER_SIGNATURE,
                sign_all(&self.secrets, id, timestamp, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| ConnectorError::Transient {
                reason: format!("{}: {e}", self.url),
                retry_after: None,
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(serde_json::from_str(&text).unwrap_or_default());
        }
        let reason = format!(
            "{} answered {status}: {}",
            self.url,
            text.chars().take(300).collect::<String>()
        );
        if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
            Err(ConnectorError::Transient {
                reason,
                retry_after,
            })
        } else {
            Err(ConnectorError::Permanent { reason })
        }
    }
}
