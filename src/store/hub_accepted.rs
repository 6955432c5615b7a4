//! Table `hub_accepted`: handshakes this daemon accepted as the hub of their room, with the peer
//! that sent each and the answer it got, so that a retry gets its first answer again and a
//! replay of an older one is recognised as such.

use sqlx::{AnyExecutor, Row};

use super::StoreError;

/// One accepted handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The epoch the handshake was made in.
    pub epoch: i64,
    /// The provider that sent it (this provider for its own clients).
    pub peer: String,
    /// `commit` or `proposal`.
    pub kind: String,
    /// The timestamp of the hub's answer (ms since the UNIX epoch).
    pub accepted_at_ms: i64,
}

pub async fn record<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    message_hash: &[u8],
    accepted: &Accepted,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO hub_accepted (room_id, message_hash, epoch, accepted_at_ms, peer, kind) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (room_id, message_hash) DO NOTHING",
    )
    .bind(room_id)
    .bind(message_hash)
    .bind(accepted.epoch)
    .bind(accepted.accepted_at_ms)
    .bind(&accepted.peer)
    .bind(&accepted.kind)
    .execute(db)
    .await?;
    Ok(())
}

/// How the handshake was accepted, if it was.
pub async fn get<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    message_hash: &[u8],
) -> Result<Option<Accepted>, StoreError> {
    let row = sqlx::query(
        "SELECT epoch, peer, kind, accepted_at_ms FROM hub_accepted \
         WHERE room_id = $1 AND message_hash = $2",
    )
    .bind(room_id)
    .bind(message_hash)
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(Accepted {
            epoch: r.try_get("epoch")?,
            peer: r.try_get("peer")?,
            kind: r.try_get("kind")?,
            accepted_at_ms: r.try_get("accepted_at_ms")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| e.into())
}
