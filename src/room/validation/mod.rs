//! The hub's validation of one handshake (mimi-spec §5.5) and of application messages.
//!
//! [`validate_handshake`] answers an `/update` request: a commit either moves the room to the
//! next epoch or is refused; proposals are either cached in [`RoomState::pending`] or refused.
//! Refusals map to the protocol-06 `UpdateResponseCode`s: `wrongEpoch` (1), `notAllowed` (2,
//! a policy or authorization rule) and `invalidProposal` (3, a proposal that cannot be
//! applied as it stands, named by its reference).
//!
//! The checks run in this order, and the first failure is the answer:
//! 1. the epoch;
//! 2. the sender: a member that is not blocked, a joining client that is not banned or
//!    exiting; servers may propose but not commit;
//! 3. for commits, the proposals included by reference must be ones the hub accepted, and
//!    every cached proposal must be included;
//! 4. each proposal on its own (indices in range, URIs, wire rules, clients that exist);
//! 5. the commit's composition (one operation per user, no roles update with list changes,
//!    no preauthorization update with list changes other than removals, at most one update
//!    of each whole-value component);
//! 6. membership consistency (join order, a removed or banned user keeps no clients);
//! 7. authorization of every proposal by its own sender;
//! 8. the room's limits on the resulting state.
//!
//! The hub applies accepted proposals at once for later validation (protocol-06 §7.1): they
//! stay in `pending`, `participants` stays the list of the GroupContext, and a user that a
//! pending proposal removes or bans is *exiting*: [`RoomState::block_reason`] blocks its
//! clients from everything but their own removal.

// `AuthzError` carries typed URIs and is large; see `authorization`.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::room::authorization::{Actor, AuthzError, Policy, check_constraints};
use crate::room::handshake::{
    Change, Handshake, HandshakeBody, ProposalEffect, ProposalRef, Sender,
};
use crate::room::state::{
    BANNED_ROLE, BlockReason, Member, NO_ROLE, ParticipantListChanges, PendingProposal, RoomState,
};
use crate::room::wire::WireStruct;
use crate::uri::{ClientUri, UserUri};

/// The `UpdateResponseCode` of a refusal, with its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RejectCode {
    /// `wrongEpoch(1)`: the hub is in another epoch.
    WrongEpoch { current_epoch: u64 },
    /// `notAllowed(2)`: a policy or authorization rule forbids the request.
    NotAllowed,
    /// `invalidProposal(3)`: these proposals cannot be applied as they stand.
    InvalidProposal { proposals: Vec<ProposalRef> },
}

impl RejectCode {
    /// The protocol-06 `UpdateResponseCode` value.
    pub fn code_point(&self) -> u8 {
        match self {
            RejectCode::WrongEpoch { .. } => 1,
            RejectCode::NotAllowed => 2,
            RejectCode::InvalidProposal { .. } => 3,
        }
    }

    /// The protocol-06 name of the code.
    pub fn name(&self) -> &'static str {
        match self {
            RejectCode::WrongEpoch { .. } => "wrongEpoch",
            RejectCode::NotAllowed => "notAllowed",
            RejectCode::InvalidProposal { .. } => "invalidProposal",
        }
    }
}

/// Why the hub refuses a handshake or message; `reason` is the `errorDescription`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", .code.name())]
pub struct Rejection {
    pub code: RejectCode,
    pub reason: String,
}

impl Rejection {
    pub fn wrong_epoch(current_epoch: u64, reason: impl Into<String>) -> Self {
        Rejection {
            code: RejectCode::WrongEpoch { current_epoch },
            reason: reason.into(),
        }
    }

    pub fn not_allowed(reason: impl Into<String>) -> Self {
        Rejection {
            code: RejectCode::NotAllowed,
            reason: reason.into(),
        }
    }

    pub fn invalid(proposals: Vec<ProposalRef>, reason: impl Into<String>) -> Self {
        Rejection {
            code: RejectCode::InvalidProposal { proposals },
            reason: reason.into(),
        }
    }
}

/// An accepted handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The new state. After a commit: the next epoch, with participants, members, roles,
    /// preauthorization, policy and metadata updated and `pending` empty. After proposals:
    /// the same epoch and committed state, with the proposals added to `pending`.
    pub state: RoomState,
    /// The participant-list changes the handshake makes (for proposals: the changes the hub
    /// now treats as done, which the next commit confirms).
    pub changes: ParticipantListChanges,
    /// Cached proposals the commit could not include and that are now void: those an
    /// external commit skips (protocol-06 §5.5: the hub regenerates the ones it still wants)
    /// and the committer's own cached Update (RFC 9420 forbids committing it).
    pub dropped_pending: Vec<PendingProposal>,
}

/// Validates one handshake against the room state, as the hub does for `/update`.
pub fn validate_handshake(state: &RoomState, hs: &Handshake) -> Result<Accepted, Rejection> {
    if hs.epoch != state.epoch {
        return Err(Rejection::wrong_epoch(
            state.epoch,
            format!(
                "the {} was made in epoch {}, but the room is in epoch {}",
                if hs.is_commit() { "commit" } else { "proposal" },
                hs.epoch,
                state.epoch
            ),
        ));
    }
    match &hs.body {
        HandshakeBody::Commit { proposals } => validate_commit(state, &hs.sender, proposals),
        HandshakeBody::Proposals(proposals) => validate_proposals(state, proposals),
    }
}

/// Checks that a client may send an application message (`/submitMessage`): it is a member,
/// its user is not blocked (removed, banned or exiting), and its role has canSendMessage.
pub fn check_application_message(state: &RoomState, sender: &ClientUri) -> Result<(), Rejection> {
    let member = state.member(sender).ok_or_else(|| {
        Rejection::not_allowed(format!(
            "{sender} is not a member of the room's group, so it cannot send messages"
        ))
    })?;
    if let Some(reason) = state.block_reason(&member.user) {
        return Err(Rejection::not_allowed(format!(
            "{sender} may not send messages: its user {} {reason}",
            member.user
        )));
    }
    let actor = Actor::user(
        member.user.clone(),
        state.participants.role_of(&member.user),
    );
    Policy::of(state)
        .send_message(&actor)
        .map_err(|err| Rejection::not_allowed(format!("{sender} may not send messages: {err}")))
}

/// Whether the hub may fan application messages out to this client: it is a member, its
/// user is not blocked, and its role has canReceiveMessage.
pub fn may_receive_application_messages(state: &RoomState, client: &ClientUri) -> bool {
    state.member(client).is_some_and(|m| {
        state.block_reason(&m.user).is_none()
            && Policy::of(state).may_receive_messages(state.participants.role_of(&m.user))
    })
}

