//! Legacy → MIMI: each legacy room's pending events, in order, carried out as MIMI operations.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mimi_bridge_connector::{
    BridgeCommand, CommandKind, ConnectorEvent, EventKind, Expiry, LegacyMessageId, MessageContent,
    MimiRoom, MimiRoomRef,
};

use super::content as translate;
use super::{Bridge, BridgeError, command_body};
use crate::content::origin::Origin;
use crate::content::{MessageId, MimiContent};
use crate::mls::{CommitOp, MlsError};
use crate::protocol::service::LEGACY_KIND;
use crate::store::legacy_events::{self, EventState, LegacyEventRecord, Settlement};
use crate::store::{StoreError, message_map, mimi_reactions, now_ms, outbox, pending_commits};
use crate::uri::{ClientUri, RoomUri, UserUri};

/// The role of a room's creator (admin) and of users added to it (ordinary member), as in the
/// default roles of the room policy draft.
pub(super) const CREATOR_ROLE: u32 = 3;
pub(super) const MEMBER_ROLE: u32 = 2;

/// How long an invitation of a user who is leaving waits for their removal to be committed.
pub(super) const EXIT_WAIT: Duration = Duration::from_secs(30);

/// Events of one room carried out in a row before the worker looks at the other rooms.
const EVENTS_PER_TURN: usize = 256;

/// Messages sent in one transaction at most.
const RUN_LENGTH: i64 = 64;

/// What became of an event.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Carried out and settled in the transaction of its MIMI operation.
    Settled,
    /// Nothing to do in MIMI (already so, or not carried by MIMI): settled as done.
    Nothing,
    /// Cannot be carried out: settled as failed, and the connector is told why.
    Failed(String),
    /// Not yet: a commit of the room is with the hub, or consent is awaited.
    Later(Duration),
}

pub(super) fn failed(e: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(e.to_string())
}

impl Bridge {
    /// MLS errors that a later attempt may not meet; the others mean the event cannot be
    /// carried.
    pub(super) async fn mls_outcome(&self, e: MlsError) -> Result<Outcome, BridgeError> {
        match e {
            MlsError::Store(_) | MlsError::Database(_) | MlsError::Injected(_) => Err(e.into()),
            // The room's rules said no: their reason is written for people.
            MlsError::Rejected { rejection, .. } => Ok(failed(rejection.reason)),
            // The user's proxy client was idle while the room moved on further than its log
            // keeps: it rejoins, and the event is tried again like any event of ours that
            // failed (growing pauses, then reported failed after `retry_for`: a rejoin that
            // never succeeds does not hold the room for ever).
            MlsError::Behind {
                ref room,
                ref client,
                epoch,
                room_epoch,
            } => {
                let (Ok(room), Ok(client)) = (room.parse::<RoomUri>(), client.parse()) else {
                    return Ok(failed(format!("{room}: {client} cannot rejoin")));
                };
                self.service
                    .request_rejoin(
                        &room,
                        &client,
                        room_epoch as u64,
                        &format!("its client stood at epoch {epoch}, the room at {room_epoch}"),
                    )
                    .await?;
                Err(e.into())
            }
            other => Ok(failed(other)),
        }
    }

    /// Carries out the head event of every room that is not waiting. Returns whether any
    /// event was settled.
    pub(super) async fn process_events(&self) -> Result<bool, BridgeError> {
        let heads = legacy_events::heads(self.store.pool(), 256).await?;
        let mut progressed = false;
        for head in heads {
            if self.room_waits(&head.legacy_room_id) {
                continue;
            }
            // A room's events in a row, up to a bound so that other rooms get their turn.
            let mut next = Some(head);
            let mut carried = 0;
            while let Some(event) = next.take() {
                // Consecutive messages of one sender go to MIMI in one transaction.
                let sent = self.send_run(&event).await?;
                if sent > 0 {
                    carried += sent;
                } else if self.settle_one(&event).await? {
                    carried += 1;
                } else {
                    break;
                }
                progressed = true;
                if carried < EVENTS_PER_TURN {
                    next = legacy_events::next_pending(self.store.pool(), &event.legacy_room_id)
                        .await?;
                }
            }
        }
        Ok(progressed)
    }

