//! Table `outbox_origins`: what an outgoing message or leave carries out — the local client
//! that made it, the legacy event it settled and, for a message, the plaintext it encrypts — so
//! that the hub's answer reaches the legacy sender, and a message refused as too old is
//! encrypted again with the same content. A row goes when the hub has answered.

use sqlx::{AnyExecutor, Row};

use super::StoreError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginRecord {
    pub outbox_id: String,
    pub room_id: String,
    pub client_uri: String,
    /// The legacy event (`legacy_events.seq`) the call carries out, if any.
    pub legacy_event: Option<i64>,
    /// A message's plaintext (MIMI content), to encrypt again at a newer epoch.
    pub payload: Option<Vec<u8>>,
}

/// Records the origins of several calls with one statement per 500 rows.
pub async fn put_many(
    conn: &mut sqlx::AnyConnection,
    origins: &[OriginRecord],
) -> Result<(), StoreError> {
    const COLUMNS: usize = 5;
    for chunk in origins.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO outbox_origins (outbox_id, room_id, client_uri, legacy_event, payload) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * COLUMNS;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            ));
        }
        sql.push_str(" ON CONFLICT (outbox_id) DO NOTHING");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for o in chunk {
            query = query
                .bind(&o.outbox_id)
                .bind(&o.room_id)
                .bind(&o.client_uri)
                .bind(o.legacy_event)
                .bind(&o.payload);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

pub async fn get<'e>(
    db: impl AnyExecutor<'e>,
    outbox_id: &str,
) -> Result<Option<OriginRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT outbox_id, room_id, client_uri, legacy_event, payload FROM outbox_origins \
         WHERE outbox_id = $1",
    )
    .bind(outbox_id)
    .fetch_optional(db)
    .await?;
    row.map(|row| {
        Ok(OriginRecord {
            outbox_id: row.try_get("outbox_id")?,
            room_id: row.try_get("room_id")?,
            client_uri: row.try_get("client_uri")?,
            legacy_event: row.try_get("legacy_event")?,
            payload: row.try_get("payload")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| StoreError::from(e))
}

/// The hub answered: the origin is no longer needed. False when there was none.
pub async fn delete<'e>(db: impl AnyExecutor<'e>, outbox_id: &str) -> Result<bool, StoreError> {
    let result = sqlx::query("DELETE FROM outbox_origins WHERE outbox_id = $1")
        .bind(outbox_id)
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// The hub answered several calls at once.
pub async fn delete_many<'e>(
    db: impl AnyExecutor<'e>,
    outbox_ids: &[&str],
) -> Result<(), StoreError> {
    if outbox_ids.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (1..=outbox_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "DELETE FROM outbox_origins WHERE outbox_id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in outbox_ids {
        query = query.bind(*id);
    }
    query.execute(db).await?;
    Ok(())
}
