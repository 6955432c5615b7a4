//! The state of one room in one epoch ([`RoomState`]), its group members, and why the hub
//! blocks a user's clients ([`BlockReason`]), with the invariants of the state at rest.

use std::collections::HashSet;
use std::fmt;

use crate::room::code_points::ComponentCodePoints;
use crate::room::handshake::Change;
use crate::room::wire::{
    AppDataDictionary, BaseRoomPolicy, ComponentId, ParticipantListData, ParticipantListUpdate,
    PreAuthData, RoleData, RoomMetaData, Uri, WireError, WireStruct, decode_exact, encode,
};
use crate::uri::{ClientUri, RoomUri, UserUri};

use super::{BANNED_ROLE, NO_ROLE, Participant, ParticipantList, PendingProposal, StateError};

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
