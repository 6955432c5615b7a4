//! MIMI → legacy: each room's inbound stream (decrypted messages and journalled room changes)
//! turned into connector commands, and their delivery.
//!
//! Translation and delivery are two steps. Translation writes the commands into the durable
//! outbox, in the room's order, in the transaction that advances the room's cursor. Delivery
//! fills in the legacy ids known by then (the room, the message a reply or edit points at,
//! ghosts), calls the connector, and records the legacy ids it answers, so that the next
//! command of the room (delivered strictly after) can name them.

use mimi_bridge_connector::{
    BridgeCommand, CommandKind, ConnectorError, MessageContent, MessageRef, MimiMessageId,
    MimiRoom, MimiRoomRef, MimiUser,
};

use super::content::{self as translate, Inbound};
use super::{Bridge, BridgeError};
use crate::content::{MessageId, MimiContent};
use crate::protocol::service::Attempt;
use crate::room::change::{RoleEntry, RoomChange};
use crate::store::inbound_messages::{self, InboundKind, InboundMessage};
use crate::store::outbox::{self, OutboxRecord};
use crate::store::{
    StoreError, bridge_cursors, legacy_events, message_map, mimi_reactions, portals,
};
use crate::uri::{ClientUri, RoomUri};

/// Entries translated per room and transaction.
const BATCH: i64 = 200;

impl Bridge {
    /// Translates every room's new inbound entries. Returns whether any command was queued.
    pub(super) async fn translate_inbound(&self) -> Result<bool, BridgeError> {
        let mut queued = false;
        for room in bridge_cursors::rooms_behind(self.store.pool()).await? {
            queued |= self.translate_room(&room).await?;
        }
        Ok(queued)
    }

    async fn translate_room(&self, room_id: &str) -> Result<bool, BridgeError> {
        let room: RoomUri =
            room_id
                .parse()
                .map_err(|e: crate::uri::UriError| BridgeError::Corrupt {
                    what: "inbound room",
                    reason: e.to_string(),
                })?;
        let mut tx = self.store.begin().await?;
        let cursor = bridge_cursors::get(&mut *tx, room_id).await?;
        let entries = inbound_messages::stream(&mut *tx, room_id, cursor, BATCH).await?;
        let Some(last) = entries.last().map(|e| e.seq) else {
            return Ok(false);
        };
        let mut queued = false;
        for entry in &entries {
            let commands = match entry.kind {
                InboundKind::Message => self.message_commands(&mut tx, &room, entry).await?,
                InboundKind::Change => self.change_commands(&mut tx, &room, entry).await?,
            };
            for command in commands {
                self.queue_command(&mut tx, room_id, &command).await?;
                queued = true;
            }
        }
        bridge_cursors::set(&mut *tx, room_id, last).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(queued)
    }

    fn command(
        &self,
        room: &RoomUri,
        entry: &InboundMessage,
        index: usize,
        sender: &str,
        kind: CommandKind,
    ) -> BridgeCommand {
        BridgeCommand {
            kind,
            command_id: format!("cmd-{}-{index}", entry.seq).into(),
            room: MimiRoom {
                uri: MimiRoomRef::new(room.to_string()),
                legacy_id: None,
            },
            sender: self.command_user(sender),
            hub_timestamp_ms: entry.hub_timestamp_ms.max(0) as u64,
        }
    }

