//! The authorization engine of room-policy-03 ("Role Capabilities").
//!
//! Every action is taken by an [`Actor`]: a user with the role it holds on the participant
//! list (role 0 when it is not listed) and, for a joining client, the credential claims the
//! preauthorization list is matched against; or an external sender (a server), which holds
//! role 0. [`Policy`] answers "may this actor do this?" for one action; [`check_constraints`]
//! checks the limits (per-role counts, `max_users`, `max_clients`, `multi_device`) on the state
//! an accepted change would produce.

// The errors carry typed URIs (a `UserUri` is about 100 bytes) so that callers can act on
// them; they are only built on the refusal path, so their size costs nothing that matters.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::fmt;

use crate::room::capability::Capability;
use crate::room::state::{BANNED_ROLE, NO_ROLE, RoomState};
use crate::room::wire::{BaseRoomPolicy, Claim, PreAuthData, Role, RoleData, RoomMetaData};
use crate::uri::{ProviderId, UserUri};

/// Who takes an action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ActorId {
    User(UserUri),
    /// An external sender; it has no user and holds role 0.
    Server(ProviderId),
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorId::User(user) => write!(f, "{user}"),
            ActorId::Server(provider) => write!(f, "server {provider}"),
        }
    }
}

/// An actor with the role it acts with and its credential claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub id: ActorId,
    /// The role on the participant list; 0 when not listed.
    pub role: u32,
    /// Credential claims, matched against the preauthorization list (empty when unknown).
    pub claims: Vec<Claim>,
}

impl Actor {
    pub fn user(user: UserUri, role: u32) -> Self {
        Actor {
            id: ActorId::User(user),
            role,
            claims: Vec::new(),
        }
    }

    pub fn server(provider: ProviderId) -> Self {
        Actor {
            id: ActorId::Server(provider),
            role: NO_ROLE,
            claims: Vec::new(),
        }
    }

    pub fn with_claims(mut self, claims: Vec<Claim>) -> Self {
        self.claims = claims;
        self
    }

    pub fn user_uri(&self) -> Option<&UserUri> {
        match &self.id {
            ActorId::User(user) => Some(user),
            ActorId::Server(_) => None,
        }
    }

    /// Whether the actor is this user.
    pub fn is(&self, user: &UserUri) -> bool {
        self.user_uri() == Some(user)
    }
}

/// One of the four per-role count constraints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    MinParticipants,
    MaxParticipants,
    MinActiveParticipants,
    MaxActiveParticipants,
}

impl Limit {
    fn describe(self, limit: u32, actual: usize) -> String {
        let (bound, what) = match self {
            Limit::MinParticipants => ("at least", "participant(s)"),
            Limit::MaxParticipants => ("at most", "participant(s)"),
            Limit::MinActiveParticipants => ("at least", "active participant(s)"),
            Limit::MaxActiveParticipants => ("at most", "active participant(s)"),
        };
        format!("must have {bound} {limit} {what}, but this change would leave it with {actual}")
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::MinParticipants => "minimum_participants_constraint",
            Limit::MaxParticipants => "maximum_participants_constraint",
            Limit::MinActiveParticipants => "minimum_active_participants_constraint",
            Limit::MaxActiveParticipants => "maximum_active_participants_constraint",
        })
    }
}

fn own_role_reason(to: u32, preauthorized: &Option<u32>) -> String {
    match preauthorized {
        Some(role) => format!(
            "its first matching preauthorization entry gives role {role}, so it may not take role {to}"
        ),
        None => format!(
            "no preauthorization entry matches its credential claims, so it may not take role {to}"
        ),
    }
}

