//! Table `pending_commits`: commits sent to the hub and not yet answered.

use sqlx::{AnyExecutor, Row};

use super::StoreError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCommitRecord {
    pub client_uri: String,
    /// The epoch the commit was made in.
    pub epoch: i64,
    pub commit_hash: Vec<u8>,
    pub welcome_hash: Option<Vec<u8>>,
    /// The GroupInfo of the epoch the commit creates, for the hub to serve external joins.
    pub group_info_hash: Option<Vec<u8>>,
    /// Local proxy clients the commit adds (they join from the Welcome once it is accepted).
    pub local_joiners: Vec<String>,
    /// The legacy event (`legacy_events.seq`) the commit carries out, if any.
    pub legacy_event: Option<i64>,
    /// An external commit: the client's own state is at the new epoch already.
    pub external: bool,
}

pub async fn put<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    p: &PendingCommitRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO pending_commits (room_id, client_uri, epoch, commit_hash, welcome_hash, group_info_hash, local_joiners, legacy_event, external) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (room_id, client_uri) DO UPDATE SET \
         epoch = excluded.epoch, commit_hash = excluded.commit_hash, welcome_hash = excluded.welcome_hash, \
         group_info_hash = excluded.group_info_hash, local_joiners = excluded.local_joiners, \
         legacy_event = excluded.legacy_event, external = excluded.external",
    )
    .bind(room_id)
    .bind(&p.client_uri)
    .bind(p.epoch)
    .bind(&p.commit_hash)
    .bind(&p.welcome_hash)
    .bind(&p.group_info_hash)
    .bind(p.local_joiners.join("\n"))
    .bind(p.legacy_event)
    .bind(i64::from(p.external))
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    client_uri: &str,
) -> Result<Option<PendingCommitRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT client_uri, epoch, commit_hash, welcome_hash, group_info_hash, local_joiners, legacy_event, external \
         FROM pending_commits WHERE room_id = $1 AND client_uri = $2",
    )
    .bind(room_id)
    .bind(client_uri)
    .fetch_optional(db)
    .await?;
    row.map(|row| {
        let joiners: String = row.try_get("local_joiners")?;
        Ok(PendingCommitRecord {
            client_uri: row.try_get("client_uri")?,
            epoch: row.try_get("epoch")?,
            commit_hash: row.try_get("commit_hash")?,
            welcome_hash: row.try_get("welcome_hash")?,
            group_info_hash: row.try_get("group_info_hash")?,
            local_joiners: joiners
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            legacy_event: row.try_get("legacy_event")?,
            external: row.try_get::<i64, _>("external")? != 0,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| e.into())
}

pub async fn delete<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    client_uri: &str,
) -> Result<bool, StoreError> {
    let result = sqlx::query("DELETE FROM pending_commits WHERE room_id = $1 AND client_uri = $2")
        .bind(room_id)
        .bind(client_uri)
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// The pending commit with this commit hash, if a local client made it.
pub async fn by_commit<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    commit_hash: &[u8],
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query(
        "SELECT client_uri FROM pending_commits WHERE room_id = $1 AND commit_hash = $2",
    )
    .bind(room_id)
    .bind(commit_hash)
    .fetch_optional(db)
    .await?
    .map(|r| r.try_get::<String, _>("client_uri"))
    .transpose()?)
}

/// Whether any local client of the room has a commit waiting for the hub.
pub async fn any_in_room<'e>(db: impl AnyExecutor<'e>, room_id: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 FROM pending_commits WHERE room_id = $1 LIMIT 1")
            .bind(room_id)
            .fetch_optional(db)
            .await?
            .is_some(),
    )
}
