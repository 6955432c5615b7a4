//! Who is who on both sides: legacy users ↔ MIMI users ↔ proxy clients, legacy rooms ↔ MIMI
//! rooms.
//!
//! A legacy user `alice` of this provider is the MIMI user `mimi://DOMAIN/u/alice` (the legacy
//! id is the URI's local part, so the mapping needs no lookup either way) with one proxy
//! client, `mimi://DOMAIN/d/alice/bridge`. A remote MIMI user appears on the legacy side under
//! the connector's ghost id, if the connector has ghosts, and otherwise by URI. A legacy room
//! `general` that this provider creates is the MIMI room `mimi://DOMAIN/r/general`; a MIMI
//! room hosted elsewhere gets the legacy id the connector chose when it was told of the room.

use mimi_bridge_connector::{LegacyUserId, MimiUser, MimiUserRef, UserRef};

use super::{Bridge, BridgeError};
use crate::mls::proxy_client_of;
use crate::store::{portals, puppets};
use crate::uri::{ClientUri, RoomUri, UserUri};

/// Why a legacy name cannot be used in MIMI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` cannot be used in a MIMI URI: {reason}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub reason: String,
}

impl Bridge {
    /// The MIMI user of a legacy user of this provider.
    pub fn local_user(&self, legacy: &str) -> Result<UserUri, NameError> {
        UserUri::new(self.provider.clone(), legacy).map_err(|e| NameError {
            what: "legacy user id",
            value: legacy.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The MIMI room a legacy room of this provider becomes when it is created here.
    pub fn local_room(&self, legacy: &str) -> Result<RoomUri, NameError> {
        RoomUri::new(self.provider.clone(), legacy).map_err(|e| NameError {
            what: "legacy room id",
            value: legacy.to_owned(),
            reason: e.to_string(),
        })
    }

    pub fn is_local(&self, user: &UserUri) -> bool {
        user.provider() == &self.provider
    }

    /// The MIMI user of a legacy user and its proxy client, created on first use.
    pub(super) async fn puppet(&self, legacy: &str) -> Result<(UserUri, ClientUri), BridgeError> {
        let user = self.local_user(legacy).map_err(|e| BridgeError::Corrupt {
            what: "legacy user id",
            reason: e.to_string(),
        })?;
        let client = proxy_client_of(&user).map_err(|e| BridgeError::Corrupt {
            what: "legacy user id",
            reason: e.to_string(),
        })?;
        let known = self
            .known_puppets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(legacy);
        if !known
            && puppets::by_legacy(self.store.pool(), legacy)
                .await?
                .is_none()
        {
            self.mls.create_client(&client).await?;
            puppets::insert(
                self.store.pool(),
                &puppets::Puppet {
                    legacy_user_id: legacy.to_owned(),
                    user_uri: user.to_string(),
                    client_uri: Some(client.to_string()),
                    is_ghost: false,
                },
            )
            .await?;
        }
        self.known_puppets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(legacy.to_owned());
        Ok((user, client))
    }

    /// The MIMI user an event's target names: a MIMI URI, a ghost, or a legacy user here.
    pub(super) fn target_user(&self, target: &UserRef) -> Result<UserUri, String> {
        match target {
            UserRef::Mimi(uri) => uri
                .as_str()
                .parse()
                .map_err(|e| format!("target `{uri}` is not a MIMI user URI: {e}")),
            UserRef::Legacy(id) => match self.connector.ghost_mimi_user(id) {
                Some(uri) => uri
                    .as_str()
                    .parse()
                    .map_err(|e| format!("ghost `{id}` names `{uri}`, not a MIMI user: {e}")),
                None => self.local_user(id.as_str()).map_err(|e| e.to_string()),
            },
        }
    }

    /// A MIMI user as commands show it: with its legacy id (ours, or the connector's ghost).
    pub(super) fn command_user(&self, uri: &str) -> MimiUser {
        let legacy_id = match uri.parse::<UserUri>() {
            Ok(user) if self.is_local(&user) => Some(LegacyUserId::new(user.local())),
            _ => self
                .connector
                .ghost_user_id(&MimiUserRef::new(uri.to_owned())),
        };
        MimiUser {
            uri: MimiUserRef::new(uri.to_owned()),
            legacy_id,
            display_name: None,
            role: None,
        }
    }

    /// [`command_user`](Self::command_user) with the user's role in the room.
    pub(super) fn command_user_in_role(&self, uri: &str, role: u32) -> MimiUser {
        MimiUser {
            role: Some(role),
            ..self.command_user(uri)
        }
    }

    /// The MIMI room a legacy room is bridged to.
    pub(super) async fn portal(&self, legacy_room: &str) -> Result<Option<RoomUri>, BridgeError> {
        portals::room_of(self.store.pool(), legacy_room)
            .await?
            .map(|r| {
                r.parse()
                    .map_err(|e: crate::uri::UriError| BridgeError::Corrupt {
                        what: "portal",
                        reason: e.to_string(),
                    })
            })
            .transpose()
    }
}
