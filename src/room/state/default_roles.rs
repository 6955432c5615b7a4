//! The default roles list of a room: room-policy-03 Appendix A.1, the daemon's default policy
//! envelope.

use crate::room::capability::Capability;
use crate::room::wire::{Role, RoleData, SingleSourceRoleChangeTargets};

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
