//! Protocol test vectors: every request and response body of draft-ietf-mimi-protocol-06 §5,
//! encoded by this daemon's codecs and described in JSON, for other implementations to check
//! their decoders and encoders against (`mimi-bridge test-vectors`, folder `test-vectors/`).
//!
//! The MLS objects inside the bodies (a commit adding a client with its Welcome, GroupInfo and
//! ratchet tree, proposals, an application message, key packages, a signature key pair) are
//! made once with openmls and kept as *inputs* (`inputs.json`): openmls draws fresh randomness
//! for them. Everything else is a function of the inputs (Ed25519 signatures are
//! deterministic), so the vectors regenerate byte for byte.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::wire::{self, *};
use crate::mls::bare_member::BareMember;
use crate::mls::group_config::{CIPHERSUITE, required_capabilities};
use crate::room::wire::AppDataDictionary;

pub const ROOM: &str = "mimi://hub.example/r/clubhouse";
pub const GROUP: &str = "mimi://hub.example/g/clubhouse";
pub const ALICE: &str = "mimi://a.example/u/alice";
pub const ALICE_CLIENT: &str = "mimi://a.example/d/alice/laptop";
pub const BOB: &str = "mimi://b.example/u/bob";
pub const BOB_CLIENT: &str = "mimi://b.example/d/bob/phone";

/// The MLS objects the vectors are built from, hex-encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// MLSMessage (PublicMessage) of Alice's commit at epoch 0 adding Bob's client.
    pub commit: String,
    /// MLSMessage carrying the Welcome for Bob.
    pub welcome: String,
    /// MLSMessage carrying the GroupInfo of epoch 1 (without the ratchet tree).
    pub group_info: String,
    /// `optional<Node> ratchet_tree<V>` of epoch 1.
    pub ratchet_tree: String,
    /// MLSMessages (PublicMessage) of Alice's and Bob's self-update proposals at epoch 1.
    pub proposals: Vec<String>,
    /// MLSMessage (PrivateMessage) of an application message of Alice at epoch 1.
    pub application: String,
    /// KeyPackages (bare, no MLSMessage header) of two more clients of Bob.
    pub key_packages: Vec<String>,
    /// Alice's client's signature key pair (openmls' TLS encoding: private, public, scheme).
    pub alice_signature_key_pair: String,
    /// Alice's client's basic credential.
    pub alice_credential: String,
    /// The X25519 HPKE key pair of a GroupInfo request (`groupInfoPublicKey` and its private
    /// key, for implementers to open the response's ciphertext).
    pub group_info_public_key: String,
    pub group_info_private_key: String,
    /// `EncryptWithLabel(groupInfoPublicKey, "GroupInfo and ratchet_tree encryption", roomId,
    /// GroupInfoRatchetTreeTBE)` of the epoch-1 GroupInfo with its ratchet tree in full and no
    /// pending proposals: an `HPKECiphertext` (HPKE draws fresh randomness, so it is an input).
    pub group_info_ciphertext: String,
}

/// One vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vector {
    /// Unique name.
    pub name: String,
    /// protocol-06 section.
    pub section: String,
    /// The body's structure as the draft names it.
    pub structure: String,
    /// The field values, for people.
    pub description: Value,
    /// The body, hex.
    pub encoded: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("inputs: {0}")]
    Inputs(String),
    #[error("{name}: {reason}")]
    Build { name: &'static str, reason: String },
}

