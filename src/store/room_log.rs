//! Table `room_log`: every handshake of a room in order, for clients that catch up.

use sqlx::{AnyExecutor, Row};

use super::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    Proposal,
    Commit,
}

impl LogKind {
    fn as_str(self) -> &'static str {
        match self {
            LogKind::Proposal => "proposal",
            LogKind::Commit => "commit",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub epoch: i64,
    pub seq: i64,
    pub kind: LogKind,
    pub message_hash: Vec<u8>,
}

/// Appends a handshake at the end of its epoch's entries.
pub async fn append(
    conn: &mut sqlx::AnyConnection,
    room_id: &str,
    epoch: i64,
    kind: LogKind,
    message_hash: &[u8],
) -> Result<i64, StoreError> {
    let seq: i64 = sqlx::query(
        "SELECT COALESCE(MAX(seq) + 1, 0) AS s FROM room_log WHERE room_id = $1 AND epoch = $2",
    )
    .bind(room_id)
    .bind(epoch)
    .fetch_one(&mut *conn)
    .await?
    .try_get("s")?;
    sqlx::query("INSERT INTO room_log (room_id, epoch, seq, kind, message_hash) VALUES ($1, $2, $3, $4, $5)")
        .bind(room_id)
        .bind(epoch)
        .bind(seq)
        .bind(kind.as_str())
        .bind(message_hash)
        .execute(&mut *conn)
        .await?;
    Ok(seq)
}

/// Entries from `from_epoch` on, in order.
pub async fn since<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    from_epoch: i64,
) -> Result<Vec<LogEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT epoch, seq, kind, message_hash FROM room_log WHERE room_id = $1 AND epoch >= $2 ORDER BY epoch, seq",
    )
    .bind(room_id)
    .bind(from_epoch)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|row| {
            let kind: String = row.try_get("kind")?;
            Ok(LogEntry {
                epoch: row.try_get("epoch")?,
                seq: row.try_get("seq")?,
                kind: if kind == "commit" {
                    LogKind::Commit
                } else {
                    LogKind::Proposal
                },
                message_hash: row.try_get("message_hash")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Deletes the entries of epochs before `epoch` (every local member is past them) and returns
/// their message hashes, so that unreferenced blobs can be dropped.
pub async fn prune_before(
    conn: &mut sqlx::AnyConnection,
    room_id: &str,
    epoch: i64,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let rows = sqlx::query("SELECT message_hash FROM room_log WHERE room_id = $1 AND epoch < $2")
        .bind(room_id)
        .bind(epoch)
        .fetch_all(&mut *conn)
        .await?;
    let hashes = rows
        .into_iter()
        .map(|r| r.try_get::<Vec<u8>, _>("message_hash"))
        .collect::<Result<Vec<_>, _>>()?;
    if !hashes.is_empty() {
        sqlx::query("DELETE FROM room_log WHERE room_id = $1 AND epoch < $2")
            .bind(room_id)
            .bind(epoch)
            .execute(&mut *conn)
            .await?;
    }
    Ok(hashes)
}

/// Whether a message is in the log of an epoch already (a retried or replayed handshake).
pub async fn contains<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    epoch: i64,
    message_hash: &[u8],
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "SELECT 1 FROM room_log WHERE room_id = $1 AND epoch = $2 AND message_hash = $3",
    )
    .bind(room_id)
    .bind(epoch)
    .bind(message_hash)
    .fetch_optional(db)
    .await?
    .is_some())
}

/// Rooms whose log holds proposals of their current epoch: proposals waiting for a commit.
pub async fn rooms_with_pending_proposals<'e>(
    db: impl AnyExecutor<'e>,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT l.room_id AS room_id FROM room_log l \
         JOIN room_groups g ON g.room_id = l.room_id AND g.epoch = l.epoch \
         WHERE l.kind = 'proposal'",
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| r.try_get::<String, _>("room_id").map_err(StoreError::from))
        .collect()
}
