//! Delivery of the outbox: every outgoing call, written in the transaction of the change that
//! caused it, is attempted here. Each (room, destination) queue runs strictly in order, a run of
//! its items at a time, batched where the protocol allows ([`batches`]); in a running daemon
//! each due queue has a task of its own ([`scheduler`]); failed calls are retried with
//! exponential backoff (or the peer's Retry-After) under the same id.
//! What each kind of item means is in [`mimi`] (the MIMI protocol's calls) and, for commands to
//! the legacy side, in the bridge core behind [`LegacyOutbox`].

mod batches;
mod messages;
mod mimi;
mod scheduler;

use std::time::Duration;

use crate::protocol::service::{Attempt, MimiService, ServiceError};
use crate::store::{now_ms, outbox};

pub use crate::protocol::service::{LEGACY_KIND, LegacyOutbox};

/// Items of one queue a delivery pass carries on with once its head went through.
const RUN: i64 = 256;

impl MimiService {
    /// Attempts every due queue once, from its head on, in order, as long as its items go
    /// through (a run of at most [`RUN`] items, batched where the protocol allows); returns how
    /// long until the next item is due.
    pub async fn deliver_due(&self) -> Result<Option<Duration>, ServiceError> {
        let mut next_due: Option<i64> = None;
        loop {
            let heads = outbox::heads(self.store.pool()).await?;
            let now = now_ms();
            let due: Vec<_> = heads
                .iter()
                .filter(|h| h.next_attempt_at_ms <= now)
                .cloned()
                .collect();
            for h in &heads {
                if h.next_attempt_at_ms > now {
                    next_due = Some(
                        next_due.map_or(h.next_attempt_at_ms, |n| n.min(h.next_attempt_at_ms)),
                    );
                }
            }
            if due.is_empty() {
                return Ok(next_due.map(|at| Duration::from_millis((at - now).max(0) as u64)));
            }
            let mut progressed = false;
            for head in due {
                progressed |= self.deliver_queue(head, &mut next_due).await?;
            }
            if !progressed {
                return Ok(next_due.map(|at| Duration::from_millis((at - now_ms()).max(0) as u64)));
            }
        }
    }

    /// One queue from its head on: each call's outcome settles its items; the first that must
    /// wait stops the run (the queue's order holds). Returns whether anything was settled.
    pub(super) async fn deliver_queue(
        &self,
        head: outbox::DueItem,
        next_due: &mut Option<i64>,
    ) -> Result<bool, ServiceError> {
        let mut run = vec![head];
        let first = &run[0].item;
        if let Some(room) = first.room_id.clone() {
            let after = outbox::queue_after(
                self.store.pool(),
                &first.destination,
                &room,
                run[0].seq,
                RUN - 1,
            )
            .await?;
            run.extend(after);
        }
        let now = now_ms();
        let mut progressed = false;
        let mut i = 0;
        while i < run.len() && run[i].next_attempt_at_ms <= now {
            let n = self.batch_len(&run[i..], now);
            let items: Vec<outbox::OutboxRecord> =
                run[i..i + n].iter().map(|d| d.item.clone()).collect();
            let batched = if n > 1 {
                self.deliver_batch(&items).await
            } else {
                None
            };
            let (n, attempt) = match batched {
                Some(attempt) => (n, attempt),
                None => (1, self.deliver(&items[0]).await),
            };
            let item = &items[0];
            match attempt {
                Attempt::DeadLettered => {}
                Attempt::Delivered => {
                    let ids: Vec<&str> = items[..n].iter().map(|i| i.id.as_str()).collect();
                    outbox::mark_delivered_many(self.store.pool(), &ids).await?;
                }
                Attempt::Retry(_)
                    if item.kind != LEGACY_KIND && item.attempts + 1 >= self.max_attempts =>
                {
                    self.give_up(item).await?;
                    i += 1;
                    progressed = true;
                    continue;
                }
                Attempt::Retry(retry) => {
                    let backoff = retry.unwrap_or_else(|| backoff(item));
                    let at = now_ms() + backoff.as_millis() as i64;
                    outbox::reschedule(self.store.pool(), &item.id, at).await?;
                    *next_due = Some(next_due.map_or(at, |d| d.min(at)));
                    break;
                }
            }
            i += n;
            progressed = true;
        }
        if progressed && !matches!(run[0].item.kind.as_str(), "notify" | LEGACY_KIND) {
            // The hub's answers (confirmations, refusals) are written to the inbound stream.
            self.wake_legacy();
        }
        Ok(progressed)
    }

    /// The last attempt of an outgoing MIMI call failed: it is dead-lettered (listed and
    /// re-sendable through the admin API), and what waited for it is released: a commit the
    /// room's hub never answered is dropped, and the legacy event it carried out reported.
    async fn give_up(&self, item: &outbox::OutboxRecord) -> Result<(), ServiceError> {
        tracing::warn!(id = %item.id, kind = %item.kind, destination = %item.destination, attempts = item.attempts + 1, "outgoing call dead-lettered");
        outbox::dead_letter(self.store.pool(), &item.id).await?;
        match item.kind.as_str() {
            "commit" | "external_commit" => self.release_unanswered_commit(item).await?,
            "message" | "proposals" => {
                if let Some(room) = item.room_id.as_deref().and_then(|r| r.parse().ok()) {
                    let reason = format!(
                        "the room's host did not accept it after {} attempts",
                        item.attempts + 1
                    );
                    self.mls
                        .outgoing_refused(&room, &item.id, &reason, false)
                        .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// One attempt. `Err(Some(d))`: retry after `d` (the peer asked); `Err(None)`: retry with
    /// backoff.
    pub(crate) async fn deliver(&self, item: &outbox::OutboxRecord) -> Attempt {
        match self.try_deliver(item).await {
            Ok(attempt) => attempt,
            Err(e) => {
                tracing::warn!(id = %item.id, destination = %item.destination, error = %e, "delivery attempt failed");
                Attempt::Retry(None)
            }
        }
    }
}

/// Exponential backoff from 250 ms, capped at about a minute, with ±25 % jitter (from the item's
/// id and attempt, so peers retrying many items do not retry in step).
fn backoff(item: &outbox::OutboxRecord) -> Duration {
    let base = 250u64.saturating_mul(1 << item.attempts.clamp(0, 8));
    let seed = crate::store::mls_blobs::hash(format!("{}:{}", item.id, item.attempts).as_bytes());
    let jitter = u64::from(seed[0]) * base / 2 / 255; // 0..=base/2
    Duration::from_millis(base - base / 4 + jitter)
}

/// A 4xx answer that a retry cannot turn into a success (timeouts, early data and rate limits
/// can).
pub(crate) fn is_permanent(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 408 | 425 | 429)
}
