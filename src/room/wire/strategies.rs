//! proptest strategies producing valid values of every room-state structure.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::*;

pub fn text() -> impl Strategy<Value = VLBytesText> {
    "[a-zA-Z0-9 ./:_é-]{0,24}".prop_map(VLBytesText)
}

/// A UTF-8 string destined for an `opaque<V>` field.
#[derive(Clone, Debug)]
pub struct VLBytesText(pub String);

impl VLBytesText {
    pub fn bytes(&self) -> tls_codec::VLBytes {
        self.0.as_bytes().to_vec().into()
    }
}

pub fn role() -> impl Strategy<Value = Role> {
    (
        any::<u32>(),
        text(),
        text(),
        vec(any::<u16>(), 0..8),
        (0u32..10, option::of(10u32..100)),
        (0u32..10, option::of(10u32..100)),
        vec((any::<u32>(), vec(any::<u32>(), 0..4)), 0..4),
    )
        .prop_map(
            |(idx, name, desc, caps, (min, max), (amin, amax), arc)| Role {
                role_index: idx,
                role_name: name.bytes(),
                role_description: desc.bytes(),
                role_capabilities: caps,
                minimum_participants_constraint: min,
                maximum_participants_constraint: max,
                minimum_active_participants_constraint: amin,
                maximum_active_participants_constraint: amax,
                authorized_role_changes: arc
                    .into_iter()
                    .map(|(from, to)| SingleSourceRoleChangeTargets {
                        from_role_index: from,
                        target_role_indexes: to,
                    })
                    .collect(),
            },
        )
}

pub fn role_data() -> impl Strategy<Value = RoleData> {
    vec(role(), 0..5).prop_map(|mut roles| {
        roles.sort_by_key(|r| r.role_index);
        roles.dedup_by_key(|r| r.role_index);
        RoleData { roles }
    })
}

pub fn user_role_pair() -> impl Strategy<Value = UserRolePair> {
    ("[a-z]{1,8}", 1u32..6)
        .prop_map(|(u, r)| UserRolePair::new(format!("mimi://a.example/u/{u}"), r))
}

pub fn participant_list_data() -> impl Strategy<Value = ParticipantListData> {
    vec(user_role_pair(), 0..8).prop_map(|mut participants| {
        let mut seen = std::collections::HashSet::new();
        participants.retain(|p| seen.insert(p.user.as_slice().to_vec()));
        ParticipantListData { participants }
    })
}

pub fn participant_list_update() -> impl Strategy<Value = ParticipantListUpdate> {
    (
        vec((any::<u32>(), 1u32..u32::MAX), 0..4),
        vec(any::<u32>(), 0..4),
        vec(user_role_pair(), 0..4),
    )
        .prop_map(|(changed, removed, added)| ParticipantListUpdate {
            changed_role_participants: changed
                .into_iter()
                .map(|(user_index, role_index)| UserIndexRolePair {
                    user_index,
                    role_index,
                })
                .collect(),
            removed_indices: removed,
            added_participants: added,
        })
}

pub fn room_metadata() -> impl Strategy<Value = RoomMetaData> {
    (
        text(),
        text(),
        vec((text(), text(), vec(any::<u8>(), 0..16)), 0..3),
        prop_oneof![
            Just(String::new()),
            "[a-z]{1,8}".prop_map(|s| format!("https://{s}.example/a.png"))
        ],
        text(),
        text(),
    )
        .prop_map(|(uri, name, descs, avatar, subject, mood)| RoomMetaData {
            room_uri: Uri::new(&uri.0),
            room_name: Utf8String::new(&name.0),
            room_descriptions: descs
                .into_iter()
                .map(|(mt, lang, content)| RichDescription {
                    media_type: mt.bytes(),
                    language_tag: lang.bytes(),
                    description_content: content.into(),
                })
                .collect(),
            room_avatar: Uri::new(avatar),
            room_subject: Utf8String::new(&subject.0),
            room_mood: Utf8String::new(&mood.0),
        })
}

pub fn preauth_data() -> impl Strategy<Value = PreAuthData> {
    vec(
        (
            vec(
                (any::<u16>(), vec(any::<u8>(), 0..8), vec(any::<u8>(), 0..8)),
                0..3,
            ),
            role().prop_filter("not banned", |r| r.role_index != 1),
        ),
        0..3,
    )
    .prop_map(|entries| PreAuthData {
        preauthorized_entries: entries
            .into_iter()
            .map(|(claims, target_role)| PreAuthRoleEntry {
                claimset: claims
                    .into_iter()
                    .map(|(ct, id, value)| Claim {
                        claim_id: ClaimId {
                            credential_type: ct,
                            id: id.into(),
                        },
                        claim_value: value.into(),
                    })
                    .collect(),
                target_role,
            })
            .collect(),
    })
}

pub fn base_room_policy() -> impl Strategy<Value = BaseRoomPolicy> {
    (
        any::<[bool; 6]>(),
        option::of("[a-z]{1,8}"),
        option::of(any::<u32>()),
        option::of(any::<u32>()),
        vec(any::<u16>(), 0..5),
    )
        .prop_map(|(b, parent, max_clients, max_users, ids)| BaseRoomPolicy {
            fixed_membership: b[0].into(),
            parent_dependant: (b[1] && parent.is_some()).into(),
            parent_room: parent
                .map(|p| vec![Uri::new(format!("mimi://a.example/r/{p}"))])
                .unwrap_or_default(),
            multi_device: b[2].into(),
            max_clients,
            max_users,
            pseudonyms_allowed: b[3].into(),
            persistent_room: b[4].into(),
            discoverable: b[5].into(),
            policy_component_ids: ids,
        })
}

pub fn app_data_dictionary() -> impl Strategy<Value = AppDataDictionary> {
    proptest::collection::btree_map(any::<u16>(), vec(any::<u8>(), 0..32), 0..6).prop_map(|m| {
        AppDataDictionary {
            component_data: m
                .into_iter()
                .map(|(component_id, data)| ComponentData {
                    component_id,
                    data: data.into(),
                })
                .collect(),
        }
    })
}

pub fn app_data_update() -> impl Strategy<Value = AppDataUpdate> {
    (any::<u16>(), option::of(vec(any::<u8>(), 0..32))).prop_map(|(id, data)| match data {
        Some(d) => AppDataUpdate::update(id, d),
        None => AppDataUpdate::remove(id),
    })
}
