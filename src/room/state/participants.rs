//! The participant list (protocol-06 §7.5) and the changes a participant-list update makes:
//! parsing, role lookups and applying updates by index.

use std::collections::HashMap;

use crate::room::wire::{ParticipantListData, ParticipantListUpdate, UserRolePair};
use crate::uri::UserUri;

use super::{BANNED_ROLE, NO_ROLE, StateError};

/// A user on the participant list, with its role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Participant {
    pub user: UserUri,
    pub role: u32,
}

impl Participant {
    pub fn new(user: UserUri, role: u32) -> Self {
        Participant { user, role }
    }
}

/// A role change made by a participant-list update.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleChange {
    pub user: UserUri,
    pub from: u32,
    pub to: u32,
}

/// What a participant-list update did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParticipantListChanges {
    /// Users appended to the list, with their role.
    pub added: Vec<Participant>,
    /// Users taken off the list, with the role they had.
    pub removed: Vec<Participant>,
    pub role_changes: Vec<RoleChange>,
}

impl ParticipantListChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.role_changes.is_empty()
    }

    /// Every user the changes touch, in the order: role changes, removals, additions.
    pub fn touched_users(&self) -> impl Iterator<Item = &UserUri> {
        self.role_changes
            .iter()
            .map(|c| &c.user)
            .chain(self.removed.iter().map(|p| &p.user))
            .chain(self.added.iter().map(|p| &p.user))
    }

    pub fn touches(&self, user: &UserUri) -> bool {
        self.touched_users().any(|u| u == user)
    }

    pub fn added_role(&self, user: &UserUri) -> Option<u32> {
        self.added.iter().find(|p| &p.user == user).map(|p| p.role)
    }

    pub fn is_removed(&self, user: &UserUri) -> bool {
        self.removed.iter().any(|p| &p.user == user)
    }

    pub fn role_change(&self, user: &UserUri) -> Option<&RoleChange> {
        self.role_changes.iter().find(|c| &c.user == user)
    }

    /// Users moved to the banned role.
    pub fn banned(&self) -> impl Iterator<Item = &UserUri> {
        self.role_changes
            .iter()
            .filter(|c| c.to == BANNED_ROLE)
            .map(|c| &c.user)
    }

    /// Users that leave the list or are banned: none of their clients may stay.
    pub fn exiting(&self) -> impl Iterator<Item = &UserUri> {
        self.removed.iter().map(|p| &p.user).chain(self.banned())
    }

    pub fn extend(&mut self, other: ParticipantListChanges) {
        self.added.extend(other.added);
        self.removed.extend(other.removed);
        self.role_changes.extend(other.role_changes);
    }
}

/// The participant list: an ordered vector (protocol-06 §7.5). Indices matter, because
/// updates address users by their index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParticipantList {
    pub(super) participants: Vec<Participant>,
}

impl ParticipantList {
    pub fn new() -> Self {
        ParticipantList::default()
    }

    /// A list from participants in order; refuses role 0 and a user listed twice.
    pub fn from_participants(participants: Vec<Participant>) -> Result<Self, StateError> {
        let mut list = ParticipantList::new();
        for p in participants {
            list.push(p.user, p.role)?;
        }
        Ok(list)
    }

    /// Parses the GroupContext form, checking every user URI.
    pub fn from_wire(data: &ParticipantListData) -> Result<Self, StateError> {
        let mut list = ParticipantList::new();
        list.participants.reserve(data.participants.len());
        // An index of the users seen so far: a remote GroupContext may list many participants,
        // and a linear search per entry would make parsing quadratic.
        let mut seen: std::collections::HashMap<Vec<u8>, usize> =
            std::collections::HashMap::with_capacity(data.participants.len());
        for (i, pair) in data.participants.iter().enumerate() {
            let at = || format!("participants[{i}]");
            let user = parse_user(&at(), pair.user.as_slice())?;
            if pair.role_index == NO_ROLE {
                return Err(StateError::RoleZero { at: at(), user });
            }
            if let Some(&first) = seen.get(user.as_str().as_bytes()) {
                return Err(StateError::DuplicateUser {
                    at: at(),
                    user,
                    first,
                });
            }
            seen.insert(user.as_str().as_bytes().to_vec(), i);
            list.participants
                .push(Participant::new(user, pair.role_index));
        }
        Ok(list)
    }

