//! `POST /groupInfo/{roomId}` bodies (protocol-06 §5.6).

use openmls::prelude::{
    Ciphersuite, ContentType, Credential, HpkeCiphertext, OpenMlsCrypto, SignaturePublicKey,
};
use tls_codec::{Serialize, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use crate::room::wire::{WireStruct, decode_exact, encode};

use super::common::{
    CryptoFailure, Protocol, ROOM, check_mimi, check_protocol, decrypt_with_label,
    encrypt_with_label,
};
use super::mls::{CipherSuite, ExternalSender, GroupInfoBytes, HpkePublicKey, MlsMessage};
use super::ratchet_tree_options::RatchetTreeOption;
use super::update::check_public;

/// The `SignWithLabel` label of `GroupInfoRequest.signature`.
pub const GROUP_INFO_REQUEST_LABEL: &str = "GroupInfoRequestTBS";
/// The `SignWithLabel` label of `GroupInfoResponse.signature`.
pub const GROUP_INFO_RESPONSE_LABEL: &str = "GroupInfoResponseTBS";
/// The `EncryptWithLabel` label of `encrypted_groupinfo_and_tree`.
pub const GROUP_INFO_ENCRYPTION_LABEL: &str = "GroupInfo and ratchet_tree encryption";

/// The request body.
///
/// `joiningCode` is `opaque<V>` (empty when there is none) here and in the signed
/// [`GroupInfoRequestTbs`]: protocol-06 §5.6 writes `optional opaque joiningCode<V>` in the TBS
/// only, but every other signed MIMI and MLS structure signs the message minus its signature,
/// and the request on the wire has no presence byte.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoRequest {
    pub protocol: Protocol,
    // select (protocol) { case mls10: ... }
    /// Only names the algorithms that sign the request and the response.
    pub cipher_suite: CipherSuite,
    pub requesting_signature_key: SignaturePublicKey,
    pub requesting_credential: Credential,
    /// The key `encrypted_groupinfo_and_tree` is encrypted to.
    pub group_info_public_key: HpkePublicKey,
    pub joining_code: VLBytes,
    /// `SignWithLabel(requestingSignatureKey, "GroupInfoRequestTBS", GroupInfoRequestTBS)`
    pub signature: VLBytes,
}

/// What `GroupInfoRequest.signature` covers: the request without the signature.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoRequestTbs {
    pub protocol: Protocol,
    pub cipher_suite: CipherSuite,
    pub requesting_signature_key: SignaturePublicKey,
    pub requesting_credential: Credential,
    pub group_info_public_key: HpkePublicKey,
    pub joining_code: VLBytes,
}

impl GroupInfoRequestTbs {
    pub fn with_signature(self, signature: Vec<u8>) -> GroupInfoRequest {
        GroupInfoRequest {
            protocol: self.protocol,
            cipher_suite: self.cipher_suite,
            requesting_signature_key: self.requesting_signature_key,
            requesting_credential: self.requesting_credential,
            group_info_public_key: self.group_info_public_key,
            joining_code: self.joining_code,
            signature: signature.into(),
        }
    }
}

impl GroupInfoRequest {
    pub fn tbs(&self) -> GroupInfoRequestTbs {
        GroupInfoRequestTbs {
            protocol: self.protocol,
            cipher_suite: self.cipher_suite,
            requesting_signature_key: self.requesting_signature_key.clone(),
            requesting_credential: self.requesting_credential.clone(),
            group_info_public_key: self.group_info_public_key.clone(),
            joining_code: self.joining_code.clone(),
        }
    }

    /// The encoded `GroupInfoRequestTBS`, the `content` of `SignWithLabel`.
    pub fn tbs_bytes(&self) -> Result<Vec<u8>, tls_codec::Error> {
        self.tbs().tls_serialize_detached()
    }

    /// The joining code, when one was given.
    pub fn joining_code(&self) -> Option<&[u8]> {
        Some(self.joining_code.as_slice()).filter(|c| !c.is_empty())
    }
}

impl WireStruct for GroupInfoRequest {
    const NAME: &'static str = "GroupInfoRequest";

