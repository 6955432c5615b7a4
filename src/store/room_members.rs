//! Table `room_members`: the clients in each room's MLS group and the user of each.

use sqlx::{AnyExecutor, Row};

use super::StoreError;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemberRecord {
    pub client_uri: String,
    pub user_uri: String,
}

pub async fn list<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
) -> Result<Vec<MemberRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT client_uri, user_uri FROM room_members WHERE room_id = $1 ORDER BY client_uri",
    )
    .bind(room_id)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(MemberRecord {
                client_uri: row.try_get("client_uri")?,
                user_uri: row.try_get("user_uri")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Replaces a room's member list, inside the caller's transaction.
pub async fn replace(
    tx: &mut sqlx::AnyConnection,
    room_id: &str,
    members: &[MemberRecord],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM room_members WHERE room_id = $1")
        .bind(room_id)
        .execute(&mut *tx)
        .await?;
    for m in members {
        sqlx::query("INSERT INTO room_members (room_id, client_uri, user_uri) VALUES ($1, $2, $3)")
            .bind(room_id)
            .bind(&m.client_uri)
            .bind(&m.user_uri)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