    pub fn to_wire(&self) -> ParticipantListData {
        ParticipantListData {
            participants: self
                .participants
                .iter()
                .map(|p| UserRolePair::new(p.user.as_str(), p.role))
                .collect(),
        }
    }

    /// Appends a participant (for building a state, not policy-checked).
    pub fn push(&mut self, user: UserUri, role: u32) -> Result<(), StateError> {
        let at = format!("participants[{}]", self.participants.len());
        if role == NO_ROLE {
            return Err(StateError::RoleZero { at, user });
        }
        if let Some(first) = self.index_of(&user) {
            return Err(StateError::DuplicateUser { at, user, first });
        }
        self.participants.push(Participant::new(user, role));
        Ok(())
    }

    /// The user's role, or 0 when the user is not listed.
    pub fn role_of(&self, user: &UserUri) -> u32 {
        self.participants
            .iter()
            .find(|p| &p.user == user)
            .map_or(NO_ROLE, |p| p.role)
    }

    pub fn index_of(&self, user: &UserUri) -> Option<usize> {
        self.participants.iter().position(|p| &p.user == user)
    }

    pub fn contains(&self, user: &UserUri) -> bool {
        self.index_of(user).is_some()
    }

    pub fn get(&self, index: usize) -> Option<&Participant> {
        self.participants.get(index)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Participant> {
        self.participants.iter()
    }

    pub fn as_slice(&self) -> &[Participant] {
        &self.participants
    }

    pub fn len(&self) -> usize {
        self.participants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// How many users hold `role`.
    pub fn count_role(&self, role: u32) -> usize {
        self.participants.iter().filter(|p| p.role == role).count()
    }

    /// Applies one update in the protocol-06 order: role changes, then removals, then
    /// appends. Indices refer to this list (before the update). Errors: an index out of
    /// range or given twice, a user touched twice, a role change to 0 or to the same role,
    /// adding a user already listed, a bad user URI.
    pub fn apply(
        &self,
        update: &ParticipantListUpdate,
    ) -> Result<(ParticipantList, ParticipantListChanges), StateError> {
        self.apply_located(&[(String::new(), update)])
    }

    /// Applies several updates of one commit together. Every index refers to this list
    /// (the list at the start of the epoch), not to the result of an earlier update: the
    /// updates come from different proposals that were written against the same epoch.
    /// Role changes of all updates come first, then all removals, then all appends in
    /// update order; a user may be touched only once across all of them.
    pub fn apply_all(
        &self,
        updates: &[&ParticipantListUpdate],
    ) -> Result<(ParticipantList, ParticipantListChanges), StateError> {
        let located: Vec<(String, &ParticipantListUpdate)> = if updates.len() == 1 {
            vec![(String::new(), updates[0])]
        } else {
            updates
                .iter()
                .enumerate()
                .map(|(k, u)| (format!("update {k}: "), *u))
                .collect()
        };
        self.apply_located(&located)
    }

    fn apply_located(
        &self,
        updates: &[(String, &ParticipantListUpdate)],
    ) -> Result<(ParticipantList, ParticipantListChanges), StateError> {
        let len = self.participants.len();
        // Index in this list -> where it was touched.
        let mut touched: HashMap<usize, Touch> = HashMap::new();
        let mut roles: Vec<u32> = self.participants.iter().map(|p| p.role).collect();
        let mut removed = vec![false; len];
        let mut changes = ParticipantListChanges::default();

        const CHANGED: &str = "changedRoleParticipants";
        const REMOVED: &str = "removedIndices";
        for (k, (prefix, update)) in updates.iter().enumerate() {
            for (i, c) in update.changed_role_participants.iter().enumerate() {
                let at = format!("{prefix}{CHANGED}[{i}]");
                let idx = self.check_index(&at, c.user_index)?;
                let p = &self.participants[idx];
                if let Some(first) = touched.get(&idx) {
                    return Err(touched_twice(first, (k, CHANGED, at), p));
                }
                if c.role_index == NO_ROLE {
                    return Err(StateError::RoleChangeToZero {
                        at,
                        user: p.user.clone(),
                    });
                }
                if c.role_index == p.role {
                    return Err(StateError::SameRole {
                        at,
                        user: p.user.clone(),
                        role: p.role,
                    });
                }
                touched.insert(idx, (k, CHANGED, at));
                roles[idx] = c.role_index;
                changes.role_changes.push(RoleChange {
                    user: p.user.clone(),
                    from: p.role,
                    to: c.role_index,
                });
            }
        }
        for (k, (prefix, update)) in updates.iter().enumerate() {
            for (i, &index) in update.removed_indices.iter().enumerate() {
                let at = format!("{prefix}{REMOVED}[{i}]");
                let idx = self.check_index(&at, index)?;
                let p = &self.participants[idx];
                if let Some(first) = touched.get(&idx) {
                    return Err(touched_twice(first, (k, REMOVED, at), p));
                }
                touched.insert(idx, (k, REMOVED, at));
                removed[idx] = true;
                changes.removed.push(p.clone());
            }
        }
        let mut list: Vec<Participant> = self
            .participants
            .iter()
            .zip(roles)
            .zip(&removed)
            .filter(|(_, gone)| !**gone)
            .map(|((p, role), _)| Participant::new(p.user.clone(), role))
            .collect();
        let mut added_at: HashMap<UserUri, String> = HashMap::new();
        for (prefix, update) in updates {
            for (i, pair) in update.added_participants.iter().enumerate() {
                let at = format!("{prefix}addedParticipants[{i}]");
                let user = parse_user(&at, pair.user.as_slice())?;
                if pair.role_index == NO_ROLE {
                    return Err(StateError::RoleZero { at, user });
                }
                if let Some(idx) = self.index_of(&user) {
                    if let Some(first) = touched.get(&idx) {
                        return Err(StateError::UserTouchedTwice {
                            user,
                            first: first.2.clone(),
                            second: at,
                        });
                    }
                    return Err(StateError::AlreadyListed {
                        at,
                        user,
                        index: idx,
                    });
                }
                if let Some(first) = added_at.get(&user) {
                    return Err(StateError::UserTouchedTwice {
                        user,
                        first: first.clone(),
                        second: at,
                    });
                }
                added_at.insert(user.clone(), at);
                list.push(Participant::new(user.clone(), pair.role_index));
                changes.added.push(Participant::new(user, pair.role_index));
            }
        }
        Ok((ParticipantList { participants: list }, changes))
    }

    fn check_index(&self, at: &str, index: u32) -> Result<usize, StateError> {
        let idx = index as usize;
        if idx >= self.participants.len() {
            return Err(StateError::IndexOutOfRange {
                at: at.to_owned(),
                index,
                len: self.participants.len(),
            });
        }
        Ok(idx)
    }
}

/// Where an index of the list was touched: (update, field, location text).
type Touch = (usize, &'static str, String);

/// A second entry naming the same index: a duplicate index when it repeats the same field of
/// the same update, otherwise a user touched twice.
fn touched_twice(
    first: &Touch,
    second: (usize, &'static str, String),
    p: &Participant,
) -> StateError {
    if first.0 == second.0 && first.1 == second.1 {
        StateError::DuplicateIndex {
            first: first.2.clone(),
            second: second.2,
            user: p.user.clone(),
        }
    } else {
        StateError::UserTouchedTwice {
            user: p.user.clone(),
            first: first.2.clone(),
            second: second.2,
        }
    }
}

fn parse_user(at: &str, bytes: &[u8]) -> Result<UserUri, StateError> {
    UserUri::from_bytes(bytes).map_err(|source| StateError::InvalidUser {
        at: format!("{at}.user"),
        value: String::from_utf8_lossy(bytes).into_owned(),
        source,
    })
}
