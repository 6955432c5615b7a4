//! Table `message_map`: legacy message ids and MIMI message ids of each room, both ways.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

/// Records a pair; false when the legacy id is mapped already (a retried event).
pub async fn insert<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    legacy_message_id: &str,
    mimi_message_id: &str,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO message_map (room_id, legacy_message_id, mimi_message_id, created_at_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(room_id)
    .bind(legacy_message_id)
    .bind(mimi_message_id)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn mimi_of<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    legacy_message_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query(
        "SELECT mimi_message_id FROM message_map WHERE room_id = $1 AND legacy_message_id = $2",
    )
    .bind(room_id)
    .bind(legacy_message_id)
    .fetch_optional(db)
    .await?
    .map(|r| r.try_get::<String, _>("mimi_message_id"))
    .transpose()?)
}

pub async fn legacy_of<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    mimi_message_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query(
        "SELECT legacy_message_id FROM message_map WHERE room_id = $1 AND mimi_message_id = $2",
    )
    .bind(room_id)
    .bind(mimi_message_id)
    .fetch_optional(db)
    .await?
    .map(|r| r.try_get::<String, _>("legacy_message_id"))
    .transpose()?)
}