/// Why an action is not authorized. Every message names the actor and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    #[error("{actor} (role {role}) does not have the capability {capability}")]
    MissingCapability {
        actor: ActorId,
        role: u32,
        capability: Capability,
    },
    #[error(
        "{actor} (role {actor_role}) may not move {target} from role {from} to role {to}: the authorized_role_changes of role {actor_role} do not allow {from} -> {to}"
    )]
    RoleChangeNotAuthorized {
        actor: ActorId,
        actor_role: u32,
        target: UserUri,
        from: u32,
        to: u32,
    },
    #[error("role {role} ({role_name}) {}", .what.describe(*.limit, *.actual))]
    RoleLimit {
        role: u32,
        role_name: String,
        what: Limit,
        limit: u32,
        actual: usize,
    },
    #[error("role {role} is not defined in the room's roles list")]
    UnknownRole { role: u32 },
    #[error("the room has fixed membership: {action}")]
    FixedMembership { action: String },
    #[error("banning and unbanning need role 1 to exist and be named \"banned\", but {found}")]
    BannedRoleMissing { found: String },
    #[error("{actor} cannot use {capability} on itself")]
    NotForSelf {
        actor: ActorId,
        capability: Capability,
    },
    #[error("{joiner} is not a participant and may not join as role {role}: {reason}")]
    JoinNotAuthorized {
        joiner: ActorId,
        role: u32,
        reason: String,
    },
    #[error("{actor} may not change its own role: {}", own_role_reason(*.to, .preauthorized))]
    OwnRoleNotPreauthorized {
        actor: ActorId,
        to: u32,
        preauthorized: Option<u32>,
    },
    #[error(
        "{actor} may not add clients of {user}: only {user} itself (with canAddOwnClient), or whoever adds {user} to the participant list in the same commit, may add them"
    )]
    ClientAddNotAuthorized { actor: ActorId, user: UserUri },
    #[error("the room metadata's room_uri cannot change (from `{from}` to `{to}`)")]
    RoomUriChange { from: String, to: String },
    #[error(
        "the room allows at most {limit} non-banned participants (max_users), but this change would make {actual}"
    )]
    MaxUsers { limit: u32, actual: usize },
    #[error(
        "the room allows at most {limit} clients in its group (max_clients), but this change would make {actual}"
    )]
    MaxClients { limit: u32, actual: usize },
    #[error(
        "the room does not allow several devices per user (multi_device is false), but {user} would have {clients} clients"
    )]
    MultiDevice { user: UserUri, clients: usize },
}

/// The policy of a room: its roles, preauthorization list and base policy.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    pub roles: &'a RoleData,
    pub preauth: &'a PreAuthData,
    pub base: &'a BaseRoomPolicy,
}

impl<'a> Policy<'a> {
    pub fn of(state: &'a RoomState) -> Self {
        Policy {
            roles: &state.roles,
            preauth: &state.preauth,
            base: &state.policy,
        }
    }

