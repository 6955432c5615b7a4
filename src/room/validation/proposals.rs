//! The proposal-level checks of the proposals one commit would carry (cached ones
//! included): each proposal on its own, the commit's composition, membership consistency,
//! authorization by each proposal's sender and the room's limits; [`evaluate`] runs them
//! and computes the resulting state.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::room::authorization::{Actor, AuthzError, Policy, check_constraints};
use crate::room::handshake::{Change, ProposalEffect, ProposalRef, Sender};
use crate::room::state::{BANNED_ROLE, Member, NO_ROLE, ParticipantListChanges, RoomState};
use crate::room::wire::WireStruct;
use crate::uri::{ClientUri, UserUri};

use super::Rejection;

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
pub(super) struct Outcome {
    /// Same epoch and pending as the input; everything else updated.
    pub(super) state: RoomState,
    pub(super) changes: ParticipantListChanges,
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
pub(super) fn evaluate(
    state: &RoomState,
    effects: &[&ProposalEffect],
) -> Result<Outcome, Rejection> {
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
    // A client rejoining by external commit removes its own earlier leaf (a resync): it is
    // added while it is a member, the same commit taking its old leaf out.
    let rejoining: HashSet<&ClientUri> = items
        .iter()
        .filter_map(|i| match (&i.effect.change, &i.effect.sender) {
            (Change::RemoveClient { client }, Sender::NewMember { client: joiner, .. })
                if client == joiner =>
            {
                Some(client)
            }
            _ => None,
        })
        .collect();
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
                if state.is_member(client) && !rejoining.contains(client) {
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

pub(super) fn refs(effects: &[&ProposalEffect]) -> Vec<ProposalRef> {
    effects.iter().map(|p| p.reference.clone()).collect()
}

fn item_refs(items: &[&Item<'_>]) -> Vec<ProposalRef> {
    items.iter().map(|i| i.reference()).collect()
}

pub(super) fn list<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}
