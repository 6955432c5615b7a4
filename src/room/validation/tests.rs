//! Tests of handshake validation: membership changes, cached proposals, external joins,
//! authorization and constraints.

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
    let cached = validate_handshake(&s, &propose(&s, hub, vec![(1, remove("mallory", "phone"))]))
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
fn a_member_rejoining_by_external_commit_removes_its_earlier_leaf() {
    let s = room();
    // bob/phone resynchronises: an external commit removing its own earlier leaf
    let rejoin = commit(
        &s,
        joiner("bob", "phone", vec![]),
        vec![(1, Change::ExternalInit), (2, remove("bob", "phone"))],
    );
    let accepted = validate_handshake(&s, &rejoin).unwrap();
    assert_eq!(accepted.state.active_clients(&user("bob")).len(), 2);
    assert_eq!(
        accepted
            .state
            .members
            .iter()
            .filter(|m| m.client == client("bob", "phone"))
            .count(),
        1
    );
    // without removing its earlier leaf, a member cannot join again
    let again = commit(
        &s,
        joiner("bob", "phone", vec![]),
        vec![(1, Change::ExternalInit)],
    );
    not_allowed(validate_handshake(&s, &again), "cannot join it again");
    // nor can a joiner remove another client under the cover of a rejoin
    let other = commit(
        &s,
        joiner("bob", "phone", vec![]),
        vec![(1, Change::ExternalInit), (2, remove("alice", "phone"))],
    );
    assert!(validate_handshake(&s, &other).is_err());
    // a member still cannot commit its own removal
    let own = commit(&s, from("bob", "phone"), vec![(1, remove("bob", "phone"))]);
    invalid(
        validate_handshake(&s, &own),
        &[1],
        "cannot commit its own removal",
    );
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
