//! A group member driven by openmls alone, with in-memory storage and none of the bridge's
//! checks. Tests and benchmarks use it as a remote peer: the reference for "bare openmls", and
//! a member that can send what a bridge never would (invalid room-state updates, Adds of
//! non-participants).

use openmls::component::ComponentData;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;

use super::group_config::{CIPHERSUITE, join_config, leaf_capabilities};

pub struct BareMember {
    pub provider: OpenMlsRustCrypto,
    pub signer: SignatureKeyPair,
    pub credential: CredentialWithKey,
    pub group: Option<MlsGroup>,
}

impl BareMember {
    /// A member whose credential is `client_uri`.
    pub fn new(client_uri: &str) -> BareMember {
        let provider = OpenMlsRustCrypto::default();
        let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm())
            .expect("Ed25519 key generation does not fail");
        signer
            .store(provider.storage())
            .expect("memory storage does not fail");
        let credential = CredentialWithKey {
            credential: BasicCredential::new(client_uri.as_bytes().to_vec()).into(),
            signature_key: signer.public().into(),
        };
        BareMember {
            provider,
            signer,
            credential,
            group: None,
        }
    }

    /// A fresh TLS-encoded KeyPackage.
    pub fn key_package(&self) -> Vec<u8> {
        self.key_package_struct()
            .tls_serialize_detached()
            .expect("a key package encodes")
    }

    /// A fresh TLS-encoded KeyPackage whose leaf offers `capabilities` (to play a client that
    /// cannot take part in MIMI rooms).
    pub fn key_package_with(&self, capabilities: Capabilities) -> Vec<u8> {
        self.build_key_package(capabilities)
            .tls_serialize_detached()
            .expect("a key package encodes")
    }

    pub fn key_package_struct(&self) -> KeyPackage {
        self.build_key_package(leaf_capabilities())
    }

    fn build_key_package(&self, capabilities: Capabilities) -> KeyPackage {
        KeyPackage::builder()
            .leaf_node_capabilities(capabilities)
            .build(
                CIPHERSUITE,
                &self.provider,
                &self.signer,
                self.credential.clone(),
            )
            .expect("a key package builds")
            .key_package()
            .clone()
    }

    /// Creates a group with the bridge's group parameters and an empty app data dictionary.
    pub fn create_group(&mut self, group_id: &[u8]) {
        use super::group_config::required_capabilities;
        let extensions = Extensions::from_vec(vec![Extension::RequiredCapabilities(
            required_capabilities(),
        )])
        .expect("valid extensions");
        let group = MlsGroup::builder()
            .with_group_id(GroupId::from_slice(group_id))
            .ciphersuite(CIPHERSUITE)
            .with_wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .use_ratchet_tree_extension(true)
            .with_capabilities(leaf_capabilities())
            .with_group_context_extensions(extensions)
            .build(&self.provider, &self.signer, self.credential.clone())
            .expect("create group");
        self.group = Some(group);
    }

    /// Adds members in one commit, merged at once; returns the commit, the Welcome and the
    /// new epoch's GroupInfo (without the tree) as TLS-encoded MLSMessages, and the ratchet
    /// tree.
    pub fn add_exported(
        &mut self,
        key_packages: &[KeyPackage],
    ) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        let group = self.group.as_mut().expect("the member has a group");
        let (commit, welcome, _) = group
            .add_members(&self.provider, &self.signer, key_packages)
            .expect("add members");
        group
            .merge_pending_commit(&self.provider)
            .expect("merge own commit");
        let group_info = group
            .export_group_info(self.provider.crypto(), &self.signer, false)
            .expect("group info");
        let tree = group
            .export_ratchet_tree()
            .tls_serialize_detached()
            .expect("tree");
        let wire = |m: &MlsMessageOut| m.tls_serialize_detached().expect("encode");
        (wire(&commit), wire(&welcome), wire(&group_info), tree)
    }

    /// Adds members in one commit, merged at once; returns the TLS-encoded Welcome.
    pub fn add(&mut self, key_packages: &[KeyPackage]) -> Vec<u8> {
        self.add_exported(key_packages).1
    }

    /// Joins from a TLS-encoded Welcome message.
    pub fn join(&mut self, welcome: &[u8]) -> Result<(), String> {
        let message = MlsMessageIn::tls_deserialize_exact(welcome).map_err(|e| e.to_string())?;
        let MlsMessageBodyIn::Welcome(w) = message.extract() else {
            return Err("not a Welcome".into());
        };
        let group = StagedWelcome::new_from_welcome(&self.provider, &join_config(), w, None)
            .map_err(|e| format!("{e:?}"))?
            .into_group(&self.provider)
            .map_err(|e| format!("{e:?}"))?;
        self.group = Some(group);
        Ok(())
    }

    pub fn group(&mut self) -> &mut MlsGroup {
        self.group.as_mut().expect("the member has joined")
    }

    /// Encrypts an application message.
    pub fn encrypt(&mut self, payload: &[u8]) -> Vec<u8> {
        let group = self.group.as_mut().expect("the member has joined");
        group
            .create_message(&self.provider, &self.signer, payload)
            .expect("encrypt")
            .tls_serialize_detached()
            .expect("encode")
    }

    /// Processes a message: the plaintext of an application message; commits are merged,
    /// proposals kept for the next commit.
    pub fn process(&mut self, message: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let group = self.group.as_mut().expect("the member has joined");
        let msg = MlsMessageIn::tls_deserialize_exact(message)
            .map_err(|e| e.to_string())?
            .try_into_protocol_message()
            .map_err(|e| format!("{e:?}"))?;
        let processed = group
            .process_message(&self.provider, msg)
            .map_err(|e| format!("{e:?}"))?;
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => Ok(Some(app.into_bytes())),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                group
                    .merge_staged_commit(&self.provider, *staged)
                    .map_err(|e| format!("{e:?}"))?;
                Ok(None)
            }
            ProcessedMessageContent::ProposalMessage(proposal) => {
                group
                    .store_pending_proposal(self.provider.storage(), *proposal)
                    .map_err(|e| format!("{e:?}"))?;
                Ok(None)
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }

    /// A commit with `proposals` by value and `adds`, setting component `set` to the given
    /// bytes in the GroupContext. With `merge`, the member moves to the new epoch at once (as
    /// if the hub had accepted it); without, the commit is dropped after it is made (for
    /// commits a peer must reject).
    pub fn commit(
        &mut self,
        proposals: Vec<Proposal>,
        adds: Vec<KeyPackage>,
        set: Option<(u16, Vec<u8>)>,
        merge: bool,
    ) -> Vec<u8> {
        let group = self.group.as_mut().expect("the member has joined");
        let mut stage = group
            .commit_builder()
            .add_proposals(proposals)
            .propose_adds(adds)
            .load_psks(self.provider.storage())
            .expect("psks");
        if let Some((id, data)) = set {
            let mut updater = stage.app_data_dictionary_updater();
            updater.set(ComponentData::from_parts(id, data.into()));
            let changes = updater.changes();
            stage.with_app_data_dictionary_updates(changes);
        }
        let bundle = stage
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                &self.signer,
                |_| true,
            )
            .expect("build commit")
            .stage_commit(&self.provider)
            .expect("stage commit");
        let bytes = bundle
            .commit()
            .tls_serialize_detached()
            .expect("encode commit");
        if merge {
            group
                .merge_pending_commit(&self.provider)
                .expect("merge own commit");
        } else {
            group
                .clear_pending_commit(self.provider.storage())
                .expect("clear commit");
        }
        bytes
    }

    /// Joins by external commit from a TLS-encoded GroupInfo message (with the ratchet tree);
    /// returns the commit. The member is at the new epoch at once.
    pub fn external_join(&mut self, group_info: &[u8]) -> Result<Vec<u8>, String> {
        let message = MlsMessageIn::tls_deserialize_exact(group_info).map_err(|e| e.to_string())?;
        let MlsMessageBodyIn::GroupInfo(verifiable) = message.extract() else {
            return Err("not a GroupInfo".into());
        };
        let (group, bundle) = MlsGroup::external_commit_builder()
            .with_config(join_config())
            .build_group(&self.provider, verifiable, self.credential.clone())
            .map_err(|e| format!("{e:?}"))?
            .leaf_node_parameters(
                LeafNodeParameters::builder()
                    .with_capabilities(leaf_capabilities())
                    .build(),
            )
            .load_psks(self.provider.storage())
            .map_err(|e| format!("{e:?}"))?
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                &self.signer,
                |_| true,
            )
            .map_err(|e| format!("{e:?}"))?
            .finalize(&self.provider)
            .map_err(|e| format!("{e:?}"))?;
        self.group = Some(group);
        bundle
            .commit()
            .tls_serialize_detached()
            .map_err(|e| e.to_string())
    }

    /// A SelfRemove proposal of this member (kept in its own proposal store).
    pub fn self_remove_proposal(&mut self) -> Vec<u8> {
        let group = self.group.as_mut().expect("the member has joined");
        group
            .leave_group_via_self_remove(&self.provider, &self.signer)
            .expect("SelfRemove")
            .tls_serialize_detached()
            .expect("encode proposal")
    }

    /// An AppDataUpdate proposal setting (by update) a component (kept in its own proposal
    /// store).
    pub fn propose_app_data(&mut self, component: u16, update: Vec<u8>) -> Vec<u8> {
        let group = self.group.as_mut().expect("the member has joined");
        group
            .propose_app_data_update(
                &self.provider,
                &self.signer,
                component,
                AppDataUpdateOperation::Update(update.into()),
            )
            .expect("AppDataUpdate proposal")
            .0
            .tls_serialize_detached()
            .expect("encode proposal")
    }

    /// The component's bytes in the current GroupContext.
    pub fn component(&mut self, id: u16) -> Option<Vec<u8>> {
        self.group()
            .extensions()
            .app_data_dictionary()
            .and_then(|d| d.dictionary().get(&id).map(<[u8]>::to_vec))
    }
}

/// Parses and validates a TLS-encoded KeyPackage.
pub fn parse_key_package(bytes: &[u8]) -> Result<KeyPackage, String> {
    KeyPackageIn::tls_deserialize_exact(bytes)
        .map_err(|e| e.to_string())?
        .validate(
            &openmls_rust_crypto::RustCrypto::default(),
            ProtocolVersion::Mls10,
        )
        .map_err(|e| format!("{e:?}"))
}