    pub fn role(&self, index: u32) -> Option<&'a Role> {
        self.roles.role(index)
    }

    /// Whether `role` lists `capability`; an undefined role has none.
    pub fn has_capability(&self, role: u32, capability: Capability) -> bool {
        self.role(role)
            .is_some_and(|r| r.role_capabilities.contains(&capability.code()))
    }

    /// The actor's role must hold `capability`.
    pub fn require(&self, actor: &Actor, capability: Capability) -> Result<(), AuthzError> {
        if actor.role != NO_ROLE && self.role(actor.role).is_none() {
            return Err(AuthzError::UnknownRole { role: actor.role });
        }
        if self.has_capability(actor.role, capability) {
            Ok(())
        } else {
            Err(AuthzError::MissingCapability {
                actor: actor.id.clone(),
                role: actor.role,
                capability,
            })
        }
    }

    /// Whether the `authorized_role_changes` of `holder_role` allow `from -> to`.
    pub fn arc_allows(&self, holder_role: u32, from: u32, to: u32) -> bool {
        self.role(holder_role).is_some_and(|r| {
            r.authorized_role_changes
                .iter()
                .any(|arc| arc.from_role_index == from && arc.target_role_indexes.contains(&to))
        })
    }

    fn require_arc(
        &self,
        actor: &Actor,
        target: &UserUri,
        from: u32,
        to: u32,
    ) -> Result<(), AuthzError> {
        if self.arc_allows(actor.role, from, to) {
            Ok(())
        } else {
            Err(AuthzError::RoleChangeNotAuthorized {
                actor: actor.id.clone(),
                actor_role: actor.role,
                target: target.clone(),
                from,
                to,
            })
        }
    }

    fn require_defined(&self, role: u32) -> Result<(), AuthzError> {
        if role == NO_ROLE || self.role(role).is_none() {
            Err(AuthzError::UnknownRole { role })
        } else {
            Ok(())
        }
    }

    /// The target role of the first preauthorization entry whose claims all appear, with
    /// exactly the same value, among `claims` (an entry with no claims matches anyone).
    pub fn preauth_role(&self, claims: &[Claim]) -> Option<u32> {
        self.preauth
            .preauthorized_entries
            .iter()
            .find(|e| e.claimset.iter().all(|c| claims.contains(c)))
            .map(|e| e.target_role.role_index)
    }

    /// For canChangeOwnRole: the first matching entry with a non-zero role.
    pub fn preauth_own_role(&self, claims: &[Claim]) -> Option<u32> {
        self.preauth
            .preauthorized_entries
            .iter()
            .filter(|e| e.target_role.role_index != NO_ROLE)
            .find(|e| e.claimset.iter().all(|c| claims.contains(c)))
            .map(|e| e.target_role.role_index)
    }

    /// Role 1 must exist and be named `banned` for Ban and UnBan.
    pub fn require_banned_role(&self) -> Result<(), AuthzError> {
        match self.role(BANNED_ROLE) {
            Some(r) if r.name() == "banned" => Ok(()),
            Some(r) => Err(AuthzError::BannedRoleMissing {
                found: format!("role 1 is named \"{}\"", r.name()),
            }),
            None => Err(AuthzError::BannedRoleMissing {
                found: "the room defines no role 1".into(),
            }),
        }
    }

    fn fixed(&self, action: impl FnOnce() -> String) -> Result<(), AuthzError> {
        if self.base.fixed_membership.0 {
            Err(AuthzError::FixedMembership { action: action() })
        } else {
            Ok(())
        }
    }

    /// canAddParticipant: add another user with `role` (ARC `0 -> role`).
    pub fn add_participant(
        &self,
        actor: &Actor,
        target: &UserUri,
        role: u32,
    ) -> Result<(), AuthzError> {
        self.fixed(|| format!("no one may add participants, so {target} cannot be added"))?;
        if actor.is(target) {
            return Err(AuthzError::NotForSelf {
                actor: actor.id.clone(),
                capability: Capability::AddParticipant,
            });
        }
        self.require(actor, Capability::AddParticipant)?;
        self.require_defined(role)?;
        self.require_arc(actor, target, NO_ROLE, role)
    }

    /// A user not on the list adds itself with `role`: canOpenJoin on role 0 (with ARC
    /// `0 -> role` on role 0), or the first matching preauthorization entry gives `role` and
    /// `role` holds canJoinIfPreauthorized.
    pub fn join(&self, joiner: &Actor, role: u32) -> Result<(), AuthzError> {
        let deny = |reason: String| AuthzError::JoinNotAuthorized {
            joiner: joiner.id.clone(),
            role,
            reason,
        };
        self.fixed(|| format!("no one may join, so {} cannot join", joiner.id))?;
        if joiner.user_uri().is_none() {
            return Err(deny("a server cannot be a participant".into()));
        }
        if joiner.role != NO_ROLE {
            return Err(deny(format!("it already holds role {}", joiner.role)));
        }
        self.require_defined(role)?;
        let open = self.has_capability(NO_ROLE, Capability::OpenJoin);
        if open && self.arc_allows(NO_ROLE, NO_ROLE, role) {
            return Ok(());
        }
        let open_reason = if open {
            format!("role 0 allows open joins, but not to role {role}")
        } else {
            "role 0 does not have canOpenJoin".to_owned()
        };
        match self.preauth_role(&joiner.claims) {
            Some(r) if r == role => {
                if self.has_capability(role, Capability::JoinIfPreauthorized) {
                    Ok(())
                } else {
                    Err(deny(format!(
                        "{open_reason}, and although its claims are preauthorized for role {role}, that role does not have {}",
                        Capability::JoinIfPreauthorized
                    )))
                }
            }
            Some(r) => Err(deny(format!(
                "{open_reason}, and its first matching preauthorization entry gives role {r}"
            ))),
            None => Err(deny(format!(
                "{open_reason}, and no preauthorization entry matches its credential claims"
            ))),
        }
    }

    /// canRemoveParticipant (another user, ARC `role -> 0`), or canRemoveSelf for oneself.
    pub fn remove_participant(
        &self,
        actor: &Actor,
        target: &UserUri,
        target_role: u32,
    ) -> Result<(), AuthzError> {
        if actor.is(target) {
            return self.remove_self(actor);
        }
        self.fixed(|| format!("participants cannot be removed, so {target} cannot be"))?;
        self.require(actor, Capability::RemoveParticipant)?;
        self.require_arc(actor, target, target_role, NO_ROLE)
    }

    /// canRemoveSelf: leave the list (ARC `own role -> 0`).
    pub fn remove_self(&self, actor: &Actor) -> Result<(), AuthzError> {
        let Some(user) = actor.user_uri() else {
            return Err(AuthzError::MissingCapability {
                actor: actor.id.clone(),
                role: actor.role,
                capability: Capability::RemoveSelf,
            });
        };
        self.fixed(|| format!("users cannot leave, so {user} cannot"))?;
        self.require(actor, Capability::RemoveSelf)?;
        self.require_arc(actor, user, actor.role, NO_ROLE)
    }

    /// A role change on the list: dispatches to ban, unban, canChangeOwnRole or
    /// canChangeUserRole.
    pub fn change_user_role(
        &self,
        actor: &Actor,
        target: &UserUri,
        from: u32,
        to: u32,
    ) -> Result<(), AuthzError> {
        if actor.is(target) {
            return self.change_own_role(actor, to);
        }
        if to == BANNED_ROLE {
            return self.ban(actor, target, from);
        }
        self.require_defined(to)?;
        if from == BANNED_ROLE {
            return self.unban(actor, target, to);
        }
        self.require(actor, Capability::ChangeUserRole)?;
        self.require_arc(actor, target, from, to)
    }

    /// canBan (ARC `from -> 1`; role 1 is `banned`). Holding canChangeUserRole and canKick
    /// allows the same action (room-policy-03).
    pub fn ban(&self, actor: &Actor, target: &UserUri, from: u32) -> Result<(), AuthzError> {
        self.require_banned_role()?;
        if actor.is(target) {
            return Err(AuthzError::NotForSelf {
                actor: actor.id.clone(),
                capability: Capability::Ban,
            });
        }
        let has = |c| self.has_capability(actor.role, c);
        let change_and_kick = has(Capability::ChangeUserRole) && has(Capability::Kick);
        if !(has(Capability::Ban) || change_and_kick) {
            self.require(actor, Capability::Ban)?;
        }
        self.require_arc(actor, target, from, BANNED_ROLE)
    }

    /// canUnBan (ARC `1 -> to`, `to` non-zero). Does not authorize adding clients. A holder of
    /// canChangeUserRole may do the same, as its authorization is identical.
    pub fn unban(&self, actor: &Actor, target: &UserUri, to: u32) -> Result<(), AuthzError> {
        self.require_banned_role()?;
        self.require_defined(to)?;
        if !self.has_capability(actor.role, Capability::ChangeUserRole) {
            self.require(actor, Capability::UnBan)?;
        }
        self.require_arc(actor, target, BANNED_ROLE, to)
    }

    /// canChangeOwnRole: only to the role of the first matching preauthorization entry.
    pub fn change_own_role(&self, actor: &Actor, to: u32) -> Result<(), AuthzError> {
        self.require(actor, Capability::ChangeOwnRole)?;
        self.require_defined(to)?;
        match self.preauth_own_role(&actor.claims) {
            Some(r) if r == to => Ok(()),
            other => Err(AuthzError::OwnRoleNotPreauthorized {
                actor: actor.id.clone(),
                to,
                preauthorized: other,
            }),
        }
    }

    /// canAddOwnClient, for a listed user.
    pub fn add_own_client(&self, actor: &Actor) -> Result<(), AuthzError> {
        self.require(actor, Capability::AddOwnClient)
    }

    /// canRemoveOwnClient (allowed in fixed-membership rooms too).
    pub fn remove_own_client(&self, actor: &Actor) -> Result<(), AuthzError> {
        self.require(actor, Capability::RemoveOwnClient)
    }

    /// canKick: remove another user's clients without changing the list.
    pub fn kick(&self, actor: &Actor, target: &UserUri) -> Result<(), AuthzError> {
        if actor.is(target) {
            return self.remove_own_client(actor);
        }
        self.require(actor, Capability::Kick)
    }

    pub fn change_role_definitions(&self, actor: &Actor) -> Result<(), AuthzError> {
        self.require(actor, Capability::ChangeRoleDefinitions)
    }

    pub fn change_preauth(&self, actor: &Actor) -> Result<(), AuthzError> {
        self.require(actor, Capability::ChangePreauthorizedUserList)
    }

    /// A base-policy replacement: canChangeRoomMembershipStyle when a membership field
    /// changes (fixed_membership, parent_dependant, parent_room, multi_device, max_clients,
    /// max_users), canChangeOtherPolicyAttribute when another field changes.
    pub fn change_base_policy(
        &self,
        actor: &Actor,
        new: &BaseRoomPolicy,
    ) -> Result<(), AuthzError> {
        let old = self.base;
        let membership = old.fixed_membership != new.fixed_membership
            || old.parent_dependant != new.parent_dependant
            || old.parent_room != new.parent_room
            || old.multi_device != new.multi_device
            || old.max_clients != new.max_clients
            || old.max_users != new.max_users;
        let other = old.pseudonyms_allowed != new.pseudonyms_allowed
            || old.persistent_room != new.persistent_room
            || old.discoverable != new.discoverable
            || old.policy_component_ids != new.policy_component_ids;
        if membership {
            self.require(actor, Capability::ChangeRoomMembershipStyle)?;
        }
        if other {
            self.require(actor, Capability::ChangeOtherPolicyAttribute)?;
        }
        Ok(())
    }

    /// A metadata replacement: the matching canChangeRoom* for every field that changes;
    /// room_uri never changes.
    pub fn change_metadata(
        &self,
        actor: &Actor,
        old: &RoomMetaData,
        new: &RoomMetaData,
    ) -> Result<(), AuthzError> {
        if old.room_uri != new.room_uri {
            return Err(AuthzError::RoomUriChange {
                from: String::from_utf8_lossy(old.room_uri.uri.as_slice()).into_owned(),
                to: String::from_utf8_lossy(new.room_uri.uri.as_slice()).into_owned(),
            });
        }
        let fields = [
            (old.room_name != new.room_name, Capability::ChangeRoomName),
            (
                old.room_descriptions != new.room_descriptions,
                Capability::ChangeRoomDescription,
            ),
            (
                old.room_avatar != new.room_avatar,
                Capability::ChangeRoomAvatar,
            ),
            (
                old.room_subject != new.room_subject,
                Capability::ChangeRoomSubject,
            ),
            (old.room_mood != new.room_mood, Capability::ChangeRoomMood),
        ];
        for (changed, capability) in fields {
            if changed {
                self.require(actor, capability)?;
            }
        }
        Ok(())
    }

    /// canSendMessage, for application messages.
    pub fn send_message(&self, actor: &Actor) -> Result<(), AuthzError> {
        self.require(actor, Capability::SendMessage)
    }

    /// canReceiveMessage: whether the hub fans application messages out to this role.
    pub fn may_receive_messages(&self, role: u32) -> bool {
        self.has_capability(role, Capability::ReceiveMessage)
    }
}

