//! Tests of the authorization engine: capability checks, role arcs, joins and constraints.

use super::*;
use crate::room::state::{Member, default_roles};
use crate::room::wire::{ClaimId, PreAuthRoleEntry, TlsBool, Utf8String};
use crate::uri::ClientUri;

fn user(name: &str) -> UserUri {
    format!("mimi://a.example/u/{name}").parse().unwrap()
}

fn client(name: &str, device: &str) -> ClientUri {
    format!("mimi://a.example/d/{name}/{device}")
        .parse()
        .unwrap()
}

/// alice super_admin (4), bob ordinary (2), carol group_admin (3), mallory banned (1).
fn state() -> RoomState {
    let mut s = RoomState::new_room(
        "mimi://a.example/r/clubhouse".parse().unwrap(),
        Member::new(client("alice", "phone"), user("alice")),
        4,
        default_roles(),
        BaseRoomPolicy::default(),
    );
    s.push_participant(user("bob"), 2).unwrap();
    s.push_participant(user("carol"), 3).unwrap();
    s.push_participant(user("mallory"), 1).unwrap();
    s.push_member(client("bob", "phone"), user("bob")).unwrap();
    s.push_member(client("carol", "phone"), user("carol"))
        .unwrap();
    s
}

fn actor(s: &RoomState, name: &str) -> Actor {
    Actor::user(user(name), s.participants.role_of(&user(name)))
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

fn preauth(claims: Vec<Claim>, role: u32) -> PreAuthRoleEntry {
    let mut target_role = default_roles().role(role).unwrap().clone();
    target_role.role_index = role;
    PreAuthRoleEntry {
        claimset: claims,
        target_role,
    }
}

#[test]
fn capability_checks_name_the_actor_and_capability() {
    let s = state();
    let p = Policy::of(&s);
    assert!(p.has_capability(2, Capability::SendMessage));
    assert!(!p.has_capability(2, Capability::Ban));
    assert!(!p.has_capability(9, Capability::SendMessage));
    let err = p.require(&actor(&s, "bob"), Capability::Ban).unwrap_err();
    assert_eq!(
        err,
        AuthzError::MissingCapability {
            actor: ActorId::User(user("bob")),
            role: 2,
            capability: Capability::Ban
        }
    );
    assert_eq!(
        err.to_string(),
        "mimi://a.example/u/bob (role 2) does not have the capability canBan (0x000a)"
    );
    let ghost = Actor::user(user("ghost"), 9);
    assert_eq!(
        p.require(&ghost, Capability::SendMessage),
        Err(AuthzError::UnknownRole { role: 9 })
    );
}

#[test]
fn arc_lookup_uses_the_holders_role() {
    let s = state();
    let p = Policy::of(&s);
    assert!(p.arc_allows(2, 0, 2));
    assert!(p.arc_allows(2, 2, 0));
    assert!(!p.arc_allows(2, 0, 3));
    assert!(p.arc_allows(3, 2, 1));
    assert!(!p.arc_allows(3, 4, 0));
}

#[test]
fn add_participant_needs_the_capability_and_an_arc_from_zero() {
    let s = state();
    let p = Policy::of(&s);
    let bob = actor(&s, "bob");
    assert_eq!(p.add_participant(&bob, &user("dave"), 2), Ok(()));
    let err = p.add_participant(&bob, &user("dave"), 3).unwrap_err();
    assert!(
        matches!(
            err,
            AuthzError::RoleChangeNotAuthorized { from: 0, to: 3, .. }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("may not move mimi://a.example/u/dave from role 0 to role 3"),
        "{err}"
    );
    assert!(matches!(
        p.add_participant(&bob, &user("bob"), 2),
        Err(AuthzError::NotForSelf { .. })
    ));
    let server = Actor::server("b.example".parse().unwrap());
    assert!(matches!(
        p.add_participant(&server, &user("dave"), 2),
        Err(AuthzError::MissingCapability {
            capability: Capability::AddParticipant,
            ..
        })
    ));
    assert_eq!(
        p.add_participant(&actor(&s, "alice"), &user("dave"), 9),
        Err(AuthzError::UnknownRole { role: 9 })
    );
}

#[test]
fn remove_participant_follows_the_arc_to_zero() {
    let s = state();
    let p = Policy::of(&s);
    let bob = actor(&s, "bob");
    // Ordinary users may remove ordinary users, not admins.
    assert_eq!(p.remove_participant(&bob, &user("dave"), 2), Ok(()));
    assert!(matches!(
        p.remove_participant(&bob, &user("carol"), 3),
        Err(AuthzError::RoleChangeNotAuthorized { from: 3, to: 0, .. })
    ));
    // Self removal goes through canRemoveSelf.
    assert_eq!(p.remove_participant(&bob, &user("bob"), 2), Ok(()));
    let mut s2 = s.clone();
    s2.roles.roles[2]
        .role_capabilities
        .retain(|c| *c != Capability::RemoveSelf.code());
    assert!(matches!(
        Policy::of(&s2).remove_self(&bob),
        Err(AuthzError::MissingCapability {
            capability: Capability::RemoveSelf,
            ..
        })
    ));
}

#[test]
fn ban_needs_the_capability_an_arc_and_a_banned_role() {
    let s = state();
    let p = Policy::of(&s);
    let carol = actor(&s, "carol");
    assert_eq!(p.change_user_role(&carol, &user("bob"), 2, 1), Ok(()));
    assert!(matches!(
        p.change_user_role(&actor(&s, "bob"), &user("carol"), 3, 1),
        Err(AuthzError::MissingCapability {
            capability: Capability::Ban,
            ..
        })
    ));
    // group_admin cannot ban a super_admin: no ARC entry from 4.
    assert!(matches!(
        p.change_user_role(&carol, &user("alice"), 4, 1),
        Err(AuthzError::RoleChangeNotAuthorized { from: 4, to: 1, .. })
    ));
    let mut s2 = s.clone();
    s2.roles.roles[1].role_name = b"outcast".to_vec().into();
    let err = Policy::of(&s2)
        .change_user_role(&carol, &user("bob"), 2, 1)
        .unwrap_err();
    assert!(matches!(err, AuthzError::BannedRoleMissing { .. }), "{err}");
    assert!(err.to_string().contains("\"outcast\""), "{err}");
}

#[test]
fn unban_moves_from_role_one_per_arc() {
    let s = state();
    let p = Policy::of(&s);
    assert_eq!(
        p.change_user_role(&actor(&s, "carol"), &user("mallory"), 1, 2),
        Ok(())
    );
    assert!(matches!(
        p.change_user_role(&actor(&s, "bob"), &user("mallory"), 1, 2),
        Err(AuthzError::MissingCapability {
            capability: Capability::UnBan,
            ..
        })
    ));
    // group_admin's ARC has no 1 -> 4.
    assert!(matches!(
        p.change_user_role(&actor(&s, "carol"), &user("mallory"), 1, 4),
        Err(AuthzError::RoleChangeNotAuthorized { .. })
    ));
}

#[test]
fn change_user_role_follows_the_arc() {
    let s = state();
    let p = Policy::of(&s);
    let carol = actor(&s, "carol");
    assert_eq!(p.change_user_role(&carol, &user("bob"), 2, 3), Ok(()));
    assert!(matches!(
        p.change_user_role(&carol, &user("bob"), 2, 4),
        Err(AuthzError::RoleChangeNotAuthorized { from: 2, to: 4, .. })
    ));
    assert!(matches!(
        p.change_user_role(&actor(&s, "bob"), &user("dave"), 2, 3),
        Err(AuthzError::MissingCapability {
            capability: Capability::ChangeUserRole,
            ..
        })
    ));
}

#[test]
fn change_own_role_only_to_the_first_matching_preauth_entry() {
    let mut s = state();
    s.roles.roles[2]
        .role_capabilities
        .push(Capability::ChangeOwnRole.code());
    s.preauth.preauthorized_entries = vec![
        preauth(vec![claim("dept", "hr")], 3),
        preauth(vec![claim("org", "a.example")], 2),
    ];
    let p = Policy::of(&s);
    let bob = actor(&s, "bob").with_claims(vec![claim("org", "a.example"), claim("dept", "hr")]);
    assert_eq!(p.change_user_role(&bob, &user("bob"), 2, 3), Ok(()));
    let err = p.change_own_role(&bob, 4).unwrap_err();
    assert_eq!(
        err,
        AuthzError::OwnRoleNotPreauthorized {
            actor: ActorId::User(user("bob")),
            to: 4,
            preauthorized: Some(3)
        }
    );
    assert!(err.to_string().contains("gives role 3"), "{err}");
    let plain = actor(&s, "bob");
    assert!(matches!(
        p.change_own_role(&plain, 3),
        Err(AuthzError::OwnRoleNotPreauthorized {
            preauthorized: None,
            ..
        })
    ));
    // carol's role lacks canChangeOwnRole.
    assert!(matches!(
        p.change_own_role(&actor(&s, "carol"), 3),
        Err(AuthzError::MissingCapability { .. })
    ));
}

#[test]
fn joins_need_open_join_or_a_preauthorization() {
    let mut s = state();
    let joiner = Actor::user(user("dave"), 0).with_claims(vec![claim("org", "a.example")]);
    let err = Policy::of(&s).join(&joiner, 2).unwrap_err();
    assert!(
        err.to_string()
            .contains("no preauthorization entry matches"),
        "{err}"
    );

    // Preauthorized for role 2, which holds canJoinIfPreauthorized.
    s.preauth.preauthorized_entries = vec![preauth(vec![claim("org", "a.example")], 2)];
    let err = Policy::of(&s).join(&joiner, 2).unwrap_err();
    assert!(err.to_string().contains("canJoinIfPreauthorized"), "{err}");
    s.roles.roles[2]
        .role_capabilities
        .push(Capability::JoinIfPreauthorized.code());
    assert_eq!(Policy::of(&s).join(&joiner, 2), Ok(()));
    let err = Policy::of(&s).join(&joiner, 3).unwrap_err();
    assert!(err.to_string().contains("gives role 2"), "{err}");
    // First full match wins: a partial match earlier in the list does not count.
    s.preauth.preauthorized_entries.insert(
        0,
        preauth(vec![claim("org", "a.example"), claim("dept", "hr")], 3),
    );
    assert_eq!(Policy::of(&s).join(&joiner, 2), Ok(()));

    // Open join: canOpenJoin on role 0 with ARC 0 -> target.
    let mut s = state();
    let stranger = Actor::user(user("erin"), 0);
    s.roles.roles[0]
        .role_capabilities
        .push(Capability::OpenJoin.code());
    let err = Policy::of(&s).join(&stranger, 2).unwrap_err();
    assert!(err.to_string().contains("not to role 2"), "{err}");
    s.roles.roles[0].authorized_role_changes =
        default_roles().roles[2].authorized_role_changes.clone();
    assert_eq!(Policy::of(&s).join(&stranger, 2), Ok(()));
}

#[test]
fn fixed_membership_forbids_adds_and_leaves_but_not_dropping_clients() {
    let mut s = state();
    s.policy.fixed_membership = TlsBool(true);
    let p = Policy::of(&s);
    let alice = actor(&s, "alice");
    let bob = actor(&s, "bob");
    assert!(matches!(
        p.add_participant(&alice, &user("dave"), 2),
        Err(AuthzError::FixedMembership { .. })
    ));
    assert!(matches!(
        p.remove_self(&bob),
        Err(AuthzError::FixedMembership { .. })
    ));
    assert!(matches!(
        p.remove_participant(&alice, &user("bob"), 2),
        Err(AuthzError::FixedMembership { .. })
    ));
    assert!(matches!(
        p.join(&Actor::user(user("erin"), 0), 2),
        Err(AuthzError::FixedMembership { .. })
    ));
    assert_eq!(p.remove_own_client(&bob), Ok(()));
    assert_eq!(p.kick(&bob, &user("bob")), Ok(()));
}

#[test]
fn metadata_changes_need_the_capability_of_each_changed_field() {
    let s = state();
    let p = Policy::of(&s);
    let bob = actor(&s, "bob");
    let mut new = s.metadata.clone();
    new.room_name = Utf8String::new("Clubhouse");
    assert_eq!(p.change_metadata(&bob, &s.metadata, &new), Ok(()));
    new.room_descriptions.push(Default::default());
    assert!(matches!(
        p.change_metadata(&bob, &s.metadata, &new),
        Err(AuthzError::MissingCapability {
            capability: Capability::ChangeRoomDescription,
            ..
        })
    ));
    assert_eq!(
        p.change_metadata(&actor(&s, "carol"), &s.metadata, &new),
        Ok(())
    );
    let mut moved = s.metadata.clone();
    moved.room_uri = crate::room::wire::Uri::new("mimi://a.example/r/other");
    assert!(matches!(
        p.change_metadata(&actor(&s, "alice"), &s.metadata, &moved),
        Err(AuthzError::RoomUriChange { .. })
    ));
}

#[test]
fn base_policy_changes_need_membership_style_or_other_attribute() {
    let s = state();
    let p = Policy::of(&s);
    let mut new = s.policy.clone();
    new.max_users = Some(10);
    assert!(matches!(
        p.change_base_policy(&actor(&s, "carol"), &new),
        Err(AuthzError::MissingCapability {
            capability: Capability::ChangeRoomMembershipStyle,
            ..
        })
    ));
    assert_eq!(p.change_base_policy(&actor(&s, "alice"), &new), Ok(()));
    let mut new = s.policy.clone();
    new.discoverable = TlsBool(true);
    assert!(matches!(
        p.change_base_policy(&actor(&s, "carol"), &new),
        Err(AuthzError::MissingCapability {
            capability: Capability::ChangeOtherPolicyAttribute,
            ..
        })
    ));
    assert_eq!(p.change_base_policy(&actor(&s, "alice"), &new), Ok(()));
}

#[test]
fn kick_needs_the_capability_for_other_users() {
    let s = state();
    let p = Policy::of(&s);
    assert!(matches!(
        p.kick(&actor(&s, "bob"), &user("carol")),
        Err(AuthzError::MissingCapability {
            capability: Capability::Kick,
            ..
        })
    ));
    assert_eq!(p.kick(&actor(&s, "carol"), &user("bob")), Ok(()));
}

#[test]
fn constraint_min_participants_blocks_only_decreases() {
    let before = state();
    // group_admin (3) needs at least one participant; carol is the only one.
    let mut after = before.clone();
    after.participants = crate::room::state::ParticipantList::from_participants(
        before
            .participants
            .iter()
            .filter(|p| p.user != user("carol"))
            .cloned()
            .collect(),
    )
    .unwrap();
    after.members.retain(|m| m.user != user("carol"));
    let err = check_constraints(&before, &after).unwrap_err();
    assert_eq!(
        err,
        AuthzError::RoleLimit {
            role: 3,
            role_name: "group_admin".into(),
            what: Limit::MinParticipants,
            limit: 1,
            actual: 0
        }
    );
    assert_eq!(
        err.to_string(),
        "role 3 (group_admin) must have at least 1 participant(s), but this change would leave it with 0"
    );
    // policy_enforcer (5) needs one too, but has none before: other changes still pass.
    assert_eq!(check_constraints(&before, &before.clone()), Ok(()));
}

#[test]
fn constraint_max_and_active_limits() {
    let mut before = state();
    before.roles.roles[2].maximum_participants_constraint = Some(1);
    let mut after = before.clone();
    after.push_participant(user("dave"), 2).unwrap();
    assert!(matches!(
        check_constraints(&before, &after),
        Err(AuthzError::RoleLimit {
            role: 2,
            what: Limit::MaxParticipants,
            limit: 1,
            actual: 2,
            ..
        })
    ));

    // Role 2 must keep at least one active participant: bob is the only one.
    let mut before = state();
    before.roles.roles[2].minimum_active_participants_constraint = 1;
    let mut after = before.clone();
    after.members.retain(|m| m.user != user("bob"));
    assert!(matches!(
        check_constraints(&before, &after),
        Err(AuthzError::RoleLimit {
            what: Limit::MinActiveParticipants,
            ..
        })
    ));

    // policy_enforcer (5) may have no clients.
    let mut before = state();
    before.push_participant(user("enforcer"), 5).unwrap();
    let mut after = before.clone();
    after
        .push_member(client("enforcer", "bot"), user("enforcer"))
        .unwrap();
    assert!(matches!(
        check_constraints(&before, &after),
        Err(AuthzError::RoleLimit {
            role: 5,
            what: Limit::MaxActiveParticipants,
            limit: 0,
            actual: 1,
            ..
        })
    ));
}

#[test]
fn new_role_definitions_must_fit_the_room() {
    let before = state();
    let mut after = before.clone();
    after.roles.roles[2].maximum_participants_constraint = Some(0);
    assert!(matches!(
        check_constraints(&before, &after),
        Err(AuthzError::RoleLimit {
            what: Limit::MaxParticipants,
            ..
        })
    ));
}

#[test]
fn constraint_max_users_counts_non_banned_entries() {
    let mut before = state();
    before.policy.max_users = Some(3); // alice, bob, carol (+ mallory, banned)
    let mut after = before.clone();
    after.push_participant(user("dave"), 2).unwrap();
    assert_eq!(
        check_constraints(&before, &after),
        Err(AuthzError::MaxUsers {
            limit: 3,
            actual: 4
        })
    );
    let mut after = before.clone();
    after.push_participant(user("eve"), 1).unwrap();
    assert_eq!(check_constraints(&before, &after), Ok(()));
}

#[test]
fn constraint_max_clients_and_multi_device() {
    let mut before = state();
    before.policy.max_clients = Some(3);
    let mut after = before.clone();
    after
        .push_member(client("bob", "laptop"), user("bob"))
        .unwrap();
    assert_eq!(
        check_constraints(&before, &after),
        Err(AuthzError::MaxClients {
            limit: 3,
            actual: 4
        })
    );
    let mut before = state();
    before.policy.multi_device = TlsBool(false);
    let mut after = before.clone();
    after
        .push_member(client("bob", "laptop"), user("bob"))
        .unwrap();
    let err = check_constraints(&before, &after).unwrap_err();
    assert_eq!(
        err,
        AuthzError::MultiDevice {
            user: user("bob"),
            clients: 2
        }
    );
    assert!(err.to_string().contains("multi_device is false"), "{err}");
}
