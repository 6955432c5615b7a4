//! The Matrix connector: the [`Connector`] the daemon runs when `[matrix]` is configured.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use mimi_bridge_connector::{
    BridgeCommand, Capabilities, CommandKind, Connector, ConnectorError, Delivery, EventSink,
    LegacyUserId, MimiUserRef, async_trait,
};
use ruma::api::client::account::register;
use ruma::api::client::alias::get_alias;
use ruma::api::client::media::create_content;
use ruma::api::client::membership::{
    ban_user, invite_user, join_room_by_id, kick_user, leave_room,
};
use ruma::api::client::message::send_message_event;
use ruma::api::client::profile::set_display_name;
use ruma::api::client::redact::redact_event;
use ruma::api::client::room::create_room;
use ruma::api::client::state::{get_state_event_for_key, send_state_event};
use ruma::events::{MessageLikeEventType, StateEventType};
use ruma::serde::Raw;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, UserId};
use serde_json::{Value, json};

use crate::client::{MatrixClient, MatrixError};
use crate::content;
use crate::ghost::GhostNames;
use crate::settings::MatrixSettings;

/// The largest external part the bridge copies into the content repository.
const MAX_MEDIA_BYTES: usize = 50 * 1024 * 1024;

/// Where the connector records the homeserver transactions it has processed, so that none is
/// processed twice, even across restarts. The daemon keeps it in its store.
#[async_trait]
pub trait TransactionLog: Send + Sync {
    /// Whether the transaction was processed already.
    async fn is_done(&self, txn_id: &str) -> Result<bool, String>;
    /// Records a processed transaction.
    async fn mark_done(&self, txn_id: &str) -> Result<(), String>;
}

/// The Matrix connector.
pub struct MatrixConnector {
    pub(crate) settings: MatrixSettings,
    pub(crate) ghosts: GhostNames,
    pub(crate) client: MatrixClient,
    pub(crate) bot: OwnedUserId,
    pub(crate) sink: Mutex<Option<Arc<dyn EventSink>>>,
    pub(crate) transactions: Arc<dyn TransactionLog>,
    /// Ghosts known to be registered (in this run).
    registered: Mutex<HashSet<String>>,
}

pub(crate) fn connector_error(e: MatrixError) -> ConnectorError {
    match e {
        MatrixError::RateLimited { retry_after } => ConnectorError::Transient {
            reason: "the homeserver rate-limits the bridge".into(),
            retry_after,
        },
        e if e.is_retryable() => ConnectorError::transient(e.to_string()),
        e => ConnectorError::permanent(e.to_string()),
    }
}

fn invalid(what: &str, value: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::permanent(format!("{what} `{value}` is not valid: {e}"))
}

pub(crate) fn user_id(value: &str) -> Result<OwnedUserId, ConnectorError> {
    UserId::parse(value).map_err(|e| invalid("Matrix user id", value, e))
}

pub(crate) fn room_id(value: &str) -> Result<OwnedRoomId, ConnectorError> {
    value
        .try_into()
        .map_err(|e| invalid("Matrix room id", value, e))
}

fn event_id(value: &str) -> Result<OwnedEventId, ConnectorError> {
    value
        .try_into()
        .map_err(|e| invalid("Matrix event id", value, e))
}

/// The Matrix power level of a MIMI role (default roles): group admins moderate (50), super
/// admins and policy enforcers get 75, below the bridge bot (the portal's creator) so the
/// bridge keeps control.
pub(crate) fn power_level(role: u32) -> i64 {
    match role {
        3 => 50,
        4 | 5 => 75,
        _ => 0,
    }
}

/// The MIMI role a Matrix power level stands for.
pub(crate) fn role_of_power_level(level: i64) -> u32 {
    match level {
        l if l >= 75 => 4,
        l if l >= 50 => 3,
        _ => 2,
    }
}

