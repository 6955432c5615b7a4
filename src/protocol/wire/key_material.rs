//! `POST /keyMaterial/{targetUser}` bodies (protocol-06 §5.2).

use std::io::{Read, Write};

use openmls::prelude::{
    Capabilities, Credential, RequiredCapabilitiesExtension, SignaturePublicKey,
};
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use crate::room::wire::WireStruct;

use super::common::{
    CLIENT, IdentifierUri, PARTICIPANT, Protocol, ROOM, USER, check_optional_uri, check_protocol,
    check_uri,
};
use super::mls::{CipherSuite, KeyPackageBytes};

/// The `SignWithLabel` label of `key_material_request_signature`.
pub const KEY_MATERIAL_REQUEST_LABEL: &str = "KeyMaterialRequestTBS";

/// The request body. `roomId` is empty when the request is not made to add the target to a room.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct KeyMaterialRequest {
    pub protocol: Protocol,
    pub requesting_user: IdentifierUri,
    pub target_user: IdentifierUri,
    pub room_id: IdentifierUri,
    // select (protocol) { case mls10: ... }
    pub acceptable_ciphersuites: Vec<CipherSuite>,
    pub required_capabilities: RequiredCapabilitiesExtension,
    pub requester_signature_key: SignaturePublicKey,
    pub requester_credential: Credential,
    /// `SignWithLabel(requesterSignatureKey, "KeyMaterialRequestTBS", KeyMaterialRequestTBS)`
    pub key_material_request_signature: VLBytes,
}

/// What `key_material_request_signature` covers: the request without the signature.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct KeyMaterialRequestTbs {
    pub protocol: Protocol,
    pub requesting_user: IdentifierUri,
    pub target_user: IdentifierUri,
    pub room_id: IdentifierUri,
    pub acceptable_ciphersuites: Vec<CipherSuite>,
    pub required_capabilities: RequiredCapabilitiesExtension,
    pub requester_signature_key: SignaturePublicKey,
    pub requester_credential: Credential,
}

impl KeyMaterialRequestTbs {
    /// The request carrying `signature`.
    pub fn with_signature(self, signature: Vec<u8>) -> KeyMaterialRequest {
        KeyMaterialRequest {
            protocol: self.protocol,
            requesting_user: self.requesting_user,
            target_user: self.target_user,
            room_id: self.room_id,
            acceptable_ciphersuites: self.acceptable_ciphersuites,
            required_capabilities: self.required_capabilities,
            requester_signature_key: self.requester_signature_key,
            requester_credential: self.requester_credential,
            key_material_request_signature: signature.into(),
        }
    }
}

impl KeyMaterialRequest {
    /// The signed content.
    pub fn tbs(&self) -> KeyMaterialRequestTbs {
        KeyMaterialRequestTbs {
            protocol: self.protocol,
            requesting_user: self.requesting_user.clone(),
            target_user: self.target_user.clone(),
            room_id: self.room_id.clone(),
            acceptable_ciphersuites: self.acceptable_ciphersuites.clone(),
            required_capabilities: self.required_capabilities.clone(),
            requester_signature_key: self.requester_signature_key.clone(),
            requester_credential: self.requester_credential.clone(),
        }
    }

    /// The encoded `KeyMaterialRequestTBS`, the `content` of `SignWithLabel`.
    pub fn tbs_bytes(&self) -> Result<Vec<u8>, tls_codec::Error> {
        self.tbs().tls_serialize_detached()
    }
}

impl WireStruct for KeyMaterialRequest {
    const NAME: &'static str = "KeyMaterialRequest";

    fn check(&self) -> Result<(), String> {
        check_protocol(self.protocol)?;
        check_uri("requestingUser", &self.requesting_user, PARTICIPANT)?;
        check_uri("targetUser", &self.target_user, USER)?;
        check_optional_uri("roomId", &self.room_id, ROOM)?;
        if self.acceptable_ciphersuites.is_empty() {
            return Err("acceptableCiphersuites must not be empty (protocol-06 §5.2)".into());
        }
        if self.key_material_request_signature.as_slice().is_empty() {
            return Err("key_material_request_signature is empty".into());
        }
        Ok(())
    }
}