    fn check(&self) -> Result<(), String> {
        check_protocol(self.protocol)?;
        if self.group_info_public_key.as_slice().is_empty() {
            return Err("groupInfoPublicKey is empty".into());
        }
        if self.signature.as_slice().is_empty() {
            return Err("signature is empty".into());
        }
        Ok(())
    }
}

impl WireStruct for GroupInfoRequestTbs {
    const NAME: &'static str = "GroupInfoRequestTBS";

    fn check(&self) -> Result<(), String> {
        check_protocol(self.protocol)
    }
}

/// `enum { reserved(0), success(1), notAuthorized(2), noSuchRoom(3), (255) } GroupInfoCode;`
///
/// Unlike every other MIMI status enum, success is 1 here (protocol-06 §5.6); it is kept as the
/// draft writes it. `reserved(0)` is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum GroupInfoCode {
    Success = 1,
    NotAuthorized = 2,
    NoSuchRoom = 3,
}

/// `struct { MLSMessage proposal; uint64 hub_accepted_time; } PendingProposal;`
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct PendingProposal {
    pub proposal: MlsMessage,
    pub hub_accepted_time: u64,
}

/// `struct { GroupInfo groupInfo; RatchetTreeOption ratchetTreeOption; PendingProposal
/// pending_proposals<V>; } GroupInfoRatchetTreeTBE;` — the plaintext of
/// `encrypted_groupinfo_and_tree`.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoRatchetTreeTbe {
    /// A bare RFC 9420 `GroupInfo`, meant to be without an embedded `ratchet_tree`.
    pub group_info: GroupInfoBytes,
    pub ratchet_tree_option: RatchetTreeOption,
    /// The valid proposals the hub accepted in the current epoch; the joiner commits them.
    pub pending_proposals: Vec<PendingProposal>,
}

impl GroupInfoRatchetTreeTbe {
    /// `EncryptWithLabel(groupInfoPublicKey, "GroupInfo and ratchet_tree encryption", room_id,
    /// group_info_ratchet_tree_tbe)`.
    pub fn seal(
        &self,
        crypto: &impl OpenMlsCrypto,
        suite: Ciphersuite,
        group_info_public_key: &[u8],
        room_id: &[u8],
    ) -> Result<HpkeCiphertext, CryptoFailure> {
        let plaintext = encode(self)?;
        encrypt_with_label(
            crypto,
            suite,
            group_info_public_key,
            GROUP_INFO_ENCRYPTION_LABEL,
            room_id,
            &plaintext,
        )
    }

    /// Decrypts and decodes `encrypted_groupinfo_and_tree`.
    pub fn open(
        crypto: &impl OpenMlsCrypto,
        suite: Ciphersuite,
        group_info_private_key: &[u8],
        room_id: &[u8],
        ciphertext: &HpkeCiphertext,
    ) -> Result<Self, CryptoFailure> {
        let plaintext = decrypt_with_label(
            crypto,
            suite,
            group_info_private_key,
            GROUP_INFO_ENCRYPTION_LABEL,
            room_id,
            ciphertext,
        )?;
        Ok(decode_exact(&plaintext)?)
    }
}

impl WireStruct for GroupInfoRatchetTreeTbe {
    const NAME: &'static str = "GroupInfoRatchetTreeTBE";

    fn check(&self) -> Result<(), String> {
        self.ratchet_tree_option.check("ratchetTreeOption")?;
        let group_info = self
            .group_info
            .parse()
            .map_err(|e| format!("groupInfo: {e}"))?;
        for (i, p) in self.pending_proposals.iter().enumerate() {
            let name = format!("pending_proposals[{i}].proposal");
            check_public(&name, &p.proposal, ContentType::Proposal)?;
            if p.proposal.group_id() != Some(group_info.group_id().as_slice()) {
                return Err(format!("{name} belongs to another group"));
            }
            if p.proposal.epoch() != Some(group_info.epoch().as_u64()) {
                return Err(format!(
                    "{name} is for epoch {:?}, the GroupInfo for epoch {}",
                    p.proposal.epoch(),
                    group_info.epoch().as_u64()
                ));
            }
        }
        Ok(())
    }
}

