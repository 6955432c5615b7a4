//! Table `notify_seen`: `/notify` bodies already processed, by hash.

use sqlx::AnyExecutor;

use super::{StoreError, now_ms};

/// Records a body; false when it was seen before (a byte-identical duplicate).
pub async fn record<'e>(
    db: impl AnyExecutor<'e>,
    body_hash: &[u8],
    room_id: &str,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO notify_seen (body_hash, room_id, received_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (body_hash) DO NOTHING",
    )
    .bind(body_hash)
    .bind(room_id)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Whether a body was processed before.
pub async fn seen<'e>(db: impl AnyExecutor<'e>, body_hash: &[u8]) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 FROM notify_seen WHERE body_hash = $1")
            .bind(body_hash)
            .fetch_optional(db)
            .await?
            .is_some(),
    )
}
