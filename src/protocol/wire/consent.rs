//! `POST /requestConsent/{targetDomain}` and `POST /updateConsent/{requesterDomain}` bodies
//! (protocol-06 §5.7).

use std::io::{Read, Write};

use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize};

use crate::room::wire::{AppDataDictionary, WireStruct};

use super::common::{IdentifierUri, PARTICIPANT, ROOM, USER, check_uri};
use super::mls::KeyPackageBytes;

/// `enum { cancel(0), request(1), grant(2), revoke(3), (255) } ConsentOperation;`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum ConsentOperation {
    Cancel = 0,
    Request = 1,
    Grant = 2,
    Revoke = 3,
}

impl ConsentOperation {
    /// Whether the operation goes to `/requestConsent` (request, cancel) rather than
    /// `/updateConsent` (grant, revoke).
    pub fn is_request(self) -> bool {
        matches!(self, ConsentOperation::Cancel | ConsentOperation::Request)
    }
}

/// `consentOperation` together with its `select` arm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Consent {
    Cancel,
    Request,
    /// Key packages of the target user's clients (bare RFC 9420 `KeyPackage`s); may be empty.
    Grant {
        client_key_packages: Vec<KeyPackageBytes>,
    },
    /// Revocation or pre-emptive denial.
    Revoke,
}

impl Consent {
    pub fn operation(&self) -> ConsentOperation {
        match self {
            Consent::Cancel => ConsentOperation::Cancel,
            Consent::Request => ConsentOperation::Request,
            Consent::Grant { .. } => ConsentOperation::Grant,
            Consent::Revoke => ConsentOperation::Revoke,
        }
    }
}

/// `struct { ConsentOperation consentOperation; IdentifierUri requesterUri; IdentifierUri
/// targetUri; optional<RoomId> roomId; select (consentOperation) { case grant: KeyPackage
/// clientKeyPackages<V>; }; AppDataDictionary consent_extensions; } ConsentEntry;`
///
/// The draft never defines `RoomId`; it is read as an `IdentifierUri` holding the room URI
/// (the same bytes as `opaque<V>`), like `roomId` in `KeyMaterialRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentEntry {
    pub consent: Consent,
    pub requester_uri: IdentifierUri,
    pub target_uri: IdentifierUri,
    pub room_id: Option<IdentifierUri>,
    pub consent_extensions: AppDataDictionary,
}

impl ConsentEntry {
    pub fn operation(&self) -> ConsentOperation {
        self.consent.operation()
    }

    /// The `ConsentScope` this entry is about.
    pub fn scope(&self) -> ConsentScope {
        ConsentScope {
            requester_uri: self.requester_uri.clone(),
            target_uri: self.target_uri.clone(),
            room_id: self.room_id.clone(),
        }
    }
}

impl Size for ConsentEntry {
    fn tls_serialized_len(&self) -> usize {
        1 + self.requester_uri.tls_serialized_len()
            + self.target_uri.tls_serialized_len()
            + self.room_id.tls_serialized_len()
            + match &self.consent {
                Consent::Grant {
                    client_key_packages,
                } => client_key_packages.tls_serialized_len(),
                _ => 0,
            }
            + self.consent_extensions.tls_serialized_len()
    }
}

impl Serialize for ConsentEntry {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let mut written = self.operation().tls_serialize(writer)?;
        written += self.requester_uri.tls_serialize(writer)?;
        written += self.target_uri.tls_serialize(writer)?;
        written += self.room_id.tls_serialize(writer)?;
        if let Consent::Grant {
            client_key_packages,
        } = &self.consent
        {
            written += client_key_packages.tls_serialize(writer)?;
        }
        written += self.consent_extensions.tls_serialize(writer)?;
        Ok(written)
    }
}

impl Deserialize for ConsentEntry {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let operation = ConsentOperation::tls_deserialize(bytes)?;
        let requester_uri = IdentifierUri::tls_deserialize(bytes)?;
        let target_uri = IdentifierUri::tls_deserialize(bytes)?;
        let room_id = Option::<IdentifierUri>::tls_deserialize(bytes)?;
        let consent = match operation {
            ConsentOperation::Cancel => Consent::Cancel,
            ConsentOperation::Request => Consent::Request,
            ConsentOperation::Grant => Consent::Grant {
                client_key_packages: Vec::<KeyPackageBytes>::tls_deserialize(bytes)?,
            },
            ConsentOperation::Revoke => Consent::Revoke,
        };
        let consent_extensions = AppDataDictionary::tls_deserialize(bytes)?;
        Ok(ConsentEntry {
            consent,
            requester_uri,
            target_uri,
            room_id,
            consent_extensions,
        })
    }
}

impl WireStruct for ConsentEntry {
    const NAME: &'static str = "ConsentEntry";

    fn check(&self) -> Result<(), String> {
        check_uri("requesterUri", &self.requester_uri, PARTICIPANT)?;
        check_uri("targetUri", &self.target_uri, USER)?;
        if let Some(room) = &self.room_id {
            check_uri("roomId", room, ROOM)?;
        }
        self.consent_extensions
            .check()
            .map_err(|e| format!("consent_extensions: {e}"))
    }
}

/// `struct { IdentifierUri requesterUri; IdentifierUri targetUri; optional<RoomId> roomId; }
/// ConsentScope;`
#[derive(Clone, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ConsentScope {
    pub requester_uri: IdentifierUri,
    pub target_uri: IdentifierUri,
    pub room_id: Option<IdentifierUri>,
}