impl Inputs {
    /// Fresh MLS objects, made with openmls.
    pub fn fresh() -> Inputs {
        let mut alice = BareMember::new(ALICE_CLIENT);
        let mut bob = BareMember::new(BOB_CLIENT);
        alice.create_group(GROUP.as_bytes());
        let bob_kp = bob.key_package_struct();
        let wire = |m: &MlsMessageOut| hex::encode(m.tls_serialize_detached().expect("encode"));
        let (commit, welcome, group_info, tree) = alice.add_exported(&[bob_kp]);
        let (commit, welcome, group_info, tree) = (
            hex::encode(commit),
            hex::encode(welcome),
            hex::encode(group_info),
            hex::encode(tree),
        );
        bob.join(&hex::decode(&welcome).expect("hex"))
            .expect("Bob joins");
        let application = hex::encode(alice.encrypt(b"hello, room"));
        let mut proposals = Vec::new();
        for member in [&mut alice, &mut bob] {
            let (provider, signer) = (&member.provider, &member.signer);
            let group = member.group.as_mut().expect("in the group");
            let (message, _) = group
                .propose_self_update(provider, signer, LeafNodeParameters::default())
                .expect("propose");
            proposals.push(wire(&message));
        }
        let key_packages = ["tablet", "watch"]
            .iter()
            .map(|d| {
                hex::encode(
                    BareMember::new(&format!("mimi://b.example/d/bob/{d}"))
                        .key_package_struct()
                        .tls_serialize_detached()
                        .expect("kp"),
                )
            })
            .collect();
        let (group_info_public_key, group_info_private_key, group_info_ciphertext) =
            seal_group_info(&group_info, &tree);
        Inputs {
            group_info_public_key,
            group_info_private_key,
            group_info_ciphertext,
            commit,
            welcome,
            group_info,
            ratchet_tree: tree,
            proposals,
            application,
            key_packages,
            alice_signature_key_pair: hex::encode(
                alice.signer.tls_serialize_detached().expect("key pair"),
            ),
            alice_credential: hex::encode(
                alice
                    .credential
                    .credential
                    .tls_serialize_detached()
                    .expect("credential"),
            ),
        }
    }
}

/// A fresh HPKE key pair, and the epoch's GroupInfo and tree sealed to it (hex).
fn seal_group_info(group_info_hex: &str, tree_hex: &str) -> (String, String, String) {
    use openmls_traits::crypto::OpenMlsCrypto;
    use openmls_traits::random::OpenMlsRand;
    let crypto = openmls_rust_crypto::RustCrypto::default();
    let ikm: [u8; 32] = crypto.random_array().expect("randomness");
    let keys = crypto
        .derive_hpke_keypair(CIPHERSUITE.hpke_config(), &ikm)
        .expect("HPKE key pair");
    let group_info = MlsMessage::from_bytes(&hex::decode(group_info_hex).expect("hex"))
        .expect("GroupInfo message")
        .group_info()
        .expect("a GroupInfo");
    let tbe = GroupInfoRatchetTreeTbe {
        group_info,
        ratchet_tree_option: RatchetTreeOption::Full {
            ratchet_tree: RatchetTreeBytes::from_bytes(&hex::decode(tree_hex).expect("hex"))
                .expect("tree"),
        },
        pending_proposals: Vec::new(),
    };
    let sealed = tbe
        .seal(&crypto, CIPHERSUITE, &keys.public, ROOM.as_bytes())
        .expect("seal");
    (
        hex::encode(&keys.public),
        hex::encode(&*keys.private),
        hex::encode(sealed.tls_serialize_detached().expect("ciphertext")),
    )
}

fn bytes(field: &str, hex_str: &str) -> Result<Vec<u8>, VectorError> {
    hex::decode(hex_str).map_err(|e| VectorError::Inputs(format!("{field}: {e}")))
}

fn message(field: &str, hex_str: &str) -> Result<MlsMessage, VectorError> {
    MlsMessage::from_bytes(&bytes(field, hex_str)?)
        .map_err(|e| VectorError::Inputs(format!("{field}: {e}")))
}

/// What the vectors are made of, decoded.
struct Parts {
    commit: MlsMessage,
    welcome: WelcomeBytes,
    group_info: GroupInfoBytes,
    tree: RatchetTreeBytes,
    proposals: Vec<MlsMessage>,
    application: MlsMessage,
    key_packages: Vec<KeyPackageBytes>,
    signer: SignatureKeyPair,
    credential: Credential,
    group_info_public_key: Vec<u8>,
    group_info_ciphertext: openmls_traits::types::HpkeCiphertext,
}

