//! The MLS parameters of every MIMI room group this bridge takes part in.

use openmls::prelude::*;

/// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, the suite every MIMI provider must support.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// What every proxy client's leaf supports: the AppDataDictionary and last-resort key package
/// extensions, AppDataUpdate and SelfRemove proposals, basic credentials.
pub fn leaf_capabilities() -> Capabilities {
    Capabilities::new(
        None,
        Some(&[CIPHERSUITE]),
        Some(&[ExtensionType::AppDataDictionary, ExtensionType::LastResort]),
        Some(&[ProposalType::AppDataUpdate, ProposalType::SelfRemove]),
        Some(&[CredentialType::Basic]),
    )
}

/// The GroupContext requirements of a MIMI room: room state lives in the `app_data_dictionary`
/// and changes only through AppDataUpdate.
pub fn required_capabilities() -> RequiredCapabilitiesExtension {
    RequiredCapabilitiesExtension::new(
        &[ExtensionType::AppDataDictionary],
        &[ProposalType::AppDataUpdate],
        &[CredentialType::Basic],
    )
}

/// What a KeyPackage lacks to be added to a MIMI room, each named ("extension
/// AppDataDictionary (0x0006)"); empty when it can be added.
pub fn missing_capabilities(kp: &KeyPackage) -> Vec<String> {
    let mut missing = Vec::new();
    if kp.ciphersuite() != CIPHERSUITE {
        missing.push(format!(
            "ciphersuite {:?} (it offers {:?})",
            CIPHERSUITE,
            kp.ciphersuite()
        ));
    }
    let caps = kp.leaf_node().capabilities();
    let required = required_capabilities();
    for e in required.extension_types() {
        if !caps.extensions().contains(e) {
            missing.push(format!("extension {e:?} (0x{:04x})", u16::from(*e)));
        }
    }
    for p in required.proposal_types() {
        if !caps.proposals().contains(p) {
            missing.push(format!("proposal {p:?} (0x{:04x})", u16::from(*p)));
        }
    }
    for c in required.credential_types() {
        if !caps.credentials().contains(c) {
            missing.push(format!("credential {c:?} (0x{:04x})", u16::from(*c)));
        }
    }
    missing
}

/// How proxy clients join: handshakes stay PublicMessage so the hub can validate them, and the
/// ratchet tree travels in Welcome and GroupInfo.
pub fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .max_past_epochs(2)
        .build()
}
