//! Tests of the room state: participant-list updates, wire forms, app data and default roles.

use super::*;
use crate::room::wire::UserIndexRolePair;

fn user(name: &str) -> UserUri {
    format!("mimi://a.example/u/{name}").parse().unwrap()
}

fn client(user: &str, device: &str) -> ClientUri {
    format!("mimi://a.example/d/{user}/{device}")
        .parse()
        .unwrap()
}

fn list(entries: &[(&str, u32)]) -> ParticipantList {
    ParticipantList::from_participants(
        entries
            .iter()
            .map(|(n, r)| Participant::new(user(n), *r))
            .collect(),
    )
    .unwrap()
}

fn update(changed: &[(u32, u32)], removed: &[u32], added: &[(&str, u32)]) -> ParticipantListUpdate {
    ParticipantListUpdate {
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
            .map(|(n, r)| UserRolePair::new(user(n).as_str(), *r))
            .collect(),
    }
}

fn room() -> RoomState {
    let mut s = RoomState::new_room(
        "mimi://a.example/r/clubhouse".parse().unwrap(),
        Member::new(client("alice", "phone"), user("alice")),
        4,
        default_roles(),
        BaseRoomPolicy::default(),
    );
    s.push_participant(user("bob"), 2).unwrap();
    s.push_member(client("bob", "phone"), user("bob")).unwrap();
    s
}

#[test]
fn update_applies_role_changes_then_removals_then_appends() {
    let before = list(&[("alice", 4), ("bob", 2), ("carol", 2), ("dave", 2)]);
    let (after, changes) = before
        .apply(&update(&[(2, 3)], &[1, 3], &[("erin", 2), ("frank", 3)]))
        .unwrap();
    assert_eq!(
        after,
        list(&[("alice", 4), ("carol", 3), ("erin", 2), ("frank", 3)])
    );
    assert_eq!(
        changes.role_changes,
        vec![RoleChange {
            user: user("carol"),
            from: 2,
            to: 3
        }]
    );
    assert_eq!(
        changes.removed,
        vec![
            Participant::new(user("bob"), 2),
            Participant::new(user("dave"), 2)
        ]
    );
    assert_eq!(
        changes.added,
        vec![
            Participant::new(user("erin"), 2),
            Participant::new(user("frank"), 3)
        ]
    );
    assert!(changes.touches(&user("dave")));
    assert!(!changes.touches(&user("alice")));
}

#[test]
fn out_of_range_index_is_an_error_naming_the_field() {
    let before = list(&[("alice", 4)]);
    let err = before.apply(&update(&[], &[1], &[])).unwrap_err();
    assert_eq!(
        err,
        StateError::IndexOutOfRange {
            at: "removedIndices[0]".into(),
            index: 1,
            len: 1
        }
    );
    assert!(err.to_string().contains("out of range"), "{err}");
    let err = before.apply(&update(&[(7, 2)], &[], &[])).unwrap_err();
    assert!(matches!(err, StateError::IndexOutOfRange { index: 7, .. }));
}

#[test]
fn duplicate_index_is_an_error() {
    let before = list(&[("alice", 4), ("bob", 2)]);
    let err = before.apply(&update(&[], &[1, 1], &[])).unwrap_err();
    assert!(matches!(err, StateError::DuplicateIndex { .. }), "{err}");
    let err = before
        .apply(&update(&[(1, 3), (1, 4)], &[], &[]))
        .unwrap_err();
    assert!(matches!(err, StateError::DuplicateIndex { .. }), "{err}");
}

#[test]
fn a_user_touched_twice_is_an_error() {
    let before = list(&[("alice", 4), ("bob", 2)]);
    let err = before.apply(&update(&[(1, 3)], &[1], &[])).unwrap_err();
    assert!(
        matches!(&err, StateError::UserTouchedTwice { user: u, .. } if *u == user("bob")),
        "{err}"
    );
    // Removed and re-added in the same update.
    let err = before.apply(&update(&[], &[1], &[("bob", 2)])).unwrap_err();
    assert!(matches!(err, StateError::UserTouchedTwice { .. }), "{err}");
    // Added twice.
    let err = before
        .apply(&update(&[], &[], &[("carol", 2), ("carol", 3)]))
        .unwrap_err();
    assert!(matches!(err, StateError::UserTouchedTwice { .. }), "{err}");
}