    async fn message_commands(
        &self,
        tx: &mut sqlx::AnyConnection,
        room: &RoomUri,
        entry: &InboundMessage,
    ) -> Result<Vec<BridgeCommand>, BridgeError> {
        let Some(sender) = ClientUri::from_bytes(entry.sender_client.as_bytes())
            .ok()
            .and_then(|c| c.user_hint())
        else {
            tracing::warn!(%room, sender = %entry.sender_client, "message from a client that names no user; not bridged");
            return Ok(vec![]);
        };
        if self.is_local(&sender) {
            // Our own legacy user's message, fanned back by the hub: the legacy side has it.
            return Ok(vec![]);
        }
        let mimi = match MimiContent::from_cbor(&entry.payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%room, %sender, error = %e, "message is not MIMI content; not bridged");
                return Ok(vec![]);
            }
        };
        let id = match mimi.message_id_with_fallback(Some(sender.as_str()), Some(room.as_str())) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(%room, %sender, error = %e, "no message id; not bridged");
                return Ok(vec![]);
            }
        };
        let inbound = match translate::inbound(&mimi) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(%room, %sender, error = %e, "message cannot be shown on the legacy side");
                return Ok(vec![]);
            }
        };
        let mimi_message_id = MimiMessageId::new(hex::encode(id.0));
        let kind = match inbound {
            Inbound::Message { content, reply_to } => CommandKind::Message {
                mimi_message_id,
                content,
                reply_to: reply_to.map(message_ref),
                expires: None,
            },
            Inbound::Edit { original, content } => CommandKind::Edit {
                mimi_message_id,
                message: message_ref(original),
                content,
            },
            Inbound::Delete { original } => CommandKind::Delete {
                mimi_message_id,
                message: message_ref(original),
            },
            Inbound::Reaction { target, key } => {
                mimi_reactions::insert(
                    &mut *tx,
                    room.as_str(),
                    &hex::encode(id.0),
                    &hex::encode(target.0),
                    sender.as_str(),
                    &key,
                )
                .await?;
                CommandKind::Reaction {
                    mimi_message_id,
                    message: message_ref(target),
                    key,
                }
            }
            Inbound::Unreaction { reaction, target } => {
                let Some(known) =
                    mimi_reactions::get(&mut *tx, room.as_str(), &hex::encode(reaction.0)).await?
                else {
                    tracing::info!(%room, %sender, "a reaction we never saw was taken back; nothing to show");
                    return Ok(vec![]);
                };
                CommandKind::ReactionRemoved {
                    mimi_message_id,
                    message: message_ref(target),
                    key: known.key,
                    reaction: message_ref(reaction),
                }
            }
        };
        Ok(vec![self.command(room, entry, 0, sender.as_str(), kind)])
    }

    async fn change_commands(
        &self,
        tx: &mut sqlx::AnyConnection,
        room: &RoomUri,
        entry: &InboundMessage,
    ) -> Result<Vec<BridgeCommand>, BridgeError> {
        let change: RoomChange =
            serde_json::from_slice(&entry.payload).map_err(|e| BridgeError::Corrupt {
                what: "room change",
                reason: e.to_string(),
            })?;
        if let (Some(reason), Some(seq)) = (&change.refused, change.legacy_event) {
            let Some(event) = legacy_events::by_seq(&mut *tx, seq).await? else {
                return Ok(vec![]);
            };
            // Lost an epoch race: carried out again on the new epoch, a bounded number of times.
            if change.retry && self.may_rebuild(seq) {
                legacy_events::reopen(&mut *tx, seq).await?;
                self.wake.notify_one();
                return Ok(vec![]);
            }
            // Carried out as far as this side goes, then refused by the hub.
            legacy_events::fail_after(&mut *tx, seq, reason).await?;
            let sender = self.committer_user(&change, room);
            return Ok(vec![self.command(
                room,
                entry,
                0,
                &sender,
                CommandKind::EventFailed {
                    event_id: event.event_id.into(),
                    reason: reason.clone(),
                },
            )]);
        }
        if let Some(text) = &change.notice {
            // Said by the room's host (the sender with no user part): a notice, not a user's
            // message. Its id is derived from the journal entry, so a retry names it again.
            let id =
                crate::store::mls_blobs::hash(format!("notice:{room}:{}", entry.seq).as_bytes());
            let kind = CommandKind::Message {
                mimi_message_id: MimiMessageId::new(hex::encode(id)),
                content: MessageContent::notice(text.clone()),
                reply_to: None,
                expires: None,
            };
            let host = format!("mimi://{}", room.provider().authority());
            return Ok(vec![self.command(room, entry, 0, &host, kind)]);
        }
        if change.legacy_event.is_some() {
            // The legacy side made this change; it needs no echo.
            return Ok(vec![]);
        }
        let by = self.committer_user(&change, room);
        let mut kinds = Vec::new();
        if change.joined {
            if portals::legacy_of(&mut *tx, room.as_str()).await?.is_some() {
                return Ok(vec![]);
            }
            let creator = change
                .participants
                .iter()
                .max_by_key(|p| p.role)
                .map(|p| p.user.clone())
                .unwrap_or(by.clone());
            let participants = change
                .participants
                .iter()
                .map(|p| self.command_user_in_role(&p.user, p.role))
                .collect();
            let command = self.command(
                room,
                entry,
                0,
                &creator,
                CommandKind::RoomCreated {
                    name: change.name.clone(),
                    participants,
                },
            );
            return Ok(vec![command]);
        }
        let target = |p: &str| -> MimiUser { self.command_user(p) };
        for RoleEntry { user, .. } in &change.added {
            kinds.push((
                by.clone(),
                CommandKind::UserAdded {
                    target: target(user),
                },
            ));
        }
        for user in &change.left {
            // Only our legacy side can make one of our users leave: it knows.
            if user
                .parse::<crate::uri::UserUri>()
                .is_ok_and(|u| self.is_local(&u))
            {
                continue;
            }
            kinds.push((user.clone(), CommandKind::UserLeft));
        }
        for user in &change.removed {
            kinds.push((
                by.clone(),
                CommandKind::UserRemoved {
                    target: target(user),
                    reason: None,
                },
            ));
        }
        for user in &change.banned {
            kinds.push((
                by.clone(),
                CommandKind::UserBanned {
                    target: target(user),
                    reason: None,
                },
            ));
        }
        for RoleEntry { user, role } in &change.roles {
            kinds.push((
                by.clone(),
                CommandKind::RoleChanged {
                    target: self.command_user_in_role(user, *role),
                },
            ));
        }
        if let Some(name) = &change.name {
            kinds.push((by.clone(), CommandKind::RoomRenamed { name: name.clone() }));
        }
        Ok(kinds
            .into_iter()
            .enumerate()
            .map(|(i, (sender, kind))| self.command(room, entry, i, &sender, kind))
            .collect())
    }

    /// The user who made a change: the committing client's user, or the hub's provider.
    fn committer_user(&self, change: &RoomChange, room: &RoomUri) -> String {
        change
            .committer
            .as_deref()
            .and_then(|c| ClientUri::from_bytes(c.as_bytes()).ok())
            .and_then(|c| c.user_hint())
            .map(|u| u.to_string())
            .unwrap_or_else(|| format!("mimi://{}", room.provider().authority()))
    }

    // ------------------------------------------------------------------ delivery

    /// One delivery attempt of a queued command.
    pub(super) async fn deliver_command(
        &self,
        item: &OutboxRecord,
    ) -> Result<Attempt, BridgeError> {
        let mut command: BridgeCommand =
            serde_json::from_slice(&item.body).map_err(|e| BridgeError::Corrupt {
                what: "queued command",
                reason: e.to_string(),
            })?;
        let room = command.room.uri.as_str().to_owned();
        if command.room.legacy_id.is_none() {
            command.room.legacy_id = portals::legacy_of(self.store.pool(), &room)
                .await?
                .map(Into::into);
        }
        if command.room.legacy_id.is_none()
            && !matches!(command.kind, CommandKind::RoomCreated { .. })
        {
            // The room never got a legacy side (its creation was refused): nothing to show.
            tracing::warn!(id = %item.id, %room, "command for a room without a legacy side; dropped");
            outbox::dead_letter(self.store.pool(), &item.id).await?;
            return Ok(Attempt::DeadLettered);
        }
        self.resolve_refs(&room, &mut command.kind).await?;
        let have = self.connector.capabilities();
        if let Err(missing) = have.check(&command) {
            // The connector cannot show this; a reply can still go as a plain message.
            match &mut command.kind {
                CommandKind::Message { reply_to, .. }
                    if missing
                        == (ConnectorError::Unsupported {
                            feature: mimi_bridge_connector::Feature::Replies,
                        }) =>
                {
                    *reply_to = None;
                }
                _ => {
                    tracing::info!(id = %item.id, %missing, "the connector cannot carry this command; skipped");
                    return Ok(Attempt::Delivered);
                }
            }
        }
        match self.connector.deliver(&command).await {
            Ok(delivery) => {
                self.record_delivery(&room, &command, &delivery).await?;
                Ok(Attempt::Delivered)
            }
            Err(e)
                if e.is_retryable() && item.attempts + 1 < self.options.max_delivery_attempts =>
            {
                tracing::info!(id = %item.id, attempt = item.attempts + 1, error = %e, "connector delivery failed; will retry");
                Ok(Attempt::Retry(e.retry_after()))
            }
            Err(e) => {
                tracing::warn!(id = %item.id, attempts = item.attempts + 1, error = %e, "connector delivery failed for good; dead-lettered");
                outbox::dead_letter(self.store.pool(), &item.id).await?;
                Ok(Attempt::DeadLettered)
            }
        }
    }

    /// Fills in the legacy ids of the messages a command points at.
    async fn resolve_refs(&self, room: &str, kind: &mut CommandKind) -> Result<(), BridgeError> {
        let refs: Vec<&mut MessageRef> = match kind {
            CommandKind::Message {
                reply_to: Some(r), ..
            } => vec![r],
            CommandKind::Edit { message, .. }
            | CommandKind::Delete { message, .. }
            | CommandKind::Reaction { message, .. }
            | CommandKind::ReadReceipt { message } => vec![message],
            CommandKind::ReactionRemoved {
                message, reaction, ..
            } => vec![message, reaction],
            _ => vec![],
        };
        for r in refs {
            if r.legacy_id.is_none() {
                r.legacy_id = message_map::legacy_of(self.store.pool(), room, r.mimi_id.as_str())
                    .await?
                    .map(Into::into);
            }
        }
        Ok(())
    }

    async fn record_delivery(
        &self,
        room: &str,
        command: &BridgeCommand,
        delivery: &mimi_bridge_connector::Delivery,
    ) -> Result<(), BridgeError> {
        match (&command.kind, &delivery.room_id, &delivery.message_id) {
            (CommandKind::RoomCreated { .. }, Some(legacy_room), _) => {
                let linked = portals::link(self.store.pool(), legacy_room.as_str(), room).await?;
                let bridged = portals::room_of(self.store.pool(), legacy_room.as_str()).await?;
                if !linked && bridged.as_deref() != Some(room) {
                    tracing::warn!(%room, legacy = %legacy_room, "the connector named a legacy room that is bridged to another room");
                }
            }
            (
                CommandKind::Message {
                    mimi_message_id, ..
                }
                | CommandKind::Reaction {
                    mimi_message_id, ..
                },
                _,
                Some(legacy),
            ) => {
                message_map::insert(
                    self.store.pool(),
                    room,
                    legacy.as_str(),
                    mimi_message_id.as_str(),
                )
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn message_ref(id: MessageId) -> MessageRef {
    MessageRef {
        mimi_id: MimiMessageId::new(hex::encode(id.0)),
        legacy_id: None,
    }
}
