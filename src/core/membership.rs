//! Legacy → MIMI, membership: rooms created, users invited or added (with consent), joining,
//! leaving, removals and bans — each a commit (or leave proposals) carried out in room order,
//! or a refusal in words.

use std::time::Duration;

use mimi_bridge_connector::{ConnectorEvent, UserRef};

use super::events::{CREATOR_ROLE, EXIT_WAIT, MEMBER_ROLE, Outcome, Sender, failed};
use super::{Bridge, BridgeError, Fetch};
use crate::mls::{CommitOp, MlsError, UserAddition};
use crate::protocol::service::ServiceError;
use crate::protocol::wire::Consent;
use crate::room::state::BlockReason;
use crate::store::consents::{self, ConsentState};
use crate::store::legacy_events::{LegacyEventRecord, Settlement};
use crate::store::now_ms;
use crate::uri::{ClientUri, RoomUri, UserUri};

/// How often an invitation whose key material is being fetched looks again (only its room
/// waits; the fetch wakes the core when it ends).
const FETCH_POLL: Duration = Duration::from_millis(100);

impl Bridge {
    pub(super) async fn create_room(
        &self,
        event: &ConnectorEvent,
        name: Option<&str>,
        seq: i64,
    ) -> Result<Outcome, BridgeError> {
        if self.portal(event.room_id.as_str()).await?.is_some() {
            return Ok(Outcome::Nothing);
        }
        let room = match self.local_room(event.room_id.as_str()) {
            Ok(r) => r,
            Err(e) => return Ok(failed(e)),
        };
        let (_, client) = match self.puppet(event.sender.as_str()).await {
            Ok(p) => p,
            Err(BridgeError::Corrupt { reason, .. }) => return Ok(failed(reason)),
            Err(e) => return Err(e),
        };
        let settlement = Settlement {
            portal: Some((event.room_id.to_string(), room.to_string())),
            ..Settlement::new(seq)
        };
        match self
            .mls
            .create_room_for_event(&room, &client, CREATOR_ROLE, name, settlement)
            .await
        {
            Ok(_) => Ok(Outcome::Settled),
            Err(MlsError::RoomExists(_)) => Ok(failed(format!(
                "{room} exists already and is bridged to another legacy room"
            ))),
            Err(e) => self.mls_outcome(e).await,
        }
    }

    pub(super) async fn add_user(
        &self,
        room: &RoomUri,
        sender: &Sender,
        target: &UserRef,
        head: &LegacyEventRecord,
    ) -> Result<Outcome, BridgeError> {
        let target = match self.target_user(target) {
            Ok(t) => t,
            Err(reason) => return Ok(failed(reason)),
        };
        let state = self.mls.room_state(room).await?;
        match state.block_reason(&target) {
            Some(BlockReason::NotParticipant) => {}
            Some(BlockReason::Banned) => {
                return Ok(failed(format!(
                    "{target} is banned from this room: lift the ban (remove them) before \
                     inviting them again"
                )));
            }
            Some(BlockReason::Exiting) => {
                // Leaving: their removal waits for the next commit, then they can come back.
                let waited = Duration::from_millis((now_ms() - head.created_at_ms).max(0) as u64);
                if waited > EXIT_WAIT {
                    return Ok(failed(format!(
                        "{target} is still leaving this room after {} s; invite them again \
                         once they have left",
                        EXIT_WAIT.as_secs()
                    )));
                }
                return Ok(Outcome::Later(Duration::from_millis(500)));
            }
            None if !state.active_clients(&target).is_empty() => {
                return Ok(failed(format!("{target} is in this room already")));
            }
            None => {
                return Ok(failed(format!(
                    "{target} is a participant of this room without a client in it: their \
                     provider brings them back"
                )));
            }
        }
        if self.is_local(&target) {
            // A legacy user of ours: make sure the bridge runs a client for them.
            self.puppet(target.local()).await?;
        }
        let fetched = if self.is_local(&target) {
            self.service
                .fetch_key_material(&sender.client, &target, room)
                .await
        } else {
            match self.fetched_key_material(head.seq, &sender.client, &target, room) {
                Some(result) => result,
                None => return Ok(Outcome::Later(FETCH_POLL)),
            }
        };
        let key_packages = match fetched {
            Ok(kps) => kps,
            Err(ServiceError::Store(e)) => return Err(e.into()),
            Err(e) if self.is_local(&target) => return Ok(failed(e)),
            Err(e) => return self.await_consent(room, sender, &target, head, e).await,
        };
        let additions = vec![UserAddition {
            user: target,
            role: MEMBER_ROLE,
            key_packages,
        }];
        self.commit(room, sender, CommitOp::AddUsers(additions), head.seq)
            .await
    }

