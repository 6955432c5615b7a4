//! The handshake decision: [`validate_handshake`] checks the epoch and the sender, then
//! either a commit (proposals by reference, every cached proposal included, ExternalInit,
//! no self-removal) or standalone proposals (duplicates, blocked senders), before the
//! proposal-level checks of `proposals`.

use std::collections::HashSet;

use crate::room::handshake::{Change, Handshake, HandshakeBody, ProposalEffect, Sender};
use crate::room::state::{BlockReason, ParticipantListChanges, PendingProposal, RoomState};
use crate::uri::{ClientUri, UserUri};

use super::Rejection;
use super::proposals::{evaluate, list, refs};

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
            // A resync (RFC 9420 §12.4.3.2): the client rejoins, removing its own earlier
            // leaf in the same commit.
            let resync = proposals.iter().any(|p| {
                p.sender == *committer
                    && matches!(&p.change, Change::RemoveClient { client: c } if c == client)
            });
            check_joiner(state, client, user, resync)?;
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

    // A client cannot commit its own removal (RFC 9420 §12.2); a client rejoining by external
    // commit removes its earlier leaf, which is not itself (§12.4.3.2).
    for p in proposals {
        let removes_committer = match &p.change {
            Change::RemoveClient { client } => client == committer_client && !external,
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
            Sender::NewMember { client, user, .. } => check_joiner(state, client, user, false)?,
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

/// A joining client must not be a member yet, unless it rejoins removing its earlier leaf
/// (`resync`), and its user must not be banned or exiting (preauthorization is only consulted
/// for users not on the list, so a banned user cannot rejoin through it).
fn check_joiner(
    state: &RoomState,
    client: &ClientUri,
    user: &UserUri,
    resync: bool,
) -> Result<(), Rejection> {
    if state.is_member(client) && !resync {
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