fn validate_commit(
    state: &RoomState,
    committer: &Sender,
    proposals: &[ProposalEffect],
) -> Result<Accepted, Rejection> {
    let external = matches!(committer, Sender::NewMember { .. });
    let committer_client = match committer {
        Sender::Server(provider) => {
            return Err(Rejection::not_allowed(format!(
                "server {provider} sent a commit, but servers may only propose: only clients commit"
            )));
        }
        Sender::Member(client) => {
            let member = state.member(client).ok_or_else(|| {
                Rejection::not_allowed(format!(
                    "{client} is not a member of the room's group, so it cannot commit"
                ))
            })?;
            if let Some(reason) = state.block_reason(&member.user) {
                return Err(Rejection::not_allowed(format!(
                    "{client} may not commit: its user {} {reason}, and its clients may only be removed",
                    member.user
                )));
            }
            client
        }
        Sender::NewMember { client, user, .. } => {
            check_joiner(state, client, user)?;
            client
        }
    };

    // Proposals by reference must be ones the hub accepted.
    let mut seen = HashSet::new();
    let mut effects = Vec::with_capacity(proposals.len());
    for p in proposals {
        if !seen.insert(&p.reference) {
            return Err(Rejection::invalid(
                vec![p.reference.clone()],
                format!("proposal {} appears twice in the commit", p.reference),
            ));
        }
        if let Some(cached) = state.pending.iter().find(|c| c.reference == p.reference) {
            if cached != p {
                return Err(Rejection::invalid(
                    vec![p.reference.clone()],
                    format!(
                        "{} does not match the proposal the hub cached under that reference",
                        p.describe()
                    ),
                ));
            }
            effects.push(p);
        } else if p.sender != *committer {
            return Err(Rejection::invalid(
                vec![p.reference.clone()],
                format!(
                    "{} is included by reference, but the hub never accepted it: proposals must be sent to the hub before a commit includes them",
                    p.describe()
                ),
            ));
        } else {
            effects.push(p);
        }
    }

    // Every cached proposal must be included (protocol-06 §3.5).
    let mut missing = Vec::new();
    let mut dropped = Vec::new();
    for cached in &state.pending {
        if seen.contains(&cached.reference) {
            continue;
        }
        let own_update = cached.change == Change::LeafUpdate && cached.sender == *committer;
        // An external commit invalidates the hub's own proposals, which the hub regenerates
        // and staples (protocol-06 §5.5). Clients' proposals it cannot regenerate: a leaving
        // or banned user's removals come with the GroupInfo and must be in the commit.
        let hub_regenerates = external && matches!(cached.sender, Sender::Server(_));
        if hub_regenerates || own_update {
            dropped.push(cached.clone());
        } else {
            missing.push(cached);
        }
    }
    // notAllowed rather than invalidProposal: every proposal the commit does carry may be
    // valid, and invalidProposal names proposals of the request; what fails is the hub's
    // rule that the committer include the cached ones (protocol-06 §3.5).
    if !missing.is_empty() {
        return Err(Rejection::not_allowed(format!(
            "the commit leaves out {} proposal(s) the hub accepted and cached in this epoch ({}); the next commit must include every cached proposal",
            missing.len(),
            list(missing.iter().map(|p| p.describe()))
        )));
    }

    // ExternalInit belongs in external commits only, exactly once.
    let inits: Vec<&ProposalEffect> = proposals
        .iter()
        .filter(|p| p.change == Change::ExternalInit)
        .collect();
    if external && (inits.len() != 1 || inits[0].sender != *committer) {
        return Err(Rejection::invalid(
            refs(&inits),
            format!(
                "an external commit must carry exactly one ExternalInit from its sender, found {}",
                inits.len()
            ),
        ));
    }
    if !external && !inits.is_empty() {
        return Err(Rejection::invalid(
            refs(&inits),
            "ExternalInit belongs only in an external commit",
        ));
    }

    // A client cannot commit its own removal (RFC 9420 §12.2).
    for p in proposals {
        let removes_committer = match &p.change {
            Change::RemoveClient { client } => client == committer_client,
            Change::SelfRemove => p.sender == *committer,
            _ => false,
        };
        if removes_committer {
            return Err(Rejection::invalid(
                vec![p.reference.clone()],
                format!(
                    "{} removes the committing client {committer_client}: a client cannot commit its own removal, another member must",
                    p.describe()
                ),
            ));
        }
    }

    let outcome = evaluate(state, &effects)?;
    let mut new_state = outcome.state;
    new_state.epoch = state
        .epoch
        .checked_add(1)
        .ok_or_else(|| Rejection::not_allowed("the group is at the last possible epoch"))?;
    new_state.pending.clear();
    Ok(Accepted {
        state: new_state,
        changes: outcome.changes,
        dropped_pending: dropped,
    })
}

fn validate_proposals(
    state: &RoomState,
    proposals: &[ProposalEffect],
) -> Result<Accepted, Rejection> {
    if proposals.is_empty() {
        return Err(Rejection::not_allowed("the request carries no proposal"));
    }
    let mut seen = HashSet::new();
    let mut new = Vec::new();
    for p in proposals {
        if !seen.insert(&p.reference) {
            return Err(Rejection::invalid(
                vec![p.reference.clone()],
                format!("proposal {} appears twice in the request", p.reference),
            ));
        }
        if let Some(cached) = state.pending.iter().find(|c| c.reference == p.reference) {
            if cached == p {
                // A retried request: already accepted.
                continue;
            }
            return Err(Rejection::invalid(
                vec![p.reference.clone()],
                format!(
                    "{} reuses the reference of a different proposal the hub already cached",
                    p.describe()
                ),
            ));
        }
        match &p.sender {
            Sender::Member(client) => {
                let member = state.member(client).ok_or_else(|| {
                    Rejection::not_allowed(format!(
                        "{}: {client} is not a member of the room's group",
                        p.describe()
                    ))
                })?;
                if let Some(reason) = state.block_reason(&member.user)
                    && !removes_own_client(state, p, &member.user)
                {
                    return Err(Rejection::not_allowed(format!(
                        "{} is refused: {} {reason}, and its clients may only propose the removal of their own clients",
                        p.describe(),
                        member.user
                    )));
                }
            }
            Sender::NewMember { client, user, .. } => check_joiner(state, client, user)?,
            Sender::Server(_) => {}
        }
        if p.change == Change::ExternalInit {
            return Err(Rejection::invalid(
                vec![p.reference.clone()],
                format!(
                    "{} cannot be a standalone proposal: ExternalInit belongs in an external commit",
                    p.describe()
                ),
            ));
        }
        new.push(p);
    }
    if new.is_empty() {
        return Ok(Accepted {
            state: state.clone(),
            changes: ParticipantListChanges::default(),
            dropped_pending: Vec::new(),
        });
    }
    // The cached proposals and the new ones must make a valid commit together, since the
    // next commit must include them all.
    let effects: Vec<&ProposalEffect> = state.pending.iter().chain(new.iter().copied()).collect();
    evaluate(state, &effects)?;
    let mut changes = ParticipantListChanges::default();
    for p in &new {
        if let Change::ParticipantList(update) = &p.change
            && let Ok((_, c)) = state.participants.apply(update)
        {
            changes.extend(c);
        }
    }
    let mut new_state = state.clone();
    new_state.pending.extend(new.into_iter().cloned());
    Ok(Accepted {
        state: new_state,
        changes,
        dropped_pending: Vec::new(),
    })
}

/// A joining client must not be a member yet, and its user must not be banned or exiting
/// (preauthorization is only consulted for users not on the list, so a banned user cannot
/// rejoin through it).
fn check_joiner(state: &RoomState, client: &ClientUri, user: &UserUri) -> Result<(), Rejection> {
    if state.is_member(client) {
        return Err(Rejection::not_allowed(format!(
            "{client} is already a member of the room's group and cannot join it again"
        )));
    }
    match state.block_reason(user) {
        Some(reason @ (BlockReason::Banned | BlockReason::Exiting)) => Err(Rejection::not_allowed(
            format!("{client} may not join: its user {user} {reason}"),
        )),
        _ => Ok(()),
    }
}

/// Whether a proposal removes one of `user`'s own clients (SelfRemove, or a Remove of a client
/// of the same user): the only thing a blocked user's clients may propose.
fn removes_own_client(state: &RoomState, p: &ProposalEffect, user: &UserUri) -> bool {
    match &p.change {
        Change::SelfRemove => true,
        Change::RemoveClient { client } => state.member(client).is_some_and(|m| &m.user == user),
        _ => false,
    }
}

/// A client added or removed by a proposal.
#[derive(Clone, Copy)]
enum ClientOp<'a> {
    Add {
        client: &'a ClientUri,
        user: &'a UserUri,
    },
    Remove {
        client: &'a ClientUri,
        user: &'a UserUri,
    },
}

impl<'a> ClientOp<'a> {
    fn user(&self) -> &'a UserUri {
        match self {
            ClientOp::Add { user, .. } | ClientOp::Remove { user, .. } => user,
        }
    }
}

struct Item<'a> {
    effect: &'a ProposalEffect,
    actor: Actor,
    /// The changes of this proposal's participant-list update on its own.
    list: Option<ParticipantListChanges>,
    client_op: Option<ClientOp<'a>>,
}

impl Item<'_> {
    fn reference(&self) -> ProposalRef {
        self.effect.reference.clone()
    }

    fn invalid(&self, reason: impl fmt::Display) -> Rejection {
        Rejection::invalid(
            vec![self.reference()],
            format!("{} is invalid: {reason}", self.effect.describe()),
        )
    }

    fn deny(&self, err: AuthzError) -> Rejection {
        Rejection::not_allowed(format!("{} is not allowed: {err}", self.effect.describe()))
    }
}

/// The result of applying a set of proposals to the committed state.
struct Outcome {
    /// Same epoch and pending as the input; everything else updated.
    state: RoomState,
    changes: ParticipantListChanges,
}

fn resolve_actor(state: &RoomState, effect: &ProposalEffect) -> Result<Actor, Rejection> {
    match &effect.sender {
        Sender::Member(client) => {
            let member = state.member(client).ok_or_else(|| {
                Rejection::not_allowed(format!(
                    "{}: {client} is not a member of the room's group",
                    effect.describe()
                ))
            })?;
            Ok(Actor::user(
                member.user.clone(),
                state.participants.role_of(&member.user),
            ))
        }
        Sender::NewMember { user, claims, .. } => {
            Ok(Actor::user(user.clone(), state.participants.role_of(user))
                .with_claims(claims.clone()))
        }
        Sender::Server(provider) => Ok(Actor::server(provider.clone())),
    }
}

