//! The protocol roles of this daemon: hub of the rooms its provider hosts, follower in the
//! others, and the delivery of the outbox.
//!
//! Handshakes and messages of local proxy clients take the same path as remote ones: the MLS
//! engine queues them for the room's hub; when that hub is this daemon, the delivery step
//! hands them to the hub logic directly instead of over HTTP.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::client::{ClientError, MimiClient};
use super::directory::Endpoint;
use super::wire::{
    self, ClientKeyMaterial, ClientStatus, FanoutBody, FanoutMessage, GroupInfoOption,
    HandshakeBundle, HandshakeBundleBody, IdentifierUri, KeyMaterialRequest, KeyMaterialResponse,
    KeyMaterialUserCode, MlsMessage, Protocol, RatchetTreeOption, SubmitMessageRequest,
    SubmitMessageResponse, SubmitStatus, UpdateOutcome, UpdateRequest, UpdateRoomResponse,
};
use crate::mls::{Incoming, MlsError, ProxyMls};
use crate::room::state::{BANNED_ROLE, NO_ROLE, RoomState};
use crate::room::validation::{RejectCode, check_application_message};
use crate::store::consents::{self, ConsentState};
use crate::store::rooms::OurRole;
use crate::store::{
    Store, StoreError, mls_blobs, notify_seen, now_ms, outbox, pending_commits, proxy_clients,
    room_groups, rooms,
};
use crate::uri::{ClientUri, ProviderId, RoomUri, UserUri};

/// Why a protocol request could not be served; each maps to an HTTP status with a JSON body.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("room {0} is not known here")]
    UnknownRoom(String),
    #[error("this provider is not the hub of room {0}")]
    NotHub(String),
    #[error("user {0} is not known here")]
    UnknownUser(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error(transparent)]
    Mls(#[from] MlsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The outbox kind of commands for the legacy side; the bridge core delivers them.
pub const LEGACY_KIND: &str = "connector";

/// Delivers outbox items of kind [`LEGACY_KIND`]: the bridge core's commands to its connector.
/// The protocol layer only schedules them (in order per room, with backoff) and knows nothing
/// of what they say.
#[mimi_bridge_connector::async_trait]
pub trait LegacyOutbox: Send + Sync {
    /// One attempt; [`Attempt::DeadLettered`] after dead-lettering the item itself.
    async fn deliver(&self, item: &outbox::OutboxRecord) -> Attempt;
}

/// What this provider does when a peer asks one of its users for consent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConsentPolicy {
    /// Record the request; the user (or operator) answers later.
    #[default]
    Ask,
    /// Grant it at once, provisioning the user's proxy client if it has none yet: the legacy
    /// provider has no consent step of its own and lets its users be added by anyone.
    Grant,
}

/// The hub, follower and delivery logic of one daemon.
pub struct MimiService {
    pub domain: ProviderId,
    pub store: Store,
    pub mls: Arc<ProxyMls>,
    pub client: Option<Arc<MimiClient>>,
    wake: tokio::sync::Notify,
    legacy: std::sync::OnceLock<Arc<dyn LegacyOutbox>>,
    consent_policy: ConsentPolicy,
}

fn malformed(what: &'static str) -> impl FnOnce(String) -> ServiceError {
    move |reason| ServiceError::Malformed { what, reason }
}

impl MimiService {
    pub fn new(
        domain: ProviderId,
        store: Store,
        mls: Arc<ProxyMls>,
        client: Option<Arc<MimiClient>>,
    ) -> MimiService {
        MimiService {
            domain,
            store,
            mls,
            client,
            wake: tokio::sync::Notify::new(),
            legacy: std::sync::OnceLock::new(),
            consent_policy: ConsentPolicy::Ask,
        }
    }

    /// Sets what happens when a peer asks one of our users for consent.
    pub fn with_consent_policy(mut self, policy: ConsentPolicy) -> MimiService {
        self.consent_policy = policy;
        self
    }

    /// Registers the deliverer of legacy-side commands (once, at start).
    pub fn set_legacy_outbox(&self, legacy: Arc<dyn LegacyOutbox>) {
        if self.legacy.set(legacy).is_err() {
            tracing::warn!("a legacy outbox was registered twice; the first one stays");
        }
    }

