//! What changed in a room between two states, as the bridge shows it on the legacy side.
//!
//! The MLS layer writes one [`RoomChange`] into the room's inbound stream (next to the
//! decrypted messages, in the same order) whenever this provider's view of the room advances;
//! the bridge core turns it into connector commands.

use serde::{Deserialize, Serialize};

use super::state::{BANNED_ROLE, RoomState};

/// A participant and its role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleEntry {
    pub user: String,
    pub role: u32,
}

/// One step of a room's state as seen here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomChange {
    /// The room became known here (created, or joined from a Welcome): `participants` and
    /// `name` give the whole state.
    #[serde(default)]
    pub joined: bool,
    #[serde(default)]
    pub participants: Vec<RoleEntry>,
    #[serde(default)]
    pub added: Vec<RoleEntry>,
    #[serde(default)]
    pub removed: Vec<String>,
    /// Users who left by themselves (their own proposals removed them); not in `removed`.
    #[serde(default)]
    pub left: Vec<String>,
    #[serde(default)]
    pub banned: Vec<String>,
    /// Role changes other than bans.
    #[serde(default)]
    pub roles: Vec<RoleEntry>,
    /// The new room name, when it changed (or the name, when `joined`).
    #[serde(default)]
    pub name: Option<String>,
    /// The client that made the change, when known.
    #[serde(default)]
    pub committer: Option<String>,
    /// The legacy event this change carries out: the legacy side made it and needs no echo.
    #[serde(default)]
    pub legacy_event: Option<i64>,
    /// Set when the hub refused the commit made for `legacy_event`: why.
    #[serde(default)]
    pub refused: Option<String>,
    /// The commit made for `legacy_event` lost an epoch race at the hub: the event is to be
    /// carried out again on the new epoch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry: bool,
    /// Something the legacy side should be told about the room in words (this side lost
    /// track of it for a while and resynchronised: what it may have missed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