    /// The result of fetching `target`'s key material for event `seq`, once a task off the
    /// core's worker has it; until then `None` (the fetch is started the first time).
    fn fetched_key_material(
        &self,
        seq: i64,
        requester: &ClientUri,
        target: &UserUri,
        room: &RoomUri,
    ) -> Option<Result<Vec<Vec<u8>>, ServiceError>> {
        let mut fetches = self.fetches.lock().unwrap_or_else(|e| e.into_inner());
        match fetches.remove(&seq) {
            Some(Fetch::Done(result)) => return Some(result),
            Some(Fetch::Running) => {
                fetches.insert(seq, Fetch::Running);
                return None;
            }
            None => {}
        }
        fetches.insert(seq, Fetch::Running);
        let (service, fetches, wake) = (
            self.service.clone(),
            self.fetches.clone(),
            self.wake.clone(),
        );
        let (requester, target, room) = (requester.clone(), target.clone(), room.clone());
        tokio::spawn(async move {
            let result = service.fetch_key_material(&requester, &target, &room).await;
            fetches
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(seq, Fetch::Done(result));
            wake.notify_one();
        });
        None
    }

    /// A remote user's provider gave no key material: ask for consent once, and wait for it
    /// (the add is retried) until the configured time is up.
    pub(super) async fn await_consent(
        &self,
        room: &RoomUri,
        sender: &Sender,
        target: &UserUri,
        head: &LegacyEventRecord,
        error: ServiceError,
    ) -> Result<Outcome, BridgeError> {
        let waited = Duration::from_millis((now_ms() - head.created_at_ms).max(0) as u64);
        if waited > self.options.consent_wait {
            return Ok(failed(format!(
                "{target} could not be added within {} s: {error}",
                self.options.consent_wait.as_secs()
            )));
        }
        let state = consents::effective(
            self.store.pool(),
            sender.user.as_str(),
            target.as_str(),
            room.as_str(),
        )
        .await?;
        match state {
            None | Some(ConsentState::Cancelled) => {
                tracing::info!(%room, %target, "asking for consent");
                self.service
                    .send_consent(Consent::Request, &sender.user, target, Some(room))
                    .await?;
            }
            Some(ConsentState::Revoked) => {
                return Ok(failed(format!("{target} does not consent to be added")));
            }
            Some(ConsentState::Requested) | Some(ConsentState::Granted) => {
                tracing::debug!(%room, %target, %error, "waiting for key material");
            }
        }
        Ok(Outcome::Later(Duration::from_millis(500)))
    }

    /// The sender joins a room it is not in yet: a local participant adds it.
    pub(super) async fn join(
        &self,
        room: &RoomUri,
        sender: &Sender,
        seq: i64,
    ) -> Result<Outcome, BridgeError> {
        let state = self.mls.room_state(room).await?;
        if state.participants.contains(&sender.user) {
            return Ok(Outcome::Nothing);
        }
        let Some(committer) = state
            .members
            .iter()
            .find(|m| self.is_local(&m.user) && m.client.user_hint().is_some())
            .map(|m| m.client.clone())
        else {
            return Ok(failed(
                "no user of this provider is in the room to let the sender in",
            ));
        };
        let key_packages = self
            .service
            .fetch_key_material(&committer, &sender.user, room)
            .await?;
        let additions = vec![UserAddition {
            user: sender.user.clone(),
            role: MEMBER_ROLE,
            key_packages,
        }];
        let by = Sender {
            user: committer.user_hint().unwrap_or_else(|| sender.user.clone()),
            client: committer,
        };
        self.commit(room, &by, CommitOp::AddUsers(additions), seq)
            .await
    }

    pub(super) async fn leave(
        &self,
        room: &RoomUri,
        sender: &Sender,
        seq: i64,
    ) -> Result<Outcome, BridgeError> {
        let state = self.mls.room_state(room).await?;
        let user = &sender.user;
        if state.block_reason(user) == Some(BlockReason::Exiting) {
            return Ok(failed(format!("{user} is leaving this room already")));
        }
        if !state.is_member(&sender.client) {
            return Ok(failed(if state.participants.contains(user) {
                format!("{user} has no client in this room that could leave it")
            } else {
                format!("{user} is not in this room (left already?)")
            }));
        }
        match self
            .mls
            .leave_for_event(room, &sender.client, Settlement::new(seq))
            .await
        {
            Ok(()) => {
                self.service.wake();
                Ok(Outcome::Settled)
            }
            Err(e) => self.mls_outcome(e).await,
        }
    }

    pub(super) async fn remove(
        &self,
        room: &RoomUri,
        sender: &Sender,
        target: &UserRef,
        ban: bool,
        seq: i64,
    ) -> Result<Outcome, BridgeError> {
        let target = match self.target_user(target) {
            Ok(t) => t,
            Err(reason) => return Ok(failed(reason)),
        };
        let state = self.mls.room_state(room).await?;
        if !state.participants.contains(&target) {
            return Ok(failed(format!("{target} is not a participant of {room}")));
        }
        self.commit(
            room,
            sender,
            CommitOp::RemoveUser { user: target, ban },
            seq,
        )
        .await
    }

    pub(super) async fn commit(
        &self,
        room: &RoomUri,
        sender: &Sender,
        op: CommitOp,
        seq: i64,
    ) -> Result<Outcome, BridgeError> {
        match self
            .mls
            .commit_for_event(room, &sender.client, op, Settlement::new(seq))
            .await
        {
            Ok(_) => {
                self.service.wake();
                Ok(Outcome::Settled)
            }
            Err(e) => self.mls_outcome(e).await,
        }
    }
}