/// The `case success:` arm of a [`GroupInfoResponse`] (with `protocol` = `mls10`).
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoSuccess {
    pub cipher_suite: CipherSuite,
    pub hub_sender: ExternalSender,
    pub encrypted_groupinfo_and_tree: HpkeCiphertext,
    /// `SignWithLabel(hub_sender.signature_key, "GroupInfoResponseTBS", GroupInfoResponseTBS)`
    pub signature: VLBytes,
}

/// `status` together with its `select` arm (`default: struct{}`).
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum GroupInfoStatus {
    #[tls_codec(discriminant = 1)]
    Success(GroupInfoSuccess),
    #[tls_codec(discriminant = 2)]
    NotAuthorized,
    #[tls_codec(discriminant = 3)]
    NoSuchRoom,
}

impl GroupInfoStatus {
    pub fn code(&self) -> GroupInfoCode {
        match self {
            GroupInfoStatus::Success(_) => GroupInfoCode::Success,
            GroupInfoStatus::NotAuthorized => GroupInfoCode::NotAuthorized,
            GroupInfoStatus::NoSuchRoom => GroupInfoCode::NoSuchRoom,
        }
    }
}

/// `struct { Protocol version; opaque room_id<V>; GroupInfoCode status; select (status) {...} }
/// GroupInfoResponse;`
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoResponse {
    pub version: Protocol,
    /// The room URI; also the `context` of the encryption.
    pub room_id: VLBytes,
    pub status: GroupInfoStatus,
}

/// What `GroupInfoResponse.signature` covers.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupInfoResponseTbs {
    pub version: Protocol,
    pub room_id: VLBytes,
    pub status: GroupInfoCode,
    pub cipher_suite: CipherSuite,
    pub hub_sender: ExternalSender,
    pub encrypted_groupinfo_and_tree: HpkeCiphertext,
}

impl GroupInfoResponseTbs {
    pub fn with_signature(self, signature: Vec<u8>) -> GroupInfoResponse {
        GroupInfoResponse {
            version: self.version,
            room_id: self.room_id,
            status: GroupInfoStatus::Success(GroupInfoSuccess {
                cipher_suite: self.cipher_suite,
                hub_sender: self.hub_sender,
                encrypted_groupinfo_and_tree: self.encrypted_groupinfo_and_tree,
                signature: signature.into(),
            }),
        }
    }
}

impl GroupInfoResponse {
    /// The signed content of a successful response.
    pub fn tbs(&self) -> Option<GroupInfoResponseTbs> {
        match &self.status {
            GroupInfoStatus::Success(s) => Some(GroupInfoResponseTbs {
                version: self.version,
                room_id: self.room_id.clone(),
                status: GroupInfoCode::Success,
                cipher_suite: s.cipher_suite,
                hub_sender: s.hub_sender.clone(),
                encrypted_groupinfo_and_tree: s.encrypted_groupinfo_and_tree.clone(),
            }),
            _ => None,
        }
    }

    /// The encoded `GroupInfoResponseTBS` of a successful response.
    pub fn tbs_bytes(&self) -> Option<Result<Vec<u8>, tls_codec::Error>> {
        self.tbs().map(|t| t.tls_serialize_detached())
    }
}

impl WireStruct for GroupInfoResponse {
    const NAME: &'static str = "GroupInfoResponse";

    fn check(&self) -> Result<(), String> {
        check_protocol(self.version)?;
        check_mimi("room_id", self.room_id.as_slice(), ROOM)?;
        if let GroupInfoStatus::Success(s) = &self.status
            && s.signature.as_slice().is_empty()
        {
            return Err("signature is empty".into());
        }
        Ok(())
    }
}

impl WireStruct for GroupInfoResponseTbs {
    const NAME: &'static str = "GroupInfoResponseTBS";

