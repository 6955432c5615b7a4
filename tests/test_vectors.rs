//! The protocol test vectors in `test-vectors/` are what this build's codecs produce from the
//! folder's inputs, byte for byte, and every vector decodes and encodes back unchanged.

use mimi_bridge::protocol::vectors::{self, INPUTS_FILE, Inputs, VECTORS_FILE, Vector};

fn folder() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-vectors")
}

fn inputs() -> Inputs {
    let text = std::fs::read_to_string(folder().join(INPUTS_FILE)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_vectors_regenerate_byte_for_byte() {
    let kept = std::fs::read_to_string(folder().join(VECTORS_FILE)).unwrap();
    let made = vectors::render(&inputs()).unwrap();
    assert!(
        kept == made,
        "test-vectors/{VECTORS_FILE} differs from what the codecs make now: run \
         `cargo run -- test-vectors` and review the change"
    );
}

#[test]
fn every_vector_decodes_and_encodes_back_unchanged() {
    let all = vectors::vectors(&inputs()).unwrap();
    let sections: std::collections::BTreeSet<_> = all.iter().map(|v| v.section.as_str()).collect();
    assert_eq!(
        sections.into_iter().collect::<Vec<_>>(),
        ["5.2", "5.3", "5.4", "5.5", "5.6", "5.7", "5.8", "5.9"],
        "every §5 endpoint has vectors"
    );
    for v in &all {
        vectors::round_trip(v).unwrap_or_else(|e| panic!("{}: {e}", v.name));
    }
}

#[test]
fn a_damaged_vector_is_caught() {
    let all = vectors::vectors(&inputs()).unwrap();
    let v = all.iter().find(|v| v.name == "update-commit").unwrap();
    // a byte more at the end
    let longer = Vector {
        encoded: format!("{}00", v.encoded),
        ..v.clone()
    };
    assert!(vectors::round_trip(&longer).is_err());
    // the signature of the key material request no longer matches its content
    let mut inputs = inputs();
    inputs.alice_credential = inputs.alice_credential.replace("616c696365", "616c696366");
    let changed = vectors::vectors(&inputs).unwrap();
    let request = |vs: &[Vector]| {
        vs.iter()
            .find(|v| v.name == "key-material-request")
            .unwrap()
            .encoded
            .clone()
    };
    assert_ne!(request(&all), request(&changed));
}

/// The GroupInfo response's ciphertext opens with the request's private key (in the inputs)
/// and holds the epoch's GroupInfo and ratchet tree.
#[test]
fn the_group_info_response_opens_with_the_inputs_private_key() {
    use mimi_bridge::mls::group_config::CIPHERSUITE;
    use mimi_bridge::protocol::wire::{
        GroupInfoRatchetTreeTbe, GroupInfoResponse, GroupInfoStatus, MlsMessage, decode_exact,
    };
    let inputs = inputs();
    let all = vectors::vectors(&inputs).unwrap();
    let v = all
        .iter()
        .find(|v| v.name == "group-info-response-success")
        .unwrap();
    let response: GroupInfoResponse = decode_exact(&hex::decode(&v.encoded).unwrap()).unwrap();
    let GroupInfoStatus::Success(success) = &response.status else {
        panic!("{:?}", response.status)
    };
    let tbe = GroupInfoRatchetTreeTbe::open(
        &openmls_rust_crypto::RustCrypto::default(),
        CIPHERSUITE,
        &hex::decode(&inputs.group_info_private_key).unwrap(),
        response.room_id.as_slice(),
        &success.encrypted_groupinfo_and_tree,
    )
    .unwrap();
    let expected = MlsMessage::from_bytes(&hex::decode(&inputs.group_info).unwrap())
        .unwrap()
        .group_info()
        .unwrap();
    assert_eq!(tbe.group_info.as_bytes(), expected.as_bytes());
}
