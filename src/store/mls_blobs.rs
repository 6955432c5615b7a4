//! Table `mls_blobs`: content-addressed public data (ratchet trees, Welcomes, commits).

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use super::StoreError;

pub fn hash(value: &[u8]) -> Vec<u8> {
    Sha256::digest(value).to_vec()
}

/// Stores a value once; returns its hash.
pub async fn put(conn: &mut AnyConnection, value: &[u8]) -> Result<Vec<u8>, StoreError> {
    let h = hash(value);
    sqlx::query(
        "INSERT INTO mls_blobs (hash, value) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
    )
    .bind(&h)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(h)
}

pub async fn get(conn: &mut AnyConnection, hash: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(sqlx::query("SELECT value FROM mls_blobs WHERE hash = $1")
        .bind(hash)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get::<Vec<u8>, _>("value"))
        .transpose()?)
}

/// Deletes a blob nothing refers to any more (no client row, room log entry or Welcome).
pub async fn delete_if_unreferenced(
    conn: &mut AnyConnection,
    hash: &[u8],
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "DELETE FROM mls_blobs WHERE hash = $1 \
         AND NOT EXISTS (SELECT 1 FROM mls_kv WHERE blob_hash = $1) \
         AND NOT EXISTS (SELECT 1 FROM room_log WHERE message_hash = $1) \
         AND NOT EXISTS (SELECT 1 FROM room_proxy_members WHERE welcome_hash = $1) \
         AND NOT EXISTS (SELECT 1 FROM room_groups WHERE group_info_hash = $1) \
         AND NOT EXISTS (SELECT 1 FROM pending_commits WHERE commit_hash = $1 OR welcome_hash = $1 OR group_info_hash = $1)",
    )
    .bind(hash)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Total bytes of all blobs.
pub async fn total_bytes(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(LENGTH(value) + LENGTH(hash)), 0) AS BIGINT) AS n FROM mls_blobs",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get::<i64, _>("n")?)
}
