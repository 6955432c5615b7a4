//! A follower whose view of a room fell behind the hub or forked from it (a fanned-out commit
//! it cannot apply, an epoch gap after a `/notify` the hub gave up on, an `epochTooOld` or
//! `wrongEpoch` naming an epoch it never saw) resynchronises: after a short grace for a late
//! fan-out, it takes the hub's GroupInfo, replaces its view with it (telling the legacy side
//! what changed and that it may have missed messages), and its local clients rejoin by external
//! commit, one after the other.
//!
//! The steps are outbox items of their own queue (destination [`RESYNC_QUEUE`]), apart from the
//! room's queue of messages and commits, whose items may be waiting for the resync: each
//! client's external commit is queued there too, followed by the step for the next client, so
//! that each rejoins on the epoch the previous one made.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::service::{Attempt, MimiService, ServiceError, malformed};
use crate::store::{StoreError, outbox, pending_commits};
use crate::uri::{ClientUri, RoomUri};

/// The outbox kind of a resync step.
pub const RESYNC_KIND: &str = "resync";
/// The outbox queue (destination) of resync steps and the rejoining clients' external commits.
pub const RESYNC_QUEUE: &str = "resync";
/// How long a view that seems behind waits for a late fan-out before it is resynchronised.
const GRACE: Duration = Duration::from_secs(2);

/// One step of a resync, as queued.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Step {
    /// The epoch the view stood at when it was found behind.
    from_epoch: u64,
    /// Why, for the log and the notice.
    reason: String,
    /// Local clients still to rejoin, in order; empty on the first step (it finds them).
    #[serde(default)]
    clients: Vec<String>,
}

impl MimiService {
    /// Asks for the room's view to be resynchronised from its hub, unless that was asked
    /// already for this epoch. Nothing for rooms this daemon hosts: its view is the room.
    pub(crate) async fn request_resync(
        &self,
        room: &RoomUri,
        from_epoch: u64,
        reason: &str,
    ) -> Result<(), ServiceError> {
        if room.provider() == &self.domain {
            return Ok(());
        }
        let step = Step {
            from_epoch,
            reason: reason.to_owned(),
            clients: Vec::new(),
        };
        let queued = outbox::enqueue_once(
            self.store.pool(),
            &step_item(room, &format!("resync:{room}:{from_epoch}"), &step)?,
        )
        .await?;
        if queued {
            tracing::info!(%room, from_epoch, %reason, "this side's view of the room seems behind the hub: it resynchronises unless a late fan-out catches it up");
            self.wake();
        }
        Ok(())
    }

    /// Asks for a local client to rejoin the room by external commit (its state fell further
    /// behind the room than the room log keeps), unless that was asked already at this epoch.
    /// Works for rooms this daemon hosts as for rooms it follows.
    pub async fn request_rejoin(
        &self,
        room: &RoomUri,
        client: &ClientUri,
        room_epoch: u64,
        reason: &str,
    ) -> Result<(), ServiceError> {
        let step = Step {
            from_epoch: room_epoch,
            reason: reason.to_owned(),
            clients: vec![client.to_string()],
        };
        let queued = outbox::enqueue_once(
            self.store.pool(),
            &step_item(room, &format!("rejoin:{room}:{room_epoch}:{client}"), &step)?,
        )
        .await?;
        if queued {
            tracing::info!(%room, %client, room_epoch, %reason, "a local client too far behind the room rejoins it");
            self.wake();
        }
        Ok(())
    }

