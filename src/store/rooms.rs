//! Table `rooms`: one row per MIMI room this bridge takes part in.

use sqlx::{AnyExecutor, Row, any::AnyRow};

use super::{StoreError, now_ms};

/// Whether this bridge is the hub of a room or a follower in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OurRole {
    Hub,
    Follower,
}

impl OurRole {
    fn as_str(self) -> &'static str {
        match self {
            OurRole::Hub => "hub",
            OurRole::Follower => "follower",
        }
    }

    fn parse(s: &str) -> Result<OurRole, sqlx::Error> {
        match s {
            "hub" => Ok(OurRole::Hub),
            "follower" => Ok(OurRole::Follower),
            other => Err(sqlx::Error::Decode(
                format!("rooms.our_role holds `{other}`, expected hub or follower").into(),
            )),
        }
    }
}

/// A stored room. `app_data` is the TLS-encoded `AppDataDictionary` of `epoch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomRecord {
    pub room_id: String,
    pub hub_domain: String,
    pub our_role: OurRole,
    pub epoch: i64,
    pub app_data: Vec<u8>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What [`insert`] needs; timestamps are set by the store.
#[derive(Clone, Debug)]
pub struct NewRoom<'a> {
    pub room_id: &'a str,
    pub hub_domain: &'a str,
    pub our_role: OurRole,
    pub epoch: i64,
    pub app_data: &'a [u8],
}

fn from_row(row: AnyRow) -> Result<RoomRecord, sqlx::Error> {
    Ok(RoomRecord {
        room_id: row.try_get("room_id")?,
        hub_domain: row.try_get("hub_domain")?,
        our_role: OurRole::parse(&row.try_get::<String, _>("our_role")?)?,
        epoch: row.try_get("epoch")?,
        app_data: row.try_get("app_data")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

const COLUMNS: &str =
    "room_id, hub_domain, our_role, epoch, app_data, created_at_ms, updated_at_ms";

pub async fn insert<'e>(db: impl AnyExecutor<'e>, room: &NewRoom<'_>) -> Result<(), StoreError> {
    let now = now_ms();
    let result = sqlx::query(
        "INSERT INTO rooms (room_id, hub_domain, our_role, epoch, app_data, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (room_id) DO NOTHING",
    )
    .bind(room.room_id)
    .bind(room.hub_domain)
    .bind(room.our_role.as_str())
    .bind(room.epoch)
    .bind(room.app_data)
    .bind(now)
    .execute(db)
    .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::RoomExists {
            room_id: room.room_id.to_string(),
        });
    }
    Ok(())
}

pub async fn get<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
) -> Result<Option<RoomRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM rooms WHERE room_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(room_id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(from_row).transpose()?)
}

pub async fn list<'e>(db: impl AnyExecutor<'e>) -> Result<Vec<RoomRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM rooms ORDER BY room_id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(db).await?;
    Ok(rows.into_iter().map(from_row).collect::<Result<_, _>>()?)
}

/// Moves a room from `expected_epoch` to `new_epoch` with new state. Fails with
/// [`StoreError::EpochConflict`] when the stored epoch is not `expected_epoch`, so that two
/// writers can never both apply a commit for the same epoch.
pub async fn advance_epoch(
    tx: &mut sqlx::AnyConnection,
    room_id: &str,
    expected_epoch: i64,
    new_epoch: i64,
    app_data: &[u8],
) -> Result<(), StoreError> {
    let result = sqlx::query(
        "UPDATE rooms SET epoch = $1, app_data = $2, updated_at_ms = $3 \
         WHERE room_id = $4 AND epoch = $5",
    )
    .bind(new_epoch)
    .bind(app_data)
    .bind(now_ms())
    .bind(room_id)
    .bind(expected_epoch)
    .execute(&mut *tx)
    .await?;
    if result.rows_affected() == 1 {
        return Ok(());
    }
    let actual = get(&mut *tx, room_id).await?.map(|r| r.epoch);
    match actual {
        None => Err(StoreError::RoomNotFound {
            room_id: room_id.to_string(),
        }),
        Some(_) => Err(StoreError::EpochConflict {
            room_id: room_id.to_string(),
            expected: expected_epoch,
            actual,
        }),
    }
}

pub async fn delete<'e>(db: impl AnyExecutor<'e>, room_id: &str) -> Result<bool, StoreError> {
    let result = sqlx::query("DELETE FROM rooms WHERE room_id = $1")
        .bind(room_id)
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}