impl Parts {
    fn decode(inputs: &Inputs) -> Result<Parts, VectorError> {
        let bad = |f: &str, e: String| VectorError::Inputs(format!("{f}: {e}"));
        let welcome = message("welcome", &inputs.welcome)?
            .welcome()
            .ok_or_else(|| bad("welcome", "not a Welcome".into()))?;
        let group_info = message("group_info", &inputs.group_info)?
            .group_info()
            .ok_or_else(|| bad("group_info", "not a GroupInfo".into()))?;
        let tree = RatchetTreeBytes::from_bytes(&bytes("ratchet_tree", &inputs.ratchet_tree)?)
            .map_err(|e| bad("ratchet_tree", e.to_string()))?;
        let proposals = inputs
            .proposals
            .iter()
            .map(|p| message("proposals", p))
            .collect::<Result<_, _>>()?;
        let key_packages = inputs
            .key_packages
            .iter()
            .map(|k| {
                KeyPackageBytes::from_bytes(&bytes("key_packages", k)?)
                    .map_err(|e| bad("key_packages", e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let signer = SignatureKeyPair::tls_deserialize_exact(&bytes(
            "alice_signature_key_pair",
            &inputs.alice_signature_key_pair,
        )?)
        .map_err(|e| bad("alice_signature_key_pair", e.to_string()))?;
        let credential = Credential::tls_deserialize_exact(&bytes(
            "alice_credential",
            &inputs.alice_credential,
        )?)
        .map_err(|e| bad("alice_credential", e.to_string()))?;
        let group_info_ciphertext = openmls_traits::types::HpkeCiphertext::tls_deserialize_exact(
            &bytes("group_info_ciphertext", &inputs.group_info_ciphertext)?,
        )
        .map_err(|e| bad("group_info_ciphertext", e.to_string()))?;
        Ok(Parts {
            group_info_public_key: bytes("group_info_public_key", &inputs.group_info_public_key)?,
            group_info_ciphertext,
            commit: message("commit", &inputs.commit)?,
            welcome,
            group_info,
            tree,
            proposals,
            application: message("application", &inputs.application)?,
            key_packages,
            signer,
            credential,
        })
    }
}

/// A vector under construction.
struct Out(Vec<Vector>);

impl Out {
    fn push<T: WireStruct>(
        &mut self,
        name: &'static str,
        section: &str,
        value: &T,
        description: Value,
    ) -> Result<(), VectorError> {
        let encoded = wire::encode(value).map_err(|e| failed(name)(e.to_string()))?;
        self.0.push(Vector {
            name: name.into(),
            section: section.into(),
            structure: T::NAME.into(),
            description,
            encoded: hex::encode(encoded),
        });
        Ok(())
    }
}

fn failed(name: &'static str) -> impl Fn(String) -> VectorError {
    move |reason| VectorError::Build { name, reason }
}

/// The signature of `tbs` with Alice's key, as the daemon signs its own requests.
fn signed(
    p: &Parts,
    name: &'static str,
    label: &str,
    tbs: &impl tls_codec::Serialize,
) -> Result<Vec<u8>, VectorError> {
    super::service::sign_tbs(&p.signer, label, tbs).map_err(failed(name))
}

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

/// The vectors, from the inputs.
pub fn vectors(inputs: &Inputs) -> Result<Vec<Vector>, VectorError> {
    let p = Parts::decode(inputs)?;
    let mut out = Out(Vec::new());

    let alice_key = SignaturePublicKey::from(p.signer.public().to_vec());

    // §5.2 keyMaterial
    let tbs = KeyMaterialRequestTbs {
        protocol: Protocol::Mls10,
        requesting_user: IdentifierUri::new(ALICE),
        target_user: IdentifierUri::new(BOB),
        room_id: IdentifierUri::new(ROOM),
        acceptable_ciphersuites: vec![CIPHERSUITE.into()],
        required_capabilities: required_capabilities(),
        requester_signature_key: alice_key.clone(),
        requester_credential: p.credential.clone(),
    };
    let signature = signed(
        &p,
        "key-material-request",
        key_material::KEY_MATERIAL_REQUEST_LABEL,
        &tbs,
    )?;
    out.push(
        "key-material-request",
        "5.2",
        &tbs.with_signature(signature.clone()),
        json!({
            "protocol": "mls10", "requestingUser": ALICE, "targetUser": BOB, "roomId": ROOM,
            "acceptableCiphersuites": [1],
            "requiredCapabilities": {"extensionTypes": ["app_data_dictionary (0x0006)"],
                "proposalTypes": ["AppDataUpdate"], "credentialTypes": ["basic (1)"]},
            "requesterSignatureKey": h(p.signer.public()),
            "requesterCredential": format!("basic: {ALICE_CLIENT}"),
            "keyMaterialRequestSignature": format!(
                "SignWithLabel(requesterSignatureKey, \"{}\", KeyMaterialRequestTBS) = {}",
                key_material::KEY_MATERIAL_REQUEST_LABEL, h(&signature)),
        }),
    )?;
    out.push(
        "key-material-response-partial",
        "5.2",
        &KeyMaterialResponse {
            protocol: Protocol::Mls10,
            user_status: KeyMaterialUserCode::PartialSuccess,
            user_uri: IdentifierUri::new(BOB),
            clients: vec![
                ClientKeyMaterial {
                    client_uri: IdentifierUri::new("mimi://b.example/d/bob/tablet"),
                    status: ClientStatus::Success(p.key_packages[0].clone()),
                },
                ClientKeyMaterial {
                    client_uri: IdentifierUri::new("mimi://b.example/d/bob/watch"),
                    status: ClientStatus::KeyMaterialExhausted,
                },
            ],
        },
        json!({
            "protocol": "mls10", "userStatus": "partialSuccess (1)", "userUri": BOB,
            "clients": [
                {"clientUri": "mimi://b.example/d/bob/tablet", "status": "success (0)",
                 "keyPackage": inputs.key_packages[0]},
                {"clientUri": "mimi://b.example/d/bob/watch", "status": "keyMaterialExhausted (1)"},
            ],
        }),
    )?;
    out.push(
        "key-material-response-no-consent",
        "5.2",
        &KeyMaterialResponse {
            protocol: Protocol::Mls10,
            user_status: KeyMaterialUserCode::NoConsentForThisRoom,
            user_uri: IdentifierUri::new(BOB),
            clients: Vec::new(),
        },
        json!({"protocol": "mls10", "userStatus": "noConsentForThisRoom (6)", "userUri": BOB,
               "clients": []}),
    )?;

    // §5.3 update
    out.push(
        "update-commit",
        "5.3",
        &UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: p.commit.clone(),
                body: HandshakeBundleBody::Commit {
                    welcome: Some(p.welcome.clone()),
                    group_info_option: GroupInfoOption::Full(p.group_info.clone()),
                    ratchet_tree_option: RatchetTreeOption::Full {
                        ratchet_tree: p.tree.clone(),
                    },
                },
            },
        },
        json!({
            "proposalOrCommit": inputs.commit,
            "welcome": {"present": true, "welcome": "the Welcome of inputs.welcome, without its MLSMessage header"},
            "groupInfoOption": {"representation": "full (1)", "groupInfo": "the GroupInfo of inputs.group_info, without its MLSMessage header"},
            "ratchetTreeOption": {"representation": "full (1)", "ratchetTree": inputs.ratchet_tree},
        }),
    )?;
    out.push(
        "update-proposal",
        "5.3",
        &UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: p.proposals[0].clone(),
                body: HandshakeBundleBody::Proposal {
                    more_proposals: vec![p.proposals[1].clone()],
                },
            },
        },
        json!({"proposalOrCommit": inputs.proposals[0], "moreProposals": [inputs.proposals[1]]}),
    )?;
    for (name, outcome, description) in [
        (
            "update-response-success",
            UpdateOutcome::Success {
                accepted_timestamp: 1_765_000_000_000,
            },
            json!({"errorDescription": "", "responseCode": "success (0)", "acceptedTimestamp": 1_765_000_000_000u64}),
        ),
        (
            "update-response-wrong-epoch",
            UpdateOutcome::WrongEpoch { current_epoch: 7 },
            json!({"errorDescription": "the room is at epoch 7", "responseCode": "wrongEpoch (1)", "currentEpoch": 7}),
        ),
        (
            "update-response-not-allowed",
            UpdateOutcome::NotAllowed,
            json!({"errorDescription": "bob may not remove alice", "responseCode": "notAllowed (2)"}),
        ),
    ] {
        let error_description = description["errorDescription"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        out.push(
            name,
            "5.3",
            &UpdateRoomResponse {
                error_description,
                outcome,
            },
            description,
        )?;
    }

    // §5.4 submitMessage
    out.push(
        "submit-message-request",
        "5.4",
        &SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: p.application.clone(),
            sending_uri: IdentifierUri::new(ALICE),
        },
        json!({"protocol": "mls10", "appMessage": inputs.application, "sendingUri": ALICE}),
    )?;
    out.push(
        "submit-message-response-accepted",
        "5.4",
        &SubmitMessageResponse {
            protocol: Protocol::Mls10,
            status: SubmitStatus::Accepted {
                accepted_timestamp: 1_765_000_000_001,
                frank: None,
            },
        },
        json!({"protocol": "mls10", "statusCode": "success (0)", "acceptedTimestamp": 1_765_000_000_001u64, "frank": null}),
    )?;
    out.push(
        "submit-message-response-epoch-too-old",
        "5.4",
        &SubmitMessageResponse {
            protocol: Protocol::Mls10,
            status: SubmitStatus::EpochTooOld { current_epoch: 3 },
        },
        json!({"protocol": "mls10", "statusCode": "epochTooOld (2)", "currentEpoch": 3}),
    )?;

