//! Table `bridge_cursors`: how far each room's inbound stream has been turned into connector
//! commands.

use sqlx::{AnyExecutor, Row};

use super::StoreError;

pub async fn get<'e>(db: impl AnyExecutor<'e>, room_id: &str) -> Result<i64, StoreError> {
    Ok(
        sqlx::query("SELECT last_seq FROM bridge_cursors WHERE room_id = $1")
            .bind(room_id)
            .fetch_optional(db)
            .await?
            .map(|r| r.try_get::<i64, _>("last_seq"))
            .transpose()?
            .unwrap_or(0),
    )
}

pub async fn set<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    last_seq: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO bridge_cursors (room_id, last_seq) VALUES ($1, $2) \
         ON CONFLICT (room_id) DO UPDATE SET last_seq = excluded.last_seq",
    )
    .bind(room_id)
    .bind(last_seq)
    .execute(db)
    .await?;
    Ok(())
}

/// Rooms whose inbound stream has entries past their cursor.
pub async fn rooms_behind<'e>(db: impl AnyExecutor<'e>) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT i.room_id AS room_id FROM inbound_messages i \
         LEFT JOIN bridge_cursors c ON c.room_id = i.room_id \
         WHERE i.seq > COALESCE(c.last_seq, 0)",
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| r.try_get::<String, _>("room_id").map_err(StoreError::from))
        .collect()
}