impl WireStruct for ConsentScope {
    const NAME: &'static str = "ConsentScope";

    fn check(&self) -> Result<(), String> {
        check_uri("requesterUri", &self.requester_uri, PARTICIPANT)?;
        check_uri("targetUri", &self.target_uri, USER)?;
        if let Some(room) = &self.room_id {
            check_uri("roomId", room, ROOM)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::fixtures::{ALICE, BOB, ROOM, round_trip, short_vl, varint, world};
    use super::*;
    use crate::room::wire::{ComponentData, decode_exact, encode};

    fn entry(consent: Consent, room: Option<&str>) -> ConsentEntry {
        ConsentEntry {
            consent,
            requester_uri: IdentifierUri::new(ALICE),
            target_uri: IdentifierUri::new(BOB),
            room_id: room.map(IdentifierUri::new),
            consent_extensions: AppDataDictionary::default(),
        }
    }

    #[test]
    fn a_request_has_the_exact_wire_form() {
        let bytes = round_trip(&entry(Consent::Request, None));
        let expected = [
            vec![1],
            short_vl(ALICE.as_bytes()),
            short_vl(BOB.as_bytes()),
            vec![0], // roomId absent
            vec![0], // consent_extensions: empty component_data<V>
        ]
        .concat();
        assert_eq!(bytes, expected);
        let cancel = round_trip(&entry(Consent::Cancel, Some(ROOM)));
        let expected = [
            vec![0],
            short_vl(ALICE.as_bytes()),
            short_vl(BOB.as_bytes()),
            vec![1],
            short_vl(ROOM.as_bytes()),
            vec![0],
        ]
        .concat();
        assert_eq!(cancel, expected);
    }

    #[test]
    fn a_grant_carries_key_packages_before_the_extensions() {
        let w = world();
        let mut grant = entry(
            Consent::Grant {
                client_key_packages: vec![w.key_package(0), w.key_package(1)],
            },
            Some(ROOM),
        );
        grant.consent_extensions.set(0x8001, vec![0xCA, 0xFE]);
        let bytes = round_trip(&grant);
        assert_eq!(bytes[0], 2);
        // clientKeyPackages<V> (two bare KeyPackages), then the dictionary with one component.
        let kps = [w.key_packages[0].clone(), w.key_packages[1].clone()].concat();
        let dict = [5, 0x80, 0x01, 2, 0xCA, 0xFE];
        let tail = [varint(kps.len()), kps, dict.to_vec()].concat();
        assert_eq!(&bytes[bytes.len() - tail.len()..], &tail[..]);
        let empty_grant = entry(
            Consent::Grant {
                client_key_packages: vec![],
            },
            None,
        );
        let bytes = round_trip(&empty_grant);
        assert_eq!(
            &bytes[bytes.len() - 3..],
            &[0, 0, 0],
            "no room, no key packages, no extensions"
        );
        assert_eq!(empty_grant.operation(), ConsentOperation::Grant);
        assert!(!empty_grant.operation().is_request());
        round_trip(&entry(Consent::Revoke, None));
        round_trip(&entry(Consent::Request, None).scope());
    }

    #[test]
    fn consent_checks() {
        let mut e = entry(Consent::Request, Some(ALICE));
        assert!(encode(&e).unwrap_err().to_string().contains("roomId"));
        e.room_id = None;
        e.target_uri = IdentifierUri::new("mimi://b.example/d/bob/phone");
        assert!(encode(&e).unwrap_err().to_string().contains("targetUri"));
        let mut e = entry(Consent::Request, None);
        e.consent_extensions.component_data = vec![
            ComponentData {
                component_id: 2,
                data: vec![].into(),
            },
            ComponentData {
                component_id: 1,
                data: vec![].into(),
            },
        ];
        assert!(
            encode(&e)
                .unwrap_err()
                .to_string()
                .contains("consent_extensions")
        );
        // An unknown operation and a bad presence byte.
        let mut bytes = encode(&entry(Consent::Request, None)).unwrap();
        bytes[0] = 4;
        assert!(decode_exact::<ConsentEntry>(&bytes).is_err());
        let mut bytes = encode(&entry(Consent::Request, None)).unwrap();
        let presence = bytes.len() - 2;
        bytes[presence] = 2;
        assert!(decode_exact::<ConsentEntry>(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn entries_round_trip(
            op in 0u8..4,
            kps in proptest::collection::vec(0usize..3, 0..3),
            room in proptest::option::of("[a-z0-9]{1,12}"),
            ext in proptest::collection::btree_map(any::<u16>(), proptest::collection::vec(any::<u8>(), 0..16), 0..4),
        ) {
            let w = world();
            let consent = match op {
                0 => Consent::Cancel,
                1 => Consent::Request,
                2 => Consent::Grant { client_key_packages: kps.iter().map(|&i| w.key_package(i)).collect() },
                _ => Consent::Revoke,
            };
            let room = room.map(|r| format!("mimi://hub.example/r/{r}"));
            let mut e = entry(consent, room.as_deref());
            for (id, data) in ext {
                e.consent_extensions.set(id, data);
            }
            round_trip(&e);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_exact::<ConsentEntry>(&bytes);
            let _ = decode_exact::<ConsentScope>(&bytes);
        }
    }
}