#[test]
fn adding_a_listed_user_is_an_error() {
    let before = list(&[("alice", 4), ("bob", 2)]);
    let err = before.apply(&update(&[], &[], &[("bob", 3)])).unwrap_err();
    assert_eq!(
        err,
        StateError::AlreadyListed {
            at: "addedParticipants[0]".into(),
            user: user("bob"),
            index: 1
        }
    );
}

#[test]
fn role_zero_same_role_and_bad_uris_are_errors() {
    let before = list(&[("alice", 4)]);
    assert!(matches!(
        before.apply(&update(&[(0, 0)], &[], &[])).unwrap_err(),
        StateError::RoleChangeToZero { .. }
    ));
    assert!(matches!(
        before.apply(&update(&[(0, 4)], &[], &[])).unwrap_err(),
        StateError::SameRole { .. }
    ));
    assert!(matches!(
        before.apply(&update(&[], &[], &[("bob", 0)])).unwrap_err(),
        StateError::RoleZero { .. }
    ));
    let mut bad = update(&[], &[], &[]);
    bad.added_participants
        .push(UserRolePair::new("mimi://a.example/d/bob/phone", 2));
    let err = before.apply(&bad).unwrap_err();
    assert!(matches!(err, StateError::InvalidUser { .. }), "{err}");
    assert!(
        err.to_string().contains("addedParticipants[0].user"),
        "{err}"
    );
}

#[test]
fn apply_all_uses_the_epoch_list_for_every_update() {
    let before = list(&[("alice", 4), ("bob", 2), ("carol", 2)]);
    // The first update removes bob (index 1); the second still names carol as index 2.
    let a = update(&[], &[1], &[]);
    let b = update(&[(2, 3)], &[], &[("dave", 2)]);
    let (after, changes) = before.apply_all(&[&a, &b]).unwrap();
    assert_eq!(after, list(&[("alice", 4), ("carol", 3), ("dave", 2)]));
    assert_eq!(changes.removed.len(), 1);
    let c = update(&[(1, 3)], &[], &[]);
    let err = before.apply_all(&[&a, &c]).unwrap_err();
    assert!(
        matches!(&err, StateError::UserTouchedTwice { first, second, .. }
            if first.starts_with("update 1") && second.starts_with("update 0")),
        "{err}"
    );
}

#[test]
fn wire_form_round_trips_and_refuses_bad_entries() {
    let l = list(&[("alice", 4), ("bob", 2)]);
    assert_eq!(ParticipantList::from_wire(&l.to_wire()).unwrap(), l);
    assert_eq!(l.role_of(&user("bob")), 2);
    assert_eq!(l.role_of(&user("zoe")), 0);
    let mut data = l.to_wire();
    data.participants.push(UserRolePair::new("not a uri", 2));
    let err = ParticipantList::from_wire(&data).unwrap_err();
    assert!(err.to_string().starts_with("participants[2].user"), "{err}");
    let mut data = l.to_wire();
    data.participants
        .push(UserRolePair::new(user("bob").as_str(), 3));
    assert!(matches!(
        ParticipantList::from_wire(&data).unwrap_err(),
        StateError::DuplicateUser { first: 1, .. }
    ));
}

#[test]
fn app_data_round_trips() {
    let cp = ComponentCodePoints::default();
    let s = room();
    let dict = s.to_app_data(&cp).unwrap();
    assert!(dict.get(cp.participant_list).is_some());
    assert!(dict.get(cp.base_room_policy).is_some());
    let back =
        RoomState::from_app_data(s.room.clone(), s.epoch, &dict, &cp, s.members.clone()).unwrap();
    assert_eq!(back, s);
}

#[test]
fn app_data_without_required_components_or_with_undefined_roles_is_refused() {
    let cp = ComponentCodePoints::default();
    let s = room();
    let mut dict = s.to_app_data(&cp).unwrap();
    dict.remove(cp.roles_list);
    let err = RoomState::from_app_data(s.room.clone(), 0, &dict, &cp, vec![]).unwrap_err();
    assert_eq!(
        err,
        StateError::MissingComponent {
            name: "roles_list",
            id: 0x0025
        }
    );
    let mut s2 = s.clone();
    s2.push_participant(user("zoe"), 9).unwrap();
    let dict = s2.to_app_data(&cp).unwrap();
    let err = RoomState::from_app_data(s.room.clone(), 0, &dict, &cp, vec![]).unwrap_err();
    assert_eq!(
        err,
        StateError::UndefinedRole {
            user: user("zoe"),
            role: 9
        }
    );
    let mut dict = s.to_app_data(&cp).unwrap();
    dict.set(cp.participant_list, vec![0x01]);
    let err = RoomState::from_app_data(s.room.clone(), 0, &dict, &cp, vec![]).unwrap_err();
    assert!(err.to_string().contains("participant_list"), "{err}");
}

