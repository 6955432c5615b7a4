//! Real MLS objects for the codec tests, made once with openmls: a group on the hub, a commit
//! adding Bob with its Welcome, GroupInfo and ratchet tree, proposals of the next epoch, an
//! application message, key packages and a signer.

use std::sync::OnceLock;

use openmls::ciphersuite::hash_ref::ProposalRef;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;

use crate::mls::bare_member::BareMember;
use crate::mls::group_config::{CIPHERSUITE, leaf_capabilities};

use super::mls::{GroupInfoBytes, KeyPackageBytes, MlsMessage, RatchetTreeBytes, WelcomeBytes};

pub const ROOM: &str = "mimi://hub.example/r/clubhouse";
pub const GROUP: &str = "mimi://hub.example/g/clubhouse";
pub const ALICE: &str = "mimi://a.example/u/alice";
pub const BOB: &str = "mimi://b.example/u/bob";
pub const BOB_CLIENT: &str = "mimi://b.example/d/bob/phone";

/// Everything as bytes, so that it can be shared between test threads.
pub struct World {
    /// PublicMessage commit of epoch 0 adding Bob.
    pub commit: Vec<u8>,
    /// The Welcome for Bob, framed as an `MLSMessage`.
    pub welcome_message: Vec<u8>,
    /// GroupInfo of epoch 1 without the ratchet tree, framed as an `MLSMessage`.
    pub group_info_message: Vec<u8>,
    /// GroupInfo of another group's epoch 0, framed as an `MLSMessage`.
    pub other_group_info_message: Vec<u8>,
    /// `optional<Node> ratchet_tree<V>` of epoch 1.
    pub ratchet_tree: Vec<u8>,
    /// PublicMessage proposals of epoch 1 (Alice's and Bob's self-updates).
    pub proposals: Vec<Vec<u8>>,
    /// Their ProposalRefs.
    pub proposal_refs: Vec<Vec<u8>>,
    /// A PrivateMessage application message of epoch 1.
    pub application: Vec<u8>,
    /// Bare KeyPackages of fresh clients.
    pub key_packages: Vec<Vec<u8>>,
    /// Alice's signature key and credential.
    pub alice_public_key: Vec<u8>,
    pub alice_credential: Credential,
    pub alice_private_key: Vec<u8>,
}

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(build)
}

fn wire(m: &MlsMessageOut) -> Vec<u8> {
    m.tls_serialize_detached().expect("encode")
}

fn build() -> World {
    let mut alice = BareMember::new("mimi://a.example/d/alice/laptop");
    let mut bob = BareMember::new(BOB_CLIENT);
    alice.create_group(GROUP.as_bytes());

    let bob_kp = bob.key_package_struct();
    let (commit, welcome_message, group_info_message, ratchet_tree) = alice.add_exported(&[bob_kp]);
    bob.join(&welcome_message).expect("Bob joins");

    // Before the proposals: openmls refuses to send application data with proposals pending.
    let application = alice.encrypt(b"hello, room");
    let mut proposals = Vec::new();
    let mut proposal_refs = Vec::new();
    for member in [&mut alice, &mut bob] {
        let (provider, signer) = (&member.provider, &member.signer);
        let group = member.group.as_mut().expect("in the group");
        let (message, reference) = group
            .propose_self_update(provider, signer, LeafNodeParameters::default())
            .expect("propose");
        proposals.push(wire(&message));
        proposal_refs.push(reference.tls_serialize_detached().expect("ref"));
    }

    let key_packages = (0..3)
        .map(|i| {
            BareMember::new(&format!("mimi://b.example/d/bob/dev{i}"))
                .key_package_struct()
                .tls_serialize_detached()
                .expect("kp")
        })
        .collect();

    let mut carol = BareMember::new("mimi://c.example/d/carol/1");
    carol.create_group(b"mimi://hub.example/g/other");
    let other_group_info_message = {
        let BareMember {
            provider,
            signer,
            group,
            ..
        } = &mut carol;
        let group = group.as_mut().expect("Carol has a group");
        wire(
            &group
                .export_group_info(provider.crypto(), signer, false)
                .expect("group info"),
        )
    };

    World {
        commit,
        other_group_info_message,
        welcome_message,
        group_info_message,
        ratchet_tree,
        proposals,
        proposal_refs,
        application,
        key_packages,
        alice_public_key: alice.signer.public().to_vec(),
        alice_credential: alice.credential.credential.clone(),
        alice_private_key: alice
            .signer
            .tls_serialize_detached()
            .expect("signer encodes"),
    }
}