/// Checks the room's limits on the state a change would produce.
///
/// A limit is only enforced against a change that moves toward breaking it: a minimum when
/// the count goes down, a maximum when the count goes up. A room that already breaks a
/// limit (say `group_admin` needs one participant and has none yet) can still change in
/// other ways. When the change replaces the roles list (resp. the base policy), the new
/// maximums (resp. `max_users`, `max_clients`, `multi_device`) must hold outright.
pub fn check_constraints(before: &RoomState, after: &RoomState) -> Result<(), AuthzError> {
    let roles_changed = before.roles != after.roles;
    let policy_changed = before.policy != after.policy;
    let (old, new) = (Counts::of(before), Counts::of(after));
    for role in &after.roles.roles {
        if role.role_index == NO_ROLE {
            continue;
        }
        let (all_before, active_before) = old.role(role.role_index);
        let (all, active) = new.role(role.role_index);
        let limit = |what, limit, actual| AuthzError::RoleLimit {
            role: role.role_index,
            role_name: role.name().to_owned(),
            what,
            limit,
            actual,
        };
        let min = role.minimum_participants_constraint;
        if all < min as usize && all < all_before {
            return Err(limit(Limit::MinParticipants, min, all));
        }
        if let Some(max) = role.maximum_participants_constraint
            && all > max as usize
            && (all > all_before || roles_changed)
        {
            return Err(limit(Limit::MaxParticipants, max, all));
        }
        let min = role.minimum_active_participants_constraint;
        if active < min as usize && active < active_before {
            return Err(limit(Limit::MinActiveParticipants, min, active));
        }
        if let Some(max) = role.maximum_active_participants_constraint
            && active > max as usize
            && (active > active_before || roles_changed)
        {
            return Err(limit(Limit::MaxActiveParticipants, max, active));
        }
    }
    if let Some(limit) = after.policy.max_users
        && new.non_banned > limit as usize
        && (new.non_banned > old.non_banned || policy_changed)
    {
        return Err(AuthzError::MaxUsers {
            limit,
            actual: new.non_banned,
        });
    }
    if let Some(limit) = after.policy.max_clients {
        let (was, now) = (before.members.len(), after.members.len());
        if now > limit as usize && (now > was || policy_changed) {
            return Err(AuthzError::MaxClients { limit, actual: now });
        }
    }
    if !after.policy.multi_device.0 {
        for m in &after.members {
            let clients = new.clients(&m.user);
            if clients > 1 && (clients > old.clients(&m.user) || policy_changed) {
                return Err(AuthzError::MultiDevice {
                    user: m.user.clone(),
                    clients,
                });
            }
        }
    }
    Ok(())
}

/// Per-role and per-user counts of one state, computed in one pass.
struct Counts<'a> {
    /// role -> (participants, active participants)
    roles: HashMap<u32, (usize, usize)>,
    clients: HashMap<&'a UserUri, usize>,
    non_banned: usize,
}

impl<'a> Counts<'a> {
    fn of(state: &'a RoomState) -> Self {
        let mut clients: HashMap<&UserUri, usize> = HashMap::new();
        for m in &state.members {
            *clients.entry(&m.user).or_default() += 1;
        }
        let mut roles: HashMap<u32, (usize, usize)> = HashMap::new();
        for p in state.participants.iter() {
            let entry = roles.entry(p.role).or_default();
            entry.0 += 1;
            if clients.contains_key(&p.user) {
                entry.1 += 1;
            }
        }
        let non_banned = state
            .participants
            .iter()
            .filter(|p| p.role != BANNED_ROLE)
            .count();
        Counts {
            roles,
            clients,
            non_banned,
        }
    }

    fn role(&self, role: u32) -> (usize, usize) {
        self.roles.get(&role).copied().unwrap_or_default()
    }

    fn clients(&self, user: &UserUri) -> usize {
        self.clients.get(user).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