fn name_of(state: &RoomState) -> String {
    state
        .metadata
        .room_name
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

impl RoomChange {
    /// The change from `before` (None: the room is new here) to `after`.
    pub fn between(before: Option<&RoomState>, after: &RoomState) -> RoomChange {
        let Some(before) = before else {
            let name = name_of(after);
            return RoomChange {
                joined: true,
                participants: after
                    .participants
                    .iter()
                    .map(|p| RoleEntry {
                        user: p.user.to_string(),
                        role: p.role,
                    })
                    .collect(),
                name: (!name.is_empty()).then_some(name),
                ..Default::default()
            };
        };
        let mut change = RoomChange::default();
        for p in after.participants.iter() {
            if !before.participants.contains(&p.user) && p.role == BANNED_ROLE {
                // Added and banned while this side was not looking: banned is what it is now.
                change.banned.push(p.user.to_string());
                continue;
            }
            if !before.participants.contains(&p.user) {
                change.added.push(RoleEntry {
                    user: p.user.to_string(),
                    role: p.role,
                });
                continue;
            }
            let was = before.participants.role_of(&p.user);
            if was == BANNED_ROLE && p.role != BANNED_ROLE {
                // The ban lifted: on the legacy side, where the ban removed the user, this is
                // the user coming back.
                change.added.push(RoleEntry {
                    user: p.user.to_string(),
                    role: p.role,
                });
            } else if was != p.role {
                if p.role == BANNED_ROLE {
                    change.banned.push(p.user.to_string());
                } else {
                    change.roles.push(RoleEntry {
                        user: p.user.to_string(),
                        role: p.role,
                    });
                }
            }
        }
        for p in before.participants.iter() {
            if !after.participants.contains(&p.user) {
                change.removed.push(p.user.to_string());
            }
        }
        let (old, new) = (name_of(before), name_of(after));
        if old != new {
            change.name = Some(new);
        }
        change
    }

    /// Moves the removed users who sent their own removal (`leavers`) to `left`.
    pub fn with_leavers(mut self, leavers: &[String]) -> RoomChange {
        let (left, removed) = self.removed.into_iter().partition(|u| leavers.contains(u));
        self.left = left;
        self.removed = removed;
        self
    }

    /// Whether there is anything to show.
    pub fn is_empty(&self) -> bool {
        !self.joined
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.left.is_empty()
            && self.banned.is_empty()
            && self.roles.is_empty()
            && self.name.is_none()
            && self.refused.is_none()
            && self.notice.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::state::{Member, default_roles};
    use crate::room::wire::{BaseRoomPolicy, Utf8String};
    use crate::uri::{ClientUri, RoomUri, UserUri};

    fn room() -> RoomState {
        let alice: UserUri = "mimi://a.example/u/alice".parse().unwrap();
        let client: ClientUri = "mimi://a.example/d/alice/1".parse().unwrap();
        let room: RoomUri = "mimi://a.example/r/x".parse().unwrap();
        RoomState::new_room(
            room,
            Member::new(client, alice),
            3,
            default_roles(),
            BaseRoomPolicy::default(),
        )
    }

    #[test]
    fn a_new_room_is_joined_with_its_whole_state() {
        let mut s = room();
        s.metadata.room_name = Utf8String::new("Lobby");
        let c = RoomChange::between(None, &s);
        assert!(c.joined);
        assert_eq!(c.name.as_deref(), Some("Lobby"));
        assert_eq!(
            c.participants,
            [RoleEntry {
                user: "mimi://a.example/u/alice".into(),
                role: 3
            }]
        );
    }

    #[test]
    fn additions_removals_bans_roles_and_renames_are_told_apart() {
        let before = {
            let mut s = room();
            s.push_participant("mimi://b.example/u/bob".parse().unwrap(), 2)
                .unwrap();
            s.push_participant("mimi://b.example/u/eve".parse().unwrap(), 2)
                .unwrap();
            s.push_participant("mimi://b.example/u/dan".parse().unwrap(), 2)
                .unwrap();
            s
        };
        let mut after = room();
        after
            .push_participant("mimi://b.example/u/bob".parse().unwrap(), 1)
            .unwrap();
        after
            .push_participant("mimi://b.example/u/dan".parse().unwrap(), 3)
            .unwrap();
        after
            .push_participant("mimi://c.example/u/carol".parse().unwrap(), 2)
            .unwrap();
        after.metadata.room_name = Utf8String::new("New name");
        let c = RoomChange::between(Some(&before), &after);
        assert!(!c.joined);
        assert_eq!(c.banned, ["mimi://b.example/u/bob"]);
        assert_eq!(c.removed, ["mimi://b.example/u/eve"]);
        assert_eq!(
            c.roles,
            [RoleEntry {
                user: "mimi://b.example/u/dan".into(),
                role: 3
            }]
        );
        assert_eq!(c.added[0].user, "mimi://c.example/u/carol");
        assert_eq!(c.name.as_deref(), Some("New name"));
        assert!(RoomChange::between(Some(&after), &after).is_empty());
    }

    #[test]
    fn a_lifted_ban_is_a_user_coming_back() {
        let bob: UserUri = "mimi://b.example/u/bob".parse().unwrap();
        let mut before = room();
        before.push_participant(bob.clone(), BANNED_ROLE).unwrap();
        let mut after = room();
        after.push_participant(bob, 2).unwrap();
        let c = RoomChange::between(Some(&before), &after);
        assert_eq!(
            c.added,
            [RoleEntry {
                user: "mimi://b.example/u/bob".into(),
                role: 2
            }]
        );
        assert!(c.roles.is_empty() && c.banned.is_empty(), "{c:?}");
    }

    #[test]
    fn a_user_added_and_banned_meanwhile_is_banned_not_added() {
        let before = room();
        let mut after = room();
        after
            .push_participant("mimi://b.example/u/amy".parse().unwrap(), BANNED_ROLE)
            .unwrap();
        let c = RoomChange::between(Some(&before), &after);
        assert!(c.added.is_empty(), "{c:?}");
        assert_eq!(c.banned, ["mimi://b.example/u/amy"]);
    }
}
