//! Table `inbound_messages`: decrypted messages for this provider's users, in hub order.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundMessage {
    pub seq: i64,
    pub room_id: String,
    pub sender_client: String,
    pub payload: Vec<u8>,
    pub hub_timestamp_ms: i64,
    pub kind: InboundKind,
}

/// What an inbound entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundKind {
    /// A decrypted application message (MIMI content).
    Message,
    /// A change of the room state as this provider saw it (JSON, written by the MLS layer).
    Change,
}

impl InboundKind {
    fn as_str(self) -> &'static str {
        match self {
            InboundKind::Message => "message",
            InboundKind::Change => "change",
        }
    }
}

pub async fn push<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    sender_client: &str,
    payload: &[u8],
    hub_timestamp_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO inbound_messages (room_id, sender_client, payload, hub_timestamp_ms, received_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(room_id)
    .bind(sender_client)
    .bind(payload)
    .bind(hub_timestamp_ms)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

/// Messages of a room after `after_seq`, oldest first.
pub async fn list<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    after_seq: i64,
) -> Result<Vec<InboundMessage>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, room_id, sender_client, payload, hub_timestamp_ms, kind FROM inbound_messages \
         WHERE room_id = $1 AND seq > $2 AND kind = 'message' ORDER BY seq",
    )
    .bind(room_id)
    .bind(after_seq)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(InboundMessage {
                seq: row.try_get("seq")?,
                room_id: row.try_get("room_id")?,
                sender_client: row.try_get("sender_client")?,
                payload: row.try_get("payload")?,
                hub_timestamp_ms: row.try_get("hub_timestamp_ms")?,
                kind: InboundKind::Message,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Records a decrypted message with the hash of the MLS message it came from, inside the
/// transaction that advanced the ratchet.
pub async fn push_once<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    message_hash: &[u8],
    sender_client: &str,
    payload: &[u8],
    hub_timestamp_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO inbound_messages (room_id, message_hash, sender_client, payload, hub_timestamp_ms, received_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(room_id)
    .bind(message_hash)
    .bind(sender_client)
    .bind(payload)
    .bind(hub_timestamp_ms)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

/// Whether the MLS message was received already.
pub async fn seen<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    message_hash: &[u8],
) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 FROM inbound_messages WHERE room_id = $1 AND message_hash = $2")
            .bind(room_id)
            .bind(message_hash)
            .fetch_optional(db)
            .await?
            .is_some(),
    )
}

/// Records a change of the room state in the room's inbound stream, inside the transaction
/// that made it.
pub async fn push_change<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    sender_client: &str,
    change_json: &[u8],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO inbound_messages (room_id, sender_client, payload, hub_timestamp_ms, received_at_ms, kind) \
         VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(room_id)
    .bind(sender_client)
    .bind(change_json)
    .bind(now_ms())
    .bind(InboundKind::Change.as_str())
    .execute(db)
    .await?;
    Ok(())
}

/// Every entry (messages and changes) of a room after `after_seq`, oldest first, at most
/// `limit`.
pub async fn stream<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<InboundMessage>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, room_id, sender_client, payload, hub_timestamp_ms, kind FROM inbound_messages \
         WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(room_id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|row| {
            let kind: String = row.try_get("kind")?;
            Ok(InboundMessage {
                seq: row.try_get("seq")?,
                room_id: row.try_get("room_id")?,
                sender_client: row.try_get("sender_client")?,
                payload: row.try_get("payload")?,
                hub_timestamp_ms: row.try_get("hub_timestamp_ms")?,
                kind: if kind == "change" {
                    InboundKind::Change
                } else {
                    InboundKind::Message
                },
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}
