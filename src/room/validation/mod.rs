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
mod tests;
