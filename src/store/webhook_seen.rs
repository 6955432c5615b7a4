//! Table `webhook_seen`: inbound webhook ids already accepted, what they were signed with, and
//! the answer given.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenWebhook {
    pub webhook_id: String,
    /// The `webhook-timestamp` of the first accepted call.
    pub signed_at: i64,
    /// Hex SHA-256 of its body.
    pub body_hash: String,
    /// The answer given (JSON).
    pub response: String,
}

/// The record of a webhook id, if it was accepted before.
pub async fn get<'e>(
    db: impl AnyExecutor<'e>,
    webhook_id: &str,
) -> Result<Option<SeenWebhook>, StoreError> {
    let row = sqlx::query(
        "SELECT webhook_id, signed_at, body_hash, response FROM webhook_seen WHERE webhook_id = $1",
    )
    .bind(webhook_id)
    .fetch_optional(db)
    .await?;
    Ok(row
        .map(|r| {
            Ok::<_, sqlx::Error>(SeenWebhook {
                webhook_id: r.try_get("webhook_id")?,
                signed_at: r.try_get("signed_at")?,
                body_hash: r.try_get("body_hash")?,
                response: r.try_get("response")?,
            })
        })
        .transpose()?)
}

/// Records an accepted webhook call; false when its id was recorded already.
pub async fn record<'e>(db: impl AnyExecutor<'e>, seen: &SeenWebhook) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO webhook_seen (webhook_id, response, received_at_ms, signed_at, body_hash) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (webhook_id) DO NOTHING",
    )
    .bind(&seen.webhook_id)
    .bind(&seen.response)
    .bind(now_ms())
    .bind(seen.signed_at)
    .bind(&seen.body_hash)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}