    // §5.5 notify: a body is FanoutMessages one after the other
    let fanout = [
        FanoutMessage {
            timestamp: 1_765_000_000_000,
            message: p.commit.clone(),
            body: FanoutBody::Commit {
                external_proposals: Vec::new(),
            },
        },
        FanoutMessage {
            timestamp: 1_765_000_000_000,
            message: MlsMessage::from_welcome(&p.welcome),
            body: FanoutBody::Welcome {
                ratchet_tree_option: RatchetTreeOption::Full {
                    ratchet_tree: p.tree.clone(),
                },
            },
        },
        FanoutMessage {
            timestamp: 1_765_000_000_001,
            message: p.application.clone(),
            body: FanoutBody::Application { frank: None },
        },
    ];
    let descriptions = [
        json!({"timestamp": 1_765_000_000_000u64, "message": inputs.commit, "contentType": "commit", "externalProposals": []}),
        json!({"timestamp": 1_765_000_000_000u64, "message": inputs.welcome, "wireFormat": "mls_welcome", "ratchetTreeOption": {"representation": "full (1)", "ratchetTree": inputs.ratchet_tree}}),
        json!({"timestamp": 1_765_000_000_001u64, "message": inputs.application, "contentType": "application", "frank": null}),
    ];
    for (name, (f, d)) in ["notify-commit", "notify-welcome", "notify-application"]
        .into_iter()
        .zip(fanout.iter().zip(descriptions.iter()))
    {
        out.push(name, "5.5", f, d.clone())?;
    }