    /// Asks the delivery loop to look at the outbox now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    async fn our_room(&self, room: &RoomUri) -> Result<rooms::RoomRecord, ServiceError> {
        rooms::get(self.store.pool(), room.as_str())
            .await?
            .ok_or_else(|| ServiceError::UnknownRoom(room.to_string()))
    }

    async fn hosted_room(&self, room: &RoomUri) -> Result<(), ServiceError> {
        match self.our_room(room).await?.our_role {
            OurRole::Hub => Ok(()),
            OurRole::Follower => Err(ServiceError::NotHub(room.to_string())),
        }
    }

    async fn epoch(&self, room: &RoomUri) -> Result<u64, ServiceError> {
        Ok(room_groups::get(self.store.pool(), room.as_str())
            .await?
            .ok_or_else(|| ServiceError::UnknownRoom(room.to_string()))?
            .epoch as u64)
    }

    // ------------------------------------------------------------------ key material

    /// `/keyMaterial/{targetUser}` for one of this provider's users: one key package of each of
    /// its proxy clients.
    pub async fn key_material(
        &self,
        peer: &ProviderId,
        target: &UserUri,
        request: &KeyMaterialRequest,
    ) -> Result<KeyMaterialResponse, ServiceError> {
        self.check_key_material_request(peer, request)?;
        let mut response = KeyMaterialResponse {
            protocol: Protocol::Mls10,
            user_status: KeyMaterialUserCode::UserUnknown,
            user_uri: IdentifierUri::new(target.as_str()),
            clients: Vec::new(),
        };
        if request.target_user.as_str() != Some(target.as_str()) {
            return Err(ServiceError::Malformed {
                what: "KeyMaterialRequest",
                reason: "targetUser differs from the user in the path".into(),
            });
        }
        if target.provider() != &self.domain {
            return self.relay_key_material(target, request, response).await;
        }
        if request.target_user.as_str() != Some(target.as_str()) {
            return Err(ServiceError::Malformed {
                what: "KeyMaterialRequest",
                reason: "targetUser differs from the user in the path".into(),
            });
        }
        let clients = proxy_clients::for_user(self.store.pool(), target.as_str()).await?;
        if clients.is_empty() {
            return Ok(response);
        }
        // A user of another provider is added only with the target user's consent.
        let requester = request.requesting_user.as_str().unwrap_or_default();
        {
            let room = request.room_id.as_str().unwrap_or_default();
            let consent =
                consents::effective(self.store.pool(), requester, target.as_str(), room).await?;
            if consent != Some(ConsentState::Granted) {
                response.user_status = if room.is_empty() {
                    KeyMaterialUserCode::NoConsent
                } else {
                    KeyMaterialUserCode::NoConsentForThisRoom
                };
                return Ok(response);
            }
        }
        for c in clients {
            let client = ClientUri::from_bytes(c.as_bytes())
                .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.to_string().into())))?;
            let status = match self.mls.key_package(&client).await {
                Ok(kp) => ClientStatus::Success(
                    wire::KeyPackageBytes::from_bytes(&kp)
                        .map_err(|e| malformed("stored key package")(e.to_string()))?,
                ),
                Err(MlsError::NoKeyPackage { .. }) => ClientStatus::KeyMaterialExhausted,
                Err(e) => return Err(e.into()),
            };
            response.clients.push(ClientKeyMaterial {
                client_uri: IdentifierUri::new(client.as_str()),
                status,
            });
        }
        response.user_status = match response
            .clients
            .iter()
            .filter(|c| matches!(c.status, ClientStatus::Success(_)))
            .count()
        {
            0 if response.clients.is_empty() => KeyMaterialUserCode::UserUnknown,
            0 => KeyMaterialUserCode::NoCompatibleMaterial,
            n if n == response.clients.len() => KeyMaterialUserCode::Success,
            _ => KeyMaterialUserCode::PartialSuccess,
        };
        Ok(response)
    }

    /// Who may ask for key material: the requester's own provider, or the hub of the room it
    /// names (relaying a follower's request). The request must be signed by the requester's
    /// client, whose credential names the requesting user.
    fn check_key_material_request(
        &self,
        peer: &ProviderId,
        request: &KeyMaterialRequest,
    ) -> Result<(), ServiceError> {
        let forbidden = |why: String| Err(ServiceError::Forbidden(why));
        let requester: UserUri = match request.requesting_user.as_str().map(str::parse) {
            Some(Ok(u)) => u,
            _ => return forbidden("requestingUser is not a user URI".into()),
        };
        let room_hub = request
            .room_id
            .as_str()
            .and_then(|r| r.parse::<RoomUri>().ok())
            .map(|r| r.provider().clone());
        if requester.provider() != peer && room_hub.as_ref() != Some(peer) {
            return forbidden(format!(
                "{} may not ask for key material on behalf of {requester}",
                peer.domain()
            ));
        }
        if requester.provider() == &self.domain {
            return forbidden(format!(
                "{requester} is a user of this provider; its requests do not come from peers"
            ));
        }
        let client = crate::mls::clients::client_of(&request.requester_credential)?;
        if client.user_hint().as_ref() != Some(&requester) {
            return forbidden(format!(
                "the requester credential {client} is not a client of {requester}"
            ));
        }
        let tbs = request
            .tbs_bytes()
            .map_err(|e| malformed("KeyMaterialRequest")(e.to_string()))?;
        verify_tbs(
            request.requester_signature_key.as_slice(),
            wire::key_material::KEY_MATERIAL_REQUEST_LABEL,
            &tbs,
            request.key_material_request_signature.as_slice(),
        )
        .map_err(|_| {
            ServiceError::Forbidden("the KeyMaterialRequest signature does not verify".into())
        })
    }

    /// A follower asks the hub for key material of another provider's user: the hub relays
    /// the request, for a room it hosts, and returns the target provider's answer.
    async fn relay_key_material(
        &self,
        target: &UserUri,
        request: &KeyMaterialRequest,
        unknown: KeyMaterialResponse,
    ) -> Result<KeyMaterialResponse, ServiceError> {
        let room: Option<RoomUri> = request.room_id.as_str().and_then(|r| r.parse().ok());
        let Some(room) = room.filter(|r| r.provider() == &self.domain) else {
            return Ok(unknown);
        };
        self.hosted_room(&room).await?;
        let body =
            wire::encode(request).map_err(|e| malformed("KeyMaterialRequest")(e.to_string()))?;
        let answer = self
            .client()?
            .post(
                target.provider(),
                Endpoint::KeyMaterial,
                target.as_str(),
                body,
            )
            .await?;
        if answer.status != 200 {
            return Err(ServiceError::Forbidden(format!(
                "{} answered the relayed key material request with HTTP {}",
                target.provider().domain(),
                answer.status
            )));
        }
        wire::decode_exact(&answer.body)
            .map_err(|e| malformed("KeyMaterialResponse")(e.to_string()))
    }

    /// Fetches key packages of a remote user from its provider (this daemon being the hub).
    pub async fn fetch_key_material(
        &self,
        requester: &ClientUri,
        target: &UserUri,
        room: &RoomUri,
    ) -> Result<Vec<Vec<u8>>, ServiceError> {
        if target.provider() == &self.domain {
            let clients = proxy_clients::for_user(self.store.pool(), target.as_str()).await?;
            let mut out = Vec::new();
            for c in clients {
                let client = ClientUri::from_bytes(c.as_bytes())
                    .map_err(|e| malformed("stored client")(e.to_string()))?;
                out.push(self.mls.key_package(&client).await?);
            }
            return Ok(out);
        }
        let client = self.client.as_ref().ok_or_else(|| {
            ServiceError::Forbidden("the MIMI client is not configured ([mimi.tls])".into())
        })?;
        let request = self.key_material_request(requester, target, room).await?;
        let body =
            wire::encode(&request).map_err(|e| malformed("KeyMaterialRequest")(e.to_string()))?;
        // Key packages are fetched through the hub of the room that will use them
        // (protocol-06 §5.2): straight from the target's provider when this daemon is the hub,
        // relayed by the hub otherwise.
        let via = if room.provider() == &self.domain {
            target.provider()
        } else {
            room.provider()
        };
        let answer = client
            .post(via, Endpoint::KeyMaterial, target.as_str(), body)
            .await?;
        if answer.status != 200 {
            return Err(ServiceError::Forbidden(format!(
                "{} answered the key material request with HTTP {}: {}",
                target.provider().domain(),
                answer.status,
                String::from_utf8_lossy(&answer.body)
            )));
        }
        let response: KeyMaterialResponse = wire::decode_exact(&answer.body)
            .map_err(|e| malformed("KeyMaterialResponse")(e.to_string()))?;
        let kps: Vec<Vec<u8>> = response
            .clients
            .into_iter()
            .filter_map(|c| match c.status {
                ClientStatus::Success(kp) => Some(kp.as_bytes().to_vec()),
                _ => None,
            })
            .collect();
        if kps.is_empty() {
            return Err(ServiceError::Forbidden(format!(
                "{} has no key material for {target} ({:?})",
                target.provider().domain(),
                response.user_status
            )));
        }
        Ok(kps)
    }

    async fn key_material_request(
        &self,
        requester: &ClientUri,
        target: &UserUri,
        room: &RoomUri,
    ) -> Result<KeyMaterialRequest, ServiceError> {
        use crate::mls::group_config::{CIPHERSUITE, required_capabilities};
        let requesting_user = requester
            .user_hint()
            .ok_or_else(|| malformed("requester")(format!("{requester} does not name its user")))?;
        let signed = self
            .mls
            .with_client_identity(requester, |signer, credential| {
                let tbs = wire::KeyMaterialRequestTbs {
                    protocol: Protocol::Mls10,
                    requesting_user: IdentifierUri::new(requesting_user.as_str()),
                    target_user: IdentifierUri::new(target.as_str()),
                    room_id: IdentifierUri::new(room.as_str()),
                    acceptable_ciphersuites: vec![CIPHERSUITE.into()],
                    required_capabilities: required_capabilities(),
                    requester_signature_key: credential.signature_key.clone(),
                    requester_credential: credential.credential.clone(),
                };
                let signature =
                    sign_tbs(signer, wire::key_material::KEY_MATERIAL_REQUEST_LABEL, &tbs)?;
                Ok::<_, String>(tbs.with_signature(signature))
            })
            .await?;
        signed.map_err(malformed("KeyMaterialRequest"))
    }

    // ------------------------------------------------------------------ external joins

    /// `/groupInfo/{roomId}`: the room's GroupInfo (with the ratchet tree), encrypted to the
    /// requester and signed by the hub, for a new device of a participant.
    pub async fn group_info_request(
        &self,
        room: &RoomUri,
        peer: &ProviderId,
        request: &wire::GroupInfoRequest,
    ) -> Result<wire::GroupInfoResponse, ServiceError> {
        use crate::mls::group_config::CIPHERSUITE;
        let refuse = |status| wire::GroupInfoResponse {
            version: Protocol::Mls10,
            room_id: room.as_str().as_bytes().to_vec().into(),
            status,
        };
        match self.our_room(room).await {
            Ok(r) if r.our_role == OurRole::Hub => {}
            _ => return Ok(refuse(wire::GroupInfoStatus::NoSuchRoom)),
        }
        let crypto = openmls_rust_crypto::RustCrypto::default();
        let tbs = request
            .tbs_bytes()
            .map_err(|e| malformed("GroupInfoRequest")(e.to_string()))?;
        if verify_tbs(
            request.requesting_signature_key.as_slice(),
            wire::group_info::GROUP_INFO_REQUEST_LABEL,
            &tbs,
            request.signature.as_slice(),
        )
        .is_err()
        {
            return Err(ServiceError::Forbidden(
                "the GroupInfoRequest signature does not verify".into(),
            ));
        }
        let client = crate::mls::clients::client_of(&request.requesting_credential)?;
        let user = crate::mls::clients::user_of(&client)?;
        let state = self.mls.room_state(room).await?;
        let role = state.participants.role_of(&user);
        if client.provider() != peer
            || role == NO_ROLE
            || role == BANNED_ROLE
            || state.block_reason(&user).is_some()
        {
            return Ok(refuse(wire::GroupInfoStatus::NotAuthorized));
        }
        let group_info = MlsMessage::from_bytes(&self.mls.group_info(room).await?)
            .map_err(|e| malformed("GroupInfo")(e.to_string()))?
            .group_info()
            .ok_or_else(|| malformed("GroupInfo")("the export is not a GroupInfo".into()))?;
        let tbe = wire::GroupInfoRatchetTreeTbe {
            group_info,
            ratchet_tree_option: RatchetTreeOption::DistributionService,
            pending_proposals: self.pending_proposals(room).await?,
        };
        let sealed = tbe
            .seal(
                &crypto,
                CIPHERSUITE,
                request.group_info_public_key.as_slice(),
                room.as_str().as_bytes(),
            )
            .map_err(|e| malformed("GroupInfo encryption")(format!("{e:?}")))?;
        let response = self
            .mls
            .with_server_identity(|signer, sender| {
                let hub_sender =
                    wire::ExternalSender::try_from(sender).map_err(|e| e.to_string())?;
                let tbs = wire::GroupInfoResponseTbs {
                    version: Protocol::Mls10,
                    room_id: room.as_str().as_bytes().to_vec().into(),
                    status: wire::GroupInfoCode::Success,
                    cipher_suite: CIPHERSUITE.into(),
                    hub_sender,
                    encrypted_groupinfo_and_tree: sealed,
                };
                let signature =
                    sign_tbs(signer, wire::group_info::GROUP_INFO_RESPONSE_LABEL, &tbs)?;
                Ok::<_, String>(tbs.with_signature(signature))
            })
            .await?;
        response.map_err(malformed("GroupInfoResponse"))
    }

    /// The proposals the hub accepted in the room's current epoch, stapled to the GroupInfo
    /// it serves (protocol-06 §5.6): the joiner must include them.
    async fn pending_proposals(
        &self,
        room: &RoomUri,
    ) -> Result<Vec<wire::PendingProposal>, ServiceError> {
        let epoch = self.epoch(room).await? as i64;
        let mut conn = self
            .store
            .pool()
            .acquire()
            .await
            .map_err(StoreError::from)?;
        let mut out = Vec::new();
        for entry in crate::store::room_log::since(&mut *conn, room.as_str(), epoch).await? {
            if entry.epoch != epoch || entry.kind != crate::store::room_log::LogKind::Proposal {
                continue;
            }
            if let Some(bytes) = mls_blobs::get(&mut conn, &entry.message_hash).await? {
                out.push(wire::PendingProposal {
                    proposal: MlsMessage::from_bytes(&bytes)
                        .map_err(|e| malformed("logged proposal")(e.to_string()))?,
                    hub_accepted_time: now_ms() as u64,
                });
            }
        }
        Ok(out)
    }

    /// A new device of a local participant joins by external commit: the GroupInfo comes
    /// from the hub (over `/groupInfo`, or directly when this daemon is the hub).
    pub async fn join_new_device(
        &self,
        room: &RoomUri,
        client: &ClientUri,
    ) -> Result<(), ServiceError> {
        use crate::mls::group_config::CIPHERSUITE;
        use openmls_traits::crypto::OpenMlsCrypto;
        use openmls_traits::random::OpenMlsRand;
        let group_info = if room.provider() == &self.domain {
            (self.mls.group_info(room).await?, Vec::new())
        } else {
            let crypto = openmls_rust_crypto::RustCrypto::default();
            let ikm: [u8; 32] = crypto
                .random_array()
                .map_err(|e| malformed("randomness")(format!("{e:?}")))?;
            let keys = crypto
                .derive_hpke_keypair(CIPHERSUITE.hpke_config(), &ikm)
                .map_err(|e| malformed("HPKE key")(format!("{e:?}")))?;
            let request = self
                .mls
                .with_client_identity(client, |signer, credential| {
                    let tbs = wire::GroupInfoRequestTbs {
                        protocol: Protocol::Mls10,
                        cipher_suite: CIPHERSUITE.into(),
                        requesting_signature_key: credential.signature_key.clone(),
                        requesting_credential: credential.credential.clone(),
                        group_info_public_key: keys.public.clone().into(),
                        joining_code: Vec::new().into(),
                    };
                    let signature =
                        sign_tbs(signer, wire::group_info::GROUP_INFO_REQUEST_LABEL, &tbs)?;
                    Ok::<_, String>(tbs.with_signature(signature))
                })
                .await?
                .map_err(malformed("GroupInfoRequest"))?;
            let body =
                wire::encode(&request).map_err(|e| malformed("GroupInfoRequest")(e.to_string()))?;
            let answer = self
                .client()?
                .post(room.provider(), Endpoint::GroupInfo, room.as_str(), body)
                .await?;
            if answer.status != 200 {
                return Err(ServiceError::Forbidden(format!(
                    "the hub answered /groupInfo with HTTP {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                )));
            }
            let response: wire::GroupInfoResponse = wire::decode_exact(&answer.body)
                .map_err(|e| malformed("GroupInfoResponse")(e.to_string()))?;
            let wire::GroupInfoStatus::Success(success) = &response.status else {
                return Err(ServiceError::Forbidden(format!(
                    "the hub refused the GroupInfo: {:?}",
                    response.status.code()
                )));
            };
            let tbs = response
                .tbs_bytes()
                .ok_or_else(|| malformed("GroupInfoResponse")("no signed content".into()))?
                .map_err(|e| malformed("GroupInfoResponse")(e.to_string()))?;
            verify_tbs(
                success.hub_sender.signature_key.as_slice(),
                wire::group_info::GROUP_INFO_RESPONSE_LABEL,
                &tbs,
                success.signature.as_slice(),
            )
            .map_err(|_| {
                ServiceError::Forbidden(
                    "the hub's GroupInfoResponse signature does not verify".into(),
                )
            })?;
            let tbe = wire::GroupInfoRatchetTreeTbe::open(
                &crypto,
                CIPHERSUITE,
                &keys.private,
                room.as_str().as_bytes(),
                &success.encrypted_groupinfo_and_tree,
            )
            .map_err(|e| malformed("encrypted GroupInfo")(format!("{e:?}")))?;
            let pending: Vec<Vec<u8>> = tbe
                .pending_proposals
                .iter()
                .map(|p| p.proposal.as_bytes().to_vec())
                .collect();
            (
                MlsMessage::from_group_info(&tbe.group_info).into_bytes(),
                pending,
            )
        };
        let (group_info, pending) = group_info;
        self.mls
            .join_by_external_commit_with(room, client, &group_info, &pending)
            .await?;
        self.wake();
        Ok(())
    }

    // ------------------------------------------------------------------ identifiers, abuse

    /// `/identifierQuery/{domain}`: this bridge knows its users by handle (the local part of
    /// their MIMI user URI); every query element must match.
    pub async fn identifier_query(
        &self,
        request: &wire::IdentifierRequest,
    ) -> Result<wire::IdentifierResponse, ServiceError> {
        let answer = |code, uri: Vec<IdentifierUri>| wire::IdentifierResponse {
            response_code: code,
            uri,
            found_profiles: Vec::new(),
            id_response_extensions: Default::default(),
        };
        let mut found: Option<UserUri> = None;
        for element in &request.query_elements {
            if !matches!(element.search_type, wire::SearchType::Handle) {
                return Ok(answer(wire::IdentifierQueryCode::UnsupportedField, vec![]));
            }
            let handle = std::str::from_utf8(element.search_value.as_slice()).unwrap_or_default();
            let Ok(user) = UserUri::new(self.domain.clone(), handle) else {
                return Ok(answer(wire::IdentifierQueryCode::NotFound, vec![]));
            };
            if found.as_ref().is_some_and(|f| f != &user) {
                return Ok(answer(wire::IdentifierQueryCode::NotFound, vec![]));
            }
            found = Some(user);
        }
        match found {
            Some(user)
                if !proxy_clients::for_user(self.store.pool(), user.as_str())
                    .await?
                    .is_empty() =>
            {
                Ok(answer(
                    wire::IdentifierQueryCode::Success,
                    vec![IdentifierUri::new(user.as_str())],
                ))
            }
            _ => Ok(answer(wire::IdentifierQueryCode::NotFound, vec![])),
        }
    }

    /// `/reportAbuse/{roomId}`: kept for the operator of the hub.
    pub async fn report_abuse(
        &self,
        room: &RoomUri,
        peer: &ProviderId,
        report: &wire::AbuseReport,
        raw: &[u8],
    ) -> Result<(), ServiceError> {
        self.hosted_room(room).await?;
        let reporter = report.reporting_user.as_str().unwrap_or_default();
        // The reporter may stay anonymous (empty); a named one must be the peer's user.
        if !reporter.is_empty()
            && !reporter
                .parse::<UserUri>()
                .is_ok_and(|u| u.provider() == peer)
        {
            return Err(ServiceError::Forbidden(format!(
                "{} cannot report on behalf of `{reporter}`",
                peer.domain()
            )));
        }
        let note = String::from_utf8_lossy(report.note.as_slice()).into_owned();
        crate::store::abuse_reports::insert(
            self.store.pool(),
            room.as_str(),
            reporter,
            report.alleged_abuser_uri.as_str().unwrap_or_default(),
            &note,
            raw,
        )
        .await?;
        tracing::warn!(%room, reporter, alleged = report.alleged_abuser_uri.as_str().unwrap_or_default(), "abuse reported");
        Ok(())
    }

    // ------------------------------------------------------------------ consent

    /// `/requestConsent/{targetDomain}`: a peer asks (or stops asking) for one of our users'
    /// consent. Unknown target users are `Err(UnknownUser)` (HTTP 404).
    pub async fn consent_requested(
        &self,
        peer: &ProviderId,
        entry: &wire::ConsentEntry,
    ) -> Result<(), ServiceError> {
        let (requester, target, room) = consent_parties(entry)?;
        if requester.provider() != peer {
            return Err(ServiceError::Forbidden(format!(
                "{} cannot ask for consent on behalf of {requester}",
                peer.domain()
            )));
        }
        if target.provider() != &self.domain {
            return Err(ServiceError::UnknownUser(target.to_string()));
        }
        let known = !proxy_clients::for_user(self.store.pool(), target.as_str())
            .await?
            .is_empty();
        if self.consent_policy == ConsentPolicy::Grant && entry.consent == wire::Consent::Request {
            if !known {
                let client = crate::mls::proxy_client_of(&target)
                    .map_err(|e| malformed("target")(e.to_string()))?;
                self.mls.create_client(&client).await?;
            }
            let room = room
                .as_deref()
                .map(|r| r.parse::<RoomUri>())
                .transpose()
                .map_err(|e| malformed("room")(e.to_string()))?;
            return self
                .send_consent(
                    wire::Consent::Grant {
                        client_key_packages: vec![],
                    },
                    &requester,
                    &target,
                    room.as_ref(),
                )
                .await;
        }
        if !known {
            return Err(ServiceError::UnknownUser(target.to_string()));
        }
        let state = match entry.consent {
            wire::Consent::Request => ConsentState::Requested,
            wire::Consent::Cancel => ConsentState::Cancelled,
            _ => {
                return Err(malformed("ConsentEntry")(
                    "/requestConsent takes request or cancel".into(),
                ));
            }
        };
        // A request that arrives after (or races with) the target's grant changes nothing.
        if state == ConsentState::Requested {
            consents::request(
                self.store.pool(),
                requester.as_str(),
                target.as_str(),
                room.as_deref(),
            )
            .await?;
            return Ok(());
        }
        consents::set(
            self.store.pool(),
            requester.as_str(),
            target.as_str(),
            room.as_deref(),
            state,
        )
        .await?;
        Ok(())
    }

    /// `/updateConsent/{requesterDomain}`: a peer's user granted or revoked consent to one of
    /// our users.
    pub async fn consent_updated(
        &self,
        peer: &ProviderId,
        entry: &wire::ConsentEntry,
    ) -> Result<(), ServiceError> {
        let (requester, target, room) = consent_parties(entry)?;
        if target.provider() != peer {
            return Err(ServiceError::Forbidden(format!(
                "{} cannot answer for {target}",
                peer.domain()
            )));
        }
        if requester.provider() != &self.domain {
            return Err(ServiceError::UnknownUser(requester.to_string()));
        }
        let state = match entry.consent {
            wire::Consent::Grant { .. } => ConsentState::Granted,
            wire::Consent::Revoke => ConsentState::Revoked,
            _ => {
                return Err(malformed("ConsentEntry")(
                    "/updateConsent takes grant or revoke".into(),
                ));
            }
        };
        consents::set(
            self.store.pool(),
            requester.as_str(),
            target.as_str(),
            room.as_deref(),
            state,
        )
        .await?;
        Ok(())
    }

    /// Queues a consent operation for the other provider: a request or cancel goes to the
    /// target's provider, a grant or revoke to the requester's. Local effects are recorded now.
    pub async fn send_consent(
        &self,
        operation: wire::Consent,
        requester: &UserUri,
        target: &UserUri,
        room: Option<&RoomUri>,
    ) -> Result<(), ServiceError> {
        let (destination, state) = match operation {
            wire::Consent::Request => (target.provider(), ConsentState::Requested),
            wire::Consent::Cancel => (target.provider(), ConsentState::Cancelled),
            wire::Consent::Grant { .. } => (requester.provider(), ConsentState::Granted),
            wire::Consent::Revoke => (requester.provider(), ConsentState::Revoked),
        };
        let entry = wire::ConsentEntry {
            consent: operation,
            requester_uri: IdentifierUri::new(requester.as_str()),
            target_uri: IdentifierUri::new(target.as_str()),
            room_id: room.map(|r| IdentifierUri::new(r.as_str())),
            consent_extensions: Default::default(),
        };
        let body = wire::encode(&entry).map_err(|e| malformed("ConsentEntry")(e.to_string()))?;
        let mut tx = self.store.begin().await?;
        consents::set(
            &mut *tx,
            requester.as_str(),
            target.as_str(),
            room.map(|r| r.as_str()),
            state,
        )
        .await?;
        outbox::enqueue(
            &mut *tx,
            &outbox::OutboxRecord {
                id: format!(
                    "consent:{}",
                    hex::encode(mls_blobs::hash(
                        &[body.as_slice(), &now_ms().to_be_bytes()].concat()
                    ))
                ),
                room_id: None,
                destination: destination.domain().to_string(),
                kind: "consent".into(),
                sender: None,
                body,
                attempts: 0,
            },
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.wake();
        Ok(())
    }

    // ------------------------------------------------------------------ hub

    /// `/update/{roomId}` from a follower.
    pub async fn hub_update(
        &self,
        room: &RoomUri,
        peer: &ProviderId,
        request: UpdateRequest,
    ) -> Result<UpdateRoomResponse, ServiceError> {
        self.hosted_room(room).await?;
        let current = self.epoch(room).await?;
        let bundle = request.bundle;
        let message = &bundle.proposal_or_commit;
        // A retry of a handshake this hub accepted already (its answer was lost): the same
        // answer again, and the fan-out queued again in case it was lost too (the outbox
        // ignores what it holds already).
        if crate::store::hub_accepted::accepted_at(
            self.store.pool(),
            room.as_str(),
            &mls_blobs::hash(message.as_bytes()),
        )
        .await?
        .is_some()
        {
            let state = self.mls.room_state(room).await?;
            let timestamp = now_ms() as u64;
            let mut batch = vec![FanoutMessage {
                timestamp,
                message: message.clone(),
                body: match &bundle.body {
                    HandshakeBundleBody::Commit { .. } => FanoutBody::Commit {
                        external_proposals: Vec::new(),
                    },
                    HandshakeBundleBody::Proposal { more_proposals } => FanoutBody::Proposal {
                        more_proposals: more_proposals.clone(),
                    },
                },
            }];
            if let HandshakeBundleBody::Commit {
                welcome: Some(w), ..
            } = &bundle.body
            {
                batch.push(FanoutMessage {
                    timestamp,
                    message: MlsMessage::from_welcome(w),
                    body: FanoutBody::Welcome {
                        ratchet_tree_option: RatchetTreeOption::DistributionService,
                    },
                });
            }
            self.queue_notify(room, followers(&state, &self.domain), &batch)
                .await?;
            return Ok(UpdateRoomResponse {
                error_description: String::new(),
                outcome: UpdateOutcome::Success {
                    accepted_timestamp: timestamp,
                },
            });
        }
        if message.epoch() != Some(current) {
            return Ok(UpdateRoomResponse {
                error_description: format!(
                    "the handshake is for epoch {}, the room is at epoch {current}",
                    message
                        .epoch()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "?".into())
                ),
                outcome: UpdateOutcome::WrongEpoch {
                    current_epoch: current,
                },
            });
        }
        // A handshake is signed by its sending client, so another provider cannot forge one;
        // `peer` is already authenticated by its certificate.
        let _ = peer;
        let before = self.mls.room_state(room).await?;
        let result = match &bundle.body {
            HandshakeBundleBody::Commit { .. } => self
                .mls
                .process_incoming(room, message.as_bytes())
                .await
                .map(|_| ()),
            HandshakeBundleBody::Proposal { more_proposals } => {
                let mut all: Vec<&[u8]> = vec![message.as_bytes()];
                all.extend(more_proposals.iter().map(|m| m.as_bytes()));
                self.mls.process_proposals(room, &all).await.map(|_| ())
            }
        };
        match result {
            Ok(()) => {}
            Err(MlsError::Rejected { rejection, .. }) => {
                return Ok(refused(rejection.code, rejection.reason));
            }
            Err(MlsError::InvalidRoomState { reason, .. }) => {
                return Ok(refused(
                    RejectCode::InvalidProposal {
                        proposals: Vec::new(),
                    },
                    reason,
                ));
            }
            Err(MlsError::Malformed { what, reason }) => {
                return Err(ServiceError::Malformed { what, reason });
            }
            Err(e) => return Err(e.into()),
        }
        let timestamp = now_ms() as u64;
        match bundle.body {
            HandshakeBundleBody::Commit { welcome, .. } => {
                let after = self.mls.room_state(room).await?;
                let welcome = welcome.map(|w| MlsMessage::from_welcome(&w));
                self.fan_out_commit(
                    room,
                    (&before, &after),
                    message.clone(),
                    welcome,
                    timestamp,
                    Joiners::JoinHere,
                )
                .await?;
            }
            HandshakeBundleBody::Proposal { more_proposals } => {
                let state = self.mls.room_state(room).await?;
                let fanout = FanoutMessage {
                    timestamp,
                    message: message.clone(),
                    body: FanoutBody::Proposal { more_proposals },
                };
                self.queue_notify(room, followers(&state, &self.domain), &[fanout])
                    .await?;
            }
        }
        Ok(UpdateRoomResponse {
            error_description: String::new(),
            outcome: UpdateOutcome::Success {
                accepted_timestamp: timestamp,
            },
        })
    }

    /// A commit of a local proxy client in a room this daemon hosts: accepted here.
    async fn hub_local_commit(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
        commit: &[u8],
    ) -> Result<(), ServiceError> {
        let pending =
            pending_commits::get(self.store.pool(), room.as_str(), committer.as_str()).await?;
        // Another commit of the same epoch was accepted first (a follower's, through /update):
        // this one is refused, as a remote hub would answer wrongEpoch.
        if let Some(p) = &pending {
            let current = self.epoch(room).await? as i64;
            if p.epoch != current {
                tracing::warn!(%room, %committer, epoch = p.epoch, current, "a local commit lost its epoch; discarded");
                self.mls
                    .discard_commit(
                        room,
                        committer,
                        "another commit of the same epoch was accepted first",
                    )
                    .await?;
                return Ok(());
            }
        }
        let welcome = match pending.as_ref().and_then(|p| p.welcome_hash.clone()) {
            Some(hash) => {
                let mut conn = self
                    .store
                    .pool()
                    .acquire()
                    .await
                    .map_err(StoreError::from)?;
                mls_blobs::get(&mut conn, &hash).await?
            }
            None => None,
        };
        let before = self.mls.room_state(room).await?;
        let after = self.mls.confirm_commit(room, committer).await?;
        let commit =
            MlsMessage::from_bytes(commit).map_err(|e| malformed("commit")(e.to_string()))?;
        let welcome = welcome
            .map(|w| MlsMessage::from_bytes(&w))
            .transpose()
            .map_err(|e| malformed("Welcome")(e.to_string()))?;
        self.fan_out_commit(
            room,
            (&before, &after),
            commit,
            welcome,
            now_ms() as u64,
            Joiners::AlreadyJoined,
        )
        .await
    }

    /// Sends an accepted commit to every provider with clients before or after it, and its
    /// Welcome to the providers of the clients it adds. Local joiners join here.
    async fn fan_out_commit(
        &self,
        room: &RoomUri,
        (before, after): (&RoomState, &RoomState),
        commit: MlsMessage,
        welcome: Option<MlsMessage>,
        timestamp: u64,
        local: Joiners,
    ) -> Result<(), ServiceError> {
        let mut targets = followers(before, &self.domain);
        targets.extend(followers(after, &self.domain));
        let added: BTreeSet<ProviderId> = after
            .members
            .iter()
            .filter(|m| !before.members.iter().any(|b| b.client == m.client))
            .map(|m| m.client.provider().clone())
            .collect();
        // A follower's commit that adds this provider's users: they join here.
        if local == Joiners::JoinHere
            && added.contains(&self.domain)
            && let Some(w) = &welcome
        {
            self.mls.join_from_welcome(room, w.as_bytes()).await?;
        }
        let commit_fanout = FanoutMessage {
            timestamp,
            message: commit,
            body: FanoutBody::Commit {
                external_proposals: Vec::new(),
            },
        };
        for provider in &targets {
            let mut batch = vec![];
            if !added.contains(provider)
                || before
                    .members
                    .iter()
                    .any(|m| m.client.provider() == provider)
            {
                batch.push(commit_fanout.clone());
            }
            if let (Some(w), true) = (&welcome, added.contains(provider)) {
                batch.push(FanoutMessage {
                    timestamp,
                    message: w.clone(),
                    body: FanoutBody::Welcome {
                        ratchet_tree_option: RatchetTreeOption::DistributionService,
                    },
                });
            }
            if !batch.is_empty() {
                self.queue_notify(room, BTreeSet::from([provider.clone()]), &batch)
                    .await?;
            }
        }
        Ok(())
    }

    /// `/submitMessage/{roomId}` from a follower.
    pub async fn hub_submit(
        &self,
        room: &RoomUri,
        peer: &ProviderId,
        request: SubmitMessageRequest,
    ) -> Result<SubmitMessageResponse, ServiceError> {
        self.hosted_room(room).await?;
        let not_allowed = SubmitMessageResponse {
            protocol: Protocol::Mls10,
            status: SubmitStatus::NotAllowed,
        };
        let sender: UserUri = match request.sending_uri.as_str().map(str::parse) {
            Some(Ok(u)) => u,
            _ => return Ok(not_allowed),
        };
        if sender.provider() != peer {
            return Ok(not_allowed);
        }
        let state = self.mls.room_state(room).await?;
        if !may_send(&state, &sender) {
            return Ok(not_allowed);
        }
        let current = self.epoch(room).await?;
        if request.app_message.epoch() != Some(current) {
            return Ok(SubmitMessageResponse {
                protocol: Protocol::Mls10,
                status: SubmitStatus::EpochTooOld {
                    current_epoch: current,
                },
            });
        }
        let timestamp = self
            .accept_message(room, &state, request.app_message)
            .await?;
        Ok(SubmitMessageResponse {
            protocol: Protocol::Mls10,
            status: SubmitStatus::Accepted {
                accepted_timestamp: timestamp,
                frank: None,
            },
        })
    }

    /// Stamps a message, delivers it to this provider's users and fans it out.
    async fn accept_message(
        &self,
        room: &RoomUri,
        state: &RoomState,
        message: MlsMessage,
    ) -> Result<u64, ServiceError> {
        let timestamp = now_ms() as u64;
        self.deliver_locally(room, message.as_bytes(), timestamp)
            .await?;
        let fanout = FanoutMessage {
            timestamp,
            message,
            body: FanoutBody::Application { frank: None },
        };
        self.queue_notify(room, followers(state, &self.domain), &[fanout])
            .await?;
        Ok(timestamp)
    }

    async fn deliver_locally(
        &self,
        room: &RoomUri,
        message: &[u8],
        timestamp: u64,
    ) -> Result<(), ServiceError> {
        self.mls
            .receive_and_store(room, message, timestamp as i64)
            .await?;
        Ok(())
    }

    async fn queue_notify(
        &self,
        room: &RoomUri,
        targets: BTreeSet<ProviderId>,
        messages: &[FanoutMessage],
    ) -> Result<(), ServiceError> {
        if targets.is_empty() || messages.is_empty() {
            return Ok(());
        }
        let body = wire::join_notify_body(messages)
            .map_err(|e| malformed("FanoutMessage")(e.to_string()))?;
        // The id names the messages, not their timestamps: queueing the same fan-out again
        // (a retried /update) adds nothing.
        let mut content = Vec::new();
        for m in messages {
            content.extend_from_slice(&mls_blobs::hash(m.message.as_bytes()));
        }
        let hash = hex::encode(mls_blobs::hash(&content));
        for target in targets {
            outbox::enqueue_once(
                self.store.pool(),
                &outbox::OutboxRecord {
                    id: format!("notify:{}:{hash}", target.domain()),
                    room_id: Some(room.to_string()),
                    destination: target.domain().to_string(),
                    kind: "notify".into(),
                    sender: None,
                    body: body.clone(),
                    attempts: 0,
                },
            )
            .await?;
        }
        self.wake();
        Ok(())
    }

    // ------------------------------------------------------------------ follower

    /// `/notify/{roomId}` from the room's hub. A byte-identical body seen before is not
    /// processed again.
    pub async fn follower_notify(
        &self,
        room: &RoomUri,
        peer: &ProviderId,
        body: &[u8],
    ) -> Result<(), ServiceError> {
        if room.provider() != peer {
            return Err(ServiceError::Forbidden(format!(
                "{} is not the hub of {room}: only the hub notifies",
                peer.domain()
            )));
        }
        let hash = mls_blobs::hash(body);
        let seen = sqlx::query("SELECT 1 FROM notify_seen WHERE body_hash = $1")
            .bind(&hash)
            .fetch_optional(self.store.pool())
            .await
            .map_err(StoreError::from)?;
        if seen.is_some() {
            return Ok(());
        }
        let messages =
            wire::split_notify_body(body).map_err(|e| malformed("notify body")(e.to_string()))?;
        let joining = messages
            .iter()
            .any(|m| matches!(m.body, FanoutBody::Welcome { .. }));
        if !joining
            && room_groups::get(self.store.pool(), room.as_str())
                .await?
                .is_none()
        {
            return Err(ServiceError::UnknownRoom(room.to_string()));
        }
        for fanout in messages {
            self.apply_fanout(room, fanout).await?;
        }
        notify_seen::record(self.store.pool(), &hash, room.as_str()).await?;
        Ok(())
    }

    async fn apply_fanout(
        &self,
        room: &RoomUri,
        fanout: FanoutMessage,
    ) -> Result<(), ServiceError> {
        let bytes = fanout.message.as_bytes();
        let known_epoch = match room_groups::get(self.store.pool(), room.as_str()).await? {
            Some(g) => Some(g.epoch as u64),
            None => None,
        };
        match fanout.body {
            FanoutBody::Welcome { .. } => match self.mls.join_from_welcome(room, bytes).await {
                // A hub re-sending a fan-out may send a Welcome to every follower.
                Ok(_) | Err(MlsError::WelcomeNotForUs(_)) => {}
                Err(e) => return Err(e.into()),
            },
            FanoutBody::Commit { .. } => {
                let own = pending_commits::by_commit(
                    self.store.pool(),
                    room.as_str(),
                    &mls_blobs::hash(bytes),
                )
                .await?;
                match own {
                    Some(committer) => {
                        let committer = ClientUri::from_bytes(committer.as_bytes())
                            .map_err(|e| malformed("stored client")(e.to_string()))?;
                        self.mls.confirm_commit(room, &committer).await?;
                    }
                    None if fanout.message.epoch() < known_epoch => {} // applied already
                    None if known_epoch.is_none() => {}                // not in the room yet
                    None => {
                        if let Incoming::Commit { .. } =
                            self.mls.process_incoming(room, bytes).await?
                        {}
                    }
                }
            }
            FanoutBody::Proposal { more_proposals } => {
                if known_epoch.is_some() && fanout.message.epoch() >= known_epoch {
                    let mut all: Vec<&[u8]> = vec![bytes];
                    all.extend(more_proposals.iter().map(|m| m.as_bytes()));
                    // A local client's own proposals are already in its proposal store, and
                    // the room's reader cannot process its own handshakes: skip, don't fail.
                    if let Err(e) = self.mls.process_proposals(room, &all).await {
                        tracing::info!(%room, error = %e, "fanned-out proposals not applied here");
                    }
                }
            }
            FanoutBody::Application { .. } => {
                if known_epoch.is_some() {
                    self.deliver_locally(room, bytes, fanout.timestamp).await?;
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ delivery

    /// Runs the outbox until `stop`: each (room, destination) queue strictly in order, failed
    /// calls retried with exponential backoff (or the peer's Retry-After) under the same id.
    pub fn spawn_delivery(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let next = match self.deliver_due().await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox delivery failed");
                        Some(Duration::from_secs(1))
                    }
                };
                let pause = next
                    .unwrap_or(Duration::from_secs(30))
                    .min(Duration::from_secs(30));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        })
    }

    /// Attempts every due queue head once; returns how long until the next one is due.
    pub async fn deliver_due(&self) -> Result<Option<Duration>, ServiceError> {
        let mut next_due: Option<i64> = None;
        loop {
            let heads = outbox::heads(self.store.pool()).await?;
            let now = now_ms();
            let due: Vec<_> = heads
                .iter()
                .filter(|h| h.next_attempt_at_ms <= now)
                .cloned()
                .collect();
            for h in &heads {
                if h.next_attempt_at_ms > now {
                    next_due = Some(
                        next_due.map_or(h.next_attempt_at_ms, |n| n.min(h.next_attempt_at_ms)),
                    );
                }
            }
            if due.is_empty() {
                return Ok(next_due.map(|at| Duration::from_millis((at - now).max(0) as u64)));
            }
            let mut progressed = false;
            for head in due {
                let item = head.item;
                match self.deliver(&item).await {
                    Attempt::DeadLettered => progressed = true,
                    Attempt::Delivered => {
                        outbox::mark_delivered(self.store.pool(), &item.id).await?;
                        progressed = true;
                    }
                    Attempt::Retry(retry) => {
                        let backoff = retry.unwrap_or_else(|| {
                            Duration::from_millis(
                                250u64.saturating_mul(1 << item.attempts.clamp(0, 8)),
                            )
                        });
                        let at = now_ms() + backoff.as_millis() as i64;
                        outbox::reschedule(self.store.pool(), &item.id, at).await?;
                        next_due = Some(next_due.map_or(at, |n| n.min(at)));
                    }
                }
            }
            if !progressed {
                return Ok(next_due.map(|at| Duration::from_millis((at - now_ms()).max(0) as u64)));
            }
        }
    }

    /// One attempt. `Err(Some(d))`: retry after `d` (the peer asked); `Err(None)`: retry with
    /// backoff.
    async fn deliver(&self, item: &outbox::OutboxRecord) -> Attempt {
        match self.try_deliver(item).await {
            Ok(attempt) => attempt,
            Err(e) => {
                tracing::warn!(id = %item.id, destination = %item.destination, error = %e, "delivery attempt failed");
                Attempt::Retry(None)
            }
        }
    }

    async fn try_deliver(&self, item: &outbox::OutboxRecord) -> Result<Attempt, ServiceError> {
        if item.kind == LEGACY_KIND {
            return Ok(match self.legacy.get() {
                Some(legacy) => legacy.deliver(item).await,
                // No connector yet (still starting): keep the commands for it.
                None => Attempt::Retry(Some(Duration::from_secs(1))),
            });
        }
        if item.kind == "consent" {
            let entry: wire::ConsentEntry = wire::decode_exact(&item.body)
                .map_err(|e| malformed("queued consent")(e.to_string()))?;
            let peer = ProviderId::new(&item.destination)
                .map_err(|e| malformed("outbox destination")(e.to_string()))?;
            let endpoint = match entry.consent {
                wire::Consent::Request | wire::Consent::Cancel => Endpoint::RequestConsent,
                _ => Endpoint::UpdateConsent,
            };
            let answer = self
                .client()?
                .post(&peer, endpoint, self.domain.domain(), item.body.clone())
                .await?;
            return Ok(match answer.status {
                200 | 201 => Attempt::Delivered,
                404 => {
                    tracing::warn!(peer = %peer.domain(), "consent: the peer does not know the user");
                    Attempt::Delivered
                }
                _ => Attempt::Retry(answer.retry_after),
            });
        }
        let room: RoomUri = item
            .room_id
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| malformed("outbox room")(format!("{e}")))?;
        let local_hub = room.provider() == &self.domain;
        match item.kind.as_str() {
            "commit" => {
                let Some(committer) = pending_commits::by_commit(
                    self.store.pool(),
                    room.as_str(),
                    &mls_blobs::hash(&item.body),
                )
                .await?
                else {
                    // Answered already. On the hub, a crash may have come between accepting
                    // the commit and queueing its fan-out: queue it (again; the outbox keeps
                    // one copy).
                    let hash = mls_blobs::hash(&item.body);
                    if local_hub
                        && crate::store::hub_accepted::accepted_at(
                            self.store.pool(),
                            room.as_str(),
                            &hash,
                        )
                        .await?
                        .is_some()
                    {
                        let state = self.mls.room_state(&room).await?;
                        let fanout = FanoutMessage {
                            timestamp: now_ms() as u64,
                            message: MlsMessage::from_bytes(&item.body)
                                .map_err(|e| malformed("commit")(e.to_string()))?,
                            body: FanoutBody::Commit {
                                external_proposals: Vec::new(),
                            },
                        };
                        self.queue_notify(&room, followers(&state, &self.domain), &[fanout])
                            .await?;
                    }
                    return Ok(Attempt::Delivered);
                };
                let committer = ClientUri::from_bytes(committer.as_bytes())
                    .map_err(|e| malformed("stored client")(e.to_string()))?;
                if local_hub {
                    self.hub_local_commit(&room, &committer, &item.body).await?;
                    return Ok(Attempt::Delivered);
                }
                let request = self.update_request(&room, &committer, &item.body).await?;
                let response = match self.send_update(&room, &request).await? {
                    Ok(response) => response,
                    Err(retry) => return Ok(Attempt::Retry(retry)),
                };
                match response.outcome {
                    UpdateOutcome::Success { .. } => {
                        if pending_commits::get(
                            self.store.pool(),
                            room.as_str(),
                            committer.as_str(),
                        )
                        .await?
                        .is_some()
                        {
                            self.mls.confirm_commit(&room, &committer).await?;
                        }
                    }
                    other => {
                        tracing::warn!(%room, %committer, outcome = ?other, reason = %response.error_description, "the hub refused a commit");
                        let reason = format!(
                            "the hub refused the commit ({other:?}): {}",
                            response.error_description
                        );
                        self.mls.discard_commit(&room, &committer, &reason).await?;
                    }
                }
                Ok(Attempt::Delivered)
            }
            "external_commit" => {
                let parts: Vec<tls_codec::VLBytes> =
                    tls_codec::Deserialize::tls_deserialize_exact(&item.body)
                        .map_err(|e| malformed("queued external commit")(e.to_string()))?;
                let [commit, group_info] = parts.as_slice() else {
                    return Err(malformed("queued external commit")(
                        "expected a commit and a GroupInfo".into(),
                    ));
                };
                let commit = MlsMessage::from_bytes(commit.as_slice())
                    .map_err(|e| malformed("commit")(e.to_string()))?;
                if local_hub {
                    // Already merged and logged here: only the fan-out is left.
                    let state = self.mls.room_state(&room).await?;
                    let fanout = FanoutMessage {
                        timestamp: now_ms() as u64,
                        message: commit,
                        body: FanoutBody::Commit {
                            external_proposals: Vec::new(),
                        },
                    };
                    self.queue_notify(&room, followers(&state, &self.domain), &[fanout])
                        .await?;
                    return Ok(Attempt::Delivered);
                }
                let group_info = MlsMessage::from_bytes(group_info.as_slice())
                    .ok()
                    .and_then(|g| g.group_info())
                    .ok_or_else(|| malformed("queued external commit")("no GroupInfo".into()))?;
                let request = UpdateRequest {
                    bundle: HandshakeBundle {
                        proposal_or_commit: commit,
                        body: HandshakeBundleBody::Commit {
                            welcome: None,
                            group_info_option: GroupInfoOption::Full(group_info),
                            ratchet_tree_option: RatchetTreeOption::DistributionService,
                        },
                    },
                };
                let response = match self.send_update(&room, &request).await? {
                    Ok(response) => response,
                    Err(retry) => return Ok(Attempt::Retry(retry)),
                };
                if !matches!(response.outcome, UpdateOutcome::Success { .. }) {
                    tracing::warn!(%room, outcome = ?response.outcome, reason = %response.error_description, "the hub refused an external commit");
                }
                Ok(Attempt::Delivered)
            }
            "message" => {
                let message = MlsMessage::from_bytes(&item.body)
                    .map_err(|e| malformed("message")(e.to_string()))?;
                if local_hub {
                    let state = self.mls.room_state(&room).await?;
                    self.accept_message(&room, &state, message).await?;
                    return Ok(Attempt::Delivered);
                }
                let request = SubmitMessageRequest {
                    protocol: Protocol::Mls10,
                    app_message: message,
                    sending_uri: IdentifierUri::new(item.sender.as_deref().unwrap_or_default()),
                };
                let body = wire::encode(&request)
                    .map_err(|e| malformed("SubmitMessageRequest")(e.to_string()))?;
                let answer = self
                    .client()?
                    .post(
                        room.provider(),
                        Endpoint::SubmitMessage,
                        room.as_str(),
                        body,
                    )
                    .await?;
                if answer.status != 200 {
                    return Ok(Attempt::Retry(answer.retry_after));
                }
                let response: SubmitMessageResponse = wire::decode_exact(&answer.body)
                    .map_err(|e| malformed("SubmitMessageResponse")(e.to_string()))?;
                if !matches!(response.status, SubmitStatus::Accepted { .. }) {
                    tracing::warn!(%room, status = ?response.status, "the hub refused a message");
                }
                Ok(Attempt::Delivered)
            }
            "notify" => {
                let peer = ProviderId::new(&item.destination)
                    .map_err(|e| malformed("outbox destination")(e.to_string()))?;
                let answer = self
                    .client()?
                    .post(&peer, Endpoint::Notify, room.as_str(), item.body.clone())
                    .await?;
                if answer.status == 201 || answer.status == 200 {
                    Ok(Attempt::Delivered)
                } else if is_permanent(answer.status) {
                    // The peer refuses this body for good (malformed, unknown room, not its
                    // hub): retrying cannot help and would hold up the room's queue. Kept as a
                    // dead letter for the operator; the queue moves on.
                    tracing::warn!(
                        %room,
                        peer = %peer.domain(),
                        status = answer.status,
                        answer = %String::from_utf8_lossy(&answer.body),
                        "notify refused; dead-lettered"
                    );
                    outbox::dead_letter(self.store.pool(), &item.id).await?;
                    Ok(Attempt::DeadLettered)
                } else {
                    tracing::info!(
                        %room,
                        peer = %peer.domain(),
                        status = answer.status,
                        answer = %String::from_utf8_lossy(&answer.body),
                        "notify not accepted yet"
                    );
                    Ok(Attempt::Retry(answer.retry_after))
                }
            }
            "proposals" => {
                let messages: Vec<tls_codec::VLBytes> =
                    tls_codec::Deserialize::tls_deserialize_exact(&item.body)
                        .map_err(|e| malformed("queued proposals")(e.to_string()))?;
                let parsed = messages
                    .iter()
                    .map(|m| MlsMessage::from_bytes(m.as_slice()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| malformed("queued proposals")(e.to_string()))?;
                let Some((first, rest)) = parsed.split_first() else {
                    return Ok(Attempt::Delivered);
                };
                let request = UpdateRequest {
                    bundle: HandshakeBundle {
                        proposal_or_commit: first.clone(),
                        body: HandshakeBundleBody::Proposal {
                            more_proposals: rest.to_vec(),
                        },
                    },
                };
                if local_hub {
                    let answer = self
                        .hub_update(&room, &self.domain.clone(), request)
                        .await?;
                    if !matches!(answer.outcome, UpdateOutcome::Success { .. }) {
                        tracing::warn!(%room, outcome = ?answer.outcome, reason = %answer.error_description, "proposals refused");
                    }
                    return Ok(Attempt::Delivered);
                }
                let response = match self.send_update(&room, &request).await? {
                    Ok(response) => response,
                    Err(retry) => return Ok(Attempt::Retry(retry)),
                };
                if !matches!(response.outcome, UpdateOutcome::Success { .. }) {
                    tracing::warn!(%room, outcome = ?response.outcome, reason = %response.error_description, "the hub refused proposals");
                }
                Ok(Attempt::Delivered)
            }
            other => Err(malformed("outbox item")(format!("unknown kind `{other}`"))),
        }
    }

    /// Sends an `UpdateRequest` to the room's hub: its answer, or when to try again.
    async fn send_update(
        &self,
        room: &RoomUri,
        request: &UpdateRequest,
    ) -> Result<Result<UpdateRoomResponse, Option<Duration>>, ServiceError> {
        let body = wire::encode(request).map_err(|e| malformed("UpdateRequest")(e.to_string()))?;
        let answer = self
            .client()?
            .post(room.provider(), Endpoint::Update, room.as_str(), body)
            .await?;
        if answer.status != 200 {
            return Ok(Err(answer.retry_after));
        }
        Ok(Ok(wire::decode_exact(&answer.body).map_err(|e| {
            malformed("UpdateRoomResponse")(e.to_string())
        })?))
    }

    fn client(&self) -> Result<&MimiClient, ServiceError> {
        self.client.as_deref().ok_or_else(|| {
            ServiceError::Forbidden("the MIMI client is not configured ([mimi.tls])".into())
        })
    }

    async fn update_request(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
        commit: &[u8],
    ) -> Result<UpdateRequest, ServiceError> {
        let pending = pending_commits::get(self.store.pool(), room.as_str(), committer.as_str())
            .await?
            .ok_or_else(|| {
                malformed("pending commit")(format!("{committer} has no pending commit in {room}"))
            })?;
        let mut conn = self
            .store
            .pool()
            .acquire()
            .await
            .map_err(StoreError::from)?;
        let blob =
            |m: Option<Vec<u8>>, what: &'static str| -> Result<Option<MlsMessage>, ServiceError> {
                m.map(|b| MlsMessage::from_bytes(&b))
                    .transpose()
                    .map_err(|e| malformed(what)(e.to_string()))
            };
        let welcome = match &pending.welcome_hash {
            Some(h) => blob(mls_blobs::get(&mut conn, h).await?, "Welcome")?,
            None => None,
        };
        let group_info = match &pending.group_info_hash {
            Some(h) => blob(mls_blobs::get(&mut conn, h).await?, "GroupInfo")?,
            None => None,
        };
        let group_info = group_info.and_then(|g| g.group_info()).ok_or_else(|| {
            malformed("pending commit")("no GroupInfo was kept with the commit".into())
        })?;
        Ok(UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: MlsMessage::from_bytes(commit)
                    .map_err(|e| malformed("commit")(e.to_string()))?,
                body: HandshakeBundleBody::Commit {
                    welcome: welcome.and_then(|w| w.welcome()),
                    group_info_option: GroupInfoOption::Full(group_info),
                    ratchet_tree_option: RatchetTreeOption::DistributionService,
                },
            },
        })
    }
}

