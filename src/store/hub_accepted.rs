//! Table `hub_accepted`: handshakes this daemon accepted as the hub of their room.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

pub async fn record<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    message_hash: &[u8],
    epoch: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO hub_accepted (room_id, message_hash, epoch, accepted_at_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (room_id, message_hash) DO NOTHING",
    )
    .bind(room_id)
    .bind(message_hash)
    .bind(epoch)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

/// When the handshake was accepted (ms since the UNIX epoch), if it was.
pub async fn accepted_at<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    message_hash: &[u8],
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query(
        "SELECT accepted_at_ms FROM hub_accepted WHERE room_id = $1 AND message_hash = $2",
    )
    .bind(room_id)
    .bind(message_hash)
    .fetch_optional(db)
    .await?
    .map(|r| r.try_get::<i64, _>("accepted_at_ms"))
    .transpose()?)
}