    pub(crate) async fn deliver_resync(
        &self,
        room: &RoomUri,
        item: &outbox::OutboxRecord,
    ) -> Result<Attempt, ServiceError> {
        let step: Step = serde_json::from_slice(&item.body)
            .map_err(|e| malformed("queued resync step")(e.to_string()))?;
        if !step.clients.is_empty() {
            return self.rejoin(room, &step, &step.clients).await;
        }
        if self.epoch(room).await? > step.from_epoch {
            tracing::info!(%room, from_epoch = step.from_epoch, "a late fan-out caught this side up: no resync");
            return Ok(Attempt::Delivered);
        }
        if item.attempts == 0 {
            return Ok(Attempt::Retry(Some(GRACE)));
        }
        let state = self.mls.room_state(room).await?;
        let clients: Vec<String> = self
            .mls
            .local_members(room)
            .await?
            .into_iter()
            .filter(|c| {
                ClientUri::from_bytes(c.as_bytes())
                    .ok()
                    .and_then(|c| c.user_hint())
                    .is_some_and(|u| state.participants.contains(&u))
            })
            .collect();
        let Some(first) = clients.first() else {
            tracing::warn!(%room, reason = %step.reason, "the room's view is behind its hub, but no local participant is left to resynchronise it");
            return Ok(Attempt::Delivered);
        };
        let first = client_uri(first)?;
        let (group_info, _) = match self.fetch_group_info(room, &first).await {
            Ok(gi) => gi,
            Err(e @ (ServiceError::Forbidden(_) | ServiceError::Client(_))) => {
                tracing::warn!(%room, error = %e, "resync: no GroupInfo from the hub yet");
                return Ok(Attempt::Retry(None));
            }
            Err(e) => return Err(e),
        };
        let notice = format!(
            "This bridge lost track of the room for a while ({}) and has caught up with its \
             host {}: messages sent meanwhile may be missing here.",
            step.reason,
            room.provider().domain()
        );
        let resynced = self.mls.resync_view(room, &group_info, &notice).await?;
        tracing::warn!(%room, from_epoch = resynced.from_epoch, epoch = resynced.epoch, reason = %step.reason, clients = clients.len(), "resynchronised the room's view from its hub; local clients rejoin");
        self.rejoin(room, &step, &clients).await
    }

    /// The first of `clients` rejoins by external commit, queued in the resync queue and
    /// followed there by the step for the others.
    async fn rejoin(
        &self,
        room: &RoomUri,
        step: &Step,
        clients: &[String],
    ) -> Result<Attempt, ServiceError> {
        let Some((first, rest)) = clients.split_first() else {
            return Ok(Attempt::Delivered);
        };
        let client = client_uri(first)?;
        let next = Step {
            from_epoch: step.from_epoch,
            reason: step.reason.clone(),
            clients: rest.to_vec(),
        };
        let follow_up = match rest.first() {
            Some(c) => Some(step_item(
                room,
                &format!("resync:{room}:{}:{c}", step.from_epoch),
                &next,
            )?),
            None => None,
        };
        // Repeated after a crash: the client's commit is queued already (with what follows).
        if pending_commits::get(self.store.pool(), room.as_str(), client.as_str())
            .await?
            .is_some()
        {
            return Ok(Attempt::Delivered);
        }
        let (group_info, pending) = match self.fetch_group_info(room, &client).await {
            Ok(gi) => gi,
            Err(e @ (ServiceError::Forbidden(_) | ServiceError::Client(_))) => {
                tracing::warn!(%room, %client, error = %e, "resync: no GroupInfo from the hub for this client yet");
                return Ok(Attempt::Retry(None));
            }
            Err(e) => return Err(e),
        };
        match self
            .mls
            .join_by_external_commit_queued(
                room,
                &client,
                &group_info,
                &pending,
                RESYNC_QUEUE,
                follow_up.as_ref(),
            )
            .await
        {
            Ok(_) => {}
            // Not a participant any more: the others still rejoin.
            Err(crate::mls::MlsError::Rejected { rejection, .. }) => {
                tracing::info!(%room, %client, reason = %rejection.reason, "resync: a local client does not rejoin");
                if let Some(item) = &follow_up {
                    outbox::enqueue_once(self.store.pool(), item).await?;
                }
            }
            Err(e) => return Err(e.into()),
        }
        self.wake();
        Ok(Attempt::Delivered)
    }
}

fn step_item(room: &RoomUri, id: &str, step: &Step) -> Result<outbox::OutboxRecord, ServiceError> {
    Ok(outbox::OutboxRecord {
        id: id.to_owned(),
        room_id: Some(room.to_string()),
        destination: RESYNC_QUEUE.into(),
        kind: RESYNC_KIND.into(),
        sender: None,
        body: serde_json::to_vec(step).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        attempts: 0,
    })
}

fn client_uri(uri: &str) -> Result<ClientUri, ServiceError> {
    ClientUri::from_bytes(uri.as_bytes()).map_err(|e| malformed("stored client")(e.to_string()))
}