/// Checks a set of proposals that one commit would carry (cached ones included) and computes
/// the state they produce.
fn evaluate(state: &RoomState, effects: &[&ProposalEffect]) -> Result<Outcome, Rejection> {
    let mut items = Vec::with_capacity(effects.len());
    for effect in effects {
        items.push(Item {
            effect,
            actor: resolve_actor(state, effect)?,
            list: None,
            client_op: None,
        });
    }

    check_each(state, &mut items)?;
    let (participants, changes) = check_composition(state, &items)?;

    // The resulting state.
    let mut after = state.clone();
    after.participants = participants;
    let removed: HashSet<&ClientUri> = items
        .iter()
        .filter_map(|i| match i.client_op {
            Some(ClientOp::Remove { client, .. }) => Some(client),
            _ => None,
        })
        .collect();
    after.members.retain(|m| !removed.contains(&m.client));
    for item in &items {
        if let Some(ClientOp::Add { client, user }) = item.client_op {
            after
                .members
                .push(Member::new(client.clone(), user.clone()));
        }
        match &item.effect.change {
            Change::Roles(roles) => after.roles = roles.clone(),
            Change::PreAuth(preauth) => after.preauth = preauth.clone(),
            Change::BasePolicy(policy) => after.policy = policy.clone(),
            Change::Metadata(metadata) => after.metadata = metadata.clone(),
            _ => {}
        }
    }

    check_membership(&items, &changes, &after)?;
    authorize(state, &items, &changes)?;
    check_constraints(state, &after).map_err(|err| {
        Rejection::not_allowed(format!("the change would break the room's policy: {err}"))
    })?;
    Ok(Outcome {
        state: after,
        changes,
    })
}

/// Each proposal on its own: wire rules, list indices, clients that exist.
fn check_each<'a>(state: &'a RoomState, items: &mut [Item<'a>]) -> Result<(), Rejection> {
    let mut added: HashMap<&ClientUri, ProposalRef> = HashMap::new();
    let mut removed: HashMap<&ClientUri, ProposalRef> = HashMap::new();
    for item in items.iter_mut() {
        let effect = item.effect;
        match &effect.change {
            Change::ParticipantList(update) => {
                update.check().map_err(|r| item.invalid(r))?;
                let (_, changes) = state
                    .participants
                    .apply(update)
                    .map_err(|err| item.invalid(err))?;
                item.list = Some(changes);
            }
            Change::Roles(roles) => roles.check().map_err(|r| item.invalid(r))?,
            Change::PreAuth(preauth) => preauth.check().map_err(|r| item.invalid(r))?,
            Change::BasePolicy(policy) => policy.check().map_err(|r| item.invalid(r))?,
            Change::Metadata(metadata) => {
                metadata.check().map_err(|r| item.invalid(r))?;
                if metadata.room_uri != state.metadata.room_uri {
                    return Err(item.invalid(format!(
                        "room_uri must stay `{}`",
                        String::from_utf8_lossy(state.metadata.room_uri.uri.as_slice())
                    )));
                }
            }
            Change::AddClient { client, user } => {
                item.client_op = Some(ClientOp::Add { client, user });
            }
            Change::ExternalInit => match &effect.sender {
                Sender::NewMember { client, user, .. } => {
                    item.client_op = Some(ClientOp::Add { client, user });
                }
                _ => {
                    return Err(
                        item.invalid("ExternalInit can only come from a client joining the group")
                    );
                }
            },
            Change::RemoveClient { client } => {
                let member = state.member(client).ok_or_else(|| {
                    item.invalid(format!(
                        "{client} is not a member of the room's group, so it cannot be removed"
                    ))
                })?;
                item.client_op = Some(ClientOp::Remove {
                    client: &member.client,
                    user: &member.user,
                });
            }
            Change::SelfRemove => {
                let member = match &effect.sender {
                    Sender::Member(client) => state.member(client),
                    _ => None,
                }
                .ok_or_else(|| item.invalid("only a member of the group can remove itself"))?;
                item.client_op = Some(ClientOp::Remove {
                    client: &member.client,
                    user: &member.user,
                });
            }
            Change::LeafUpdate => {
                if !matches!(effect.sender, Sender::Member(_)) {
                    return Err(item.invalid("only a member of the group can update its leaf"));
                }
            }
        }
        match item.client_op {
            Some(ClientOp::Add { client, .. }) => {
                if state.is_member(client) {
                    return Err(
                        item.invalid(format!("{client} is already a member of the room's group"))
                    );
                }
                if let Some(first) = added.insert(client, item.reference()) {
                    return Err(Rejection::invalid(
                        vec![first, item.reference()],
                        format!("{client} is added twice in one commit"),
                    ));
                }
            }
            Some(ClientOp::Remove { client, .. }) => {
                if let Some(first) = removed.insert(client, item.reference()) {
                    return Err(Rejection::invalid(
                        vec![first, item.reference()],
                        format!("{client} is removed twice in one commit"),
                    ));
                }
            }
            None => {}
        }
    }
    Ok(())
}

/// The commit's composition; returns the merged participant list and its changes.
fn check_composition(
    state: &RoomState,
    items: &[Item<'_>],
) -> Result<(crate::room::state::ParticipantList, ParticipantListChanges), Rejection> {
    let of_kind = |pred: fn(&Change) -> bool| -> Vec<&Item<'_>> {
        items.iter().filter(|i| pred(&i.effect.change)).collect()
    };
    let roles = of_kind(|c| matches!(c, Change::Roles(_)));
    let preauth = of_kind(|c| matches!(c, Change::PreAuth(_)));
    let metadata = of_kind(|c| matches!(c, Change::Metadata(_)));
    let policy = of_kind(|c| matches!(c, Change::BasePolicy(_)));
    for (kind, group) in [
        ("room-metadata update", &metadata),
        ("roles update", &roles),
        ("preauthorization-list update", &preauth),
        ("base-room-policy update", &policy),
    ] {
        if group.len() > 1 {
            return Err(Rejection::invalid(
                item_refs(group),
                format!(
                    "a commit may carry at most one {kind}, this one carries {}",
                    group.len()
                ),
            ));
        }
    }

    let list_items: Vec<&Item<'_>> = items
        .iter()
        .filter(|i| i.list.as_ref().is_some_and(|c| !c.is_empty()))
        .collect();
    if !roles.is_empty() && !list_items.is_empty() {
        let mut r = item_refs(&roles);
        r.extend(item_refs(&list_items));
        return Err(Rejection::invalid(
            r,
            "a roles update cannot be committed together with participant-list changes",
        ));
    }
    let growing: Vec<&Item<'_>> = list_items
        .iter()
        .copied()
        .filter(|i| {
            i.list
                .as_ref()
                .is_some_and(|c| !c.added.is_empty() || !c.role_changes.is_empty())
        })
        .collect();
    if !preauth.is_empty() && !growing.is_empty() {
        let mut r = item_refs(&preauth);
        r.extend(item_refs(&growing));
        return Err(Rejection::invalid(
            r,
            "a preauthorization-list update cannot be committed together with participant-list additions or role changes (only removals)",
        ));
    }

    // One participant-list operation per user.
    let mut touched_by: HashMap<&UserUri, &Item<'_>> = HashMap::new();
    for item in &list_items {
        let changes = item.list.as_ref().expect("list items have changes");
        for user in changes.touched_users() {
            if let Some(first) = touched_by.insert(user, item) {
                return Err(Rejection::invalid(
                    vec![first.reference(), item.reference()],
                    format!(
                        "{user} is changed by two participant-list updates ({} and {}): a commit may add, remove or change the role of a user only once",
                        first.effect.reference, item.effect.reference
                    ),
                ));
            }
        }
    }
    let updates: Vec<_> = list_items
        .iter()
        .filter_map(|i| match &i.effect.change {
            Change::ParticipantList(u) => Some(u),
            _ => None,
        })
        .collect();
    let (participants, changes) = state.participants.apply_all(&updates).map_err(|err| {
        Rejection::invalid(
            item_refs(&list_items),
            format!("the participant-list updates cannot be applied together: {err}"),
        )
    })?;

    // A role change (other than a ban, which comes with the removal of the clients) is the
    // user's one operation: its clients may not be added or removed in the same commit.
    for change in changes.role_changes.iter().filter(|c| c.to != BANNED_ROLE) {
        if let Some(op_item) = items
            .iter()
            .find(|i| i.client_op.is_some_and(|op| op.user() == &change.user))
        {
            let list_item = touched_by[&change.user];
            return Err(Rejection::invalid(
                vec![list_item.reference(), op_item.reference()],
                format!(
                    "{} changes the role of {} from {} to {}, and {} touches its clients in the same commit: a commit may do only one operation per user",
                    list_item.effect.describe(),
                    change.user,
                    change.from,
                    change.to,
                    op_item.effect.describe()
                ),
            ));
        }
    }

    // Roles given must be defined.
    for (user, role) in changes
        .added
        .iter()
        .map(|p| (&p.user, p.role))
        .chain(changes.role_changes.iter().map(|c| (&c.user, c.to)))
    {
        if state.roles.role(role).is_none() {
            let item = touched_by[user];
            return Err(item.invalid(format!(
                "it gives {user} role {role}, which the room's roles list does not define"
            )));
        }
    }
    if let Some(item) = roles.first()
        && let Change::Roles(new_roles) = &item.effect.change
        && let Some(p) = participants
            .iter()
            .find(|p| new_roles.role(p.role).is_none())
    {
        return Err(item.invalid(format!("it drops role {}, which {} holds", p.role, p.user)));
    }
    Ok((participants, changes))
}

