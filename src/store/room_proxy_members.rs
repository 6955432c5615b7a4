//! Table `room_proxy_members`: the local proxy clients of each room and their catch-up point.

use sqlx::{AnyExecutor, Row};

use super::StoreError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyMemberRecord {
    pub client_uri: String,
    /// True until the client has processed its Welcome.
    pub dormant: bool,
    pub welcome_hash: Option<Vec<u8>>,
    /// The epoch the client's stored MLS state is at (for a dormant client: the Welcome's).
    pub state_epoch: i64,
    /// The next `room_log` sequence number of `state_epoch` the client has not processed.
    pub next_seq: i64,
}

pub async fn upsert<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    m: &ProxyMemberRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO room_proxy_members (room_id, client_uri, status, welcome_hash, state_epoch, next_seq) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (room_id, client_uri) DO UPDATE SET \
         status = excluded.status, welcome_hash = excluded.welcome_hash, \
         state_epoch = excluded.state_epoch, next_seq = excluded.next_seq",
    )
    .bind(room_id)
    .bind(&m.client_uri)
    .bind(if m.dormant { "dormant" } else { "active" })
    .bind(&m.welcome_hash)
    .bind(m.state_epoch)
    .bind(m.next_seq)
    .execute(db)
    .await?;
    Ok(())
}

fn from_row(row: sqlx::any::AnyRow) -> Result<ProxyMemberRecord, sqlx::Error> {
    Ok(ProxyMemberRecord {
        client_uri: row.try_get("client_uri")?,
        dormant: row.try_get::<String, _>("status")? == "dormant",
        welcome_hash: row.try_get("welcome_hash")?,
        state_epoch: row.try_get("state_epoch")?,
        next_seq: row.try_get("next_seq")?,
    })
}

pub async fn get<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    client_uri: &str,
) -> Result<Option<ProxyMemberRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT client_uri, status, welcome_hash, state_epoch, next_seq FROM room_proxy_members \
         WHERE room_id = $1 AND client_uri = $2",
    )
    .bind(room_id)
    .bind(client_uri)
    .fetch_optional(db)
    .await?;
    Ok(row.map(from_row).transpose()?)
}

pub async fn list<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
) -> Result<Vec<ProxyMemberRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT client_uri, status, welcome_hash, state_epoch, next_seq FROM room_proxy_members \
         WHERE room_id = $1 ORDER BY client_uri",
    )
    .bind(room_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(from_row).collect::<Result<_, _>>()?)
}

pub async fn delete<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    client_uri: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM room_proxy_members WHERE room_id = $1 AND client_uri = $2")
        .bind(room_id)
        .bind(client_uri)
        .execute(db)
        .await?;
    Ok(())
}

/// The lowest epoch any local member's stored state is at: the room log is needed from there.
pub async fn min_state_epoch<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
) -> Result<Option<i64>, StoreError> {
    let row =
        sqlx::query("SELECT MIN(state_epoch) AS e FROM room_proxy_members WHERE room_id = $1")
            .bind(room_id)
            .fetch_one(db)
            .await?;
    Ok(row.try_get::<Option<i64>, _>("e")?)
}
