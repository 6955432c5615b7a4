//! Table `portals`: legacy rooms and the MIMI rooms they are bridged to.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

/// Links a legacy room to a MIMI room; false when the legacy room is linked already.
pub async fn link<'e>(
    db: impl AnyExecutor<'e>,
    legacy_room_id: &str,
    room_id: &str,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO portals (legacy_room_id, room_id, created_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (legacy_room_id) DO NOTHING",
    )
    .bind(legacy_room_id)
    .bind(room_id)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn room_of<'e>(
    db: impl AnyExecutor<'e>,
    legacy_room_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query("SELECT room_id FROM portals WHERE legacy_room_id = $1")
            .bind(legacy_room_id)
            .fetch_optional(db)
            .await?
            .map(|r| r.try_get::<String, _>("room_id"))
            .transpose()?,
    )
}

pub async fn legacy_of<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query("SELECT legacy_room_id FROM portals WHERE room_id = $1")
            .bind(room_id)
            .fetch_optional(db)
            .await?
            .map(|r| r.try_get::<String, _>("legacy_room_id"))
            .transpose()?,
    )
}
