//! Delivery of the outbox: every outgoing call, written in the transaction of the change that
//! caused it, is attempted here. Each (room, destination) queue runs strictly in order; failed
//! calls are retried with exponential backoff (or the peer's Retry-After) under the same id.
//! What each kind of item means is in [`mimi`] (the MIMI protocol's calls) and, for commands to
//! the legacy side, in the bridge core behind [`LegacyOutbox`].

mod mimi;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::protocol::service::{Attempt, MimiService, ServiceError};
use crate::store::{now_ms, outbox};

pub use crate::protocol::service::{LEGACY_KIND, LegacyOutbox};

impl MimiService {
    /// Runs the outbox until `stop`: each (room, destination) queue strictly in order, failed
    /// calls retried with exponential backoff (or the peer's Retry-After) under the same id.
    pub fn spawn_delivery(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let next = match self.deliver_due().await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox delivery failed");
                        Some(Duration::from_secs(1))
                    }
                };
                let pause = next
                    .unwrap_or(Duration::from_secs(30))
                    .min(Duration::from_secs(30));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        })
    }

    /// Attempts every due queue head once; returns how long until the next one is due.
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
                let item = head.item;
                match self.deliver(&item).await {
                    Attempt::DeadLettered => progressed = true,
                    Attempt::Delivered => {
                        outbox::mark_delivered(self.store.pool(), &item.id).await?;
                        progressed = true;
                    }
                    Attempt::Retry(retry) => {
                        let backoff = retry.unwrap_or_else(|| {
                            Duration::from_millis(
                                250u64.saturating_mul(1 << item.attempts.clamp(0, 8)),
                            )
                        });
                        let at = now_ms() + backoff.as_millis() as i64;
                        outbox::reschedule(self.store.pool(), &item.id, at).await?;
                        next_due = Some(next_due.map_or(at, |n| n.min(at)));
                    }
                }
            }
            if !progressed {
                return Ok(next_due.map(|at| Duration::from_millis((at - now_ms()).max(0) as u64)));
            }
        }
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

/// A 4xx answer that a retry cannot turn into a success (timeouts, early data and rate limits
/// can).
pub(crate) fn is_permanent(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 408 | 425 | 429)
}