    // §5.6 groupInfo
    let gi_tbs = GroupInfoRequestTbs {
        protocol: Protocol::Mls10,
        cipher_suite: CIPHERSUITE.into(),
        requesting_signature_key: alice_key.clone(),
        requesting_credential: p.credential.clone(),
        group_info_public_key: p.group_info_public_key.clone().into(),
        joining_code: Vec::new().into(),
    };
    let gi_signature = signed(&p, "group-info-request", GROUP_INFO_REQUEST_LABEL, &gi_tbs)?;
    out.push(
        "group-info-request",
        "5.6",
        &gi_tbs.with_signature(gi_signature.clone()),
        json!({
            "protocol": "mls10", "cipherSuite": 1,
            "requestingSignatureKey": h(p.signer.public()),
            "requestingCredential": format!("basic: {ALICE_CLIENT}"),
            "groupInfoPublicKey": inputs.group_info_public_key, "joiningCode": "",
            "signature": format!("SignWithLabel(requestingSignatureKey, \"{GROUP_INFO_REQUEST_LABEL}\", GroupInfoRequestTBS) = {}", h(&gi_signature)),
        }),
    )?;
    // The hub's answer, signed by the hub's external sender (here Alice's key pair stands in
    // for the hub's, so that the vector needs no other key).
    let hub_sender = wire::ExternalSender::try_from(&openmls::extensions::ExternalSender::new(
        alice_key.clone(),
        p.credential.clone(),
    ))
    .map_err(|e| failed("group-info-response-success")(format!("{e:?}")))?;
    let response_tbs = GroupInfoResponseTbs {
        version: Protocol::Mls10,
        room_id: ROOM.as_bytes().to_vec().into(),
        status: GroupInfoCode::Success,
        cipher_suite: CIPHERSUITE.into(),
        hub_sender,
        encrypted_groupinfo_and_tree: p.group_info_ciphertext.clone(),
    };
    let response_signature = signed(
        &p,
        "group-info-response-success",
        GROUP_INFO_RESPONSE_LABEL,
        &response_tbs,
    )?;
    out.push(
        "group-info-response-success",
        "5.6",
        &response_tbs.with_signature(response_signature.clone()),
        json!({
            "version": "mls10", "roomId": ROOM, "status": "success (1)", "cipherSuite": 1,
            "hubSender": {"signatureKey": h(p.signer.public()), "credential": format!("basic: {ALICE_CLIENT} (standing in for the hub's)")},
            "encryptedGroupinfoAndTree": {
                "hpkeCiphertext": inputs.group_info_ciphertext,
                "opensWith": "inputs.group_info_private_key, label \"GroupInfo and ratchet_tree encryption\", context roomId",
                "plaintext": "GroupInfoRatchetTreeTBE { groupInfo: inputs.group_info (bare), ratchetTreeOption: full(inputs.ratchet_tree), pendingProposals: [] }",
            },
            "signature": format!("SignWithLabel(hubSender.signatureKey, \"{}\", GroupInfoResponseTBS) = {}", GROUP_INFO_RESPONSE_LABEL, h(&response_signature)),
        }),
    )?;
    out.push(
        "group-info-response-not-authorized",
        "5.6",
        &GroupInfoResponse {
            version: Protocol::Mls10,
            room_id: ROOM.as_bytes().to_vec().into(),
            status: GroupInfoStatus::NotAuthorized,
        },
        json!({"version": "mls10", "roomId": ROOM, "status": "notAuthorized (2)"}),
    )?;