    /// Sends the run of plain messages that starts at `head` (the room's next events, all new
    /// messages of one sender whose relations are known) in one transaction, each event settled
    /// with it. Returns how many were sent; 0 leaves `head` to be carried out on its own (a
    /// run of one, anything else, or a run that fails, whose events then fail one by one with
    /// their own reasons).
    async fn send_run(&self, head: &LegacyEventRecord) -> Result<usize, BridgeError> {
        let is_message = |e: &ConnectorEvent| matches!(e.kind, EventKind::Message { .. });
        let Ok(first) = serde_json::from_str::<ConnectorEvent>(&head.body) else {
            return Ok(0);
        };
        if !is_message(&first) {
            return Ok(0);
        }
        let Some(room) = self.portal(&head.legacy_room_id).await? else {
            return Ok(0);
        };
        if pending_commits::any_in_room(self.store.pool(), room.as_str()).await? {
            return Ok(0);
        }
        let run =
            legacy_events::pending_in_room(self.store.pool(), &head.legacy_room_id, RUN_LENGTH)
                .await?;
        if run.len() < 2 || run[0].seq != head.seq {
            return Ok(0);
        }
        let Ok((user, client)) = self.puppet(first.sender.as_str()).await else {
            return Ok(0);
        };
        let mut items = Vec::new();
        for record in &run {
            let Ok(event) = serde_json::from_str::<ConnectorEvent>(&record.body) else {
                break;
            };
            if event.sender != first.sender {
                break;
            }
            let EventKind::Message {
                message_id,
                content,
                reply_to,
                expires,
            } = &event.kind
            else {
                break;
            };
            let message = (message_id, content, reply_to.as_ref(), expires.as_ref());
            let Ok((bytes, settlement)) = self
                .prepare_message(&room, &user, record.seq, message, event.timestamp_ms)
                .await?
            else {
                break;
            };
            items.push((bytes, settlement));
        }
        if items.len() < 2 {
            return Ok(0);
        }
        match self
            .mls
            .send_messages_for_events(&room, &client, &items)
            .await
        {
            Ok(_) => {
                tracing::debug!(%room, events = items.len(), "a run of messages sent in one transaction");
                self.service.wake();
                Ok(items.len())
            }
            Err(e @ (MlsError::Store(_) | MlsError::Database(_))) => Err(e.into()),
            Err(e) => {
                tracing::debug!(%room, error = %e, "a run of messages failed; one by one instead");
                Ok(0)
            }
        }
    }

