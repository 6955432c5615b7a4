//! Table `outbox`: outgoing calls, written with the state change that caused them.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Stable across retries: the peer de-duplicates on it.
    pub id: String,
    pub room_id: Option<String>,
    pub destination: String,
    pub kind: String,
    /// The MIMI user an outgoing message is sent as.
    pub sender: Option<String>,
    pub body: Vec<u8>,
    pub attempts: i64,
}

pub async fn enqueue<'e>(db: impl AnyExecutor<'e>, item: &OutboxRecord) -> Result<(), StoreError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO outbox (id, room_id, destination, kind, sender, body, created_at_ms, next_attempt_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&item.id)
    .bind(&item.room_id)
    .bind(&item.destination)
    .bind(&item.kind)
    .bind(&item.sender)
    .bind(&item.body)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// Enqueues several items with one statement (a batch of messages sent together).
pub async fn enqueue_many(
    conn: &mut sqlx::AnyConnection,
    items: &[OutboxRecord],
) -> Result<(), StoreError> {
    const COLUMNS: usize = 7;
    // SQLite allows 32766 bound parameters per statement; stay well below.
    for chunk in items.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO outbox (id, room_id, destination, kind, sender, body, created_at_ms, next_attempt_at_ms) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * COLUMNS;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 7
            ));
        }
        let now = now_ms();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for item in chunk {
            query = query
                .bind(&item.id)
                .bind(&item.room_id)
                .bind(&item.destination)
                .bind(&item.kind)
                .bind(&item.sender)
                .bind(&item.body)
                .bind(now);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

fn record(row: sqlx::any::AnyRow) -> Result<OutboxRecord, sqlx::Error> {
    Ok(OutboxRecord {
        id: row.try_get("id")?,
        room_id: row.try_get("room_id")?,
        destination: row.try_get("destination")?,
        kind: row.try_get("kind")?,
        sender: row.try_get("sender")?,
        body: row.try_get("body")?,
        attempts: row.try_get("attempts")?,
    })
}

/// Undelivered items, in the order they were queued.
pub async fn pending<'e>(
    db: impl AnyExecutor<'e>,
    room_id: Option<&str>,
) -> Result<Vec<OutboxRecord>, StoreError> {
    const COLUMNS: &str = "SELECT id, room_id, destination, kind, sender, body, attempts FROM outbox \
                           WHERE delivered_at_ms IS NULL AND dead_lettered_at_ms IS NULL";
    let rows = match room_id {
        Some(room) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "{COLUMNS} AND room_id = $1 ORDER BY seq"
            )))
            .bind(room)
            .fetch_all(db)
            .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} ORDER BY seq")))
                .fetch_all(db)
                .await?
        }
    };
    rows.into_iter()
        .map(record)
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

pub async fn mark_delivered<'e>(db: impl AnyExecutor<'e>, id: &str) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE outbox SET delivered_at_ms = $1 WHERE id = $2 AND delivered_at_ms IS NULL",
    )
    .bind(now_ms())
    .bind(id)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// An undelivered item with its place in the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueItem {
    pub seq: i64,
    pub item: OutboxRecord,
    pub next_attempt_at_ms: i64,
}

/// The first undelivered item of every (room, destination) queue, due or not: a queue is
/// delivered strictly in order, so only its head may be attempted.
pub async fn heads<'e>(db: impl AnyExecutor<'e>) -> Result<Vec<DueItem>, StoreError> {
    let rows = sqlx::query(
        // One pass over the waiting rows (a grouped minimum), not a subquery per row.
        "SELECT o.seq, o.id, o.room_id, o.destination, o.kind, o.sender, o.body, o.attempts, o.next_attempt_at_ms \
         FROM outbox o JOIN ( \
           SELECT MIN(seq) AS head FROM outbox \
           WHERE delivered_at_ms IS NULL AND dead_lettered_at_ms IS NULL \
           GROUP BY destination, room_id) h ON h.head = o.seq \
         ORDER BY o.seq",
    )
    .fetch_all(db)
    .await?;
    due_items(rows)
}

