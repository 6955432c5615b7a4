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

/// The `app_components` component (mls-extensions-10 §4.8, 0x0001): the components a leaf
/// supports (in a LeafNode) or the group requires (in the GroupContext).
pub const APP_COMPONENTS: u16 = 0x0001;
/// The `safe_aad` component (mls-extensions-10, 0x0002).
pub const SAFE_AAD: u16 = 0x0002;

/// `struct { ComponentID component_ids<V>; } ComponentsList;`
pub fn components_list(ids: &[u16]) -> Vec<u8> {
    use openmls::prelude::tls_codec::Serialize as _;
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids.tls_serialize_detached()
        .expect("a list of u16 always encodes")
}

/// The LeafNode extensions of every proxy client: an `app_data_dictionary` advertising, in
/// `app_components`, the components this bridge understands (mls-extensions-10 makes that
/// mandatory for whoever supports `app_data_dictionary`): `app_components` and `safe_aad`
/// themselves and the room state's components.
pub fn leaf_extensions(cp: &crate::room::code_points::ComponentCodePoints) -> Extensions<LeafNode> {
    let mut supported = vec![APP_COMPONENTS, SAFE_AAD];
    supported.extend(cp.named().iter().map(|(_, id)| *id));
    let mut dictionary = AppDataDictionary::new();
    dictionary.insert(APP_COMPONENTS, components_list(&supported));
    Extensions::single(Extension::AppDataDictionary(
        AppDataDictionaryExtension::new(dictionary),
    ))
    .expect("one app_data_dictionary is a valid LeafNode extension list")
}

/// The components a LeafNode's `app_components` lists, if it has one.
pub fn advertised_components(leaf: &LeafNode) -> Option<Vec<u16>> {
    use openmls::prelude::tls_codec::Deserialize as _;
    let dictionary = leaf.extensions().app_data_dictionary()?.dictionary();
    let bytes = dictionary.get(&APP_COMPONENTS)?;
    Vec::<u16>::tls_deserialize_exact(bytes).ok()
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
