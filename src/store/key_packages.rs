//! Table `key_packages`: each proxy client's pool of published KeyPackages.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPackageRecord {
    pub kp_ref: Vec<u8>,
    pub client_uri: String,
    /// The TLS-encoded KeyPackage.
    pub key_package: Vec<u8>,
    pub last_resort: bool,
}

pub async fn insert<'e>(db: impl AnyExecutor<'e>, kp: &KeyPackageRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO key_packages (kp_ref, client_uri, key_package, last_resort, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&kp.kp_ref)
    .bind(&kp.client_uri)
    .bind(&kp.key_package)
    .bind(i64::from(kp.last_resort))
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

/// How many single-use packages a client has left, and whether it has a last-resort one.
pub async fn available<'e>(
    db: impl AnyExecutor<'e>,
    client_uri: &str,
) -> Result<(i64, bool), StoreError> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN last_resort = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS single, \
                CAST(COALESCE(SUM(last_resort), 0) AS BIGINT) AS resort \
         FROM key_packages WHERE client_uri = $1 AND consumed_at_ms IS NULL",
    )
    .bind(client_uri)
    .fetch_one(db)
    .await?;
    Ok((row.try_get("single")?, row.try_get::<i64, _>("resort")? > 0))
}

/// Takes one package for use: a single-use one when any is left (it is marked consumed and
/// never handed out again), else the last-resort one (which stays available).
pub async fn take(
    conn: &mut sqlx::AnyConnection,
    client_uri: &str,
) -> Result<Option<KeyPackageRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT kp_ref, client_uri, key_package, last_resort FROM key_packages \
         WHERE client_uri = $1 AND consumed_at_ms IS NULL \
         ORDER BY last_resort, created_at_ms, kp_ref LIMIT 1",
    )
    .bind(client_uri)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let kp = KeyPackageRecord {
        kp_ref: row.try_get("kp_ref")?,
        client_uri: row.try_get("client_uri")?,
        key_package: row.try_get("key_package")?,
        last_resort: row.try_get::<i64, _>("last_resort")? != 0,
    };
    if !kp.last_resort {
        let result = sqlx::query(
            "UPDATE key_packages SET consumed_at_ms = $1 WHERE kp_ref = $2 AND consumed_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(&kp.kp_ref)
        .execute(&mut *conn)
        .await?;
        if result.rows_affected() != 1 {
            return Ok(None);
        }
    }
    Ok(Some(kp))
}

/// Which client published a KeyPackage (Welcome routing by KeyPackageRef).
pub async fn owner<'e>(
    db: impl AnyExecutor<'e>,
    kp_ref: &[u8],
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query("SELECT client_uri FROM key_packages WHERE kp_ref = $1")
            .bind(kp_ref)
            .fetch_optional(db)
            .await?
            .map(|r| r.try_get::<String, _>("client_uri"))
            .transpose()?,
    )
}
