//! The webhook connector's inbound API: `POST /webhook/v1/events`, and the OpenAPI document of
//! both directions.
//!
//! A call is checked (Standard Webhooks signature, 5-minute timestamp window, event shape),
//! then looked up by `webhook-id`: the same id with the same timestamp again is a replay and is
//! refused; the same id with a new timestamp and the same body is the provider retrying, and
//! gets the first answer again; the same id with another body is refused. A new call's event
//! goes to the core, which stores it before the answer (202) is sent.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use mimi_bridge_connector::{EventSink, SinkError};
use mimi_bridge_webhook::signature::HEADER_TIMESTAMP;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::store::webhook_seen::{self, SeenWebhook};

/// The OpenAPI 3.1 document of the webhook connector (both directions).
pub const OPENAPI: &str = include_str!("../../connectors/webhook/openapi.json");

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        e.to_string(),
    )
}

pub async fn events(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Some(webhook) = &s.webhook else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the webhook connector is off ([webhook] is not configured)",
        ));
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let header_value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let call =
        mimi_bridge_webhook::check(&webhook.verifier, header_value, &body, now).map_err(|e| {
            ApiError::new(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                e.code(),
                e.to_string(),
            )
        })?;
    // Checked by `check` already.
    let signed_at: i64 = header_value(HEADER_TIMESTAMP)
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_default();
    let body_hash = hex::encode(Sha256::digest(&body));
    if let Some(seen) = webhook_seen::get(s.store.pool(), &call.webhook_id)
        .await
        .map_err(store_error)?
    {
        if seen.body_hash != body_hash {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "webhook_id_reused",
                format!(
                    "webhook-id `{}` was used before for a different body",
                    call.webhook_id
                ),
            ));
        }
        if seen.signed_at == signed_at {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "replayed",
                format!(
                    "webhook-id `{}` with this timestamp was accepted before: a replay",
                    call.webhook_id
                ),
            ));
        }
        let mut answer: serde_json::Value =
            serde_json::from_str(&seen.response).unwrap_or_else(|_| serde_json::json!({}));
        answer["duplicate"] = serde_json::Value::Bool(true);
        return Ok((StatusCode::OK, Json(answer)));
    }
    let accepted = webhook
        .bridge
        .submit(call.event)
        .await
        .map_err(|e| match e {
            SinkError::Invalid { reason } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_event", reason)
            }
            other => store_error(other),
        })?;
    let answer = serde_json::json!({ "duplicate": accepted.duplicate });
    webhook_seen::record(
        s.store.pool(),
        &SeenWebhook {
            webhook_id: call.webhook_id,
            signed_at,
            body_hash,
            response: answer.to_string(),
        },
    )
    .await
    .map_err(store_error)?;
    let status = if accepted.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(answer)))
}
