//! Table `pending_proposals`: proposals the hub accepted and cached for the next commit.

use sqlx::{AnyExecutor, Row};

use super::StoreError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingProposalRecord {
    pub proposal_ref: Vec<u8>,
    pub epoch: i64,
    pub message: Vec<u8>,
    pub accepted_at_ms: i64,
}

/// Caches a proposal. Caching the same reference twice is a no-op (a retried `/update`).
pub async fn insert<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    proposal: &PendingProposalRecord,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO pending_proposals (room_id, proposal_ref, epoch, message, accepted_at_ms) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, proposal_ref) DO NOTHING",
    )
    .bind(room_id)
    .bind(&proposal.proposal_ref)
    .bind(proposal.epoch)
    .bind(&proposal.message)
    .bind(proposal.accepted_at_ms)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The cached proposals of a room for one epoch, in the order the hub accepted them.
pub async fn list<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    epoch: i64,
) -> Result<Vec<PendingProposalRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT proposal_ref, epoch, message, accepted_at_ms FROM pending_proposals \
         WHERE room_id = $1 AND epoch = $2 ORDER BY accepted_at_ms, proposal_ref",
    )
    .bind(room_id)
    .bind(epoch)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(PendingProposalRecord {
                proposal_ref: row.try_get("proposal_ref")?,
                epoch: row.try_get("epoch")?,
                message: row.try_get("message")?,
                accepted_at_ms: row.try_get("accepted_at_ms")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Drops every cached proposal of epochs before `epoch` (a commit moved the room on).
pub async fn clear_before<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    epoch: i64,
) -> Result<u64, StoreError> {
    let result = sqlx::query("DELETE FROM pending_proposals WHERE room_id = $1 AND epoch < $2")
        .bind(room_id)
        .bind(epoch)
        .execute(db)
        .await?;
    Ok(result.rows_affected())
}
