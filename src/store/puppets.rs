//! Table `puppets`: legacy users and the MIMI users the bridge acts as for them, and the
//! legacy-side ids (ghosts) of remote MIMI users.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Puppet {
    pub legacy_user_id: String,
    pub user_uri: String,
    pub client_uri: Option<String>,
    pub is_ghost: bool,
}

/// Records a mapping; the first one for a legacy id or user URI wins.
pub async fn insert<'e>(db: impl AnyExecutor<'e>, p: &Puppet) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO puppets (legacy_user_id, user_uri, client_uri, is_ghost, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(&p.legacy_user_id)
    .bind(&p.user_uri)
    .bind(&p.client_uri)
    .bind(i64::from(p.is_ghost))
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

fn from_row(row: sqlx::any::AnyRow) -> Result<Puppet, sqlx::Error> {
    Ok(Puppet {
        legacy_user_id: row.try_get("legacy_user_id")?,
        user_uri: row.try_get("user_uri")?,
        client_uri: row.try_get("client_uri")?,
        is_ghost: row.try_get::<i64, _>("is_ghost")? != 0,
    })
}

pub async fn by_legacy<'e>(
    db: impl AnyExecutor<'e>,
    legacy_user_id: &str,
) -> Result<Option<Puppet>, StoreError> {
    let row = sqlx::query(
        "SELECT legacy_user_id, user_uri, client_uri, is_ghost FROM puppets WHERE legacy_user_id = $1",
    )
    .bind(legacy_user_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(from_row).transpose()?)
}

pub async fn by_user<'e>(
    db: impl AnyExecutor<'e>,
    user_uri: &str,
) -> Result<Option<Puppet>, StoreError> {
    let row = sqlx::query(
        "SELECT legacy_user_id, user_uri, client_uri, is_ghost FROM puppets WHERE user_uri = $1",
    )
    .bind(user_uri)
    .fetch_optional(db)
    .await?;
    Ok(row.map(from_row).transpose()?)
}