    // §5.7 consent
    out.push(
        "consent-request",
        "5.7",
        &ConsentEntry {
            consent: Consent::Request,
            requester_uri: IdentifierUri::new(ALICE),
            target_uri: IdentifierUri::new(BOB),
            room_id: Some(IdentifierUri::new(ROOM)),
            consent_extensions: AppDataDictionary::default(),
        },
        json!({"consentOperation": "request (1)", "requesterUri": ALICE, "targetUri": BOB, "roomId": ROOM, "consentExtensions": []}),
    )?;
    out.push(
        "consent-grant",
        "5.7",
        &ConsentEntry {
            consent: Consent::Grant {
                client_key_packages: vec![p.key_packages[1].clone()],
            },
            requester_uri: IdentifierUri::new(ALICE),
            target_uri: IdentifierUri::new(BOB),
            room_id: None,
            consent_extensions: AppDataDictionary::default(),
        },
        json!({"consentOperation": "grant (2)", "requesterUri": ALICE, "targetUri": BOB, "roomId": null,
               "clientKeyPackages": [inputs.key_packages[1]], "consentExtensions": []}),
    )?;

    // §5.8 identifierQuery
    out.push(
        "identifier-request-handle",
        "5.8",
        &IdentifierRequest {
            query_elements: vec![QueryElement {
                search_type: SearchType::Handle,
                search_value: b"@bob".to_vec().into(),
            }],
            id_request_extensions: AppDataDictionary::default(),
        },
        json!({"queryElements": [{"searchType": "handle (1)", "searchValue": "@bob"}], "idRequestExtensions": []}),
    )?;
    out.push(
        "identifier-response-success",
        "5.8",
        &IdentifierResponse {
            response_code: IdentifierQueryCode::Success,
            uri: vec![IdentifierUri::new(BOB)],
            found_profiles: Vec::new(),
            id_response_extensions: AppDataDictionary::default(),
        },
        json!({"responseCode": "success (0)", "uri": [BOB], "foundProfiles": [], "idResponseExtensions": []}),
    )?;

    // §5.9 reportAbuse
    out.push(
        "report-abuse",
        "5.9",
        &AbuseReport {
            reporting_user: IdentifierUri::new(BOB),
            alleged_abuser_uri: IdentifierUri::new(ALICE),
            reason_code: AbuseType::Reserved,
            note: b"spam".to_vec().into(),
            messages: Vec::new(),
            abuse_extensions: AppDataDictionary::default(),
        },
        json!({"reportingUser": BOB, "allegedAbuserUri": ALICE, "reasonCode": 0, "note": "spam", "messages": [], "abuseExtensions": []}),
    )?;
    Ok(out.0)
}

