//! Table `room_groups`: the local view of each room's MLS group.

use sqlx::{AnyExecutor, Row};

use super::StoreError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomGroupRecord {
    pub room_id: String,
    pub group_id: Vec<u8>,
    pub epoch: i64,
    /// The local proxy client that decrypts the room's messages for local delivery, when there
    /// is one (the room itself lives in its public view, not in any client).
    pub reader_client: Option<String>,
}

pub async fn insert<'e>(db: impl AnyExecutor<'e>, g: &RoomGroupRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO room_groups (room_id, group_id, epoch, reader_client) VALUES ($1, $2, $3, $4)",
    )
    .bind(&g.room_id)
    .bind(&g.group_id)
    .bind(g.epoch)
    .bind(&g.reader_client)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
) -> Result<Option<RoomGroupRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT room_id, group_id, epoch, reader_client FROM room_groups WHERE room_id = $1",
    )
    .bind(room_id)
    .fetch_optional(db)
    .await?;
    row.map(|row| {
        Ok(RoomGroupRecord {
            room_id: row.try_get("room_id")?,
            group_id: row.try_get("group_id")?,
            epoch: row.try_get("epoch")?,
            reader_client: row.try_get("reader_client")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| e.into())
}

/// Moves the room's epoch forward; fails when another writer got there first.
pub async fn set_epoch<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    expected: i64,
    new: i64,
) -> Result<(), StoreError> {
    let result = sqlx::query("UPDATE room_groups SET epoch = $1 WHERE room_id = $2 AND epoch = $3")
        .bind(new)
        .bind(room_id)
        .bind(expected)
        .execute(db)
        .await?;
    if result.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::EpochConflict {
            room_id: room_id.to_string(),
            expected,
            actual: None,
        })
    }
}

/// Records the GroupInfo of the room's current epoch (as its last committer sent it).
pub async fn set_group_info<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    group_info_hash: Option<&[u8]>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE room_groups SET group_info_hash = $1 WHERE room_id = $2")
        .bind(group_info_hash)
        .bind(room_id)
        .execute(db)
        .await?;
    Ok(())
}

/// The hash (in `mls_blobs`) of the GroupInfo of the room's current epoch, if one was kept.
pub async fn group_info<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(
        sqlx::query("SELECT group_info_hash FROM room_groups WHERE room_id = $1")
            .bind(room_id)
            .fetch_optional(db)
            .await?
            .map(|r| r.try_get::<Option<Vec<u8>>, _>("group_info_hash"))
            .transpose()?
            .flatten(),
    )
}

pub async fn set_reader<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    reader: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE room_groups SET reader_client = $1 WHERE room_id = $2")
        .bind(reader)
        .bind(room_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Forgets a room's group (its log, members and pending commits go with it).
pub async fn delete<'e>(db: impl AnyExecutor<'e>, room_id: &str) -> Result<bool, StoreError> {
    let result = sqlx::query("DELETE FROM room_groups WHERE room_id = $1")
        .bind(room_id)
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}