impl WireStruct for KeyMaterialRequestTbs {
    const NAME: &'static str = "KeyMaterialRequestTBS";

    fn check(&self) -> Result<(), String> {
        check_protocol(self.protocol)
    }
}

/// `KeyMaterialUserCode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum KeyMaterialUserCode {
    Success = 0,
    PartialSuccess = 1,
    IncompatibleProtocol = 2,
    NoCompatibleMaterial = 3,
    UserUnknown = 4,
    NoConsent = 5,
    NoConsentForThisRoom = 6,
    UserDeleted = 7,
}

/// `KeyMaterialClientCode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum KeyMaterialClientCode {
    Success = 0,
    KeyMaterialExhausted = 1,
    NothingCompatible = 2,
}

/// `clientStatus` together with its `select` arm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientStatus {
    /// A bare RFC 9420 `KeyPackage` (no `MLSMessage` header).
    Success(KeyPackageBytes),
    KeyMaterialExhausted,
    /// The client's capabilities, unless withheld for privacy.
    NothingCompatible(Option<Capabilities>),
}

impl ClientStatus {
    pub fn code(&self) -> KeyMaterialClientCode {
        match self {
            ClientStatus::Success(_) => KeyMaterialClientCode::Success,
            ClientStatus::KeyMaterialExhausted => KeyMaterialClientCode::KeyMaterialExhausted,
            ClientStatus::NothingCompatible(_) => KeyMaterialClientCode::NothingCompatible,
        }
    }
}

/// `struct { KeyMaterialClientCode clientStatus; IdentifierUri clientUri;
/// select (protocol) { case mls10: select (clientStatus) { ... } } } ClientKeyMaterial;`
///
/// The `select` follows `clientUri`, so the status and its arm are one Rust enum encoded around
/// the URI. `protocol` is the enclosing response's, which can only be `mls10`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientKeyMaterial {
    pub client_uri: IdentifierUri,
    pub status: ClientStatus,
}

impl Size for ClientKeyMaterial {
    fn tls_serialized_len(&self) -> usize {
        1 + self.client_uri.tls_serialized_len()
            + match &self.status {
                ClientStatus::Success(kp) => kp.tls_serialized_len(),
                ClientStatus::KeyMaterialExhausted => 0,
                ClientStatus::NothingCompatible(caps) => caps.tls_serialized_len(),
            }
    }
}

impl Serialize for ClientKeyMaterial {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let mut written = self.status.code().tls_serialize(writer)?;
        written += self.client_uri.tls_serialize(writer)?;
        written += match &self.status {
            ClientStatus::Success(kp) => kp.tls_serialize(writer)?,
            ClientStatus::KeyMaterialExhausted => 0,
            ClientStatus::NothingCompatible(caps) => caps.tls_serialize(writer)?,
        };
        Ok(written)
    }
}

impl Deserialize for ClientKeyMaterial {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let code = KeyMaterialClientCode::tls_deserialize(bytes)?;
        let client_uri = IdentifierUri::tls_deserialize(bytes)?;
        let status = match code {
            KeyMaterialClientCode::Success => {
                ClientStatus::Success(KeyPackageBytes::tls_deserialize(bytes)?)
            }
            KeyMaterialClientCode::KeyMaterialExhausted => ClientStatus::KeyMaterialExhausted,
            KeyMaterialClientCode::NothingCompatible => {
                ClientStatus::NothingCompatible(Option::<Capabilities>::tls_deserialize(bytes)?)
            }
        };
        Ok(ClientKeyMaterial { client_uri, status })
    }
}

