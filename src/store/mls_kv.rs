//! Table `mls_kv`: openmls storage rows, one namespace per proxy client.
//!
//! A row holds either a sealed secret value or the hash of a public value in `mls_blobs`.

use sqlx::{AnyConnection, Row};

use super::StoreError;

/// A stored row as read back: `sealed` or the referenced blob's `public` value.
pub struct KvRow {
    pub key: Vec<u8>,
    pub sealed: Option<Vec<u8>>,
    pub public: Option<Vec<u8>>,
}

/// What a row is set to.
pub enum KvValue<'a> {
    Sealed(&'a [u8]),
    Blob(&'a [u8]),
}

pub async fn load(conn: &mut AnyConnection, namespace: &str) -> Result<Vec<KvRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT k.key, k.sealed, b.value FROM mls_kv k \
         LEFT JOIN mls_blobs b ON b.hash = k.blob_hash WHERE k.namespace = $1",
    )
    .bind(namespace)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(KvRow {
                key: row.try_get("key")?,
                sealed: row.try_get("sealed")?,
                public: row.try_get("value")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Sets a row; returns the blob hash the row referenced before, if it changed.
pub async fn put(
    conn: &mut AnyConnection,
    namespace: &str,
    key: &[u8],
    value: KvValue<'_>,
) -> Result<Option<Vec<u8>>, StoreError> {
    // Only public values live in blobs, and a key's kind never changes: just blob rows can
    // release an older blob.
    let old = match value {
        KvValue::Blob(_) => previous_blob(conn, namespace, key).await?,
        KvValue::Sealed(_) => None,
    };
    let (sealed, hash) = match value {
        KvValue::Sealed(s) => (Some(s), None),
        KvValue::Blob(h) => (None, Some(h)),
    };
    sqlx::query(
        "INSERT INTO mls_kv (namespace, key, sealed, blob_hash) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (namespace, key) DO UPDATE SET sealed = excluded.sealed, blob_hash = excluded.blob_hash",
    )
    .bind(namespace)
    .bind(key)
    .bind(sealed)
    .bind(hash)
    .execute(&mut *conn)
    .await?;
    Ok(old.filter(|o| Some(o.as_slice()) != hash))
}

/// Deletes a row; returns the blob hash it referenced, if any.
pub async fn delete(
    conn: &mut AnyConnection,
    namespace: &str,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    let old = previous_blob(conn, namespace, key).await?;
    sqlx::query("DELETE FROM mls_kv WHERE namespace = $1 AND key = $2")
        .bind(namespace)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    Ok(old)
}

async fn previous_blob(
    conn: &mut AnyConnection,
    namespace: &str,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(
        sqlx::query("SELECT blob_hash FROM mls_kv WHERE namespace = $1 AND key = $2")
            .bind(namespace)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get::<Option<Vec<u8>>, _>("blob_hash"))
            .transpose()?
            .flatten(),
    )
}

/// Total bytes stored in a namespace (sealed values only; blobs are counted by `mls_blobs`).
pub async fn namespace_bytes(conn: &mut AnyConnection, namespace: &str) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(LENGTH(key) + COALESCE(LENGTH(sealed), 0) + COALESCE(LENGTH(blob_hash), 0)), 0) AS BIGINT) AS n \
         FROM mls_kv WHERE namespace = $1",
    )
    .bind(namespace)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get::<i64, _>("n")?)
}