/// Join order and removal completeness on the resulting state.
fn check_membership(
    items: &[Item<'_>],
    changes: &ParticipantListChanges,
    after: &RoomState,
) -> Result<(), Rejection> {
    for item in items {
        if let Some(ClientOp::Add { client, user }) = item.client_op {
            match after.participants.role_of(user) {
                NO_ROLE => {
                    return Err(Rejection::invalid(
                        vec![item.reference()],
                        format!(
                            "{user} is not a participant and is not added in this commit, so its client {client} cannot be added ({})",
                            item.effect.describe()
                        ),
                    ));
                }
                BANNED_ROLE => {
                    return Err(Rejection::invalid(
                        vec![item.reference()],
                        format!(
                            "{user} is banned, so its client {client} cannot be added ({})",
                            item.effect.describe()
                        ),
                    ));
                }
                _ => {}
            }
        }
    }
    for user in changes.exiting() {
        let left: Vec<&ClientUri> = after.active_clients(user);
        if !left.is_empty() {
            let what = if changes.is_removed(user) {
                "is removed from the participant list"
            } else {
                "is banned"
            };
            let culprit = items
                .iter()
                .find(|i| i.list.as_ref().is_some_and(|c| c.touches(user)))
                .map(|i| i.reference());
            return Err(Rejection::invalid(
                culprit.into_iter().collect(),
                format!(
                    "{user} {what}, but its client(s) {} would stay in the group: the same commit must remove all of the user's clients",
                    list(left.iter())
                ),
            ));
        }
    }
    Ok(())
}

/// Every proposal authorized by its own sender.
fn authorize(
    state: &RoomState,
    items: &[Item<'_>],
    changes: &ParticipantListChanges,
) -> Result<(), Rejection> {
    let policy = Policy::of(state);
    let exiting: HashSet<UserUri> = state.exiting_users().into_iter().collect();
    let blocked = |user: &UserUri| {
        matches!(state.participants.role_of(user), NO_ROLE | BANNED_ROLE) || exiting.contains(user)
    };
    let adder = |user: &UserUri| {
        items.iter().find(|i| {
            i.list
                .as_ref()
                .is_some_and(|c| c.added_role(user).is_some())
        })
    };
    for item in items {
        let actor = &item.actor;
        let result = match &item.effect.change {
            Change::ParticipantList(_) => {
                let list = item.list.as_ref().expect("checked list update");
                list.added
                    .iter()
                    .map(|p| {
                        if actor.is(&p.user) {
                            policy.join(actor, p.role)
                        } else {
                            policy.add_participant(actor, &p.user, p.role)
                        }
                    })
                    .chain(
                        list.removed
                            .iter()
                            .map(|p| policy.remove_participant(actor, &p.user, p.role)),
                    )
                    .chain(
                        list.role_changes
                            .iter()
                            .map(|c| policy.change_user_role(actor, &c.user, c.from, c.to)),
                    )
                    .collect::<Result<(), AuthzError>>()
            }
            Change::AddClient { .. } | Change::ExternalInit => {
                let Some(ClientOp::Add { user, .. }) = item.client_op else {
                    unreachable!("adds have a client op")
                };
                let added_by_actor = adder(user).is_some_and(|a| a.actor.id == actor.id);
                if actor.is(user) && state.participants.role_of(user) != NO_ROLE {
                    policy.add_own_client(actor)
                } else if added_by_actor {
                    // The (self-)addition to the list, authorized on its own, covers the
                    // user's clients.
                    Ok(())
                } else {
                    Err(AuthzError::ClientAddNotAuthorized {
                        actor: actor.id.clone(),
                        user: user.clone(),
                    })
                }
            }
            Change::RemoveClient { .. } | Change::SelfRemove => {
                let Some(ClientOp::Remove { user, .. }) = item.client_op else {
                    unreachable!("removals have a client op")
                };
                if blocked(user) || changes.exiting().any(|u| u == user) {
                    // A blocked user's clients must go, and a removal or ban (authorized on
                    // its own) needs all of the user's clients removed.
                    Ok(())
                } else {
                    policy.kick(actor, user)
                }
            }
            Change::Roles(_) => policy.change_role_definitions(actor),
            Change::PreAuth(_) => policy.change_preauth(actor),
            Change::BasePolicy(new) => policy.change_base_policy(actor, new),
            Change::Metadata(new) => policy.change_metadata(actor, &state.metadata, new),
            Change::LeafUpdate => Ok(()),
        };
        result.map_err(|err| item.deny(err))?;
    }
    Ok(())
}

fn refs(effects: &[&ProposalEffect]) -> Vec<ProposalRef> {
    effects.iter().map(|p| p.reference.clone()).collect()
}

fn item_refs(items: &[&Item<'_>]) -> Vec<ProposalRef> {
    items.iter().map(|i| i.reference()).collect()
}

fn list<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::capability::Capability;
    use crate::room::state::default_roles;
    use crate::room::wire::{
        BaseRoomPolicy, Claim, ClaimId, ParticipantListUpdate, PreAuthData, PreAuthRoleEntry,
        RichDescription, TlsBool, UserIndexRolePair, UserRolePair, Utf8String,
    };

    fn user(name: &str) -> UserUri {
        format!("mimi://a.example/u/{name}").parse().unwrap()
    }

    fn client(name: &str, device: &str) -> ClientUri {
        format!("mimi://a.example/d/{name}/{device}")
            .parse()
            .unwrap()
    }

    fn from(name: &str, device: &str) -> Sender {
        Sender::Member(client(name, device))
    }

    fn r(n: u8) -> ProposalRef {
        ProposalRef(vec![0xa0, n])
    }

    /// Epoch 5. alice: super_admin (4), alice/phone. bob: ordinary_user (2), bob/phone and
    /// bob/laptop. carol: group_admin (3), carol/phone.
    fn room() -> RoomState {
        let mut s = RoomState::new_room(
            "mimi://a.example/r/clubhouse".parse().unwrap(),
            Member::new(client("alice", "phone"), user("alice")),
            4,
            default_roles(),
            BaseRoomPolicy::default(),
        );
        s.epoch = 5;
        s.push_participant(user("bob"), 2).unwrap();
        s.push_participant(user("carol"), 3).unwrap();
        s.push_member(client("bob", "phone"), user("bob")).unwrap();
        s.push_member(client("bob", "laptop"), user("bob")).unwrap();
        s.push_member(client("carol", "phone"), user("carol"))
            .unwrap();
        s
    }

    const BOB: u32 = 1;
    const CAROL: u32 = 2;

    fn list(changed: &[(u32, u32)], removed: &[u32], added: &[(&str, u32)]) -> Change {
        Change::ParticipantList(ParticipantListUpdate {
            changed_role_participants: changed
                .iter()
                .map(|&(user_index, role_index)| UserIndexRolePair {
                    user_index,
                    role_index,
                })
                .collect(),
            removed_indices: removed.to_vec(),
            added_participants: added
                .iter()
                .map(|(n, role)| UserRolePair::new(user(n).as_str(), *role))
                .collect(),
        })
    }

    fn add(name: &str, device: &str) -> Change {
        Change::AddClient {
            client: client(name, device),
            user: user(name),
        }
    }

    fn remove(name: &str, device: &str) -> Change {
        Change::RemoveClient {
            client: client(name, device),
        }
    }

    /// A commit by `sender` whose proposals are all by value.
    fn commit(state: &RoomState, sender: Sender, changes: Vec<(u8, Change)>) -> Handshake {
        let proposals = changes
            .into_iter()
            .map(|(n, c)| ProposalEffect::new(r(n), sender.clone(), c))
            .collect();
        Handshake::commit(state.epoch, sender, proposals)
    }

    fn propose(state: &RoomState, sender: Sender, changes: Vec<(u8, Change)>) -> Handshake {
        let proposals = changes
            .into_iter()
            .map(|(n, c)| ProposalEffect::new(r(n), sender.clone(), c))
            .collect();
        Handshake::proposals(state.epoch, sender, proposals)
    }

    #[track_caller]
    fn invalid<T: fmt::Debug>(result: Result<T, Rejection>, expected: &[u8], says: &str) -> String {
        let rejection = result.expect_err("the handshake should be refused");
        assert_eq!(
            rejection.code,
            RejectCode::InvalidProposal {
                proposals: expected.iter().map(|n| r(*n)).collect()
            },
            "{}",
            rejection.reason
        );
        assert!(
            rejection.reason.contains(says),
            "reason {:?} should contain {says:?}",
            rejection.reason
        );
        rejection.reason
    }

    #[track_caller]
    fn not_allowed<T: fmt::Debug>(result: Result<T, Rejection>, says: &str) -> String {
        let rejection = result.expect_err("the handshake should be refused");
        assert_eq!(
            rejection.code,
            RejectCode::NotAllowed,
            "{}",
            rejection.reason
        );
        assert!(
            rejection.reason.contains(says),
            "reason {:?} should contain {says:?}",
            rejection.reason
        );
        rejection.reason
    }

    fn claim(id: &str, value: &str) -> Claim {
        Claim {
            claim_id: ClaimId {
                credential_type: 1,
                id: id.as_bytes().to_vec().into(),
            },
            claim_value: value.as_bytes().to_vec().into(),
        }
    }

    /// Users with the claim org=a.example are preauthorized to join as ordinary users.
    fn preauthorized_room() -> RoomState {
        let mut s = room();
        s.roles.roles[2]
            .role_capabilities
            .push(Capability::JoinIfPreauthorized.code());
        s.preauth = PreAuthData {
            preauthorized_entries: vec![PreAuthRoleEntry {
                claimset: vec![claim("org", "a.example")],
                target_role: s.roles.role(2).unwrap().clone(),
            }],
        };
        s
    }

    fn joiner(name: &str, device: &str, claims: Vec<Claim>) -> Sender {
        Sender::NewMember {
            client: client(name, device),
            user: user(name),
            claims,
        }
    }

    /// bob/phone asks to leave: SelfRemove, Remove of bob/laptop, and bob off the list.
    fn bob_leaves(state: &RoomState) -> Handshake {
        propose(
            state,
            from("bob", "phone"),
            vec![
                (1, Change::SelfRemove),
                (2, remove("bob", "laptop")),
                (3, list(&[], &[BOB], &[])),
            ],
        )
    }

    // --- accept paths -------------------------------------------------------------------

    #[test]
    fn adding_a_participant_and_its_client_in_one_commit_is_accepted() {
        let s = room();
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![
                (1, list(&[], &[], &[("dave", 2)])),
                (2, add("dave", "phone")),
            ],
        );
        let accepted = validate_handshake(&s, &hs).unwrap();
        assert_eq!(accepted.state.epoch, 6);
        assert_eq!(accepted.state.participants.role_of(&user("dave")), 2);
        assert_eq!(accepted.state.participants.len(), 4);
        assert_eq!(
            accepted.state.active_clients(&user("dave")),
            vec![&client("dave", "phone")]
        );
        assert_eq!(accepted.state.members.len(), 5);
        assert_eq!(
            accepted.changes.added,
            vec![crate::room::state::Participant::new(user("dave"), 2)]
        );
        assert!(accepted.changes.removed.is_empty());
        assert!(accepted.state.pending.is_empty());
        assert_eq!(accepted.state.check_invariants(), Ok(()));
    }

    #[test]
    fn an_accepted_commit_increments_the_epoch_and_replaces_metadata() {
        let s = room();
        let mut metadata = s.metadata.clone();
        metadata.room_name = Utf8String::new("The Clubhouse");
        let hs = commit(
            &s,
            from("bob", "phone"),
            vec![(1, Change::Metadata(metadata.clone()))],
        );
        let accepted = validate_handshake(&s, &hs).unwrap();
        assert_eq!(accepted.state.epoch, s.epoch + 1);
        assert_eq!(accepted.state.metadata, metadata);
        assert!(accepted.changes.is_empty());
        // An empty commit (a path update) moves the epoch too.
        let hs = commit(&s, from("carol", "phone"), vec![]);
        assert_eq!(validate_handshake(&s, &hs).unwrap().state.epoch, 6);
    }

    #[test]
    fn ban_with_all_clients_removed_is_accepted() {
        let s = room();
        let hs = commit(
            &s,
            from("carol", "phone"),
            vec![
                (1, list(&[(BOB, 1)], &[], &[])),
                (2, remove("bob", "phone")),
                (3, remove("bob", "laptop")),
            ],
        );
        let accepted = validate_handshake(&s, &hs).unwrap();
        assert_eq!(
            accepted.state.participants.role_of(&user("bob")),
            BANNED_ROLE
        );
        assert!(accepted.state.active_clients(&user("bob")).is_empty());
        assert_eq!(accepted.state.epoch, 6);
        assert_eq!(
            accepted.changes.role_changes,
            vec![crate::room::state::RoleChange {
                user: user("bob"),
                from: 2,
                to: 1
            }]
        );
        assert_eq!(
            accepted.state.block_reason(&user("bob")),
            Some(BlockReason::Banned)
        );
    }

    #[test]
    fn removal_with_all_clients_is_accepted() {
        let s = room();
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![
                (1, list(&[], &[BOB], &[])),
                (2, remove("bob", "phone")),
                (3, remove("bob", "laptop")),
            ],
        );
        let accepted = validate_handshake(&s, &hs).unwrap();
        assert!(!accepted.state.participants.contains(&user("bob")));
        assert_eq!(accepted.state.members.len(), 2);
        assert_eq!(accepted.changes.removed.len(), 1);
    }

    // --- wrong epoch --------------------------------------------------------------------

    #[test]
    fn wrong_epoch_is_rejected_with_the_current_epoch() {
        let s = room();
        let mut hs = commit(&s, from("alice", "phone"), vec![]);
        hs.epoch = 4;
        let rejection = validate_handshake(&s, &hs).unwrap_err();
        assert_eq!(rejection.code, RejectCode::WrongEpoch { current_epoch: 5 });
        assert_eq!(rejection.code.code_point(), 1);
        assert!(rejection.reason.contains("epoch 4"), "{}", rejection.reason);
        let mut hs = bob_leaves(&s);
        hs.epoch = 6;
        assert_eq!(
            validate_handshake(&s, &hs).unwrap_err().code,
            RejectCode::WrongEpoch { current_epoch: 5 }
        );
    }

    // --- join order ---------------------------------------------------------------------

    #[test]
    fn join_order_add_of_a_non_participants_client_is_rejected() {
        let s = room();
        let hs = commit(&s, from("alice", "phone"), vec![(2, add("dave", "phone"))]);
        let reason = invalid(
            validate_handshake(&s, &hs),
            &[2],
            "mimi://a.example/u/dave is not a participant and is not added in this commit, so its client mimi://a.example/d/dave/phone cannot be added",
        );
        assert!(reason.contains("a002"), "{reason}");
        // Adding dave does not let erin's client in.
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![
                (1, list(&[], &[], &[("dave", 2)])),
                (2, add("dave", "phone")),
                (3, add("erin", "phone")),
            ],
        );
        invalid(
            validate_handshake(&s, &hs),
            &[3],
            "erin is not a participant",
        );
    }

    #[test]
    fn adding_a_client_of_another_listed_user_is_not_allowed() {
        let s = room();
        let hs = commit(&s, from("bob", "phone"), vec![(1, add("carol", "laptop"))]);
        not_allowed(
            validate_handshake(&s, &hs),
            "mimi://a.example/u/bob may not add clients of mimi://a.example/u/carol",
        );
        // carol herself may (canAddOwnClient).
        let hs = commit(
            &s,
            from("carol", "phone"),
            vec![(1, add("carol", "laptop"))],
        );
        assert!(validate_handshake(&s, &hs).is_ok());
    }

    // --- removal --------------------------------------------------------------------------

    #[test]
    fn removal_that_leaves_a_client_behind_is_rejected() {
        let s = room();
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![(1, list(&[], &[BOB], &[])), (2, remove("bob", "phone"))],
        );
        invalid(
            validate_handshake(&s, &hs),
            &[1],
            "mimi://a.example/u/bob is removed from the participant list, but its client(s) mimi://a.example/d/bob/laptop would stay in the group",
        );
    }

    #[test]
    fn removing_a_client_that_is_not_a_member_is_rejected() {
        let s = room();
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![(4, remove("zoe", "phone"))],
        );
        invalid(
            validate_handshake(&s, &hs),
            &[4],
            "mimi://a.example/d/zoe/phone is not a member of the room's group",
        );
    }

    #[test]
    fn ban_that_leaves_clients_is_rejected() {
        let s = room();
        let hs = commit(
            &s,
            from("carol", "phone"),
            vec![
                (1, list(&[(BOB, 1)], &[], &[])),
                (2, remove("bob", "phone")),
            ],
        );
        invalid(
            validate_handshake(&s, &hs),
            &[1],
            "mimi://a.example/u/bob is banned, but its client(s) mimi://a.example/d/bob/laptop would stay",
        );
    }

    #[test]
    fn a_commit_removing_its_own_committer_is_rejected() {
        let s = room();
        let hs = commit(&s, from("bob", "phone"), vec![(1, remove("bob", "phone"))]);
        invalid(
            validate_handshake(&s, &hs),
            &[1],
            "a client cannot commit its own removal",
        );
    }

    // --- self-leave -----------------------------------------------------------------------

    #[test]
    fn self_leave_proposals_are_cached_and_the_leaver_is_exiting() {
        let s = room();
        let accepted = validate_handshake(&s, &bob_leaves(&s)).unwrap();
        let cached = &accepted.state;
        assert_eq!(cached.epoch, 5, "proposals do not move the epoch");
        assert_eq!(
            cached
                .pending
                .iter()
                .map(|p| p.reference.clone())
                .collect::<Vec<_>>(),
            vec![r(1), r(2), r(3)]
        );
        // The committed list is unchanged, but bob is exiting.
        assert_eq!(cached.participants, s.participants);
        assert_eq!(
            cached.block_reason(&user("bob")),
            Some(BlockReason::Exiting)
        );
        assert_eq!(
            accepted.changes.removed,
            vec![crate::room::state::Participant::new(user("bob"), 2)]
        );
        // Bob's clients are blocked from everything but their removal.
        not_allowed(
            check_application_message(cached, &client("bob", "laptop")),
            "is exiting the room",
        );
        not_allowed(
            validate_handshake(cached, &commit(cached, from("bob", "laptop"), vec![])),
            "may not commit",
        );
        let mut metadata = cached.metadata.clone();
        metadata.room_mood = Utf8String::new("gone");
        not_allowed(
            validate_handshake(
                cached,
                &propose(
                    cached,
                    from("bob", "laptop"),
                    vec![(7, Change::Metadata(metadata))],
                ),
            ),
            "may only propose the removal of their own clients",
        );
        // Others are not blocked.
        assert_eq!(
            check_application_message(cached, &client("carol", "phone")),
            Ok(())
        );
    }

    #[test]
    fn a_leave_that_keeps_a_client_is_rejected() {
        let s = room();
        let hs = propose(
            &s,
            from("bob", "phone"),
            vec![(1, Change::SelfRemove), (3, list(&[], &[BOB], &[]))],
        );
        invalid(validate_handshake(&s, &hs), &[3], "bob/laptop would stay");
    }

    #[test]
    fn next_commit_must_include_the_cached_proposals() {
        let s = room();
        let cached = validate_handshake(&s, &bob_leaves(&s)).unwrap().state;
        // A commit that ignores them is refused.
        let hs = commit(&cached, from("alice", "phone"), vec![]);
        not_allowed(
            validate_handshake(&cached, &hs),
            "leaves out 3 proposal(s) the hub accepted and cached",
        );
        // Including only some of them is refused too.
        let mut partial = cached.pending.clone();
        partial.pop();
        let hs = Handshake::commit(cached.epoch, from("alice", "phone"), partial);
        not_allowed(validate_handshake(&cached, &hs), "leaves out 1 proposal(s)");
        // Including them all removes bob and his clients.
        let mut proposals = cached.pending.clone();
        proposals.push(ProposalEffect::new(
            r(9),
            from("alice", "phone"),
            Change::LeafUpdate,
        ));
        let hs = Handshake::commit(cached.epoch, from("alice", "phone"), proposals);
        let accepted = validate_handshake(&cached, &hs).unwrap();
        assert_eq!(accepted.state.epoch, 6);
        assert!(accepted.state.pending.is_empty());
        assert!(!accepted.state.participants.contains(&user("bob")));
        assert!(accepted.state.active_clients(&user("bob")).is_empty());
        assert!(accepted.dropped_pending.is_empty());
    }

    #[test]
    fn a_proposal_by_reference_must_have_been_accepted_by_the_hub() {
        let s = room();
        let stray = ProposalEffect::new(r(1), from("bob", "phone"), Change::LeafUpdate);
        let hs = Handshake::commit(s.epoch, from("alice", "phone"), vec![stray]);
        invalid(
            validate_handshake(&s, &hs),
            &[1],
            "the hub never accepted it",
        );
    }

    #[test]
    fn cached_proposals_conflicting_with_new_ones_are_rejected() {
        let s = room();
        let cached = validate_handshake(&s, &bob_leaves(&s)).unwrap().state;
        // carol now tries to promote the exiting bob: one operation per user.
        let hs = propose(
            &cached,
            from("carol", "phone"),
            vec![(5, list(&[(BOB, 3)], &[], &[]))],
        );
        invalid(
            validate_handshake(&cached, &hs),
            &[3, 5],
            "changed by two participant-list updates",
        );
    }

    #[test]
    fn retried_proposals_are_accepted_once() {
        let s = room();
        let first = validate_handshake(&s, &bob_leaves(&s)).unwrap();
        let again = validate_handshake(&first.state, &bob_leaves(&s)).unwrap();
        assert_eq!(again.state, first.state);
        assert!(again.changes.is_empty());
        // The same reference with other content is refused.
        let hs = propose(&s, from("bob", "phone"), vec![(1, Change::LeafUpdate)]);
        invalid(
            validate_handshake(&first.state, &hs),
            &[1],
            "reuses the reference",
        );
    }

    #[test]
    fn an_external_commit_must_carry_a_leaving_users_cached_proposals() {
        let s = preauthorized_room();
        let cached = validate_handshake(&s, &bob_leaves(&s)).unwrap().state;
        let dave = joiner("dave", "phone", vec![claim("org", "a.example")]);
        let own = vec![
            (10, Change::ExternalInit),
            (11, list(&[], &[], &[("dave", 2)])),
        ];
        // leaving bob's removals out would cancel his leave: refused
        let without = commit(&cached, dave.clone(), own.clone());
        not_allowed(
            validate_handshake(&cached, &without),
            "leaves out 3 proposal(s)",
        );
        // with them, the joiner's commit completes bob's leave
        let mut with = commit(&cached, dave, own);
        if let HandshakeBody::Commit { proposals } = &mut with.body {
            proposals.extend(cached.pending.iter().cloned());
        }
        let accepted = validate_handshake(&cached, &with).unwrap();
        assert!(accepted.dropped_pending.is_empty());
        assert!(accepted.state.pending.is_empty());
        assert_eq!(accepted.state.participants.role_of(&user("dave")), 2);
        assert!(!accepted.state.participants.contains(&user("bob")));
        assert!(accepted.state.active_clients(&user("bob")).is_empty());
    }

    #[test]
    fn an_external_commit_drops_the_hubs_cached_proposals() {
        let mut s = preauthorized_room();
        s.push_participant(user("mallory"), BANNED_ROLE).unwrap();
        s.push_member(client("mallory", "phone"), user("mallory"))
            .unwrap();
        let hub = Sender::Server("a.example".parse().unwrap());
        let cached =
            validate_handshake(&s, &propose(&s, hub, vec![(1, remove("mallory", "phone"))]))
                .unwrap()
                .state;
        let dave = joiner("dave", "phone", vec![claim("org", "a.example")]);
        let hs = commit(
            &cached,
            dave,
            vec![
                (10, Change::ExternalInit),
                (11, list(&[], &[], &[("dave", 2)])),
            ],
        );
        let accepted = validate_handshake(&cached, &hs).unwrap();
        assert_eq!(
            accepted.dropped_pending, cached.pending,
            "the hub regenerates them"
        );
        assert_eq!(accepted.state.participants.role_of(&user("dave")), 2);
    }

    // --- blocked users and messages -------------------------------------------------------

    #[test]
    fn a_banned_users_message_is_not_allowed() {
        let mut s = room();
        // A state where mallory is banned but her client has not been removed yet.
        s.push_participant(user("mallory"), BANNED_ROLE).unwrap();
        s.push_member(client("mallory", "phone"), user("mallory"))
            .unwrap();
        not_allowed(
            check_application_message(&s, &client("mallory", "phone")),
            "mimi://a.example/d/mallory/phone may not send messages: its user mimi://a.example/u/mallory is banned",
        );
        assert!(!may_receive_application_messages(
            &s,
            &client("mallory", "phone")
        ));
        // Her client may propose its own removal and nothing else.
        let own = propose(&s, from("mallory", "phone"), vec![(1, Change::SelfRemove)]);
        assert!(validate_handshake(&s, &own).is_ok());
        let other = propose(
            &s,
            from("mallory", "phone"),
            vec![(1, remove("bob", "phone"))],
        );
        not_allowed(validate_handshake(&s, &other), "is banned from the room");
        // A ban accepted as proposals blocks at once.
        let s = room();
        let ban = propose(
            &s,
            from("carol", "phone"),
            vec![
                (1, list(&[(BOB, 1)], &[], &[])),
                (2, remove("bob", "phone")),
                (3, remove("bob", "laptop")),
            ],
        );
        let cached = validate_handshake(&s, &ban).unwrap().state;
        not_allowed(
            check_application_message(&cached, &client("bob", "phone")),
            "exiting",
        );
    }

    #[test]
    fn a_message_needs_membership_and_the_send_capability() {
        let mut s = room();
        assert_eq!(
            check_application_message(&s, &client("bob", "phone")),
            Ok(())
        );
        assert!(may_receive_application_messages(
            &s,
            &client("bob", "phone")
        ));
        not_allowed(
            check_application_message(&s, &client("zoe", "phone")),
            "is not a member",
        );
        s.roles.roles[2]
            .role_capabilities
            .retain(|c| *c != Capability::SendMessage.code());
        not_allowed(
            check_application_message(&s, &client("bob", "phone")),
            "mimi://a.example/u/bob (role 2) does not have the capability canSendMessage",
        );
    }

    #[test]
    fn a_server_cannot_commit_and_can_only_remove_blocked_clients() {
        let mut s = room();
        let hub = Sender::Server("a.example".parse().unwrap());
        not_allowed(
            validate_handshake(&s, &commit(&s, hub.clone(), vec![])),
            "only clients commit",
        );
        not_allowed(
            validate_handshake(
                &s,
                &propose(&s, hub.clone(), vec![(1, list(&[], &[], &[("dave", 2)]))]),
            ),
            "server mimi://a.example (role 0) does not have the capability canAddParticipant",
        );
        not_allowed(
            validate_handshake(
                &s,
                &propose(&s, hub.clone(), vec![(1, remove("bob", "phone"))]),
            ),
            "canKick",
        );
        // zoe is not a participant but has a client (say, after a bad commit): it must go.
        s.push_member(client("zoe", "phone"), user("zoe")).unwrap();
        let accepted =
            validate_handshake(&s, &propose(&s, hub, vec![(1, remove("zoe", "phone"))])).unwrap();
        assert_eq!(accepted.state.pending.len(), 1);
    }

    // --- authorization --------------------------------------------------------------------

    #[test]
    fn a_missing_capability_is_not_allowed() {
        let s = room();
        // bob (ordinary_user) tries to ban carol.
        let hs = commit(
            &s,
            from("bob", "phone"),
            vec![
                (1, list(&[(CAROL, 1)], &[], &[])),
                (2, remove("carol", "phone")),
            ],
        );
        not_allowed(
            validate_handshake(&s, &hs),
            "mimi://a.example/u/bob (role 2) does not have the capability canBan",
        );
        // bob tries to change the room description.
        let mut metadata = s.metadata.clone();
        metadata.room_descriptions.push(RichDescription::default());
        let hs = commit(
            &s,
            from("bob", "phone"),
            vec![(1, Change::Metadata(metadata))],
        );
        not_allowed(validate_handshake(&s, &hs), "canChangeRoomDescription");
    }

    #[test]
    fn a_role_change_outside_the_arc_is_not_allowed() {
        let s = room();
        let hs = commit(
            &s,
            from("bob", "phone"),
            vec![(1, list(&[], &[], &[("dave", 3)]))],
        );
        not_allowed(
            validate_handshake(&s, &hs),
            "mimi://a.example/u/bob (role 2) may not move mimi://a.example/u/dave from role 0 to role 3",
        );
    }

    #[test]
    fn role_limit_max_participants_is_not_allowed() {
        let mut s = room();
        s.roles.roles[3].maximum_participants_constraint = Some(1);
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![(1, list(&[], &[], &[("dave", 3)]))],
        );
        not_allowed(
            validate_handshake(&s, &hs),
            "role 3 (group_admin) must have at most 1 participant(s), but this change would leave it with 2",
        );
    }

    #[test]
    fn role_limit_min_participants_is_not_allowed() {
        let s = room();
        // carol is the only group_admin, and group_admin needs at least one.
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![(1, list(&[], &[CAROL], &[])), (2, remove("carol", "phone"))],
        );
        not_allowed(
            validate_handshake(&s, &hs),
            "role 3 (group_admin) must have at least 1 participant(s)",
        );
    }

    #[test]
    fn role_limit_active_participants_is_not_allowed() {
        let mut s = room();
        s.roles.roles[2].maximum_active_participants_constraint = Some(1);
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![
                (1, list(&[], &[], &[("dave", 2)])),
                (2, add("dave", "phone")),
            ],
        );
        not_allowed(
            validate_handshake(&s, &hs),
            "must have at most 1 active participant(s), but this change would leave it with 2",
        );
        // Adding dave without a client keeps role 2 at one active participant.
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![(1, list(&[], &[], &[("dave", 2)]))],
        );
        assert!(validate_handshake(&s, &hs).is_ok());

        let mut s = room();
        s.roles.roles[2].minimum_active_participants_constraint = 1;
        let hs = commit(
            &s,
            from("carol", "phone"),
            vec![(1, remove("bob", "phone")), (2, remove("bob", "laptop"))],
        );
        not_allowed(
            validate_handshake(&s, &hs),
            "must have at least 1 active participant(s), but this change would leave it with 0",
        );
    }

    #[test]
    fn multi_device_false_refuses_a_second_client() {
        let mut s = room();
        s.policy.multi_device = TlsBool(false);
        s.members.retain(|m| m.client != client("bob", "laptop"));
        let hs = commit(&s, from("bob", "phone"), vec![(1, add("bob", "tablet"))]);
        not_allowed(
            validate_handshake(&s, &hs),
            "multi_device is false), but mimi://a.example/u/bob would have 2 clients",
        );
        // Under the default (multi_device true) the same commit is accepted.
        s.policy.multi_device = TlsBool(true);
        assert!(validate_handshake(&s, &hs).is_ok());
    }

    #[test]
    fn max_users_refuses_an_extra_participant() {
        let mut s = room();
        s.policy.max_users = Some(3);
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![(1, list(&[], &[], &[("dave", 2)]))],
        );
        not_allowed(
            validate_handshake(&s, &hs),
            "at most 3 non-banned participants (max_users), but this change would make 4",
        );
    }

    #[test]
    fn max_clients_refuses_an_extra_client() {
        let mut s = room();
        s.policy.max_clients = Some(4);
        let hs = commit(&s, from("bob", "phone"), vec![(1, add("bob", "tablet"))]);
        not_allowed(
            validate_handshake(&s, &hs),
            "(max_clients), but this change would make 5",
        );
    }

    #[test]
    fn fixed_membership_refuses_adds_and_leaves_but_not_dropping_clients() {
        let mut s = room();
        s.policy.fixed_membership = TlsBool(true);
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![(1, list(&[], &[], &[("dave", 2)]))],
        );
        not_allowed(validate_handshake(&s, &hs), "the room has fixed membership");
        not_allowed(
            validate_handshake(&s, &bob_leaves(&s)),
            "users cannot leave",
        );
        let drop_laptop = propose(&s, from("bob", "phone"), vec![(1, remove("bob", "laptop"))]);
        assert!(validate_handshake(&s, &drop_laptop).is_ok());
    }

    // --- composition ----------------------------------------------------------------------

    #[test]
    fn two_operations_on_one_user_are_rejected() {
        let s = room();
        // A role change and a removal of bob, in two list updates.
        let hs = commit(
            &s,
            from("carol", "phone"),
            vec![
                (1, list(&[(BOB, 3)], &[], &[])),
                (2, list(&[], &[BOB], &[])),
                (3, remove("bob", "phone")),
                (4, remove("bob", "laptop")),
            ],
        );
        invalid(
            validate_handshake(&s, &hs),
            &[1, 2],
            "mimi://a.example/u/bob is changed by two participant-list updates",
        );
        // The same in one update.
        let hs = commit(
            &s,
            from("carol", "phone"),
            vec![(1, list(&[(BOB, 3)], &[BOB], &[]))],
        );
        invalid(validate_handshake(&s, &hs), &[1], "is touched twice");
        // A role change and a kick of one of bob's clients.
        let hs = commit(
            &s,
            from("carol", "phone"),
            vec![
                (1, list(&[(BOB, 3)], &[], &[])),
                (2, remove("bob", "laptop")),
            ],
        );
        invalid(
            validate_handshake(&s, &hs),
            &[1, 2],
            "a commit may do only one operation per user",
        );
    }

    #[test]
    fn roles_change_together_with_a_list_change_is_rejected() {
        let s = room();
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![
                (1, Change::Roles(default_roles())),
                (2, list(&[], &[], &[("dave", 2)])),
            ],
        );
        invalid(
            validate_handshake(&s, &hs),
            &[1, 2],
            "a roles update cannot be committed together with participant-list changes",
        );
        // Alone, it is accepted (alice is super_admin).
        let mut roles = default_roles();
        roles.roles[2].role_description = b"a friend".to_vec().into();
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![(1, Change::Roles(roles.clone()))],
        );
        assert_eq!(validate_handshake(&s, &hs).unwrap().state.roles, roles);
        // But not by carol, who lacks canChangeRoleDefinitions.
        let hs = commit(&s, from("carol", "phone"), vec![(1, Change::Roles(roles))]);
        not_allowed(validate_handshake(&s, &hs), "canChangeRoleDefinitions");
    }

    #[test]
    fn a_roles_update_dropping_a_held_role_is_rejected() {
        let s = room();
        let mut roles = default_roles();
        roles.roles.retain(|r| r.role_index != 3);
        let hs = commit(&s, from("alice", "phone"), vec![(1, Change::Roles(roles))]);
        invalid(validate_handshake(&s, &hs), &[1], "drops role 3");
    }

    #[test]
    fn preauth_change_goes_with_removals_only() {
        let s = room();
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![
                (1, Change::PreAuth(PreAuthData::default())),
                (2, list(&[], &[], &[("dave", 2)])),
            ],
        );
        invalid(
            validate_handshake(&s, &hs),
            &[1, 2],
            "a preauthorization-list update cannot be committed together with participant-list additions",
        );
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![
                (1, Change::PreAuth(PreAuthData::default())),
                (2, list(&[], &[BOB], &[])),
                (3, remove("bob", "phone")),
                (4, remove("bob", "laptop")),
            ],
        );
        assert!(validate_handshake(&s, &hs).is_ok());
    }

    #[test]
    fn two_metadata_updates_are_rejected() {
        let s = room();
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![
                (1, Change::Metadata(s.metadata.clone())),
                (2, Change::Metadata(s.metadata.clone())),
            ],
        );
        invalid(
            validate_handshake(&s, &hs),
            &[1, 2],
            "at most one room-metadata update, this one carries 2",
        );
    }

    #[test]
    fn an_invalid_by_value_list_update_is_named() {
        let s = room();
        let hs = commit(&s, from("alice", "phone"), vec![(7, list(&[], &[9], &[]))]);
        invalid(
            validate_handshake(&s, &hs),
            &[7],
            "removedIndices[0]: index 9 is out of range, the participant list has 3 entries",
        );
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![(8, list(&[], &[], &[("dave", 9)]))],
        );
        invalid(
            validate_handshake(&s, &hs),
            &[8],
            "role 9, which the room's roles list does not define",
        );
        let mut metadata = s.metadata.clone();
        metadata.room_avatar = crate::room::wire::Uri::new("http://insecure.example/a.png");
        let hs = commit(
            &s,
            from("alice", "phone"),
            vec![(6, Change::Metadata(metadata))],
        );
        invalid(validate_handshake(&s, &hs), &[6], "https");
    }

    // --- external joins -------------------------------------------------------------------

    #[test]
    fn external_join_via_preauth_is_accepted() {
        let s = preauthorized_room();
        let dave = joiner(
            "dave",
            "phone",
            vec![claim("team", "x"), claim("org", "a.example")],
        );
        let hs = commit(
            &s,
            dave,
            vec![
                (1, Change::ExternalInit),
                (2, list(&[], &[], &[("dave", 2)])),
            ],
        );
        let accepted = validate_handshake(&s, &hs).unwrap();
        assert_eq!(accepted.state.epoch, 6);
        assert_eq!(accepted.state.participants.role_of(&user("dave")), 2);
        assert!(accepted.state.is_member(&client("dave", "phone")));
    }

    #[test]
    fn external_join_without_a_matching_preauth_is_not_allowed() {
        let s = preauthorized_room();
        let erin = joiner("erin", "phone", vec![claim("org", "b.example")]);
        let hs = commit(
            &s,
            erin,
            vec![
                (1, Change::ExternalInit),
                (2, list(&[], &[], &[("erin", 2)])),
            ],
        );
        not_allowed(
            validate_handshake(&s, &hs),
            "no preauthorization entry matches",
        );
        // Joining without adding itself to the list breaks the join order.
        let erin = joiner("erin", "phone", vec![claim("org", "a.example")]);
        let hs = commit(&s, erin, vec![(1, Change::ExternalInit)]);
        invalid(
            validate_handshake(&s, &hs),
            &[1],
            "erin is not a participant",
        );
    }

    #[test]
    fn external_join_via_preauth_is_rejected_for_a_banned_user() {
        let mut s = preauthorized_room();
        s.push_participant(user("mallory"), BANNED_ROLE).unwrap();
        let mallory = joiner("mallory", "phone", vec![claim("org", "a.example")]);
        let hs = commit(
            &s,
            mallory.clone(),
            vec![
                (1, Change::ExternalInit),
                (2, list(&[], &[], &[("mallory", 2)])),
            ],
        );
        not_allowed(
            validate_handshake(&s, &hs),
            "mimi://a.example/d/mallory/phone may not join: its user mimi://a.example/u/mallory is banned",
        );
        let hs = commit(&s, mallory, vec![(1, Change::ExternalInit)]);
        not_allowed(validate_handshake(&s, &hs), "is banned");
    }

    #[test]
    fn external_join_of_a_listed_users_new_device_is_accepted() {
        let s = room();
        let tablet = joiner("bob", "tablet", vec![]);
        let hs = commit(&s, tablet, vec![(1, Change::ExternalInit)]);
        let accepted = validate_handshake(&s, &hs).unwrap();
        assert_eq!(accepted.state.active_clients(&user("bob")).len(), 3);
        // An external commit needs its ExternalInit.
        let hs = commit(&s, joiner("bob", "tablet", vec![]), vec![]);
        invalid(validate_handshake(&s, &hs), &[], "exactly one ExternalInit");
    }

    #[test]
    fn external_open_join_is_accepted_when_role_zero_allows_it() {
        let mut s = room();
        let erin = joiner("erin", "laptop", vec![]);
        let hs = commit(
            &s,
            erin,
            vec![
                (1, Change::ExternalInit),
                (2, list(&[], &[], &[("erin", 2)])),
            ],
        );
        not_allowed(
            validate_handshake(&s, &hs),
            "role 0 does not have canOpenJoin",
        );
        s.roles.roles[0]
            .role_capabilities
            .push(Capability::OpenJoin.code());
        s.roles.roles[0].authorized_role_changes = s.roles.roles[2].authorized_role_changes.clone();
        let accepted = validate_handshake(&s, &hs).unwrap();
        assert_eq!(accepted.state.participants.role_of(&user("erin")), 2);
        assert!(accepted.state.is_member(&client("erin", "laptop")));
    }

    #[test]
    fn unban_does_not_authorize_adding_clients() {
        let mut s = room();
        s.push_participant(user("mallory"), BANNED_ROLE).unwrap();
        let mallory = 3;
        // Unbanning and re-adding a client in one commit is two operations on mallory.
        let hs = commit(
            &s,
            from("carol", "phone"),
            vec![
                (1, list(&[(mallory, 2)], &[], &[])),
                (2, add("mallory", "phone")),
            ],
        );
        invalid(
            validate_handshake(&s, &hs),
            &[1, 2],
            "only one operation per user",
        );
        // Unbanning alone is fine, and afterwards carol still may not add mallory's clients.
        let hs = commit(
            &s,
            from("carol", "phone"),
            vec![(1, list(&[(mallory, 2)], &[], &[]))],
        );
        let unbanned = validate_handshake(&s, &hs).unwrap().state;
        assert_eq!(unbanned.participants.role_of(&user("mallory")), 2);
        let hs = commit(
            &unbanned,
            from("carol", "phone"),
            vec![(1, add("mallory", "phone"))],
        );
        not_allowed(
            validate_handshake(&unbanned, &hs),
            "may not add clients of mimi://a.example/u/mallory",
        );
    }

    #[test]
    fn reject_codes_map_to_update_response_codes() {
        assert_eq!(RejectCode::WrongEpoch { current_epoch: 3 }.code_point(), 1);
        assert_eq!(RejectCode::NotAllowed.code_point(), 2);
        assert_eq!(
            RejectCode::InvalidProposal { proposals: vec![] }.code_point(),
            3
        );
        assert_eq!(
            Rejection::not_allowed("nope").to_string(),
            "notAllowed: nope"
        );
    }
}
