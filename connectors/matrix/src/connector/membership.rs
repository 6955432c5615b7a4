//! Ghosts and room membership: registering ghosts, joining and inviting, leaving, kicking and
//! banning, and setting power levels.

use mimi_bridge_connector::{BridgeCommand, ConnectorError};
use ruma::api::client::account::register;
use ruma::api::client::membership::{
    ban_user, invite_user, join_room_by_id, kick_user, leave_room,
};
use ruma::api::client::profile::set_display_name;
use ruma::api::client::state::get_state_event_for_key;
use ruma::events::StateEventType;
use ruma::{OwnedRoomId, UserId};
use serde_json::{Value, json};

use super::{MatrixConnector, connector_error};
use crate::client::MatrixError;

impl MatrixConnector {
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

    pub(super) async fn leave(
        &self,
        room: &OwnedRoomId,
        ghost: &UserId,
    ) -> Result<(), MatrixError> {
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
    pub(super) async fn remove_local(
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

    /// Gives `user` the power level `level` in `room`, as the bot (or else the acting ghost).
    pub(super) async fn set_power_level(
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