/// What to do with this provider's clients that a commit adds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Joiners {
    /// A follower's commit: they join here from its Welcome.
    JoinHere,
    /// A local client's commit: confirming it registered them already.
    AlreadyJoined,
}

/// The outcome of one delivery attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Try again after the given time (the peer's Retry-After), or with backoff.
    Retry(Option<Duration>),
    /// Refused for good; kept in the outbox as a dead letter.
    DeadLettered,
}

/// A 4xx answer that a retry cannot turn into a success (timeouts, early data and rate limits
/// can).
fn is_permanent(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 408 | 425 | 429)
}

/// Providers other than `own` with clients in the room.
fn followers(state: &RoomState, own: &ProviderId) -> BTreeSet<ProviderId> {
    state
        .members
        .iter()
        .map(|m| m.client.provider().clone())
        .filter(|p| p != own)
        .collect()
}

/// A user may send when it is a participant, not banned or exiting, with an active client
/// whose role has the send capability.
fn may_send(state: &RoomState, user: &UserUri) -> bool {
    let role = state.participants.role_of(user);
    if role == NO_ROLE || role == BANNED_ROLE || state.block_reason(user).is_some() {
        return false;
    }
    state
        .active_clients(user)
        .first()
        .is_some_and(|client| check_application_message(state, client).is_ok())
}