/// Decodes a vector with the structure it names and encodes it again: the bytes must come
/// back unchanged.
pub fn round_trip(vector: &Vector) -> Result<(), String> {
    fn again<T: WireStruct>(bytes: &[u8]) -> Result<Vec<u8>, String> {
        let value: T = wire::decode_exact(bytes).map_err(|e| e.to_string())?;
        wire::encode(&value).map_err(|e| e.to_string())
    }
    let bytes = hex::decode(&vector.encoded).map_err(|e| e.to_string())?;
    let back = match vector.structure.as_str() {
        s if s == KeyMaterialRequest::NAME => again::<KeyMaterialRequest>(&bytes),
        s if s == KeyMaterialResponse::NAME => again::<KeyMaterialResponse>(&bytes),
        s if s == UpdateRequest::NAME => again::<UpdateRequest>(&bytes),
        s if s == UpdateRoomResponse::NAME => again::<UpdateRoomResponse>(&bytes),
        s if s == SubmitMessageRequest::NAME => again::<SubmitMessageRequest>(&bytes),
        s if s == SubmitMessageResponse::NAME => again::<SubmitMessageResponse>(&bytes),
        s if s == FanoutMessage::NAME => again::<FanoutMessage>(&bytes),
        s if s == GroupInfoRequest::NAME => again::<GroupInfoRequest>(&bytes),
        s if s == GroupInfoResponse::NAME => again::<GroupInfoResponse>(&bytes),
        s if s == ConsentEntry::NAME => again::<ConsentEntry>(&bytes),
        s if s == IdentifierRequest::NAME => again::<IdentifierRequest>(&bytes),
        s if s == IdentifierResponse::NAME => again::<IdentifierResponse>(&bytes),
        s if s == AbuseReport::NAME => again::<AbuseReport>(&bytes),
        other => return Err(format!("unknown structure {other}")),
    }?;
    if back != bytes {
        return Err("re-encoding changed the bytes".into());
    }
    Ok(())
}

/// The file of the inputs in a vectors folder.
pub const INPUTS_FILE: &str = "inputs.json";
/// The file of the protocol vectors in a vectors folder.
pub const VECTORS_FILE: &str = "protocol-06.json";

/// The vectors file's text for `inputs`: pretty JSON, one trailing newline.
pub fn render(inputs: &Inputs) -> Result<String, VectorError> {
    let all = vectors(inputs)?;
    let mut text = serde_json::to_string_pretty(&json!({
        "draft": "draft-ietf-mimi-protocol-06",
        "inputs": INPUTS_FILE,
        "vectors": all,
    }))
    .map_err(|e| VectorError::Inputs(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// Writes the vectors of the folder's inputs (made afresh when `new_inputs` or when the folder
/// has none). Returns the files written.
pub fn write_folder(
    dir: &std::path::Path,
    new_inputs: bool,
) -> Result<Vec<std::path::PathBuf>, VectorError> {
    let io = |e: std::io::Error| VectorError::Inputs(e.to_string());
    std::fs::create_dir_all(dir).map_err(io)?;
    let inputs_path = dir.join(INPUTS_FILE);
    let mut written = Vec::new();
    let inputs = if new_inputs || !inputs_path.exists() {
        let inputs = Inputs::fresh();
        let mut text = serde_json::to_string_pretty(&inputs)
            .map_err(|e| VectorError::Inputs(e.to_string()))?;
        text.push('\n');
        std::fs::write(&inputs_path, text).map_err(io)?;
        written.push(inputs_path);
        inputs
    } else {
        let text = std::fs::read_to_string(&inputs_path).map_err(io)?;
        serde_json::from_str(&text)
            .map_err(|e| VectorError::Inputs(format!("{}: {e}", inputs_path.display())))?
    };
    let vectors_path = dir.join(VECTORS_FILE);
    std::fs::write(&vectors_path, render(&inputs)?).map_err(io)?;
    written.push(vectors_path);
    Ok(written)
}