impl World {
    pub fn commit(&self) -> MlsMessage {
        MlsMessage::from_bytes(&self.commit).expect("commit")
    }

    pub fn welcome_message(&self) -> MlsMessage {
        MlsMessage::from_bytes(&self.welcome_message).expect("welcome")
    }

    pub fn welcome(&self) -> WelcomeBytes {
        self.welcome_message().welcome().expect("bare welcome")
    }

    pub fn group_info(&self) -> GroupInfoBytes {
        MlsMessage::from_bytes(&self.group_info_message)
            .expect("group info")
            .group_info()
            .expect("bare group info")
    }

    pub fn other_group_info(&self) -> GroupInfoBytes {
        MlsMessage::from_bytes(&self.other_group_info_message)
            .expect("group info")
            .group_info()
            .expect("bare group info")
    }

    pub fn ratchet_tree(&self) -> RatchetTreeBytes {
        RatchetTreeBytes::from_bytes(&self.ratchet_tree).expect("tree")
    }

    pub fn proposal(&self, i: usize) -> MlsMessage {
        MlsMessage::from_bytes(&self.proposals[i]).expect("proposal")
    }

    pub fn proposal_ref(&self, i: usize) -> ProposalRef {
        ProposalRef::tls_deserialize_exact(&self.proposal_refs[i]).expect("ref")
    }

    pub fn application(&self) -> MlsMessage {
        MlsMessage::from_bytes(&self.application).expect("application")
    }

    pub fn key_package(&self, i: usize) -> KeyPackageBytes {
        KeyPackageBytes::from_bytes(&self.key_packages[i]).expect("kp")
    }

    pub fn alice_signature_key(&self) -> SignaturePublicKey {
        SignaturePublicKey::from(self.alice_public_key.clone())
    }

    /// Alice's signer, rebuilt from its encoding.
    pub fn alice_signer(&self) -> openmls_basic_credential::SignatureKeyPair {
        openmls_basic_credential::SignatureKeyPair::tls_deserialize_exact(&self.alice_private_key)
            .expect("signer decodes")
    }

    pub fn capabilities(&self) -> Capabilities {
        leaf_capabilities()
    }

    pub fn suite(&self) -> Ciphersuite {
        CIPHERSUITE
    }
}

/// Encodes, decodes and re-encodes: the value survives and the bytes are stable.
pub fn round_trip<T>(value: &T) -> Vec<u8>
where
    T: crate::room::wire::WireStruct + PartialEq + std::fmt::Debug,
{
    let bytes = crate::room::wire::encode(value).expect("a valid value encodes");
    let back: T = crate::room::wire::decode_exact(&bytes).expect("its encoding decodes");
    assert_eq!(&back, value);
    assert_eq!(
        crate::room::wire::encode(&back).expect("re-encodes"),
        bytes,
        "re-encoding is byte-identical"
    );
    bytes
}

/// `opaque<V>` with a one-byte length, for hand-written expected encodings.
pub fn short_vl(bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() < 64, "one-byte varint lengths only");
    let mut out = vec![bytes.len() as u8];
    out.extend_from_slice(bytes);
    out
}

/// The RFC 9420 §2.1.2 varint of a vector length below 2^14.
pub fn varint(len: usize) -> Vec<u8> {
    match len {
        0..=63 => vec![len as u8],
        64..=16383 => vec![0x40 | (len >> 8) as u8, (len & 0xFF) as u8],
        _ => panic!("test lengths stay below 2^14"),
    }
}
