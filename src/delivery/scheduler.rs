//! The delivery loop of a running daemon: every due queue is delivered by a task of its own, so
//! that a destination that is slow, answers 5xx or never answers holds up only its own queues.
//! Each queue has at most one task (its order holds); each destination at most
//! [`PER_DESTINATION`] tasks, and one while its circuit is open: after [`OPEN_AFTER`] passes in a
//! row that settled nothing, only one queue at a time probes it, until one goes through.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::protocol::service::MimiService;
use crate::store::{now_ms, outbox};

/// Queues of one destination delivered at the same time at most.
const PER_DESTINATION: usize = 8;
/// Passes in a row that settle nothing before a destination's circuit opens.
const OPEN_AFTER: u32 = 3;
/// The longest the loop sleeps with nothing due (a safety net: wake-ups come by notification).
const IDLE: Duration = Duration::from_secs(30);
/// The shortest time between two looks at the queues: wake-ups that come in a burst are taken
/// together (looking costs a query over every waiting row).
const COALESCE: Duration = Duration::from_millis(5);

/// What the loop knows of one destination.
#[derive(Default)]
struct Destination {
    in_flight: usize,
    /// Passes in a row that settled nothing.
    failing: u32,
}

impl Destination {
    fn limit(&self) -> usize {
        if self.failing >= OPEN_AFTER {
            1
        } else {
            PER_DESTINATION
        }
    }
}

/// A finished pass over one queue.
struct Done {
    destination: String,
    queue: (String, Option<String>),
    progressed: bool,
    next_due: Option<i64>,
}

impl MimiService {
    /// Runs the outbox until `stop`: each due queue in a task of its own, strictly in order;
    /// failed calls retried with backoff (or the peer's Retry-After) under the same id.
    pub fn spawn_delivery(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut destinations: HashMap<String, Destination> = HashMap::new();
            let mut busy: HashSet<(String, Option<String>)> = HashSet::new();
            let mut tasks: JoinSet<Done> = JoinSet::new();
            // What each task delivers, to release its queue should it panic.
            let mut running: HashMap<tokio::task::Id, (String, (String, Option<String>))> =
                HashMap::new();
            let mut next_due: Option<i64> = None;
            loop {
                let looked = tokio::time::Instant::now();
                match outbox::heads(self.store.pool()).await {
                    Ok(heads) => {
                        let now = now_ms();
                        next_due = next_due.filter(|at| *at > now);
                        for head in heads {
                            let queue = (head.item.destination.clone(), head.item.room_id.clone());
                            if busy.contains(&queue) {
                                continue;
                            }
                            if head.next_attempt_at_ms > now {
                                next_due = Some(next_due.map_or(head.next_attempt_at_ms, |n| {
                                    n.min(head.next_attempt_at_ms)
                                }));
                                continue;
                            }
                            let destination = head.item.destination.clone();
                            let d = destinations.entry(destination.clone()).or_default();
                            if d.in_flight >= d.limit() {
                                continue;
                            }
                            d.in_flight += 1;
                            busy.insert(queue.clone());
                            let me = self.clone();
                            let what = (destination.clone(), queue.clone());
                            let handle = tasks.spawn(async move {
                                let mut next_due = None;
                                let progressed = match me.deliver_queue(head, &mut next_due).await
                                {
                                    Ok(p) => p,
                                    Err(e) => {
                                        tracing::warn!(%destination, error = %e, "outbox delivery failed");
                                        next_due = Some(now_ms() + 1000);
                                        false
                                    }
                                };
                                Done {
                                    destination,
                                    queue,
                                    progressed,
                                    next_due,
                                }
                            });
                            running.insert(handle.id(), what);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox: the queues cannot be read");
                        next_due = Some(now_ms() + 1000);
                    }
                }
                let pause = next_due
                    .map(|at| Duration::from_millis((at - now_ms()).max(0) as u64))
                    .unwrap_or(IDLE)
                    .min(IDLE);
                tokio::select! {
                    _ = stop.cancelled() => {
                        tasks.abort_all();
                        return;
                    }
                    _ = self.wake.notified() => {
                        tokio::time::sleep_until(looked + COALESCE).await;
                    }
                    _ = tokio::time::sleep(pause) => {}
                    Some(first) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                        // Collect whatever else finished meanwhile before looking again.
                        let mut finished = vec![first];
                        while let Some(more) = tasks.try_join_next_with_id() {
                            finished.push(more);
                        }
                        for result in finished {
                            let done = match result {
                                Ok((id, done)) => {
                                    running.remove(&id);
                                    done
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "a delivery task failed");
                                    let Some((destination, queue)) = running.remove(&e.id()) else {
                                        continue;
                                    };
                                    Done { destination, queue, progressed: false, next_due: Some(now_ms() + 1000) }
                                }
                            };
                            finish(&mut destinations, &mut busy, &mut next_due, done);
                        }
                    }
                }
            }
        })
    }
}

fn finish(
    destinations: &mut HashMap<String, Destination>,
    busy: &mut HashSet<(String, Option<String>)>,
    next_due: &mut Option<i64>,
    done: Done,
) {
    busy.remove(&done.queue);
    let d = destinations.entry(done.destination.clone()).or_default();
    d.in_flight = d.in_flight.saturating_sub(1);
    if done.progressed {
        if d.failing >= OPEN_AFTER {
            tracing::info!(destination = %done.destination, "deliveries go through again");
        }
        d.failing = 0;
    } else {
        d.failing = d.failing.saturating_add(1);
        if d.failing == OPEN_AFTER {
            tracing::warn!(destination = %done.destination, "deliveries keep failing: one queue at a time probes it");
        }
    }
    if let Some(at) = done.next_due {
        *next_due = Some(next_due.map_or(at, |n| n.min(at)));
    }
}