fn refused(code: RejectCode, reason: String) -> UpdateRoomResponse {
    UpdateRoomResponse {
        error_description: reason,
        outcome: match code {
            RejectCode::WrongEpoch { current_epoch } => UpdateOutcome::WrongEpoch { current_epoch },
            RejectCode::NotAllowed => UpdateOutcome::NotAllowed,
            RejectCode::InvalidProposal { proposals } => UpdateOutcome::InvalidProposal {
                invalid_proposals: proposals
                    .into_iter()
                    .filter_map(|r| proposal_ref(r.as_bytes()))
                    .collect(),
            },
        },
    }
}

/// openmls builds a ProposalRef only by hashing or decoding: decode the raw reference from its
/// wire form (`opaque<V>`).
fn proposal_ref(raw: &[u8]) -> Option<openmls::ciphersuite::hash_ref::ProposalRef> {
    use tls_codec::{Deserialize, Serialize};
    let bytes = tls_codec::VLBytes::new(raw.to_vec())
        .tls_serialize_detached()
        .ok()?;
    openmls::ciphersuite::hash_ref::ProposalRef::tls_deserialize_exact(bytes).ok()
}

/// The requester, target and room of a consent entry.
fn consent_parties(
    entry: &wire::ConsentEntry,
) -> Result<(UserUri, UserUri, Option<String>), ServiceError> {
    let user = |uri: &IdentifierUri, what: &str| -> Result<UserUri, ServiceError> {
        uri.as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| malformed("ConsentEntry")(format!("{what} is not a user URI: {e}")))
    };
    let room = entry
        .room_id
        .as_ref()
        .and_then(|r| r.as_str().map(str::to_string))
        .filter(|r| !r.is_empty());
    Ok((
        user(&entry.requester_uri, "requesterUri")?,
        user(&entry.target_uri, "targetUri")?,
        room,
    ))
}

/// `SignWithLabel` over the TLS encoding of a to-be-signed struct.
fn sign_tbs(
    signer: &impl openmls_traits::signatures::Signer,
    label: &str,
    tbs: &impl tls_codec::Serialize,
) -> Result<Vec<u8>, String> {
    let content = tbs.tls_serialize_detached().map_err(|e| e.to_string())?;
    wire::common::sign_with_label(signer, label, &content).map_err(|e| format!("{e:?}"))
}

/// `VerifyWithLabel` with the signature scheme of the MIMI ciphersuite; `Err` when the
/// signature does not verify.
fn verify_tbs(key: &[u8], label: &str, content: &[u8], signature: &[u8]) -> Result<(), ()> {
    wire::common::verify_with_label(
        &openmls_rust_crypto::RustCrypto::default(),
        crate::mls::group_config::CIPHERSUITE.signature_algorithm(),
        key,
        label,
        content,
        signature,
    )
    .map_err(|_| ())
}
