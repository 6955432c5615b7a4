//! The room state the hub and every client agree on.
//!
//! A *participant* is a user on the participant list (with one role); a *member* is a client
//! in the room's MLS group. The participant list, roles, preauthorization list, base policy
//! and metadata travel in the GroupContext `app_data_dictionary` ([`RoomState::to_app_data`],
//! [`RoomState::from_app_data`]); the members come from the MLS tree. `pending` holds the
//! proposals the hub accepted and cached in the current epoch: the next commit must include
//! them, and the hub already treats their participant-list effect as done (protocol-06 §7.1).

// The errors carry typed URIs (a `UserUri` is about 100 bytes) so that callers can act on
// them; they are only built on the refusal path, so their size costs nothing that matters.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::room::capability::Capability;
use crate::room::code_points::ComponentCodePoints;
use crate::room::handshake::{Change, ProposalEffect};
use crate::room::wire::{
    AppDataDictionary, BaseRoomPolicy, ComponentId, ParticipantListData, ParticipantListUpdate,
    PreAuthData, Role, RoleData, RoomMetaData, SingleSourceRoleChangeTargets, Uri, UserRolePair,
    WireError, WireStruct, decode_exact, encode,
};
use crate::uri::{ClientUri, RoomUri, UriError, UserUri};

/// Role 0: not (or no longer) on the participant list.
pub const NO_ROLE: u32 = 0;
/// Role 1: the `banned` role of room-policy-03, when the room defines it.
pub const BANNED_ROLE: u32 = 1;

/// A proposal the hub accepted and cached for the next commit.
pub type PendingProposal = ProposalEffect;

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
    participants: Vec<Participant>,
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

/// A client in the room's MLS group, and the user its credential names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    pub client: ClientUri,
    pub user: UserUri,
}

impl Member {
    pub fn new(client: ClientUri, user: UserUri) -> Self {
        Member { client, user }
    }
}

/// Why the hub blocks a user's clients from everything but their own removal
/// (protocol-06 §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockReason {
    /// The user is not on the participant list.
    NotParticipant,
    /// The user holds the banned role.
    Banned,
    /// A cached proposal removes or bans the user: it is exiting.
    Exiting,
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockReason::NotParticipant => "is not a participant of the room",
            BlockReason::Banned => "is banned from the room",
            BlockReason::Exiting => {
                "is exiting the room (a removal or ban the hub accepted is waiting for the next commit)"
            }
        })
    }
}

/// The state of one room in one epoch, as the hub tracks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomState {
    pub room: RoomUri,
    /// The MLS epoch this state belongs to.
    pub epoch: u64,
    /// The participant list of the GroupContext (see [`RoomState::effective_participants`]).
    pub participants: ParticipantList,
    pub roles: RoleData,
    pub preauth: PreAuthData,
    pub policy: BaseRoomPolicy,
    pub metadata: RoomMetaData,
    /// The clients in the MLS group.
    pub members: Vec<Member>,
    /// Proposals the hub accepted in this epoch; the next commit must include them.
    pub pending: Vec<PendingProposal>,
}

impl RoomState {
    /// A new room in epoch 0: the creator's user is the only participant, with
    /// `creator_role`, and the creator's client the only member.
    pub fn new_room(
        room: RoomUri,
        creator: Member,
        creator_role: u32,
        roles: RoleData,
        policy: BaseRoomPolicy,
    ) -> RoomState {
        let metadata = RoomMetaData {
            room_uri: Uri::new(room.as_str()),
            ..RoomMetaData::default()
        };
        let participants = ParticipantList {
            participants: vec![Participant::new(creator.user.clone(), creator_role)],
        };
        RoomState {
            room,
            epoch: 0,
            participants,
            roles,
            preauth: PreAuthData::default(),
            policy,
            metadata,
            members: vec![creator],
            pending: Vec::new(),
        }
    }

    /// Adds a participant directly (to build a state; not policy-checked).
    pub fn push_participant(&mut self, user: UserUri, role: u32) -> Result<(), StateError> {
        self.participants.push(user, role)
    }

    /// Adds a client to the group directly (to build a state; not policy-checked).
    pub fn push_member(&mut self, client: ClientUri, user: UserUri) -> Result<(), StateError> {
        if self.member(&client).is_some() {
            return Err(StateError::DuplicateMember { client });
        }
        self.members.push(Member::new(client, user));
        Ok(())
    }

