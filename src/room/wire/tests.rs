//! Known-answer, rejection, round-trip and arbitrary-bytes tests for every room-state codec.

use proptest::prelude::*;

use super::strategies::*;
use super::*;

fn round_trip<T: WireStruct + PartialEq + std::fmt::Debug>(value: &T) {
    let bytes = encode(value).expect("a valid value encodes");
    let back: T = decode_exact(&bytes).expect("its encoding decodes");
    assert_eq!(&back, value);
    assert_eq!(
        encode(&back).unwrap(),
        bytes,
        "re-encoding is byte-identical"
    );
}

// ---- known answers: the bytes the TLS presentation language prescribes ----

#[test]
fn participant_list_data_has_the_exact_wire_form() {
    let data = ParticipantListData {
        participants: vec![UserRolePair::new("mimi://a.example/u/al", 2)],
    };
    let user = b"mimi://a.example/u/al";
    let mut expected = vec![];
    // participants<V>: a QUIC-style varint length of the whole vector (1 byte below 64)
    expected.push((1 + user.len() + 4) as u8);
    expected.push(user.len() as u8);
    expected.extend_from_slice(user);
    expected.extend_from_slice(&2u32.to_be_bytes());
    assert_eq!(encode(&data).unwrap(), expected);
}

#[test]
fn app_data_update_has_the_exact_wire_form() {
    assert_eq!(
        encode(&AppDataUpdate::update(0x0022, vec![0xAA, 0xBB])).unwrap(),
        vec![0x00, 0x22, 0x01, 0x02, 0xAA, 0xBB]
    );
    assert_eq!(
        encode(&AppDataUpdate::remove(0x0023)).unwrap(),
        vec![0x00, 0x23, 0x02]
    );
}

#[test]
fn long_vectors_use_two_byte_varint_lengths() {
    let dict = AppDataDictionary {
        component_data: vec![ComponentData {
            component_id: 0x0027,
            data: vec![7u8; 100].into(),
        }],
    };
    let bytes = encode(&dict).unwrap();
    // outer length 2 + 2 + 100 = 104 -> 0x40 0x68; inner data length 100 -> 0x40 0x64
    assert_eq!(&bytes[..6], &[0x40, 0x68, 0x00, 0x27, 0x40, 0x64]);
    assert_eq!(bytes.len(), 106);
}

