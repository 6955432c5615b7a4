//! Several queued items of one queue in one call, where the protocol lets them go together:
//! consecutive `/notify` rows of application messages concatenated into one body (protocol-06
//! §5.5: a body is a sequence of FanoutMessages), and consecutive messages of this provider's
//! users for a room it hosts accepted in one transaction. Handshakes always go alone: a retried
//! batch may be made up differently, and only messages are safe to see twice.

use super::is_permanent;
use crate::protocol::directory::Endpoint;
use crate::protocol::service::{Attempt, MimiService, ServiceError};
use crate::protocol::wire::{self, FanoutBody};
use crate::store::outbox::{DueItem, OutboxRecord};
use crate::uri::{ProviderId, RoomUri};

/// Items in one call at most.
pub(super) const MAX_BATCH: usize = 64;
/// Body bytes of one batched `/notify` at most.
const MAX_BATCH_BYTES: usize = 1 << 20;

impl MimiService {
    /// How many of `run` (a queue's due items from its head on) go in the next call.
    pub(super) fn batch_len(&self, run: &[DueItem], now_ms: i64) -> usize {
        let Some(head) = run.first() else {
            return 0;
        };
        let due = run
            .iter()
            .take(MAX_BATCH)
            .take_while(|d| d.next_attempt_at_ms <= now_ms && d.item.kind == head.item.kind);
        match head.item.kind.as_str() {
            "notify" => {
                let mut bytes = 0;
                let mut n = 0;
                for d in due {
                    bytes += d.item.body.len();
                    if (n > 0 && bytes > MAX_BATCH_BYTES) || !only_messages(&d.item) {
                        break;
                    }
                    n += 1;
                }
                n.max(1)
            }
            "message" if hosted_here(&head.item, self) => due.count().max(1),
            _ => 1,
        }
    }

    /// Delivers `items` (more than one, as [`Self::batch_len`] chose them) in one call;
    /// `None` when they must go one by one after all.
    pub(super) async fn deliver_batch(&self, items: &[OutboxRecord]) -> Option<Attempt> {
        match self.try_batch(items).await {
            Ok(attempt) => attempt,
            Err(e) => {
                tracing::warn!(first = %items[0].id, items = items.len(), error = %e, "batched delivery attempt failed");
                Some(Attempt::Retry(None))
            }
        }
    }

    async fn try_batch(&self, items: &[OutboxRecord]) -> Result<Option<Attempt>, ServiceError> {
        let head = &items[0];
        let room: RoomUri = match head.room_id.as_deref().map(str::parse) {
            Some(Ok(room)) => room,
            _ => return Ok(None),
        };
        match head.kind.as_str() {
            "notify" => {
                let Ok(peer) = ProviderId::new(&head.destination) else {
                    return Ok(None);
                };
                let body: Vec<u8> = items.iter().flat_map(|i| i.body.iter().copied()).collect();
                let answer = self
                    .client()?
                    .post(&peer, Endpoint::Notify, room.as_str(), body)
                    .await?;
                Ok(match answer.status {
                    200 | 201 => Some(Attempt::Delivered),
                    // Refused for good: each row on its own finds out which.
                    s if is_permanent(s) => None,
                    _ => Some(Attempt::Retry(answer.retry_after)),
                })
            }
            "message" => Ok(self
                .accept_local_messages(&room, items)
                .await?
                .then_some(Attempt::Delivered)),
            _ => Ok(None),
        }
    }
}

/// Whether a `/notify` row holds application messages only.
fn only_messages(item: &OutboxRecord) -> bool {
    wire::split_notify_body(&item.body).is_ok_and(|messages| {
        messages
            .iter()
            .all(|m| matches!(m.body, FanoutBody::Application { .. }))
    })
}

/// Whether a message is for a room this daemon hosts (its hub logic takes it directly).
fn hosted_here(item: &OutboxRecord, service: &MimiService) -> bool {
    item.room_id
        .as_deref()
        .and_then(|r| r.parse::<RoomUri>().ok())
        .is_some_and(|r| r.provider() == &service.domain)
}