    /// The GroupContext `app_data_dictionary` components of this state.
    pub fn to_app_data(&self, cp: &ComponentCodePoints) -> Result<AppDataDictionary, StateError> {
        let mut dict = AppDataDictionary::default();
        let mut put = |name, id: ComponentId, bytes: Result<Vec<u8>, WireError>| {
            bytes
                .map(|b| dict.set(id, b))
                .map_err(|source| StateError::Component { name, id, source })
        };
        put(
            "participant_list",
            cp.participant_list,
            encode(&self.participants.to_wire()),
        )?;
        put("room_metadata", cp.room_metadata, encode(&self.metadata))?;
        put("roles_list", cp.roles_list, encode(&self.roles))?;
        put("preauth_list", cp.preauth_list, encode(&self.preauth))?;
        put(
            "base_room_policy",
            cp.base_room_policy,
            encode(&self.policy),
        )?;
        Ok(dict)
    }

    /// Reads the state from a GroupContext `app_data_dictionary`. The participant list
    /// and roles list are required; a missing preauthorization list or base policy means
    /// the defaults, missing metadata means empty metadata for `room`.
    pub fn from_app_data(
        room: RoomUri,
        epoch: u64,
        dict: &AppDataDictionary,
        cp: &ComponentCodePoints,
        members: Vec<Member>,
    ) -> Result<RoomState, StateError> {
        fn component<T: WireStruct>(
            dict: &AppDataDictionary,
            name: &'static str,
            id: ComponentId,
        ) -> Result<Option<T>, StateError> {
            dict.get(id)
                .map(|bytes| {
                    decode_exact::<T>(bytes).map_err(|source| StateError::Component {
                        name,
                        id,
                        source,
                    })
                })
                .transpose()
        }
        let missing = |name, id| StateError::MissingComponent { name, id };
        let list: ParticipantListData =
            component(dict, "participant_list", cp.participant_list)?
                .ok_or_else(|| missing("participant_list", cp.participant_list))?;
        let roles: RoleData = component(dict, "roles_list", cp.roles_list)?
            .ok_or_else(|| missing("roles_list", cp.roles_list))?;
        let preauth = component(dict, "preauth_list", cp.preauth_list)?.unwrap_or_default();
        let policy = component(dict, "base_room_policy", cp.base_room_policy)?.unwrap_or_default();
        let metadata: RoomMetaData = component(dict, "room_metadata", cp.room_metadata)?
            .unwrap_or_else(|| RoomMetaData {
                room_uri: Uri::new(room.as_str()),
                ..RoomMetaData::default()
            });
        let participants = ParticipantList::from_wire(&list)?;
        for p in participants.iter() {
            if roles.role(p.role).is_none() {
                return Err(StateError::UndefinedRole {
                    user: p.user.clone(),
                    role: p.role,
                });
            }
        }
        let named = metadata.room_uri.as_str().unwrap_or_default();
        if !named.is_empty() && named != room.as_str() {
            return Err(StateError::RoomMismatch {
                expected: room,
                found: named.to_owned(),
            });
        }
        let mut seen = HashSet::new();
        for m in &members {
            if !seen.insert(&m.client) {
                return Err(StateError::DuplicateMember {
                    client: m.client.clone(),
                });
            }
        }
        Ok(RoomState {
            room,
            epoch,
            participants,
            roles,
            preauth,
            policy,
            metadata,
            members,
            pending: Vec::new(),
        })
    }

    pub fn member(&self, client: &ClientUri) -> Option<&Member> {
        self.members.iter().find(|m| &m.client == client)
    }

    pub fn is_member(&self, client: &ClientUri) -> bool {
        self.member(client).is_some()
    }

    /// The user's clients in the MLS group.
    pub fn active_clients(&self, user: &UserUri) -> Vec<&ClientUri> {
        self.members
            .iter()
            .filter(|m| &m.user == user)
            .map(|m| &m.client)
            .collect()
    }

    /// An active participant has at least one client in the group.
    pub fn is_active(&self, user: &UserUri) -> bool {
        self.members.iter().any(|m| &m.user == user)
    }

    /// How many participants hold `role`, and how many of them are active.
    pub fn role_counts(&self, role: u32) -> (usize, usize) {
        let holders = self.participants.iter().filter(|p| p.role == role);
        let (mut all, mut active) = (0, 0);
        for p in holders {
            all += 1;
            if self.is_active(&p.user) {
                active += 1;
            }
        }
        (all, active)
    }

    /// The participant list as the hub sees it (protocol-06 §7.1): the committed list with
    /// the participant-list updates of the cached proposals applied. `participants` itself
    /// stays the list of the GroupContext, which the indices of the next commit refer to.
    pub fn effective_participants(&self) -> ParticipantList {
        let updates: Vec<&ParticipantListUpdate> = self
            .pending
            .iter()
            .filter_map(|p| match &p.change {
                Change::ParticipantList(u) => Some(u),
                _ => None,
            })
            .collect();
        if updates.is_empty() {
            return self.participants.clone();
        }
        self.participants
            .apply_all(&updates)
            .map_or_else(|_| self.participants.clone(), |(list, _)| list)
    }