/// The `m.bridge` state of a portal (MSC2346), saying where end-to-end encryption ends.
pub(crate) fn bridge_state(bot: &str, room_uri: &str, name: Option<&str>) -> Value {
    json!({
        "bridgebot": bot,
        "protocol": {"id": "mimi", "displayname": "MIMI"},
        "channel": {"id": room_uri, "displayname": name.unwrap_or(room_uri)},
        "org.mimi-bridge.encryption": "MIMI messages are end-to-end encrypted up to this bridge, which decrypts them for this room"
    })
}

impl MatrixConnector {
    pub fn new(
        settings: MatrixSettings,
        transactions: Arc<dyn TransactionLog>,
    ) -> Result<Arc<MatrixConnector>, ConnectorError> {
        let client = MatrixClient::new(&settings.homeserver_url, &settings.as_token)
            .map_err(connector_error)?;
        let bot = user_id(&settings.bot_user_id())?;
        Ok(Arc::new(MatrixConnector {
            ghosts: settings.ghost_names(),
            settings,
            client,
            bot,
            sink: Mutex::new(None),
            transactions,
            registered: Mutex::new(HashSet::new()),
        }))
    }

    pub fn settings(&self) -> &MatrixSettings {
        &self.settings
    }

    /// Registers a ghost (once) and sets its display name from its MIMI user.
    pub(crate) async fn ensure_ghost(&self, ghost: &UserId) -> Result<(), MatrixError> {
        if self
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(ghost.as_str())
        {
            return Ok(());
        }
        let mut request = register::v3::Request::new();
        request.username = Some(ghost.localpart().to_owned());
        request.login_type = Some(register::LoginType::ApplicationService);
        request.inhibit_login = true;
        match self.client.call(request, None).await {
            Ok(_) => {
                let name = self
                    .ghosts
                    .mimi_user(ghost.as_str())
                    .map(|uri| display_name(&uri))
                    .unwrap_or_else(|_| ghost.localpart().to_owned());
                // The profile-field endpoint needs Matrix 1.16; homeservers still take this one.
                #[allow(deprecated)]
                let request = set_display_name::v3::Request::new(ghost.to_owned(), Some(name));
                if let Err(e) = self.client.call(request, Some(ghost)).await {
                    tracing::warn!(%ghost, error = %e, "cannot set the ghost's display name");
                }
            }
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => {}
            Err(e) => return Err(e),
        }
        self.registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ghost.to_string());
        Ok(())
    }

    /// Makes `user` (a ghost or the bot) a member of `room`: it joins, and when it cannot,
    /// `inviter` invites it first.
    pub(crate) async fn ensure_joined(
        &self,
        room: &OwnedRoomId,
        user: &UserId,
        inviter: Option<&UserId>,
    ) -> Result<(), MatrixError> {
        if user != self.bot {
            self.ensure_ghost(user).await?;
        }
        let as_user = (user != self.bot).then_some(user);
        match self
            .client
            .call(join_room_by_id::v3::Request::new(room.clone()), as_user)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.errcode() == Some("M_FORBIDDEN") => {}
            Err(e) => return Err(e),
        }
        self.invite(room, user, inviter).await?;
        self.client
            .call(join_room_by_id::v3::Request::new(room.clone()), as_user)
            .await
            .map(|_| ())
    }

    /// `inviter` (or the bot) invites `user`; being a member already is fine.
    pub(crate) async fn invite(
        &self,
        room: &OwnedRoomId,
        user: &UserId,
        inviter: Option<&UserId>,
    ) -> Result<(), MatrixError> {
        let request = || {
            invite_user::v3::Request::new(
                room.clone(),
                invite_user::v3::InvitationRecipient::UserId(invite_user::v3::InviteUserId::new(
                    user.to_owned(),
                )),
            )
        };
        let by = inviter.filter(|i| *i != self.bot);
        match self.client.call(request(), by).await {
            Ok(_) => Ok(()),
            // The inviter may not; the bot may.
            Err(e) if e.errcode() == Some("M_FORBIDDEN") && by.is_some() => {
                ignore_already(self.client.call(request(), None).await.map(|_| ()))
            }
            Err(e) => ignore_already(Err(e)),
        }
    }

    /// Sends a message-like event as `user` (the bot when `None`), under the command's id as
    /// transaction id, so a retried command is one event.
    pub(crate) async fn send_event(
        &self,
        room: &OwnedRoomId,
        user: Option<&UserId>,
        event_type: &str,
        content: Value,
        txn_id: &str,
        ts: Option<u64>,
    ) -> Result<OwnedEventId, MatrixError> {
        let raw = Raw::from_json(
            serde_json::value::to_raw_value(&content)
                .map_err(|e| MatrixError::Invalid(e.to_string()))?,
        );
        let mut request = send_message_event::v3::Request::new_raw(
            room.clone(),
            txn_id.into(),
            MessageLikeEventType::from(event_type),
            raw,
        );
        // Appservices may set the event's timestamp: the hub's, for MIMI messages.
        request.timestamp = ts
            .and_then(ruma::UInt::new)
            .map(ruma::MilliSecondsSinceUnixEpoch);
        Ok(self.client.call(request, user).await?.event_id)
    }

    async fn send_state(
        &self,
        room: &OwnedRoomId,
        user: Option<&UserId>,
        event_type: &str,
        state_key: &str,
        content: Value,
    ) -> Result<(), MatrixError> {
        let raw = Raw::from_json(
            serde_json::value::to_raw_value(&content)
                .map_err(|e| MatrixError::Invalid(e.to_string()))?,
        );
        let request = send_state_event::v3::Request::new_raw(
            room.clone(),
            StateEventType::from(event_type),
            state_key.to_owned(),
            raw,
        );
        self.client.call(request, user).await.map(|_| ())
    }

    /// A notice from the bot to the room (delivery feedback).
    pub(crate) async fn notice(
        &self,
        room: &OwnedRoomId,
        text: &str,
        txn_id: &str,
    ) -> Result<OwnedEventId, MatrixError> {
        self.send_event(
            room,
            None,
            "m.room.message",
            json!({"msgtype": "m.notice", "body": text}),
            txn_id,
            None,
        )
        .await
    }

    /// The ghost that acts for a command's sender.
    fn sender_ghost(&self, command: &BridgeCommand) -> Result<OwnedUserId, ConnectorError> {
        let id = self
            .ghosts
            .user_id(command.sender.uri.as_str())
            .map_err(|e| ConnectorError::permanent(e.to_string()))?;
        user_id(&id)
    }

    /// The Matrix user id a command names: a ghost's, or a Matrix user's of this homeserver.
    fn matrix_user(
        &self,
        user: &mimi_bridge_connector::MimiUser,
    ) -> Result<OwnedUserId, ConnectorError> {
        match &user.legacy_id {
            Some(id) => user_id(id.as_str()),
            None => user_id(
                &self
                    .ghosts
                    .user_id(user.uri.as_str())
                    .map_err(|e| ConnectorError::permanent(e.to_string()))?,
            ),
        }
    }

    fn portal_alias_localpart(&self, room_uri: &str) -> String {
        // Reuse the ghost escaping: one reversible, valid localpart per MIMI room.
        let ghost = self
            .ghosts
            .user_id(&room_uri.replacen("/r/", "/u/", 1))
            .unwrap_or_default();
        ghost
            .trim_start_matches('@')
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// A portal for a MIMI room hosted elsewhere: created by the bot with the MIMI room's name,
    /// its alias and `m.bridge` state; the Matrix participants are invited, the ghosts join.
    async fn create_portal(
        &self,
        command: &BridgeCommand,
        name: Option<&str>,
        participants: &[mimi_bridge_connector::MimiUser],
    ) -> Result<Delivery, ConnectorError> {
        let uri = command.room.uri.as_str();
        let alias = self.portal_alias_localpart(uri);
        let mut locals = Vec::new();
        let mut ghosts = Vec::new();
        for p in participants {
            let id = self.matrix_user(p)?;
            if self.ghosts.is_ghost(id.as_str()) {
                ghosts.push(id);
            } else if id.server_name().as_str() == self.settings.server_name {
                locals.push(id);
            }
        }
        // The bot creates the room: its power comes from that (room version 12 does not even
        // allow creators in the list).
        let mut users = serde_json::Map::new();
        for p in participants {
            let level = power_level(p.role.unwrap_or(2));
            if level > 0 {
                users.insert(self.matrix_user(p)?.to_string(), json!(level));
            }
        }
        let mut request = create_room::v3::Request::new();
        request.power_level_content_override = Some(Raw::from_json(
            serde_json::value::to_raw_value(&json!({ "users": users }))
                .map_err(|e| ConnectorError::permanent(e.to_string()))?,
        ));
        request.name = name.map(str::to_owned);
        request.room_alias_name = Some(alias.clone());
        request.invite = locals;
        request.initial_state = vec![Raw::from_json(
            serde_json::value::to_raw_value(&json!({
                "type": "m.bridge",
                "state_key": format!("mimi-bridge:{uri}"),
                "content": bridge_state(self.bot.as_str(), uri, name),
            }))
            .map_err(|e| ConnectorError::permanent(e.to_string()))?,
        )];
        let room = match self.client.call(request, None).await {
            Ok(r) => r.room_id,
            Err(e) if e.errcode() == Some("M_ROOM_IN_USE") => {
                // Created by an earlier attempt of this command: the alias names it.
                let alias = format!("#{alias}:{}", self.settings.server_name);
                let alias = ruma::OwnedRoomAliasId::try_from(alias.as_str())
                    .map_err(|e| invalid("alias", &alias, e))?;
                self.client
                    .call(get_alias::v3::Request::new(alias), None)
                    .await
                    .map_err(connector_error)?
                    .room_id
            }
            Err(e) => return Err(connector_error(e)),
        };
        for ghost in &ghosts {
            self.ensure_joined(&room, ghost, None)
                .await
                .map_err(connector_error)?;
        }
        Ok(Delivery::room(room.to_string()))
    }

    async fn carry_out(&self, command: &BridgeCommand) -> Result<Delivery, ConnectorError> {
        if let CommandKind::RoomCreated { name, participants } = &command.kind {
            return self
                .create_portal(command, name.as_deref(), participants)
                .await;
        }
        let room = room_id(
            command
                .room
                .legacy_id
                .as_ref()
                .ok_or_else(|| ConnectorError::permanent("the room has no Matrix portal"))?
                .as_str(),
        )?;
        let txn = command.command_id.as_str();
        let ts = Some(command.hub_timestamp_ms);
        let e = connector_error;
        match &command.kind {
            CommandKind::RoomCreated { .. } => unreachable!("handled above"),
            CommandKind::UserAdded { target } | CommandKind::UserInvited { target } => {
                let target = self.matrix_user(target)?;
                let inviter = self.sender_ghost(command).ok();
                if self.ghosts.is_ghost(target.as_str()) {
                    self.ensure_joined(&room, &target, inviter.as_deref())
                        .await
                        .map_err(e)?;
                } else {
                    self.invite(&room, &target, inviter.as_deref())
                        .await
                        .map_err(e)?;
                }
                Ok(Delivery::done())
            }
            CommandKind::UserJoined => {
                let ghost = self.sender_ghost(command)?;
                self.ensure_joined(&room, &ghost, None).await.map_err(e)?;
                Ok(Delivery::done())
            }
            CommandKind::UserLeft => {
                let ghost = self.sender_ghost(command)?;
                self.leave(&room, &ghost).await.map_err(e)?;
                Ok(Delivery::done())
            }
            CommandKind::UserRemoved { target, reason }
            | CommandKind::UserBanned { target, reason } => {
                let ban = matches!(command.kind, CommandKind::UserBanned { .. });
                let target = self.matrix_user(target)?;
                if self.ghosts.is_ghost(target.as_str()) {
                    // A remote user removed in MIMI: its ghost goes.
                    self.leave(&room, &target).await.map_err(e)?;
                } else {
                    self.remove_local(&room, &target, ban, reason.clone(), command)
                        .await?;
                }
                Ok(Delivery::done())
            }
            CommandKind::Message {
                content, reply_to, ..
            } => {
                let ghost = self.sender_ghost(command)?;
                // Media go into the content repository, one event each; what cannot be fetched
                // stays a link in the text.
                let mut text = content.clone();
                text.attachments.clear();
                let mut first = None;
                for (i, media) in content.attachments.iter().enumerate() {
                    match self.upload(media).await {
                        Ok(mxc) => {
                            let body = content::media_to_matrix(media, &mxc);
                            let media_txn = format!("{txn}-{i}");
                            let id = self
                                .send_as_member(
                                    &room,
                                    &ghost,
                                    "m.room.message",
                                    body,
                                    &media_txn,
                                    ts,
                                )
                                .await?;
                            first.get_or_insert(id);
                        }
                        Err(err) if err.is_retryable() => return Err(e(err)),
                        Err(err) => {
                            tracing::info!(url = %media.url, error = %err, "media not uploaded; sent as a link");
                            text.attachments.push(media.clone());
                        }
                    }
                }
                if let Some(id) = &first
                    && text.body.is_empty()
                    && text.attachments.is_empty()
                {
                    return Ok(Delivery::message(id.to_string()));
                }
                let body = content::to_matrix(
                    &text,
                    reply_to
                        .as_ref()
                        .and_then(|r| r.legacy_id.as_ref())
                        .map(|l| l.as_str()),
                );
                let id = self
                    .send_as_member(&room, &ghost, "m.room.message", body, txn, ts)
                    .await?;
                Ok(Delivery::message(first.unwrap_or(id).to_string()))
            }
            CommandKind::Edit {
                message, content, ..
            } => {
                let ghost = self.sender_ghost(command)?;
                let original = message.legacy_id.as_ref().ok_or_else(|| {
                    ConnectorError::permanent("the edited message is not in Matrix")
                })?;
                let body = content::edit_to_matrix(content, original.as_str());
                self.send_as_member(&room, &ghost, "m.room.message", body, txn, ts)
                    .await?;
                Ok(Delivery::done())
            }
            CommandKind::Delete { message, .. } => {
                let ghost = self.sender_ghost(command)?;
                let original = message.legacy_id.as_ref().ok_or_else(|| {
                    ConnectorError::permanent("the deleted message is not in Matrix")
                })?;
                self.redact(&room, &ghost, original.as_str(), txn).await?;
                Ok(Delivery::done())
            }
            CommandKind::Reaction { message, key, .. } => {
                let ghost = self.sender_ghost(command)?;
                let target = message.legacy_id.as_ref().ok_or_else(|| {
                    ConnectorError::permanent("the message reacted to is not in Matrix")
                })?;
                let body = json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": target.as_str(), "key": key}});
                let id = self
                    .send_as_member(&room, &ghost, "m.reaction", body, txn, ts)
                    .await?;
                Ok(Delivery::message(id.to_string()))
            }
            CommandKind::ReactionRemoved { reaction, .. } => {
                let ghost = self.sender_ghost(command)?;
                let Some(reaction) = &reaction.legacy_id else {
                    return Ok(Delivery::done());
                };
                self.redact(&room, &ghost, reaction.as_str(), txn).await?;
                Ok(Delivery::done())
            }
            CommandKind::RoleChanged { target } => {
                let level = power_level(target.role.unwrap_or(2));
                let target = self.matrix_user(target)?;
                self.set_power_level(&room, &target, level, command).await?;
                Ok(Delivery::done())
            }
            CommandKind::RoomRenamed { name } => {
                let ghost = self.sender_ghost(command)?;
                let content = json!({"name": name});
                match self
                    .send_state(&room, Some(&ghost), "m.room.name", "", content.clone())
                    .await
                {
                    Ok(()) => {}
                    Err(err) if err.errcode() == Some("M_FORBIDDEN") => self
                        .send_state(&room, None, "m.room.name", "", content)
                        .await
                        .map_err(e)?,
                    Err(err) => return Err(e(err)),
                }
                Ok(Delivery::done())
            }
            CommandKind::EventFailed { event_id, reason } => {
                let to = command
                    .sender
                    .legacy_id
                    .as_ref()
                    .map(|l| l.as_str().to_owned())
                    .unwrap_or_default();
                let text = format!(
                    "⚠️ {to}: your event {event_id} could not be bridged to MIMI: {reason}"
                );
                self.ensure_joined(&room, &self.bot, None)
                    .await
                    .map_err(e)?;
                self.notice(&room, &text, txn).await.map_err(e)?;
                Ok(Delivery::done())
            }
            CommandKind::Typing { .. } | CommandKind::ReadReceipt { .. } => Ok(Delivery::done()),
        }
    }

    /// Puts a (plain) external part into the content repository; its `mxc://` URI.
    async fn upload(&self, media: &mimi_bridge_connector::MediaRef) -> Result<String, MatrixError> {
        if media.encryption.is_some() {
            return Err(MatrixError::Invalid(
                "encrypted media are not decrypted by the bridge".into(),
            ));
        }
        let bytes = self.client.fetch(&media.url, MAX_MEDIA_BYTES).await?;
        let mut request = create_content::v3::Request::new(bytes);
        request.filename = media.name.clone();
        request.content_type = Some(media.media_type.clone());
        Ok(self
            .client
            .call(request, None)
            .await?
            .content_uri
            .to_string())
    }

    /// Gives `user` the power level `level` in `room`, as the bot (or else the acting ghost).
    async fn set_power_level(
        &self,
        room: &OwnedRoomId,
        user: &UserId,
        level: i64,
        command: &BridgeCommand,
    ) -> Result<(), ConnectorError> {
        let request = get_state_event_for_key::v3::Request::new(
            room.clone(),
            StateEventType::RoomPowerLevels,
            String::new(),
        );
        let current = self
            .client
            .call(request, None)
            .await
            .map_err(connector_error)?;
        let mut content: Value = serde_json::from_str(current.event_or_content.get())
            .map_err(|e| ConnectorError::permanent(e.to_string()))?;
        if content.get("content").is_some_and(Value::is_object) {
            content = content["content"].take();
        }
        if !content["users"].is_object() {
            content["users"] = json!({});
        }
        if level == 0 {
            if let Some(users) = content["users"].as_object_mut() {
                users.remove(user.as_str());
            }
        } else {
            content["users"][user.as_str()] = json!(level);
        }
        let mut last = None;
        for actor in [None, self.sender_ghost(command).ok()] {
            match self
                .send_state(
                    room,
                    actor.as_deref(),
                    "m.room.power_levels",
                    "",
                    content.clone(),
                )
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if e.errcode() == Some("M_FORBIDDEN") => last = Some(e),
                Err(e) => return Err(connector_error(e)),
            }
        }
        Err(ConnectorError::permanent(format!(
            "neither the bot nor the acting ghost may change power levels in {room}: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// Sends as a ghost; a ghost that is not (yet) in the room joins first.
    async fn send_as_member(
        &self,
        room: &OwnedRoomId,
        ghost: &UserId,
        event_type: &str,
        content: Value,
        txn: &str,
        ts: Option<u64>,
    ) -> Result<OwnedEventId, ConnectorError> {
        match self
            .send_event(room, Some(ghost), event_type, content.clone(), txn, ts)
            .await
        {
            Ok(id) => Ok(id),
            Err(err) if err.errcode() == Some("M_FORBIDDEN") => {
                self.ensure_joined(room, ghost, None)
                    .await
                    .map_err(connector_error)?;
                self.send_event(room, Some(ghost), event_type, content, txn, ts)
                    .await
                    .map_err(connector_error)
            }
            Err(err) => Err(connector_error(err)),
        }
    }

    async fn redact(
        &self,
        room: &OwnedRoomId,
        ghost: &UserId,
        event: &str,
        txn: &str,
    ) -> Result<(), ConnectorError> {
        let request = redact_event::v3::Request::new(room.clone(), event_id(event)?, txn.into());
        match self.client.call(request, Some(ghost)).await {
            Ok(_) => Ok(()),
            Err(err) if err.errcode() == Some("M_NOT_FOUND") => Ok(()),
            Err(err) => Err(connector_error(err)),
        }
    }

    async fn leave(&self, room: &OwnedRoomId, ghost: &UserId) -> Result<(), MatrixError> {
        match self
            .client
            .call(leave_room::v3::Request::new(room.clone()), Some(ghost))
            .await
        {
            Ok(_) => Ok(()),
            // Not in the room (any more): done.
            Err(e) if matches!(e.errcode(), Some("M_FORBIDDEN" | "M_NOT_FOUND")) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A Matrix user removed or banned in MIMI: the remover's ghost, or else the bot, kicks or
    /// bans them (whoever has the power level for it).
    async fn remove_local(
        &self,
        room: &OwnedRoomId,
        target: &UserId,
        ban: bool,
        reason: Option<String>,
        command: &BridgeCommand,
    ) -> Result<(), ConnectorError> {
        let mut last = None;
        for actor in [self.sender_ghost(command).ok(), None] {
            let result = if ban {
                let mut r = ban_user::v3::Request::new(room.clone(), target.to_owned());
                r.reason = reason.clone();
                self.client.call(r, actor.as_deref()).await.map(|_| ())
            } else {
                let mut r = kick_user::v3::Request::new(room.clone(), target.to_owned());
                r.reason = reason.clone();
                self.client.call(r, actor.as_deref()).await.map(|_| ())
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.errcode() == Some("M_FORBIDDEN") => last = Some(e),
                Err(e) => return Err(connector_error(e)),
            }
        }
        Err(ConnectorError::permanent(format!(
            "neither the remover's ghost nor the bot may remove {target} from {room}: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }
}

fn ignore_already(result: Result<(), MatrixError>) -> Result<(), MatrixError> {
    match result {
        // "… is already in the room" / "already joined"
        Err(MatrixError::Refused { error, .. }) if error.contains("already") => Ok(()),
        other => other,
    }
}

/// A ghost's display name: the MIMI user's name and provider, e.g. `bob (b.example)`.
fn display_name(uri: &str) -> String {
    let rest = uri.trim_start_matches("mimi://");
    match rest.split_once("/u/") {
        Some((provider, name)) => {
            let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            format!("{name} ({provider})")
        }
        None => uri.to_owned(),
    }
}

#[async_trait]
impl Connector for MatrixConnector {
    fn name(&self) -> &str {
        "matrix"
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    async fn start(&self, sink: Arc<dyn EventSink>) -> Result<(), ConnectorError> {
        *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
        Ok(())
    }

    async fn stop(&self) -> Result<(), ConnectorError> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner()).take();
        Ok(())
    }

    async fn deliver(&self, command: &BridgeCommand) -> Result<Delivery, ConnectorError> {
        self.carry_out(command).await
    }

    fn ghost_user_id(&self, user: &MimiUserRef) -> Option<LegacyUserId> {
        self.ghosts
            .user_id(user.as_str())
            .ok()
            .map(LegacyUserId::new)
    }

    fn ghost_mimi_user(&self, ghost: &LegacyUserId) -> Option<MimiUserRef> {
        self.ghosts
            .mimi_user(ghost.as_str())
            .ok()
            .map(MimiUserRef::new)
    }
}