fn due_items(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<DueItem>, StoreError> {
    rows.into_iter()
        .map(|row| {
            Ok(DueItem {
                seq: row.try_get("seq")?,
                next_attempt_at_ms: row.try_get("next_attempt_at_ms")?,
                item: record(row)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// The waiting items of one queue after `after_seq`, in order, at most `limit`: the run a
/// delivery pass carries on with once the queue's head went through.
pub async fn queue_after<'e>(
    db: impl AnyExecutor<'e>,
    destination: &str,
    room_id: &str,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<DueItem>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, id, room_id, destination, kind, sender, body, attempts, next_attempt_at_ms \
         FROM outbox WHERE destination = $1 AND room_id = $2 AND seq > $3 \
         AND delivered_at_ms IS NULL AND dead_lettered_at_ms IS NULL ORDER BY seq LIMIT $4",
    )
    .bind(destination)
    .bind(room_id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    due_items(rows)
}

/// Marks several items delivered with one statement (a batch that went in one call).
pub async fn mark_delivered_many<'e>(
    db: impl AnyExecutor<'e>,
    ids: &[&str],
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "UPDATE outbox SET delivered_at_ms = $1 WHERE delivered_at_ms IS NULL AND id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms());
    for id in ids {
        query = query.bind(*id);
    }
    query.execute(db).await?;
    Ok(())
}

/// Records a failed attempt and when to try again.
pub async fn reschedule<'e>(
    db: impl AnyExecutor<'e>,
    id: &str,
    next_attempt_at_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET attempts = attempts + 1, next_attempt_at_ms = $1 WHERE id = $2")
        .bind(next_attempt_at_ms)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Replaces the body of an item still waiting (a message encrypted again at a newer epoch): same
/// id, same place in its queue, attempts as they were (the failed attempt that led here is
/// counted by its retry, so re-encrypting stays bounded).
pub async fn replace_body<'e>(
    db: impl AnyExecutor<'e>,
    id: &str,
    body: &[u8],
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE outbox SET body = $1 \
         WHERE id = $2 AND delivered_at_ms IS NULL AND dead_lettered_at_ms IS NULL",
    )
    .bind(body)
    .bind(id)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Makes the waiting items of one queue due now (what they waited for has happened).
pub async fn hasten<'e>(
    db: impl AnyExecutor<'e>,
    destination: &str,
    room_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET next_attempt_at_ms = $1 WHERE destination = $2 AND room_id = $3 \
         AND delivered_at_ms IS NULL AND dead_lettered_at_ms IS NULL AND next_attempt_at_ms > $1",
    )
    .bind(now_ms())
    .bind(destination)
    .bind(room_id)
    .execute(db)
    .await?;
    Ok(())
}

/// Gives up on an item after its last retry; it stays, to be inspected and re-sent.
pub async fn dead_letter<'e>(db: impl AnyExecutor<'e>, id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET dead_lettered_at_ms = $1 WHERE id = $2 AND delivered_at_ms IS NULL",
    )
    .bind(now_ms())
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// Dead-lettered items of one destination, oldest first.
pub async fn dead_letters<'e>(
    db: impl AnyExecutor<'e>,
    destination: &str,
) -> Result<Vec<OutboxRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, room_id, destination, kind, sender, body, attempts FROM outbox \
         WHERE destination = $1 AND delivered_at_ms IS NULL AND dead_lettered_at_ms IS NOT NULL ORDER BY seq",
    )
    .bind(destination)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(record)
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Every dead-lettered item with the time it was given up on, oldest first.
pub async fn all_dead_letters<'e>(
    db: impl AnyExecutor<'e>,
) -> Result<Vec<(OutboxRecord, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, room_id, destination, kind, sender, body, attempts, dead_lettered_at_ms FROM outbox \
         WHERE delivered_at_ms IS NULL AND dead_lettered_at_ms IS NOT NULL ORDER BY seq",
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|row| {
            let at: i64 = row.try_get("dead_lettered_at_ms")?;
            Ok((record(row)?, at))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Puts a dead-lettered item back in its queue, with the same id, to be tried again now.
pub async fn resend<'e>(db: impl AnyExecutor<'e>, id: &str) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE outbox SET dead_lettered_at_ms = NULL, attempts = 0, next_attempt_at_ms = $1 \
         WHERE id = $2 AND dead_lettered_at_ms IS NOT NULL AND delivered_at_ms IS NULL",
    )
    .bind(now_ms())
    .bind(id)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Enqueues an item unless one with the same id was queued before; returns whether it was new.
pub async fn enqueue_once<'e>(
    db: impl AnyExecutor<'e>,
    item: &OutboxRecord,
) -> Result<bool, StoreError> {
    let now = now_ms();
    let result = sqlx::query(
        "INSERT INTO outbox (id, room_id, destination, kind, sender, body, created_at_ms, next_attempt_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&item.id)
    .bind(&item.room_id)
    .bind(&item.destination)
    .bind(&item.kind)
    .bind(&item.sender)
    .bind(&item.body)
    .bind(now)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}