    /// Users that a cached proposal removes from the list or bans.
    pub fn exiting_users(&self) -> Vec<UserUri> {
        let mut out = Vec::new();
        for p in &self.pending {
            if let Change::ParticipantList(update) = &p.change
                && let Ok((_, changes)) = self.participants.apply(update)
            {
                for user in changes.exiting() {
                    if !out.contains(user) {
                        out.push(user.clone());
                    }
                }
            }
        }
        out
    }

    /// Why the hub blocks this user's clients, if it does: the user is not listed, is
    /// banned, or is exiting through a cached proposal.
    pub fn block_reason(&self, user: &UserUri) -> Option<BlockReason> {
        match self.participants.role_of(user) {
            NO_ROLE => Some(BlockReason::NotParticipant),
            BANNED_ROLE => Some(BlockReason::Banned),
            _ if self.exiting_users().contains(user) => Some(BlockReason::Exiting),
            _ => None,
        }
    }

    /// Checks the preemption chain at rest: every participant's role is defined, and every
    /// member's user is a participant that is not banned.
    pub fn check_invariants(&self) -> Result<(), StateError> {
        for p in self.participants.iter() {
            if self.roles.role(p.role).is_none() {
                return Err(StateError::UndefinedRole {
                    user: p.user.clone(),
                    role: p.role,
                });
            }
        }
        for m in &self.members {
            match self.participants.role_of(&m.user) {
                NO_ROLE | BANNED_ROLE => {
                    return Err(StateError::MemberNotAllowed {
                        client: m.client.clone(),
                        user: m.user.clone(),
                        role: self.participants.role_of(&m.user),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A room-state error; the message says what is wrong and where.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("{at}: `{value}` is not a MIMI user URI: {source}")]
    InvalidUser {
        at: String,
        value: String,
        #[source]
        source: UriError,
    },
    #[error("{at}: {user} has role 0, which means 'not on the participant list'")]
    RoleZero { at: String, user: UserUri },
    #[error("{at}: {user} is already listed at participants[{first}]")]
    DuplicateUser {
        at: String,
        user: UserUri,
        first: usize,
    },
    #[error("{at}: index {index} is out of range, the participant list has {len} entries")]
    IndexOutOfRange { at: String, index: u32, len: usize },
    #[error("{second} repeats the index of {first} ({user})")]
    DuplicateIndex {
        first: String,
        second: String,
        user: UserUri,
    },
    #[error(
        "{user} is touched twice, by {first} and by {second}: a user may be added, removed or change role only once per commit"
    )]
    UserTouchedTwice {
        user: UserUri,
        first: String,
        second: String,
    },
    #[error("{at}: changes the role of {user} to 0; removal goes through removedIndices")]
    RoleChangeToZero { at: String, user: UserUri },
    #[error("{at}: {user} already has role {role}, so this is not a role change")]
    SameRole {
        at: String,
        user: UserUri,
        role: u32,
    },
    #[error("{at}: {user} is already a participant (participants[{index}]) and cannot be added")]
    AlreadyListed {
        at: String,
        user: UserUri,
        index: usize,
    },
    #[error("the app_data_dictionary has no {name} component ({id:#06x})")]
    MissingComponent { name: &'static str, id: ComponentId },
    #[error("component {name} ({id:#06x}): {source}")]
    Component {
        name: &'static str,
        id: ComponentId,
        #[source]
        source: WireError,
    },
    #[error("{user} has role {role}, which the room's roles list does not define")]
    UndefinedRole { user: UserUri, role: u32 },
    #[error("the room metadata names room `{found}`, but this is room {expected}")]
    RoomMismatch { expected: RoomUri, found: String },
    #[error("client {client} is listed twice among the group members")]
    DuplicateMember { client: ClientUri },
    #[error(
        "client {client} is in the group, but its user {user} has role {role} (not listed or banned) and may have no clients"
    )]
    MemberNotAllowed {
        client: ClientUri,
        user: UserUri,
        role: u32,
    },
}

fn role(
    index: u32,
    name: &str,
    description: &str,
    capabilities: &[Capability],
    limits: (u32, Option<u32>, u32, Option<u32>),
    arc: &[(u32, &[u32])],
) -> Role {
    Role {
        role_index: index,
        role_name: name.as_bytes().to_vec().into(),
        role_description: description.as_bytes().to_vec().into(),
        role_capabilities: capabilities.iter().map(|c| c.code()).collect(),
        minimum_participants_constraint: limits.0,
        maximum_participants_constraint: limits.1,
        minimum_active_participants_constraint: limits.2,
        maximum_active_participants_constraint: limits.3,
        authorized_role_changes: arc
            .iter()
            .map(|(from, to)| SingleSourceRoleChangeTargets {
                from_role_index: *from,
                target_role_indexes: to.to_vec(),
            })
            .collect(),
    }
}

/// The roles of room-policy-03 Appendix A.1 ("cooperatively administered room"), the
/// daemon's default policy envelope:
///
/// - 0 `no_role`, 1 `banned`: no capabilities, no clients allowed;
/// - 2 `ordinary_user`: membership, messaging, assets and metadata (except the
///   description), ARC `[(0,[2]), (2,[0])]`;
/// - 3 `group_admin`: ordinary_user plus ban, unban, kick, role changes, moderation and the
///   room description; at least one participant;
/// - 4 `super_admin`: group_admin plus membership style, preauthorization, destroy, and
///   (beyond the appendix, so that a room can be reconfigured without a policy enforcer)
///   role definitions and other policy attributes;
/// - 5 `policy_enforcer`: a clientless server-side actor (max active 0) that removes, bans
///   and manages policy.
///
/// The appendix's canRevokeVoice/canGrantVoice are not registered capabilities and are left out.
pub fn default_roles() -> RoleData {
    use Capability::*;
    let ordinary: &[Capability] = &[
        AddParticipant,
        RemoveParticipant,
        AddOwnClient,
        RemoveOwnClient,
        RemoveSelf,
        SendMessage,
        ReceiveMessage,
        CopyMessage,
        ReportAbuse,
        ReplyToMessage,
        ReactToMessage,
        DeleteOwnReaction,
        EditOwnMessage,
        DeleteOwnMessage,
        StartTopic,
        ReplyInTopic,
        EditOwnTopic,
        UploadImage,
        UploadVideo,
        UploadAudio,
        UploadAttachment,
        DownloadImage,
        DownloadVideo,
        DownloadAudio,
        DownloadAttachment,
        SendLink,
        SendLinkPreview,
        FollowLink,
        CopyLink,
        ChangeRoomName,
        ChangeRoomAvatar,
        ChangeRoomSubject,
        ChangeRoomMood,
        ChangeOwnName,
        ChangeOwnPresence,
        ChangeOwnMood,
        ChangeOwnAvatar,
    ];
    let mut admin = ordinary.to_vec();
    admin.extend([
        Ban,
        UnBan,
        Kick,
        ChangeUserRole,
        DeleteOtherMessage,
        EditOtherTopic,
        ChangeRoomDescription,
    ]);
    let mut superadmin = admin.clone();
    superadmin.extend([
        ChangeRoomMembershipStyle,
        ChangePreauthorizedUserList,
        DestroyRoom,
        ChangeRoleDefinitions,
        ChangeOtherPolicyAttribute,
    ]);
    let enforcer = [
        RemoveParticipant,
        ChangeUserRole,
        Ban,
        UnBan,
        ChangeRoleDefinitions,
        ChangePreauthorizedUserList,
        ChangeMlsOperationalPolicies,
        DestroyRoom,
        SendMlsReinitProposal,
    ];
    RoleData {
        roles: vec![
            role(
                0,
                "no_role",
                "not a participant",
                &[],
                (0, None, 0, Some(0)),
                &[],
            ),
            role(
                1,
                "banned",
                "banned from the room",
                &[],
                (0, None, 0, Some(0)),
                &[],
            ),
            role(
                2,
                "ordinary_user",
                "a participant",
                ordinary,
                (0, None, 0, None),
                &[(0, &[2]), (2, &[0])],
            ),
            role(
                3,
                "group_admin",
                "moderates the room",
                &admin,
                (1, None, 0, None),
                &[
                    (0, &[1, 2, 3]),
                    (1, &[0, 2, 3]),
                    (2, &[0, 1, 3]),
                    (3, &[0, 1, 2]),
                ],
            ),
            role(
                4,
                "super_admin",
                "administers the room and its policy",
                &superadmin,
                (0, None, 0, None),
                &[
                    (0, &[1, 2, 3, 4]),
                    (1, &[0, 2, 3, 4]),
                    (2, &[0, 1, 3, 4]),
                    (3, &[0, 1, 2, 4]),
                    (4, &[0, 1, 2, 3]),
                ],
            ),
            role(
                5,
                "policy_enforcer",
                "a server-side policy enforcer without clients",
                &enforcer,
                (1, Some(2), 0, Some(0)),
                &[
                    (0, &[1]),
                    (1, &[0]),
                    (2, &[0, 1]),
                    (3, &[0, 1]),
                    (4, &[0, 1]),
                ],
            ),
        ],
    }
}

#[cfg(test)]
mod tests;
