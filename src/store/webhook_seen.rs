//! Table `webhook_seen`: inbound webhook ids already accepted, with the answer given.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

/// The answer recorded for a webhook id, if it was seen before.
pub async fn get<'e>(
    db: impl AnyExecutor<'e>,
    webhook_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query("SELECT response FROM webhook_seen WHERE webhook_id = $1")
            .bind(webhook_id)
            .fetch_optional(db)
            .await?
            .map(|r| r.try_get::<String, _>("response"))
            .transpose()?,
    )
}

/// Records an accepted webhook id and its answer; false when it was recorded already.
pub async fn record<'e>(
    db: impl AnyExecutor<'e>,
    webhook_id: &str,
    response: &str,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO webhook_seen (webhook_id, response, received_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (webhook_id) DO NOTHING",
    )
    .bind(webhook_id)
    .bind(response)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}
