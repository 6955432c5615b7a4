//! Carrying out a [`BridgeCommand`]: creating the portal of a MIMI room hosted elsewhere, and
//! turning every other command into Matrix requests in the room's portal.

use mimi_bridge_connector::{BridgeCommand, CommandKind, ConnectorError, Delivery};
use ruma::api::client::alias::get_alias;
use ruma::api::client::room::create_room;
use ruma::serde::Raw;
use serde_json::json;

use super::{MatrixConnector, bridge_state, connector_error, invalid, power_level, room_id};
use crate::content;

impl MatrixConnector {
    pub(super) async fn carry_out(
        &self,
        command: &BridgeCommand,
    ) -> Result<Delivery, ConnectorError> {
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
}
