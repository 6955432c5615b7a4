//! Table `legacy_events`: events a connector submitted, waiting to be carried into MIMI. A
//! legacy room's pending events, by `seq`, are that room's ordered queue.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

/// Where an event stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventState {
    /// Accepted, not yet carried out.
    Pending,
    /// Carried out (its MIMI operation is stored and queued).
    Done,
    /// Could not be carried out; the connector was told why.
    Failed,
}

impl EventState {
    fn as_str(self) -> &'static str {
        match self {
            EventState::Pending => "pending",
            EventState::Done => "done",
            EventState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => EventState::Pending,
            "done" => EventState::Done,
            "failed" => EventState::Failed,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "legacy_events.state `{other}`"
                )));
            }
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyEventRecord {
    pub seq: i64,
    pub event_id: String,
    pub legacy_room_id: String,
    /// The event as the connector submitted it (JSON).
    pub body: String,
    pub state: EventState,
    pub error: Option<String>,
    pub created_at_ms: i64,
}

/// Stores a submitted event; false when an event with this id was accepted before.
pub async fn accept<'e>(
    db: impl AnyExecutor<'e>,
    event_id: &str,
    legacy_room_id: &str,
    body: &str,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO legacy_events (event_id, legacy_room_id, body, state, created_at_ms) \
         VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(legacy_room_id)
    .bind(body)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

fn from_row(row: sqlx::any::AnyRow) -> Result<LegacyEventRecord, StoreError> {
    Ok(LegacyEventRecord {
        seq: row.try_get("seq")?,
        event_id: row.try_get("event_id")?,
        legacy_room_id: row.try_get("legacy_room_id")?,
        body: row.try_get("body")?,
        state: EventState::parse(&row.try_get::<String, _>("state")?)?,
        error: row.try_get("error")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

const COLUMNS: &str = "seq, event_id, legacy_room_id, body, state, error, created_at_ms";

/// The head of each legacy room's queue (its oldest pending event), oldest rooms first.
pub async fn heads<'e>(
    db: impl AnyExecutor<'e>,
    limit: i64,
) -> Result<Vec<LegacyEventRecord>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM legacy_events WHERE seq IN \
         (SELECT MIN(seq) FROM legacy_events WHERE state = 'pending' GROUP BY legacy_room_id) \
         ORDER BY seq LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.into_iter().map(from_row).collect()
}

/// The oldest pending events of one legacy room, at most `limit`.
pub async fn pending_in_room<'e>(
    db: impl AnyExecutor<'e>,
    legacy_room_id: &str,
    limit: i64,
) -> Result<Vec<LegacyEventRecord>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM legacy_events WHERE state = 'pending' AND legacy_room_id = $1 \
         ORDER BY seq LIMIT $2"
    )))
    .bind(legacy_room_id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.into_iter().map(from_row).collect()
}

/// The oldest pending event of one legacy room.
pub async fn next_pending<'e>(
    db: impl AnyExecutor<'e>,
    legacy_room_id: &str,
) -> Result<Option<LegacyEventRecord>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM legacy_events WHERE state = 'pending' AND legacy_room_id = $1 \
         ORDER BY seq LIMIT 1"
    )))
    .bind(legacy_room_id)
    .fetch_optional(db)
    .await?;
    row.map(from_row).transpose()
}

pub async fn get<'e>(
    db: impl AnyExecutor<'e>,
    event_id: &str,
) -> Result<Option<LegacyEventRecord>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM legacy_events WHERE event_id = $1"
    )))
    .bind(event_id)
    .fetch_optional(db)
    .await?;
    row.map(from_row).transpose()
}

pub async fn by_seq<'e>(
    db: impl AnyExecutor<'e>,
    seq: i64,
) -> Result<Option<LegacyEventRecord>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM legacy_events WHERE seq = $1"
    )))
    .bind(seq)
    .fetch_optional(db)
    .await?;
    row.map(from_row).transpose()
}

/// Settles a pending event; false when it was settled already (the first outcome stands).
pub async fn settle<'e>(
    db: impl AnyExecutor<'e>,
    seq: i64,
    state: EventState,
    error: Option<&str>,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE legacy_events SET state = $1, error = $2, settled_at_ms = $3 \
         WHERE seq = $4 AND state = 'pending'",
    )
    .bind(state.as_str())
    .bind(error)
    .bind(now_ms())
    .bind(seq)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Puts an event that was carried out back in its room's queue, to be carried out again (its
/// commit lost an epoch race at the hub). False when it is not settled as done.
pub async fn reopen<'e>(db: impl AnyExecutor<'e>, seq: i64) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE legacy_events SET state = 'pending', error = NULL, settled_at_ms = NULL \
         WHERE seq = $1 AND state = 'done'",
    )
    .bind(seq)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Marks an event that was carried out as failed after all (the hub refused its commit).
pub async fn fail_after<'e>(
    db: impl AnyExecutor<'e>,
    seq: i64,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE legacy_events SET state = 'failed', error = $1, settled_at_ms = $2 WHERE seq = $3",
    )
    .bind(error)
    .bind(now_ms())
    .bind(seq)
    .execute(db)
    .await?;
    Ok(())
}

/// What settling an event writes besides its state, in the transaction of the MIMI operation
/// that carries it out: either both are stored or neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    pub seq: i64,
    /// (room, legacy message id, MIMI message id) to record in `message_map`.
    pub message_map: Option<(String, String, String)>,
    /// A reaction sent: (room, its MIMI id, target MIMI id, sender, key) for `mimi_reactions`.
    pub reaction: Option<(String, String, String, String, String)>,
    /// A room created: (legacy room id, MIMI room) for `portals`.
    pub portal: Option<(String, String)>,
}

impl Settlement {
    pub fn new(seq: i64) -> Self {
        Settlement {
            seq,
            ..Default::default()
        }
    }

    /// Writes the settlement; false when the event was settled already.
    pub async fn apply(&self, conn: &mut sqlx::AnyConnection) -> Result<bool, StoreError> {
        if !settle(&mut *conn, self.seq, EventState::Done, None).await? {
            return Ok(false);
        }
        if let Some((room, legacy, mimi)) = &self.message_map {
            super::message_map::insert(&mut *conn, room, legacy, mimi).await?;
        }
        if let Some((legacy, room)) = &self.portal {
            super::portals::link(&mut *conn, legacy, room).await?;
        }
        if let Some((room, id, target, sender, key)) = &self.reaction {
            super::mimi_reactions::insert(&mut *conn, room, id, target, sender, key).await?;
        }
        Ok(true)
    }
}