/// The response body.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct KeyMaterialResponse {
    pub protocol: Protocol,
    pub user_status: KeyMaterialUserCode,
    pub user_uri: IdentifierUri,
    pub clients: Vec<ClientKeyMaterial>,
}

impl WireStruct for KeyMaterialResponse {
    const NAME: &'static str = "KeyMaterialResponse";

    fn check(&self) -> Result<(), String> {
        check_protocol(self.protocol)?;
        check_uri("userUri", &self.user_uri, USER)?;
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.clients.iter().enumerate() {
            check_uri(&format!("clients[{i}].clientUri"), &c.client_uri, CLIENT)?;
            if !seen.insert(c.client_uri.as_bytes()) {
                return Err(format!("clients[{i}] lists a client twice"));
            }
        }
        let successes = self
            .clients
            .iter()
            .filter(|c| matches!(c.status, ClientStatus::Success(_)))
            .count();
        match self.user_status {
            // "success indicates that key material was provided for every client"
            KeyMaterialUserCode::Success => {
                if self.clients.is_empty() || successes != self.clients.len() {
                    return Err(
                        "userStatus success needs key material for every listed client, \
                                and at least one client"
                            .into(),
                    );
                }
            }
            // "partialSuccess indicates that key material was provided for at least one client"
            KeyMaterialUserCode::PartialSuccess => {
                if successes == 0 {
                    return Err("userStatus partialSuccess needs at least one client with \
                                key material"
                        .into());
                }
            }
            // "the provider MAY populate the clients list" — without key material.
            KeyMaterialUserCode::NoCompatibleMaterial => {
                if successes != 0 {
                    return Err("userStatus noCompatibleMaterial cannot carry key material".into());
                }
            }
            // "For any other user code, the provider MUST NOT populate the clients list."
            _ => {
                if !self.clients.is_empty() {
                    return Err(format!(
                        "userStatus {:?} must come with an empty clients list",
                        self.user_status
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openmls::prelude::{Ciphersuite, CredentialType, ExtensionType, ProposalType};
    use openmls_rust_crypto::RustCrypto;
    use proptest::prelude::*;

    use super::super::common::{sign_with_label, verify_with_label};
    use super::super::fixtures::{ALICE, BOB, BOB_CLIENT, ROOM, round_trip, short_vl, world};
    use super::*;
    use crate::room::wire::{decode_exact, encode};

    fn signed_request(room: &str) -> KeyMaterialRequest {
        let w = world();
        let tbs = KeyMaterialRequestTbs {
            protocol: Protocol::Mls10,
            requesting_user: IdentifierUri::new(ALICE),
            target_user: IdentifierUri::new(BOB),
            room_id: IdentifierUri::new(room),
            acceptable_ciphersuites: vec![
                Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.into(),
                CipherSuite(0x0A0A),
            ],
            required_capabilities: RequiredCapabilitiesExtension::new(
                &[ExtensionType::AppDataDictionary],
                &[ProposalType::AppDataUpdate],
                &[CredentialType::Basic],
            ),
            requester_signature_key: w.alice_signature_key(),
            requester_credential: w.alice_credential.clone(),
        };
        let content = tbs.tls_serialize_detached().unwrap();
        let signature =
            sign_with_label(&w.alice_signer(), KEY_MATERIAL_REQUEST_LABEL, &content).unwrap();
        tbs.with_signature(signature)
    }

    #[test]
    fn a_signed_request_round_trips_and_verifies() {
        let w = world();
        let request = signed_request(ROOM);
        let bytes = round_trip(&request);
        let back: KeyMaterialRequest = decode_exact(&bytes).unwrap();
        verify_with_label(
            &RustCrypto::default(),
            w.suite().signature_algorithm(),
            back.requester_signature_key.as_slice(),
            KEY_MATERIAL_REQUEST_LABEL,
            &back.tbs_bytes().unwrap(),
            back.key_material_request_signature.as_slice(),
        )
        .expect("the signature covers the TBS");
        // The TBS is the request minus the trailing signature<V>.
        let tbs = back.tbs_bytes().unwrap();
        let sig_len = back.key_material_request_signature.tls_serialized_len();
        assert_eq!(&bytes[..bytes.len() - sig_len], &tbs[..]);
        // Known layout of the head: protocol, then three IdentifierUris.
        let head = [
            vec![1],
            short_vl(ALICE.as_bytes()),
            short_vl(BOB.as_bytes()),
            short_vl(ROOM.as_bytes()),
            // acceptableCiphersuites<V> = [0x0001, 0x0A0A]
            vec![4, 0x00, 0x01, 0x0A, 0x0A],
            // RequiredCapabilities: extension_types<V>, proposal_types<V>, credential_types<V>
            vec![2, 0x00, 0x06, 2, 0x00, 0x08, 2, 0x00, 0x01],
        ]
        .concat();
        assert_eq!(&bytes[..head.len()], &head[..]);
    }

    #[test]
    fn the_room_may_be_empty_outside_a_room() {
        round_trip(&signed_request(""));
    }

    #[test]
    fn request_checks() {
        let mut r = signed_request(ROOM);
        r.acceptable_ciphersuites.clear();
        assert!(
            encode(&r)
                .unwrap_err()
                .to_string()
                .contains("acceptableCiphersuites")
        );
        let mut r = signed_request(ROOM);
        r.target_user = IdentifierUri::new(ROOM);
        assert!(encode(&r).unwrap_err().to_string().contains("targetUser"));
        let mut r = signed_request(ROOM);
        r.room_id = IdentifierUri::new(ALICE);
        assert!(encode(&r).unwrap_err().to_string().contains("roomId"));
        let mut r = signed_request(ROOM);
        r.protocol = Protocol::Reserved;
        let bytes = r.tls_serialize_detached().unwrap();
        assert!(decode_exact::<KeyMaterialRequest>(&bytes).is_err());
    }

    #[test]
    fn an_empty_response_has_the_exact_wire_form() {
        let response = KeyMaterialResponse {
            protocol: Protocol::Mls10,
            user_status: KeyMaterialUserCode::UserUnknown,
            user_uri: IdentifierUri::new(BOB),
            clients: vec![],
        };
        let expected = [vec![1, 4], short_vl(BOB.as_bytes()), vec![0]].concat();
        assert_eq!(round_trip(&response), expected);
    }

    #[test]
    fn client_entries_put_the_select_after_the_uri() {
        let exhausted = ClientKeyMaterial {
            client_uri: IdentifierUri::new(BOB_CLIENT),
            status: ClientStatus::KeyMaterialExhausted,
        };
        let withheld = ClientKeyMaterial {
            client_uri: IdentifierUri::new("mimi://b.example/d/bob/tablet"),
            status: ClientStatus::NothingCompatible(None),
        };
        let uri = short_vl(BOB_CLIENT.as_bytes());
        assert_eq!(
            exhausted.tls_serialize_detached().unwrap(),
            [vec![1], uri.clone()].concat()
        );
        assert_eq!(
            withheld.tls_serialize_detached().unwrap(),
            [vec![2], short_vl(b"mimi://b.example/d/bob/tablet"), vec![0]].concat()
        );
        assert_eq!(exhausted.tls_serialized_len(), 1 + uri.len());
        let response = KeyMaterialResponse {
            protocol: Protocol::Mls10,
            user_status: KeyMaterialUserCode::NoCompatibleMaterial,
            user_uri: IdentifierUri::new(BOB),
            clients: vec![exhausted, withheld],
        };
        round_trip(&response);
    }

    #[test]
    fn a_response_with_real_key_packages_round_trips() {
        let w = world();
        let response = KeyMaterialResponse {
            protocol: Protocol::Mls10,
            user_status: KeyMaterialUserCode::PartialSuccess,
            user_uri: IdentifierUri::new(BOB),
            clients: vec![
                ClientKeyMaterial {
                    client_uri: IdentifierUri::new("mimi://b.example/d/bob/dev0"),
                    status: ClientStatus::Success(w.key_package(0)),
                },
                ClientKeyMaterial {
                    client_uri: IdentifierUri::new("mimi://b.example/d/bob/dev1"),
                    status: ClientStatus::Success(w.key_package(1)),
                },
                ClientKeyMaterial {
                    client_uri: IdentifierUri::new("mimi://b.example/d/bob/dev2"),
                    status: ClientStatus::NothingCompatible(Some(w.capabilities())),
                },
            ],
        };
        let bytes = round_trip(&response);
        let back: KeyMaterialResponse = decode_exact(&bytes).unwrap();
        let ClientStatus::Success(kp) = &back.clients[0].status else {
            panic!("success")
        };
        assert_eq!(kp.as_bytes(), &w.key_packages[0][..]);
        crate::mls::bare_member::parse_key_package(kp.as_bytes()).expect("a valid KeyPackage");
    }

    #[test]
    fn user_codes_constrain_the_client_list() {
        let w = world();
        let ok = |uri: &str| ClientKeyMaterial {
            client_uri: IdentifierUri::new(uri),
            status: ClientStatus::Success(w.key_package(0)),
        };
        let none = |uri: &str| ClientKeyMaterial {
            client_uri: IdentifierUri::new(uri),
            status: ClientStatus::KeyMaterialExhausted,
        };
        let response = |status, clients| KeyMaterialResponse {
            protocol: Protocol::Mls10,
            user_status: status,
            user_uri: IdentifierUri::new(BOB),
            clients,
        };
        let a = "mimi://b.example/d/a";
        let b = "mimi://b.example/d/b";
        use KeyMaterialUserCode::*;
        assert!(encode(&response(Success, vec![ok(a), ok(b)])).is_ok());
        assert!(encode(&response(Success, vec![ok(a), none(b)])).is_err());
        assert!(encode(&response(Success, vec![])).is_err());
        assert!(encode(&response(PartialSuccess, vec![none(a)])).is_err());
        assert!(encode(&response(NoCompatibleMaterial, vec![ok(a)])).is_err());
        assert!(encode(&response(NoConsent, vec![none(a)])).is_err());
        assert!(encode(&response(Success, vec![ok(a), ok(a)])).is_err());
        assert!(
            encode(&response(Success, vec![ok(BOB)])).is_err(),
            "a user URI is no client URI"
        );
    }

    #[test]
    fn unknown_codes_are_refused() {
        let bytes = [vec![1, 8], short_vl(BOB.as_bytes()), vec![0]].concat();
        assert!(decode_exact::<KeyMaterialResponse>(&bytes).is_err());
        let client = [vec![3], short_vl(BOB_CLIENT.as_bytes())].concat();
        assert!(ClientKeyMaterial::tls_deserialize_exact(&client).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_exact::<KeyMaterialRequest>(&bytes);
            let _ = decode_exact::<KeyMaterialRequestTbs>(&bytes);
            let _ = decode_exact::<KeyMaterialResponse>(&bytes);
        }

        #[test]
        fn mutated_responses_never_panic(pos in any::<usize>(), byte in any::<u8>()) {
            let w = world();
            let response = KeyMaterialResponse {
                protocol: Protocol::Mls10,
                user_status: KeyMaterialUserCode::Success,
                user_uri: IdentifierUri::new(BOB),
                clients: vec![ClientKeyMaterial {
                    client_uri: IdentifierUri::new(BOB_CLIENT),
                    status: ClientStatus::Success(w.key_package(2)),
                }],
            };
            let mut bytes = encode(&response).unwrap();
            let at = pos % bytes.len();
            bytes[at] = byte;
            let _ = decode_exact::<KeyMaterialResponse>(&bytes);
        }
    }
}