    fn check(&self) -> Result<(), String> {
        check_protocol(self.version)?;
        check_mimi("room_id", self.room_id.as_slice(), ROOM)?;
        if self.status != GroupInfoCode::Success {
            return Err("only a successful response is signed".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openmls::prelude::BasicCredential;
    use openmls_rust_crypto::RustCrypto;
    use proptest::prelude::*;

    use super::super::common::{sign_with_label, verify_with_label};
    use super::super::fixtures::{ROOM, round_trip, short_vl, world};
    use super::*;

    fn hpke_keys() -> openmls::prelude::HpkeKeyPair {
        RustCrypto::default()
            .derive_hpke_keypair(world().suite().hpke_config(), &[42; 32])
            .unwrap()
    }

    fn request(joining_code: &[u8]) -> GroupInfoRequest {
        let w = world();
        let tbs = GroupInfoRequestTbs {
            protocol: Protocol::Mls10,
            cipher_suite: w.suite().into(),
            requesting_signature_key: w.alice_signature_key(),
            requesting_credential: w.alice_credential.clone(),
            group_info_public_key: hpke_keys().public.into(),
            joining_code: joining_code.to_vec().into(),
        };
        let content = tbs.tls_serialize_detached().unwrap();
        let sig = sign_with_label(&w.alice_signer(), GROUP_INFO_REQUEST_LABEL, &content).unwrap();
        tbs.with_signature(sig)
    }

    #[test]
    fn a_signed_request_round_trips_and_verifies() {
        let w = world();
        for code in [&b""[..], b"join-code-123"] {
            let r = request(code);
            let bytes = round_trip(&r);
            let back: GroupInfoRequest = decode_exact(&bytes).unwrap();
            assert_eq!(back.joining_code(), Some(code).filter(|c| !c.is_empty()));
            verify_with_label(
                &RustCrypto::default(),
                w.suite().signature_algorithm(),
                back.requesting_signature_key.as_slice(),
                GROUP_INFO_REQUEST_LABEL,
                &back.tbs_bytes().unwrap(),
                back.signature.as_slice(),
            )
            .expect("verifies");
            // The TBS is the request minus its signature; no presence byte before the code.
            let tbs = back.tbs_bytes().unwrap();
            assert_eq!(&bytes[..tbs.len()], &tbs[..]);
            assert_eq!(&tbs[tbs.len() - code.len() - 1..], &short_vl(code)[..]);
            assert_eq!(&bytes[..4], &[1, 0x00, 0x01, 32]);
        }
    }

    fn tbe() -> GroupInfoRatchetTreeTbe {
        let w = world();
        GroupInfoRatchetTreeTbe {
            group_info: w.group_info(),
            ratchet_tree_option: RatchetTreeOption::Full {
                ratchet_tree: w.ratchet_tree(),
            },
            pending_proposals: vec![
                PendingProposal {
                    proposal: w.proposal(0),
                    hub_accepted_time: 10,
                },
                PendingProposal {
                    proposal: w.proposal(1),
                    hub_accepted_time: 11,
                },
            ],
        }
    }

    fn hub() -> ExternalSender {
        ExternalSender {
            signature_key: world().alice_signature_key(),
            credential: BasicCredential::new(b"mimi://hub.example".to_vec()).into(),
        }
    }

    #[test]
    fn the_encrypted_payload_round_trips_through_hpke() {
        let w = world();
        let plain = tbe();
        let bytes = round_trip(&plain);
        assert_eq!(
            &bytes[..w.group_info().as_bytes().len()],
            w.group_info().as_bytes()
        );
        let keys = hpke_keys();
        let crypto = RustCrypto::default();
        let ct = plain
            .seal(&crypto, w.suite(), &keys.public, ROOM.as_bytes())
            .unwrap();
        let opened =
            GroupInfoRatchetTreeTbe::open(&crypto, w.suite(), &keys.private, ROOM.as_bytes(), &ct)
                .unwrap();
        assert_eq!(opened, plain);
        assert!(
            GroupInfoRatchetTreeTbe::open(&crypto, w.suite(), &keys.private, b"other", &ct)
                .is_err(),
            "the room id is the encryption context"
        );
    }

    #[test]
    fn pending_proposals_must_be_proposals_of_the_group_info_epoch() {
        let w = world();
        let mut bad = tbe();
        bad.pending_proposals.push(PendingProposal {
            proposal: w.commit(),
            hub_accepted_time: 0,
        });
        assert!(
            encode(&bad)
                .unwrap_err()
                .to_string()
                .contains("pending_proposals[2]")
        );
    }

    #[test]
    fn a_signed_success_response_round_trips_and_verifies() {
        let w = world();
        let keys = hpke_keys();
        let crypto = RustCrypto::default();
        let tbs = GroupInfoResponseTbs {
            version: Protocol::Mls10,
            room_id: ROOM.as_bytes().to_vec().into(),
            status: GroupInfoCode::Success,
            cipher_suite: w.suite().into(),
            hub_sender: hub(),
            encrypted_groupinfo_and_tree: tbe()
                .seal(&crypto, w.suite(), &keys.public, ROOM.as_bytes())
                .unwrap(),
        };
        let content = encode(&tbs).unwrap();
        let sig = sign_with_label(&w.alice_signer(), GROUP_INFO_RESPONSE_LABEL, &content).unwrap();
        let response = tbs.clone().with_signature(sig);
        let bytes = round_trip(&response);
        // version, room_id<V>, status = success(1), then the TBS fields, then the signature.
        assert_eq!(
            &bytes[..2 + ROOM.len() + 1],
            &[vec![1], short_vl(ROOM.as_bytes()), vec![1]].concat()[..]
        );
        assert_eq!(&bytes[..content.len()], &content[..]);
        let back: GroupInfoResponse = decode_exact(&bytes).unwrap();
        let GroupInfoStatus::Success(s) = &back.status else {
            panic!("success")
        };
        verify_with_label(
            &crypto,
            w.suite().signature_algorithm(),
            s.hub_sender.signature_key.as_slice(),
            GROUP_INFO_RESPONSE_LABEL,
            &back.tbs_bytes().unwrap().unwrap(),
            s.signature.as_slice(),
        )
        .expect("verifies");
        let opened = GroupInfoRatchetTreeTbe::open(
            &crypto,
            w.suite(),
            &keys.private,
            back.room_id.as_slice(),
            &s.encrypted_groupinfo_and_tree,
        )
        .unwrap();
        assert_eq!(opened, tbe());
    }

    #[test]
    fn failures_have_the_exact_wire_form() {
        let denied = GroupInfoResponse {
            version: Protocol::Mls10,
            room_id: ROOM.as_bytes().to_vec().into(),
            status: GroupInfoStatus::NotAuthorized,
        };
        let expected = [vec![1], short_vl(ROOM.as_bytes()), vec![2]].concat();
        assert_eq!(round_trip(&denied), expected);
        assert!(denied.tbs().is_none());
        let mut missing = expected.clone();
        *missing.last_mut().unwrap() = 3;
        assert_eq!(
            decode_exact::<GroupInfoResponse>(&missing).unwrap().status,
            GroupInfoStatus::NoSuchRoom
        );
        for code in [0u8, 4] {
            *missing.last_mut().unwrap() = code;
            assert!(
                decode_exact::<GroupInfoResponse>(&missing).is_err(),
                "code {code}"
            );
        }
        let not_a_room = GroupInfoResponse {
            room_id: b"mimi://hub.example/u/x".to_vec().into(),
            ..denied
        };
        assert!(encode(&not_a_room).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_exact::<GroupInfoRequest>(&bytes);
            let _ = decode_exact::<GroupInfoRequestTbs>(&bytes);
            let _ = decode_exact::<GroupInfoResponse>(&bytes);
            let _ = decode_exact::<GroupInfoResponseTbs>(&bytes);
            let _ = decode_exact::<GroupInfoRatchetTreeTbe>(&bytes);
        }

        #[test]
        fn mutated_payloads_never_panic(pos in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = encode(&tbe()).unwrap();
            let at = pos % bytes.len();
            bytes[at] = byte;
            let _ = decode_exact::<GroupInfoRatchetTreeTbe>(&bytes);
        }
    }
}
