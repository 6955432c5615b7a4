//! Table `proxy_clients`: the MLS identities the bridge holds for legacy users.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyClientRecord {
    pub client_uri: String,
    pub user_uri: String,
    pub signature_public: Vec<u8>,
    /// Sealed under the state key.
    pub signature_private: Vec<u8>,
    pub created_at_ms: i64,
}

/// Inserts a client; returns false when it already exists (the stored one wins).
pub async fn insert<'e>(
    db: impl AnyExecutor<'e>,
    c: &ProxyClientRecord,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO proxy_clients (client_uri, user_uri, signature_public, signature_private, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_uri) DO NOTHING",
    )
    .bind(&c.client_uri)
    .bind(&c.user_uri)
    .bind(&c.signature_public)
    .bind(&c.signature_private)
    .bind(if c.created_at_ms == 0 { now_ms() } else { c.created_at_ms })
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn get<'e>(
    db: impl AnyExecutor<'e>,
    client_uri: &str,
) -> Result<Option<ProxyClientRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT client_uri, user_uri, signature_public, signature_private, created_at_ms \
         FROM proxy_clients WHERE client_uri = $1",
    )
    .bind(client_uri)
    .fetch_optional(db)
    .await?;
    row.map(|row| {
        Ok(ProxyClientRecord {
            client_uri: row.try_get("client_uri")?,
            user_uri: row.try_get("user_uri")?,
            signature_public: row.try_get("signature_public")?,
            signature_private: row.try_get("signature_private")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| e.into())
}

/// The proxy clients of one user.
pub async fn for_user<'e>(
    db: impl AnyExecutor<'e>,
    user_uri: &str,
) -> Result<Vec<String>, StoreError> {
    let rows =
        sqlx::query("SELECT client_uri FROM proxy_clients WHERE user_uri = $1 ORDER BY client_uri")
            .bind(user_uri)
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| r.try_get::<String, _>("client_uri"))
        .collect::<Result<_, _>>()?)
}