    /// Carries out one event; false when it has to wait (its room then waits).
    async fn settle_one(&self, event: &LegacyEventRecord) -> Result<bool, BridgeError> {
        let outcome = match self.carry_out(event).await {
            Ok(outcome) => {
                self.failing_lock().remove(&event.seq);
                outcome
            }
            Err(e) => self.retry_or_give_up(event, &e),
        };
        tracing::debug!(event = %event.event_id, ?outcome, "legacy event");
        match outcome {
            Outcome::Settled => {}
            Outcome::Nothing => {
                legacy_events::settle(self.store.pool(), event.seq, EventState::Done, None).await?;
            }
            Outcome::Failed(reason) => {
                tracing::info!(event = %event.event_id, %reason, "legacy event not carried into MIMI");
                self.fail_event(event, &reason).await?;
            }
            Outcome::Later(pause) => {
                self.wait_room(&event.legacy_room_id, pause);
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// An event whose operation failed for a reason of this side (the store, an internal
    /// error) is tried again with growing pauses (1 s doubling to a minute, with jitter) for
    /// `retry_for`; then it is reported failed, in words for a person, and its room moves on.
    /// The error itself goes to the operator's log.
    fn retry_or_give_up(&self, event: &LegacyEventRecord, error: &BridgeError) -> Outcome {
        let (since, attempts) = {
            let mut failing = self.failing_lock();
            let entry = failing.entry(event.seq).or_insert((Instant::now(), 0));
            entry.1 += 1;
            *entry
        };
        if since.elapsed() >= self.options.retry_for {
            self.failing_lock().remove(&event.seq);
            tracing::error!(event = %event.event_id, %error, attempts, "legacy event given up on");
            return failed(format!(
                "the bridge could not carry this out: it kept failing for {} s ({attempts} \
                 attempts); its operator can see why in the bridge's log",
                since.elapsed().as_secs()
            ));
        }
        let base = 1000u64
            .saturating_mul(1 << attempts.saturating_sub(1).min(6))
            .min(60_000);
        let jitter =
            (event.seq as u64 ^ u64::from(attempts)).wrapping_mul(0x9e37_79b9) % (base / 4 + 1);
        tracing::warn!(event = %event.event_id, %error, attempts, "legacy event: will retry");
        Outcome::Later(Duration::from_millis(base - base / 8 + jitter))
    }

    fn failing_lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (Instant, u32)>> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Settles an event as failed and queues the `event_failed` command, in one transaction.
    async fn fail_event(&self, head: &LegacyEventRecord, reason: &str) -> Result<(), BridgeError> {
        let room = self.portal(&head.legacy_room_id).await?;
        let event: Option<ConnectorEvent> = serde_json::from_str(&head.body).ok();
        let sender = event
            .as_ref()
            .and_then(|e| self.local_user(e.sender.as_str()).ok())
            .map(|u| self.command_user(u.as_str()))
            .unwrap_or_else(|| self.command_user(&format!("mimi://{}", self.provider.domain())));
        let command = BridgeCommand {
            kind: CommandKind::EventFailed {
                event_id: head.event_id.clone().into(),
                reason: reason.to_owned(),
            },
            command_id: format!("failed-{}", head.seq).into(),
            room: MimiRoom {
                uri: MimiRoomRef::new(room.as_ref().map(|r| r.to_string()).unwrap_or_default()),
                legacy_id: Some(head.legacy_room_id.clone().into()),
            },
            sender,
            hub_timestamp_ms: now_ms() as u64,
        };
        let mut tx = self.store.begin().await?;
        if legacy_events::settle(&mut *tx, head.seq, EventState::Failed, Some(reason)).await? {
            let queue = match &room {
                Some(room) => room.to_string(),
                // No MIMI room: the legacy room's own queue keeps its reports in order.
                None => format!("legacy:{}", head.legacy_room_id),
            };
            self.queue_command(&mut tx, &queue, &command).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.service.wake();
        Ok(())
    }

    /// Queues a command for the connector in the ordered queue `queue` (a room's).
    pub(super) async fn queue_command(
        &self,
        tx: &mut sqlx::AnyConnection,
        queue: &str,
        command: &BridgeCommand,
    ) -> Result<(), BridgeError> {
        outbox::enqueue(
            &mut *tx,
            &outbox::OutboxRecord {
                id: command.command_id.to_string(),
                room_id: Some(queue.to_owned()),
                destination: LEGACY_KIND.into(),
                kind: LEGACY_KIND.into(),
                sender: None,
                body: command_body(command)?,
                attempts: 0,
            },
        )
        .await?;
        Ok(())
    }

    async fn carry_out(&self, head: &LegacyEventRecord) -> Result<Outcome, BridgeError> {
        let event: ConnectorEvent = match serde_json::from_str(&head.body) {
            Ok(e) => e,
            Err(e) => return Ok(failed(format!("the stored event cannot be read: {e}"))),
        };
        let seq = head.seq;
        if let EventKind::RoomCreated { name } = &event.kind {
            return self.create_room(&event, name.as_deref(), seq).await;
        }
        let Some(room) = self.portal(event.room_id.as_str()).await? else {
            return Ok(failed(format!(
                "legacy room `{}` is not bridged to a MIMI room",
                event.room_id
            )));
        };
        // MIMI order: what follows a membership change must not overtake it at the hub.
        if pending_commits::any_in_room(self.store.pool(), room.as_str()).await? {
            return Ok(Outcome::Later(Duration::from_millis(50)));
        }
        let (user, client) = match self.puppet(event.sender.as_str()).await {
            Ok(p) => p,
            Err(BridgeError::Corrupt { reason, .. }) => return Ok(failed(reason)),
            Err(e) => return Err(e),
        };
        let sender = Sender { user, client };
        match &event.kind {
            EventKind::RoomCreated { .. } => unreachable!("handled above"),
            EventKind::UserInvited { target } | EventKind::UserAdded { target } => {
                self.add_user(&room, &sender, target, head).await
            }
            EventKind::UserJoined => self.join(&room, &sender, seq).await,
            EventKind::UserLeft => self.leave(&room, &sender, seq).await,
            EventKind::UserRemoved { target, .. } => {
                self.remove(&room, &sender, target, false, seq).await
            }
            EventKind::UserBanned { target, .. } => {
                self.remove(&room, &sender, target, true, seq).await
            }
            EventKind::RoleChanged { target, role } => {
                let target = match self.target_user(target) {
                    Ok(t) => t,
                    Err(reason) => return Ok(failed(reason)),
                };
                let state = self.mls.room_state(&room).await?;
                if !state.participants.contains(&target) {
                    return Ok(failed(format!("{target} is not a participant of {room}")));
                }
                if state.participants.role_of(&target) == *role {
                    return Ok(Outcome::Nothing);
                }
                self.commit(
                    &room,
                    &sender,
                    CommitOp::ChangeRole {
                        user: target,
                        role: *role,
                    },
                    seq,
                )
                .await
            }
            EventKind::RoomRenamed { name } => {
                self.commit(&room, &sender, CommitOp::Rename(name.clone()), seq)
                    .await
            }
            EventKind::Message {
                message_id,
                content,
                reply_to,
                expires,
            } => {
                let message = (message_id, content, reply_to.as_ref(), expires.as_ref());
                match self
                    .prepare_message(&room, &sender.user, seq, message, event.timestamp_ms)
                    .await?
                {
                    Ok((bytes, settlement)) => {
                        self.send_prepared(&room, &sender, bytes, settlement).await
                    }
                    Err(reason) => Ok(failed(reason)),
                }
            }
            EventKind::Edit {
                message_id,
                content,
            } => {
                let Some(original) = self.mimi_id(&room, message_id.as_str()).await? else {
                    return Ok(unknown_message(message_id.as_str()));
                };
                match translate::edit(salt(), original, content) {
                    Ok(mimi) => self.send(&room, &sender, mimi, seq, |_, s| s).await,
                    Err(e) => Ok(failed(e)),
                }
            }
            EventKind::Delete { message_id } => {
                let Some(original) = self.mimi_id(&room, message_id.as_str()).await? else {
                    return Ok(unknown_message(message_id.as_str()));
                };
                // A legacy network that deletes a reaction (Matrix redacts it) takes it back.
                let reaction =
                    mimi_reactions::get(self.store.pool(), room.as_str(), &hex::encode(original.0))
                        .await?;
                let mimi = match reaction {
                    Some(r) => translate::unreaction(salt(), original, parse_id(&r.target)?),
                    None => translate::delete(salt(), original),
                };
                self.send(&room, &sender, mimi, seq, |_, s| s).await
            }
            EventKind::Reaction {
                message_id,
                key,
                reaction_id,
            } => {
                let Some(target) = self.mimi_id(&room, message_id.as_str()).await? else {
                    return Ok(unknown_message(message_id.as_str()));
                };
                let mimi = translate::reaction(salt(), target, key);
                let user = sender.user.to_string();
                self.send(&room, &sender, mimi, seq, |id, s| Settlement {
                    message_map: reaction_id
                        .as_ref()
                        .map(|r| (room.to_string(), r.to_string(), id.clone())),
                    reaction: Some((
                        room.to_string(),
                        id,
                        hex::encode(target.0),
                        user,
                        key.clone(),
                    )),
                    ..s
                })
                .await
            }
            EventKind::ReactionRemoved { message_id, key } => {
                let Some(target) = self.mimi_id(&room, message_id.as_str()).await? else {
                    return Ok(unknown_message(message_id.as_str()));
                };
                let Some(reaction) = mimi_reactions::find(
                    self.store.pool(),
                    room.as_str(),
                    &hex::encode(target.0),
                    sender.user.as_str(),
                    key,
                )
                .await?
                else {
                    return Ok(failed(format!(
                        "{} has no reaction `{key}` to message `{message_id}`",
                        event.sender
                    )));
                };
                let reaction = parse_id(&reaction.mimi_message_id)?;
                let mimi = translate::unreaction(salt(), reaction, target);
                self.send(&room, &sender, mimi, seq, |_, s| s).await
            }
            // MIMI content has no typing notifications or read receipts (yet): nothing to carry.
            EventKind::Typing { .. } | EventKind::ReadReceipt { .. } => Ok(Outcome::Nothing),
        }
    }

    /// Encrypts and queues one MIMI message; `settle` adds what the event records with it,
    /// given the message's MIMI id (hex).
    async fn send(
        &self,
        room: &RoomUri,
        sender: &Sender,
        mimi: MimiContent,
        seq: i64,
        settle: impl FnOnce(String, Settlement) -> Settlement,
    ) -> Result<Outcome, BridgeError> {
        match encode(&mimi, &sender.user, room) {
            Ok((bytes, id)) => {
                self.send_prepared(room, sender, bytes, settle(id, Settlement::new(seq)))
                    .await
            }
            Err(e) => Ok(failed(e)),
        }
    }

    async fn send_prepared(
        &self,
        room: &RoomUri,
        sender: &Sender,
        bytes: Vec<u8>,
        settlement: Settlement,
    ) -> Result<Outcome, BridgeError> {
        match self
            .mls
            .send_message_for_event(room, &sender.client, &bytes, settlement)
            .await
        {
            Ok(_) => {
                self.service.wake();
                Ok(Outcome::Settled)
            }
            Err(e) => self.mls_outcome(e).await,
        }
    }

    /// A legacy message as MIMI content ready to send (its bytes, and the settlement that maps
    /// its legacy id to its MIMI id), or why it cannot be carried.
    async fn prepare_message(
        &self,
        room: &RoomUri,
        user: &UserUri,
        seq: i64,
        message: (
            &LegacyMessageId,
            &MessageContent,
            Option<&LegacyMessageId>,
            Option<&Expiry>,
        ),
        sent_at_ms: Option<u64>,
    ) -> Result<Result<(Vec<u8>, Settlement), String>, BridgeError> {
        let (message_id, content, reply_to, expires) = message;
        let reply = match reply_to {
            Some(id) => match self.mimi_id(room, id.as_str()).await? {
                Some(mimi) => Some(mimi),
                None => {
                    return Ok(Err(format!(
                        "reply_to names message `{id}`, which is not bridged"
                    )));
                }
            },
            None => None,
        };
        let mimi = match translate::message(salt(), content, reply, expires) {
            // Its id and time on the legacy network travel with it
            // (draft-mimi-content-more-extensions).
            Ok(m) => m.with_origin(
                &self.options.origin_keys,
                &Origin {
                    message_id: message_id.to_string(),
                    scope: self.provider.domain().to_owned(),
                    sent_at_ms,
                },
            ),
            Err(e) => return Ok(Err(e.to_string())),
        };
        Ok(encode(&mimi, user, room)
            .map(|(bytes, id)| {
                let settlement = Settlement {
                    message_map: Some((room.to_string(), message_id.to_string(), id)),
                    ..Settlement::new(seq)
                };
                (bytes, settlement)
            })
            .map_err(|e| e.to_string()))
    }

    async fn mimi_id(
        &self,
        room: &RoomUri,
        legacy: &str,
    ) -> Result<Option<MessageId>, BridgeError> {
        match message_map::mimi_of(self.store.pool(), room.as_str(), legacy).await? {
            Some(hex) => Ok(Some(parse_id(&hex)?)),
            None => Ok(None),
        }
    }
}

/// MIMI content's bytes and its message id (hex), as `user` sends it in `room`.
fn encode(
    mimi: &MimiContent,
    user: &UserUri,
    room: &RoomUri,
) -> Result<(Vec<u8>, String), crate::content::ContentError> {
    let bytes = mimi.to_cbor()?;
    let id = mimi.message_id(user.as_str(), room.as_str())?;
    Ok((bytes, hex::encode(id.0)))
}

/// The legacy user acting, as MIMI sees it.
pub(super) struct Sender {
    pub(super) user: UserUri,
    pub(super) client: ClientUri,
}

fn unknown_message(id: &str) -> Outcome {
    failed(format!("message `{id}` is not bridged (unknown here)"))
}

pub(super) fn parse_id(hex_id: &str) -> Result<MessageId, BridgeError> {
    let bytes = hex::decode(hex_id).map_err(|e| BridgeError::Corrupt {
        what: "message id",
        reason: e.to_string(),
    })?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| BridgeError::Corrupt {
        what: "message id",
        reason: format!("`{hex_id}` is not 32 bytes"),
    })?;
    Ok(MessageId(arr))
}

/// A fresh per-message salt (MIMI content requires one; it keeps message ids unguessable).
fn salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut salt) {
        // No system randomness: fall back to the time and a counter, which still makes the
        // id unique (its only job here; confidentiality rests on MLS).
        tracing::warn!(error = %e, "no randomness for a message salt");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        salt = now.to_be_bytes();
    }
    salt
}