#[test]
fn base_room_policy_defaults_encode_as_the_draft_lays_out() {
    let bytes = encode(&BaseRoomPolicy::default()).unwrap();
    // fixed, parent_dependant, parent_room<V>=[], multi_device, max_clients absent,
    // max_users absent, pseudonyms, persistent, discoverable, policy_component_ids<V>=[]
    assert_eq!(bytes, vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn role_optional_fields_are_presence_prefixed() {
    let role = Role {
        role_index: 1,
        role_name: b"banned".to_vec().into(),
        role_description: Vec::new().into(),
        role_capabilities: vec![],
        minimum_participants_constraint: 0,
        maximum_participants_constraint: None,
        minimum_active_participants_constraint: 0,
        maximum_active_participants_constraint: Some(0),
        authorized_role_changes: vec![],
    };
    let bytes = encode(&RoleData { roles: vec![role] }).unwrap();
    let tail = &bytes[bytes.len() - 15..];
    assert_eq!(
        tail,
        &[
            0, 0, 0, 0, /* max absent */ 0, 0, 0, 0, 0, /* present */ 1, 0, 0, 0, 0,
            /* arc */ 0
        ]
    );
}

// ---- rejections of well-formed bytes with invalid meaning ----

#[test]
fn dictionary_out_of_order_is_rejected() {
    let dict = AppDataDictionary {
        component_data: vec![
            ComponentData {
                component_id: 0x0023,
                data: vec![].into(),
            },
            ComponentData {
                component_id: 0x0022,
                data: vec![].into(),
            },
        ],
    };
    let bytes = tls_codec::Serialize::tls_serialize_detached(&dict).unwrap();
    let err = decode_exact::<AppDataDictionary>(&bytes).unwrap_err();
    assert!(err.to_string().contains("strictly increasing"), "{err}");
    assert!(encode(&dict).is_err(), "nothing invalid is encoded either");
}

#[test]
fn dictionary_duplicate_ids_are_rejected() {
    let dict = AppDataDictionary {
        component_data: vec![
            ComponentData {
                component_id: 0x0022,
                data: vec![1].into(),
            },
            ComponentData {
                component_id: 0x0022,
                data: vec![2].into(),
            },
        ],
    };
    let bytes = tls_codec::Serialize::tls_serialize_detached(&dict).unwrap();
    assert!(decode_exact::<AppDataDictionary>(&bytes).is_err());
}

#[test]
fn dictionary_set_and_remove_keep_order() {
    let mut d = AppDataDictionary::default();
    d.set(0x27, vec![3]);
    d.set(0x22, vec![1]);
    d.set(0x25, vec![2]);
    d.set(0x22, vec![9]);
    assert_eq!(d.get(0x22), Some(&[9u8][..]));
    assert!(d.remove(0x25));
    assert!(!d.remove(0x25));
    round_trip(&d);
}

#[test]
fn a_bool_other_than_0_or_1_is_rejected() {
    let mut bytes = encode(&BaseRoomPolicy::default()).unwrap();
    bytes[0] = 2;
    let err = decode_exact::<BaseRoomPolicy>(&bytes).unwrap_err();
    assert!(err.to_string().contains("bool must be 0 or 1"), "{err}");
}

#[test]
fn an_invalid_app_data_operation_is_rejected() {
    assert!(
        decode_exact::<AppDataUpdate>(&[0x00, 0x22, 0x00]).is_err(),
        "invalid(0)"
    );
    assert!(
        decode_exact::<AppDataUpdate>(&[0x00, 0x22, 0x03]).is_err(),
        "unknown op"
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = encode(&AppDataUpdate::remove(0x22)).unwrap();
    bytes.push(0);
    assert!(decode_exact::<AppDataUpdate>(&bytes).is_err());
}

#[test]
fn participant_with_role_zero_or_twice_is_rejected() {
    let zero = ParticipantListData {
        participants: vec![UserRolePair::new("mimi://a.example/u/x", 0)],
    };
    assert!(encode(&zero).unwrap_err().to_string().contains("role 0"));
    let twice = ParticipantListData {
        participants: vec![
            UserRolePair::new("mimi://a.example/u/x", 2),
            UserRolePair::new("mimi://a.example/u/x", 3),
        ],
    };
    assert!(encode(&twice).unwrap_err().to_string().contains("twice"));
}

#[test]
fn non_utf8_user_is_rejected() {
    let data = ParticipantListData {
        participants: vec![UserRolePair {
            user: vec![0xff, 0xfe].into(),
            role_index: 2,
        }],
    };
    let bytes = tls_codec::Serialize::tls_serialize_detached(&data).unwrap();
    let err = decode_exact::<ParticipantListData>(&bytes).unwrap_err();
    assert!(
        err.to_string()
            .contains("participants[0].user is not UTF-8"),
        "{err}"
    );
}

#[test]
fn list_update_to_role_zero_is_rejected() {
    let update = ParticipantListUpdate {
        changed_role_participants: vec![UserIndexRolePair {
            user_index: 0,
            role_index: 0,
        }],
        ..Default::default()
    };
    assert!(
        encode(&update)
            .unwrap_err()
            .to_string()
            .contains("removedIndices")
    );
}

#[test]
fn role_limits_must_be_ordered() {
    let mut role = RoleData::default();
    role.roles.push(Role {
        role_index: 2,
        role_name: b"x".to_vec().into(),
        role_description: vec![].into(),
        role_capabilities: vec![],
        minimum_participants_constraint: 5,
        maximum_participants_constraint: Some(4),
        minimum_active_participants_constraint: 0,
        maximum_active_participants_constraint: None,
        authorized_role_changes: vec![],
    });
    assert!(
        encode(&role)
            .unwrap_err()
            .to_string()
            .contains("below the minimum")
    );
}

#[test]
fn metadata_avatar_must_be_https() {
    let meta = RoomMetaData {
        room_avatar: Uri::new("http://insecure.example/a.png"),
        ..Default::default()
    };
    assert!(encode(&meta).unwrap_err().to_string().contains("https"));
}

#[test]
fn preauth_to_banned_is_rejected() {
    let mut data = PreAuthData::default();
    let role = Role {
        role_index: 1,
        role_name: b"banned".to_vec().into(),
        role_description: vec![].into(),
        role_capabilities: vec![],
        minimum_participants_constraint: 0,
        maximum_participants_constraint: None,
        minimum_active_participants_constraint: 0,
        maximum_active_participants_constraint: Some(0),
        authorized_role_changes: vec![],
    };
    data.preauthorized_entries.push(PreAuthRoleEntry {
        claimset: vec![],
        target_role: role,
    });
    assert!(encode(&data).unwrap_err().to_string().contains("banned"));
}

#[test]
fn policy_parent_rules() {
    let p = BaseRoomPolicy {
        parent_dependant: true.into(),
        ..Default::default()
    };
    assert!(
        encode(&p)
            .unwrap_err()
            .to_string()
            .contains("parent_room is empty")
    );
    let p = BaseRoomPolicy {
        parent_room: vec![Uri::new("mimi://a/r/1"), Uri::new("mimi://a/r/2")],
        ..Default::default()
    };
    assert!(
        encode(&p)
            .unwrap_err()
            .to_string()
            .contains("at most one parent")
    );
}

#[test]
fn non_minimal_length_encodings_are_rejected() {
    // An empty vector must be encoded as the single byte 0x00 (RFC 9420 §2.1.2).
    assert!(decode_exact::<ParticipantListData>(&[0x00]).is_ok());
    let err = decode_exact::<ParticipantListData>(&[0x40, 0x00]).unwrap_err();
    assert!(matches!(err, WireError::Codec { .. }), "{err}");
}

#[test]
fn a_huge_declared_length_is_an_error_not_an_allocation() {
    // 0xBFFFFFFF-ish 4-byte varint length with no data behind it.
    let bytes = [0xBF, 0xFF, 0xFF, 0xFF];
    assert!(decode_exact::<ParticipantListData>(&bytes).is_err());
    assert!(decode_exact::<AppDataDictionary>(&bytes).is_err());
}

// ---- properties ----

proptest! {
    #[test]
    fn participant_list_data_round_trips(v in participant_list_data()) { round_trip(&v) }
    #[test]
    fn participant_list_update_round_trips(v in participant_list_update()) { round_trip(&v) }
    #[test]
    fn room_metadata_round_trips(v in room_metadata()) { round_trip(&v) }
    #[test]
    fn role_data_round_trips(v in role_data()) { round_trip(&v) }
    #[test]
    fn preauth_data_round_trips(v in preauth_data()) { round_trip(&v) }
    #[test]
    fn base_room_policy_round_trips(v in base_room_policy()) { round_trip(&v) }
    #[test]
    fn app_data_dictionary_round_trips(v in app_data_dictionary()) { round_trip(&v) }
    #[test]
    fn app_data_update_round_trips(v in app_data_update()) { round_trip(&v) }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_exact::<ParticipantListData>(&bytes);
        let _ = decode_exact::<ParticipantListUpdate>(&bytes);
        let _ = decode_exact::<RoomMetaData>(&bytes);
        let _ = decode_exact::<RoleData>(&bytes);
        let _ = decode_exact::<PreAuthData>(&bytes);
        let _ = decode_exact::<BaseRoomPolicy>(&bytes);
        let _ = decode_exact::<AppDataDictionary>(&bytes);
        let _ = decode_exact::<AppDataUpdate>(&bytes);
    }

    /// Whatever decodes re-encodes to exactly the same bytes: the encoding is canonical.
    #[test]
    fn decoded_bytes_re_encode_identically(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(v) = decode_exact::<ParticipantListUpdate>(&bytes) {
            prop_assert_eq!(encode(&v).unwrap(), bytes.clone());
        }
        if let Ok(v) = decode_exact::<BaseRoomPolicy>(&bytes) {
            prop_assert_eq!(encode(&v).unwrap(), bytes.clone());
        }
        if let Ok(v) = decode_exact::<AppDataUpdate>(&bytes) {
            prop_assert_eq!(encode(&v).unwrap(), bytes.clone());
        }
    }

    /// Mutating one byte of a valid encoding never panics the decoder.
    #[test]
    fn mutated_encodings_never_panic(v in role_data(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = encode(&v).unwrap();
        if !bytes.is_empty() {
            let i = pos % bytes.len();
            bytes[i] = byte;
        }
        let _ = decode_exact::<RoleData>(&bytes);
    }
}