#[test]
fn app_data_for_another_room_is_refused() {
    let cp = ComponentCodePoints::default();
    let s = room();
    let dict = s.to_app_data(&cp).unwrap();
    let err = RoomState::from_app_data(
        "mimi://a.example/r/other".parse().unwrap(),
        0,
        &dict,
        &cp,
        vec![],
    )
    .unwrap_err();
    assert!(matches!(err, StateError::RoomMismatch { .. }), "{err}");
}

#[test]
fn new_room_lists_the_creator_and_its_client() {
    let s = room();
    assert_eq!(s.epoch, 0);
    assert_eq!(s.participants.role_of(&user("alice")), 4);
    assert_eq!(
        s.active_clients(&user("alice")),
        vec![&client("alice", "phone")]
    );
    assert_eq!(s.role_counts(2), (1, 1));
    assert_eq!(
        s.metadata.room_uri.as_str(),
        Some("mimi://a.example/r/clubhouse")
    );
    assert_eq!(s.check_invariants(), Ok(()));
    let mut s = s;
    assert!(matches!(
        s.push_member(client("bob", "phone"), user("bob")),
        Err(StateError::DuplicateMember { .. })
    ));
    s.push_member(client("zoe", "phone"), user("zoe")).unwrap();
    assert!(matches!(
        s.check_invariants(),
        Err(StateError::MemberNotAllowed { .. })
    ));
}

#[test]
fn pending_removals_make_users_exiting() {
    let mut s = room();
    assert_eq!(s.block_reason(&user("bob")), None);
    assert_eq!(
        s.block_reason(&user("zoe")),
        Some(BlockReason::NotParticipant)
    );
    s.pending.push(ProposalEffect::new(
        vec![1],
        crate::room::handshake::Sender::Member(client("bob", "phone")),
        Change::ParticipantList(update(&[], &[1], &[])),
    ));
    assert_eq!(s.exiting_users(), vec![user("bob")]);
    assert_eq!(s.participants.len(), 2);
    assert_eq!(s.effective_participants(), list(&[("alice", 4)]));
    assert_eq!(s.block_reason(&user("bob")), Some(BlockReason::Exiting));
    assert_eq!(s.block_reason(&user("alice")), None);
    s.pending.clear();
    s.push_participant(user("mallory"), BANNED_ROLE).unwrap();
    assert_eq!(s.block_reason(&user("mallory")), Some(BlockReason::Banned));
}

#[test]
fn default_roles_follow_the_appendix() {
    let roles = default_roles();
    assert_eq!(roles.check(), Ok(()));
    let names: Vec<_> = roles
        .roles
        .iter()
        .map(|r| (r.role_index, r.name()))
        .collect();
    assert_eq!(
        names,
        vec![
            (0, "no_role"),
            (1, "banned"),
            (2, "ordinary_user"),
            (3, "group_admin"),
            (4, "super_admin"),
            (5, "policy_enforcer")
        ]
    );
    let ordinary = roles.role(2).unwrap();
    assert_eq!(
        ordinary
            .authorized_role_changes
            .iter()
            .map(|a| (a.from_role_index, a.target_role_indexes.clone()))
            .collect::<Vec<_>>(),
        vec![(0, vec![2]), (2, vec![0])]
    );
    assert!(
        ordinary
            .role_capabilities
            .contains(&Capability::SendMessage.code())
    );
    assert!(!ordinary.role_capabilities.contains(&Capability::Ban.code()));
    assert!(
        roles
            .role(3)
            .unwrap()
            .role_capabilities
            .contains(&Capability::Ban.code())
    );
    assert!(roles.role(1).unwrap().role_capabilities.is_empty());
    assert_eq!(
        roles
            .role(5)
            .unwrap()
            .maximum_active_participants_constraint,
        Some(0)
    );
}
