//! The proxy MLS engine: every MLS operation the bridge performs for its legacy users.
//!
//! Each operation runs in one database transaction: load the acting client's working set,
//! catch it up from the room log, do the MLS step, check it through the room core, then write
//! the client's changed state, the room log, the outbox rows and the room's epoch together. A
//! failure anywhere (including an injected one, see [`ProxyMls::inject_fault`]) rolls the whole
//! operation back, so the store always holds the state after the last operation that
//! completed, and a failed operation can simply be retried.
//!
//! Commits a proxy client makes are two-phase, as the hub decides: `stage_*` writes the commit
//! as pending and queues it for the hub; [`ProxyMls::confirm_commit`] merges it once the hub
//! accepted it; [`ProxyMls::discard_commit`] drops it when the hub refused it.
//!
//! Cost: one local member per room, the *reader*, processes every incoming handshake and
//! decrypts every message. The other local members stay where they are (a client added by a
//! Welcome does not even process it) until they must act; then they catch up from the room log.
//! A commit arriving in a room with a thousand local members costs about what it costs one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openmls::component::ComponentData;
use openmls::extensions::{AppDataDictionaryExtension, ExternalSender, ExternalSendersExtension};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use sqlx::AnyConnection;

use super::clients::{self, ClientIdentity, client_of};
use super::error::{MlsError, OpenmlsResult};
use super::group_config::{CIPHERSUITE, join_config, leaf_capabilities, required_capabilities};
use super::room_sync;
use super::sealing::StateKey;
use super::storage::{ProxyProvider, WorkingSet};
use crate::room::change::RoomChange;
use crate::room::code_points::ComponentCodePoints;
use crate::room::handshake::{Change, Handshake, Sender as RoomSender};
use crate::room::state::{Member, RoomState, default_roles};
use crate::room::validation::{check_application_message, validate_handshake};
use crate::room::wire::{
    self, BaseRoomPolicy, ParticipantListUpdate, UserIndexRolePair, UserRolePair,
};
use crate::store::legacy_events::{self, Settlement};
use crate::store::pending_commits::{self, PendingCommitRecord};
use crate::store::room_log::{self, LogKind};
use crate::store::room_proxy_members::{self, ProxyMemberRecord};
use crate::store::rooms::{self, NewRoom, OurRole};
use crate::store::{
    Store, StoreError, inbound_messages, key_packages, mls_blobs, outbox, proxy_clients,
    room_groups,
};
use crate::uri::{ClientUri, GroupUri, ProviderId, RoomUri, UserUri};

/// What a commit produced, as it goes to the hub.
#[derive(Clone, Debug)]
pub struct CommitOutput {
    /// The epoch the commit was made in.
    pub epoch: u64,
    /// The MLSMessage (PublicMessage) carrying the commit.
    pub commit: Vec<u8>,
    /// The MLSMessage carrying the Welcome, when the commit adds clients.
    pub welcome: Option<Vec<u8>>,
    /// The MLSMessage carrying the new epoch's GroupInfo.
    pub group_info: Option<Vec<u8>>,
}

/// A user to add, with the key packages of the clients to add for it.
#[derive(Clone, Debug)]
pub struct UserAddition {
    pub user: UserUri,
    pub role: u32,
    /// TLS-encoded KeyPackages (from the keyMaterial flow, or local proxy clients).
    pub key_packages: Vec<Vec<u8>>,
}

/// What an incoming message was.
#[derive(Clone, Debug)]
pub enum Incoming {
    Application { sender: ClientUri, payload: Vec<u8> },
    Proposal { sender: RoomSender },
    Commit { state: Box<RoomState> },
}

/// Stored bytes of one room, for the cost targets.
#[derive(Clone, Copy, Debug, Default)]
pub struct StorageReport {
    /// Sealed per-client rows of the room's local members.
    pub client_rows: i64,
    /// Shared public blobs (trees, Welcomes, logged handshakes).
    pub blobs: i64,
}

impl StorageReport {
    pub fn total(&self) -> i64 {
        self.client_rows + self.blobs
    }
}

/// A member opened for an operation.
struct Opened {
    identity: ClientIdentity,
    ws: WorkingSet,
    group: MlsGroup,
    epoch: i64,
    next_seq: i64,
    /// The Welcome a dormant member joined from in this operation (its blob may go).
    released_welcome: Option<Vec<u8>>,
    /// The (epoch, next_seq) the store's member record holds for an active member.
    stored_at: Option<(i64, i64)>,
}

/// The engine. Cheap to share behind an `Arc`; holds no MLS state between operations.
pub struct ProxyMls {
    store: Store,
    key: StateKey,
    cp: ComponentCodePoints,
    provider: ProviderId,
    pool_size: usize,
    room_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    fault: Mutex<Option<&'static str>>,
    /// Members opened by earlier operations, as the store holds them: saves reloading and
    /// re-parsing their state on every message. An operation takes its member out and puts
    /// it back only after its transaction committed, so a failure leaves nothing stale.
    cache: Mutex<HashMap<(String, String), Opened>>,
}

/// How many opened members the cache keeps.
const CACHE_CAPACITY: usize = 512;

/// Named points where [`ProxyMls::inject_fault`] makes an operation fail: after the MLS step
/// and before anything is written (`after-mls-step`), or after the writes and before the
/// transaction commits (`before-commit`).
pub const FAULT_POINTS: &[&str] = &["after-mls-step", "before-commit"];

impl ProxyMls {
    pub fn new(
        store: Store,
        key: StateKey,
        cp: ComponentCodePoints,
        provider: ProviderId,
    ) -> ProxyMls {
        ProxyMls {
            store,
            key,
            cp,
            provider,
            pool_size: 8,
            room_locks: Mutex::new(HashMap::new()),
            fault: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// How many single-use key packages each proxy client keeps ready.
    pub fn with_key_package_pool(mut self, size: usize) -> ProxyMls {
        self.pool_size = size;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn provider_id(&self) -> &ProviderId {
        &self.provider
    }

    /// Makes the next operation that reaches `point` fail there, as a crash would.
    pub fn inject_fault(&self, point: &'static str) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = Some(point);
    }

    fn fault(&self, point: &'static str) -> Result<(), MlsError> {
        let mut armed = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        if *armed == Some(point) {
            *armed = None;
            return Err(MlsError::Injected(point));
        }
        Ok(())
    }

    fn cache_take(&self, room: &RoomUri, client: &ClientUri) -> Option<Opened> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.remove(&(room.to_string(), client.to_string()))
    }

    fn cache_put(&self, room: &RoomUri, m: Opened) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY
            && let Some(victim) = cache.keys().next().cloned()
        {
            cache.remove(&victim);
        }
        cache.insert((room.to_string(), m.identity.client.to_string()), m);
    }

    fn cache_evict(&self, room: &RoomUri, client: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.remove(&(room.to_string(), client.to_string()));
    }

    /// Commits the operation's transaction; the member it opened goes back to the cache.
    async fn finish(
        &self,
        tx: sqlx::Transaction<'static, sqlx::Any>,
        room: &RoomUri,
        m: Option<Opened>,
    ) -> Result<(), MlsError> {
        self.fault("before-commit")?;
        tx.commit().await?;
        if let Some(mut m) = m
            && m.group.is_active()
        {
            m.ws.mark_persisted()?;
            self.cache_put(room, m);
        }
        Ok(())
    }

    async fn lock_room(&self, room: &RoomUri) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.room_locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(room.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    // ---------------------------------------------------------------- proxy clients

    /// Creates the proxy client (keys, credential, key package pool) if it does not exist.
    pub async fn create_client(&self, client: &ClientUri) -> Result<bool, MlsError> {
        let mut tx = self.store.begin().await?;
        let created = clients::create(&mut tx, &self.key, client, self.pool_size).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Creates many proxy clients in one transaction (bulk onboarding of a room).
    pub async fn create_clients(
        &self,
        new_clients: &[ClientUri],
        pool_size: usize,
    ) -> Result<usize, MlsError> {
        let mut tx = self.store.begin().await?;
        let mut created = 0;
        for c in new_clients {
            created += usize::from(clients::create(&mut tx, &self.key, c, pool_size).await?);
        }
        tx.commit().await?;
        Ok(created)
    }

    /// Hands out one key package of a local client (single use; the pool is refilled).
    pub async fn key_package(&self, client: &ClientUri) -> Result<Vec<u8>, MlsError> {
        let mut tx = self.store.begin().await?;
        let kp = clients::take_key_package(&mut tx, &self.key, client, self.pool_size).await?;
        tx.commit().await?;
        Ok(kp)
    }

    /// Runs `f` with a local client's signer and credential (to sign protocol requests).
    pub async fn with_client_identity<T>(
        &self,
        client: &ClientUri,
        f: impl FnOnce(&SignatureKeyPair, &CredentialWithKey) -> T,
    ) -> Result<T, MlsError> {
        let mut conn = self.store.pool().acquire().await?;
        let identity = clients::load(&mut conn, &self.key, client).await?;
        Ok(f(&identity.signer, &identity.credential))
    }

    /// Runs `f` with this provider's server signer (the hub's external-sender key).
    pub async fn with_server_identity<T>(
        &self,
        f: impl FnOnce(&SignatureKeyPair, &ExternalSender) -> T,
    ) -> Result<T, MlsError> {
        let sender = self.server_sender().await?;
        let provider_uri = self.provider.to_string();
        let record = proxy_clients::get(self.store.pool(), &provider_uri)
            .await?
            .ok_or_else(|| MlsError::UnknownClient(provider_uri.clone()))?;
        let keypair = self.key.open(
            format!("server signature key\0{provider_uri}").as_bytes(),
            &record.signature_private,
            || format!("server signature key of {provider_uri}"),
        )?;
        let signer = SignatureKeyPair::tls_deserialize_exact(&keypair)
            .map_err(|e| MlsError::Corrupt(format!("server signature key: {e}")))?;
        Ok(f(&signer, &sender))
    }

    /// One key package of each of many local clients, in one transaction.
    pub async fn key_packages(&self, clients: &[ClientUri]) -> Result<Vec<Vec<u8>>, MlsError> {
        let mut tx = self.store.begin().await?;
        let mut out = Vec::with_capacity(clients.len());
        for client in clients {
            out.push(clients::take_key_package(&mut tx, &self.key, client, self.pool_size).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The signing identity this provider uses as an MLS external sender (the hub of its rooms).
    pub async fn server_sender(&self) -> Result<ExternalSender, MlsError> {
        let mut tx = self.store.begin().await?;
        let provider_uri = self.provider.to_string();
        let public = match proxy_clients::get(&mut *tx, &provider_uri).await? {
            Some(r) => r.signature_public,
            None => {
                let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm())
                    .during("server key generation")?;
                let ws = WorkingSet::empty(provider_uri.clone());
                let sealed = self.key.seal(
                    ws.provider().crypto(),
                    format!("server signature key\0{provider_uri}").as_bytes(),
                    &signer
                        .tls_serialize_detached()
                        .during("server key encoding")?,
                )?;
                proxy_clients::insert(
                    &mut *tx,
                    &proxy_clients::ProxyClientRecord {
                        client_uri: provider_uri.clone(),
                        user_uri: provider_uri.clone(),
                        signature_public: signer.public().to_vec(),
                        signature_private: sealed,
                        created_at_ms: 0,
                    },
                )
                .await?;
                signer.public().to_vec()
            }
        };
        tx.commit().await?;
        Ok(ExternalSender::new(
            public.into(),
            BasicCredential::new(provider_uri.into_bytes()).into(),
        ))
    }

    // ---------------------------------------------------------------- opening members

    async fn open_member(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        group_id: &[u8],
        client: &ClientUri,
    ) -> Result<Opened, MlsError> {
        if let Some(mut m) = self.cache_take(room, client) {
            self.catch_up(tx, room, &mut m).await?;
            return Ok(m);
        }
        let identity = clients::load(&mut *tx, &self.key, client).await?;
        let record = room_proxy_members::get(&mut *tx, room.as_str(), client.as_str())
            .await?
            .ok_or_else(|| MlsError::NotAMember {
                room: room.to_string(),
                client: client.to_string(),
            })?;
        let ws = WorkingSet::load(&mut *tx, client.as_str(), &self.key).await?;
        let (group, epoch, next_seq, released_welcome) = if record.dormant {
            let hash = record.welcome_hash.ok_or_else(|| {
                MlsError::Corrupt(format!("{client} in {room} is dormant without a Welcome"))
            })?;
            let bytes = mls_blobs::get(&mut *tx, &hash).await?.ok_or_else(|| {
                MlsError::Corrupt(format!("the Welcome of {client} in {room} is missing"))
            })?;
            let group = cpu_bound(|| join_welcome(&ws, &bytes))?;
            let epoch = group.epoch().as_u64() as i64;
            (group, epoch, 0, Some(hash))
        } else {
            let group = MlsGroup::load(ws.provider().storage(), &GroupId::from_slice(group_id))
                .during("load group")?
                .ok_or_else(|| {
                    MlsError::Corrupt(format!("{client} has no stored group for {room}"))
                })?;
            (group, record.state_epoch, record.next_seq, None)
        };
        let mut opened = Opened {
            identity,
            ws,
            group,
            epoch,
            next_seq,
            stored_at: (!record.dormant).then_some((record.state_epoch, record.next_seq)),
            released_welcome,
        };
        self.catch_up(tx, room, &mut opened).await?;
        Ok(opened)
    }

    /// Replays the room log from where the member's stored state stands.
    async fn catch_up(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        m: &mut Opened,
    ) -> Result<(), MlsError> {
        let entries = room_log::since(&mut *tx, room.as_str(), m.epoch).await?;
        for entry in entries {
            if entry.epoch == m.epoch && entry.seq < m.next_seq {
                continue;
            }
            if entry.epoch != m.epoch {
                return Err(MlsError::Corrupt(format!(
                    "room log of {room} jumps from epoch {} to {}",
                    m.epoch, entry.epoch
                )));
            }
            let bytes = mls_blobs::get(&mut *tx, &entry.message_hash)
                .await?
                .ok_or_else(|| {
                    MlsError::Corrupt(format!("room log of {room}: a message is missing"))
                })?;
            let message = protocol_message(&bytes)?;
            let processed = cpu_bound(|| m.group.process_message(m.ws.provider(), message))
                .during("catch-up")?;
            match processed.into_content() {
                ProcessedMessageContent::ProposalMessage(q) => {
                    m.group
                        .store_pending_proposal(m.ws.provider().storage(), *q)
                        .during("catch-up proposal")?;
                    m.next_seq = entry.seq + 1;
                }
                ProcessedMessageContent::StagedCommitMessage(staged) => {
                    m.group
                        .merge_staged_commit(m.ws.provider(), *staged)
                        .during("catch-up commit")?;
                    m.epoch += 1;
                    m.next_seq = 0;
                }
                ProcessedMessageContent::UnresolvedAppDataCommit(unresolved) => {
                    let state = room_sync::room_state(&m.group, room, &self.cp)?;
                    let changes = room_sync::decode_updates(
                        room,
                        unresolved.app_data_update_proposals(),
                        &self.cp,
                    )?;
                    let staged = self.stage_app_data(
                        &m.group,
                        m.ws.provider(),
                        &state,
                        &changes,
                        *unresolved,
                    )?;
                    m.group
                        .merge_staged_commit(m.ws.provider(), staged)
                        .during("catch-up commit")?;
                    m.epoch += 1;
                    m.next_seq = 0;
                }
                other => {
                    return Err(MlsError::Corrupt(format!(
                        "room log of {room} holds a non-handshake message: {other:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn stage_app_data(
        &self,
        group: &MlsGroup,
        provider: &ProxyProvider,
        state: &RoomState,
        changes: &[Change],
        unresolved: UnresolvedAppDataCommit,
    ) -> Result<StagedCommit, MlsError> {
        let components = room_sync::resolve(state, changes, &self.cp)?;
        let mut updater = group.app_data_dictionary_updater();
        for c in components {
            updater.set(c);
        }
        group
            .stage_app_data_commit(provider, unresolved, updater.changes())
            .during("stage AppDataUpdate commit")
    }

    /// Writes a member's state and catch-up point.
    async fn save_member(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        m: &mut Opened,
    ) -> Result<(), MlsError> {
        m.ws.flush(&mut *tx, &self.key).await?;
        if !m.group.is_active() {
            // Removed from the group by the commit just processed: no longer a member here.
            let client = m.identity.client.to_string();
            room_proxy_members::delete(&mut *tx, room.as_str(), &client).await?;
            if let Some(rg) = room_groups::get(&mut *tx, room.as_str()).await?
                && rg.reader_client.as_deref() == Some(client.as_str())
            {
                let next = room_proxy_members::list(&mut *tx, room.as_str())
                    .await?
                    .into_iter()
                    .next()
                    .map(|r| r.client_uri);
                room_groups::set_reader(&mut *tx, room.as_str(), next.as_deref()).await?;
            }
            m.stored_at = None;
            return Ok(());
        }
        let now = (m.epoch, m.next_seq);
        if m.stored_at == Some(now) {
            return Ok(());
        }
        let epoch_moved = m.stored_at.map(|(e, _)| e) != Some(m.epoch);
        room_proxy_members::upsert(
            &mut *tx,
            room.as_str(),
            &ProxyMemberRecord {
                client_uri: m.identity.client.to_string(),
                dormant: false,
                welcome_hash: None,
                state_epoch: m.epoch,
                next_seq: m.next_seq,
            },
        )
        .await?;
        m.stored_at = Some(now);
        if let Some(hash) = m.released_welcome.take() {
            mls_blobs::delete_if_unreferenced(&mut *tx, &hash).await?;
        }
        if epoch_moved {
            self.prune_log(tx, room).await?;
        }
        Ok(())
    }

    /// Drops the room log before the epoch every local member has reached, with its blobs.
    async fn prune_log(&self, tx: &mut AnyConnection, room: &RoomUri) -> Result<(), MlsError> {
        let Some(min_epoch) = room_proxy_members::min_state_epoch(&mut *tx, room.as_str()).await?
        else {
            return Ok(());
        };
        for hash in room_log::prune_before(&mut *tx, room.as_str(), min_epoch).await? {
            mls_blobs::delete_if_unreferenced(&mut *tx, &hash).await?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- rooms

    /// Creates the MLS group of a room this provider hosts, with `creator` as its first member
    /// and participant (role `creator_role`), the default roles and policy, and this provider's
    /// server as the external sender.
    pub async fn create_room(
        &self,
        room: &RoomUri,
        creator: &ClientUri,
        creator_role: u32,
    ) -> Result<RoomState, MlsError> {
        self.create_room_inner(room, creator, creator_role, None, None)
            .await
    }

    /// Creates a room for a legacy event, settled in the same transaction.
    pub async fn create_room_for_event(
        &self,
        room: &RoomUri,
        creator: &ClientUri,
        creator_role: u32,
        name: Option<&str>,
        settlement: Settlement,
    ) -> Result<RoomState, MlsError> {
        self.create_room_inner(room, creator, creator_role, name, Some(settlement))
            .await
    }

    async fn create_room_inner(
        &self,
        room: &RoomUri,
        creator: &ClientUri,
        creator_role: u32,
        name: Option<&str>,
        settlement: Option<Settlement>,
    ) -> Result<RoomState, MlsError> {
        let hub = self.server_sender().await?;
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        if room_groups::get(&mut *tx, room.as_str()).await?.is_some() {
            return Err(MlsError::RoomExists(room.to_string()));
        }
        let identity = clients::load(&mut tx, &self.key, creator).await?;
        let mut state = RoomState::new_room(
            room.clone(),
            Member::new(creator.clone(), identity.user.clone()),
            creator_role,
            default_roles(),
            BaseRoomPolicy::default(),
        );
        if let Some(name) = name {
            state.metadata.room_name = crate::room::wire::Utf8String::new(name);
            state.metadata.room_uri = crate::room::wire::Uri::new(room.as_str());
        }
        let wire_dict = state
            .to_app_data(&self.cp)
            .map_err(|e| MlsError::InvalidRoomState {
                room: room.to_string(),
                reason: e.to_string(),
            })?;
        let extensions = Extensions::from_vec(vec![
            Extension::RequiredCapabilities(required_capabilities()),
            Extension::ExternalSenders(ExternalSendersExtension::from(vec![hub])),
            Extension::AppDataDictionary(AppDataDictionaryExtension::new(room_sync::from_wire(
                &wire_dict,
            ))),
        ])
        .during("group context extensions")?;
        let group_id = GroupUri::for_room(room).as_str().as_bytes().to_vec();
        let ws = WorkingSet::load(&mut tx, creator.as_str(), &self.key).await?;
        let group = MlsGroup::builder()
            .with_group_id(GroupId::from_slice(&group_id))
            .ciphersuite(CIPHERSUITE)
            .with_wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .use_ratchet_tree_extension(true)
            .with_capabilities(leaf_capabilities())
            .with_group_context_extensions(extensions)
            .build(ws.provider(), &identity.signer, identity.credential.clone())
            .during("create group")?;
        self.fault("after-mls-step")?;
        let state = room_sync::room_state(&group, room, &self.cp)?;
        room_groups::insert(
            &mut *tx,
            &room_groups::RoomGroupRecord {
                room_id: room.to_string(),
                group_id,
                epoch: 0,
                reader_client: Some(creator.to_string()),
            },
        )
        .await?;
        let app_data = wire::encode(&wire_dict).map_err(|e| MlsError::InvalidRoomState {
            room: room.to_string(),
            reason: e.to_string(),
        })?;
        rooms::insert(
            &mut *tx,
            &NewRoom {
                room_id: room.as_str(),
                hub_domain: room.provider().domain(),
                our_role: if room.provider() == &self.provider {
                    OurRole::Hub
                } else {
                    OurRole::Follower
                },
                epoch: 0,
                app_data: &app_data,
            },
        )
        .await?;
        let mut opened = Opened {
            identity,
            ws,
            group,
            epoch: 0,
            next_seq: 0,
            released_welcome: None,
            stored_at: None,
        };
        let mut change = RoomChange::between(None, &state);
        change.committer = Some(creator.to_string());
        change.legacy_event = settlement.as_ref().map(|s| s.seq);
        journal(&mut tx, room, &change).await?;
        settle(&mut tx, settlement.as_ref()).await?;
        self.save_member(&mut tx, room, &mut opened).await?;
        self.finish(tx, room, Some(opened)).await?;
        Ok(state)
    }

    /// The room state as the room's reader sees it (its GroupContext).
    pub async fn room_state(&self, room: &RoomUri) -> Result<RoomState, MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let (group_id, reader) = self.reader_of(&mut tx, room).await?;
        let mut m = self.open_member(&mut tx, room, &group_id, &reader).await?;
        let state = room_sync::room_state(&m.group, room, &self.cp);
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m)).await?;
        state
    }

    /// The room state and epoch authenticator as the room's reader sees them.
    pub async fn reader_view(&self, room: &RoomUri) -> Result<(RoomState, Vec<u8>), MlsError> {
        let reader = {
            let mut conn = self.store.pool().acquire().await?;
            self.reader_of(&mut conn, room).await?.1
        };
        self.member_view(room, &reader).await
    }

    /// The GroupContext state as a given local member sees it, after catching up.
    pub async fn member_view(
        &self,
        room: &RoomUri,
        client: &ClientUri,
    ) -> Result<(RoomState, Vec<u8>), MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let rg = self.room_group(&mut tx, room).await?;
        let mut m = self
            .open_member(&mut tx, room, &rg.group_id, client)
            .await?;
        let state = room_sync::room_state(&m.group, room, &self.cp)?;
        let authenticator = m.group.epoch_authenticator().as_slice().to_vec();
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m)).await?;
        Ok((state, authenticator))
    }

    async fn room_group(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
    ) -> Result<room_groups::RoomGroupRecord, MlsError> {
        room_groups::get(&mut *tx, room.as_str())
            .await?
            .ok_or_else(|| MlsError::UnknownRoom(room.to_string()))
    }

    async fn reader_of(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
    ) -> Result<(Vec<u8>, ClientUri), MlsError> {
        let rg = self.room_group(tx, room).await?;
        let reader = rg
            .reader_client
            .ok_or_else(|| MlsError::Corrupt(format!("room {room} has no local reader")))?;
        let reader = ClientUri::from_bytes(reader.as_bytes()).map_err(|e| {
            MlsError::Corrupt(format!("room {room}: reader is not a client URI: {e}"))
        })?;
        Ok((rg.group_id, reader))
    }

    // ---------------------------------------------------------------- commits

    /// One commit: an AppDataUpdate adding the users to the participant list, and an Add of
    /// each of their clients. Checked by the room core before it is sent.
    pub async fn add_users(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
        additions: &[UserAddition],
    ) -> Result<CommitOutput, MlsError> {
        self.stage(room, committer, addition_plan(additions)?).await
    }

    /// One commit carrying out a legacy event; the event is settled in the commit's
    /// transaction, and its outcome at the hub is reported through the room's journal.
    pub async fn commit_for_event(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
        op: CommitOp,
        settlement: Settlement,
    ) -> Result<CommitOutput, MlsError> {
        let mut plan = match op {
            CommitOp::AddUsers(additions) => addition_plan(&additions)?,
            CommitOp::RemoveUser { user, ban } => StagePlan {
                remove_user: Some((user, ban)),
                ..Default::default()
            },
            CommitOp::Rename(name) => StagePlan {
                rename: Some(name),
                ..Default::default()
            },
            CommitOp::ChangeRole { user, role } => StagePlan {
                role_change: Some((user, role)),
                ..Default::default()
            },
            CommitOp::CommitPending => StagePlan::default(),
        };
        plan.settlement = Some(settlement);
        self.stage(room, committer, plan).await
    }

    /// One commit removing (or banning) a user: Removes of all its clients and the
    /// participant-list change, together.
    pub async fn remove_user(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
        user: &UserUri,
        ban: bool,
    ) -> Result<CommitOutput, MlsError> {
        self.stage(
            room,
            committer,
            StagePlan {
                remove_user: Some((user.clone(), ban)),
                ..Default::default()
            },
        )
        .await
    }

    /// A commit of the proposals the room has cached (a leaving user's removals, hub proposals).
    pub async fn commit_pending_proposals(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
    ) -> Result<CommitOutput, MlsError> {
        self.stage(room, committer, StagePlan::default()).await
    }

    /// One commit changing a participant's role.
    pub async fn change_role(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
        user: &UserUri,
        role: u32,
    ) -> Result<CommitOutput, MlsError> {
        self.stage(
            room,
            committer,
            StagePlan {
                role_change: Some((user.clone(), role)),
                ..Default::default()
            },
        )
        .await
    }

    /// A local client leaves: a SelfRemove and, when it is its user's last client, the
    /// AppDataUpdate taking the user off the participant list. Proposals, not a commit: the
    /// hub caches them and the next committer includes them. They are queued for the hub.
    pub async fn leave(&self, room: &RoomUri, client: &ClientUri) -> Result<(), MlsError> {
        self.leave_inner(room, client, None).await
    }

    /// [`leave`](Self::leave) for a legacy event, settled in the same transaction.
    pub async fn leave_for_event(
        &self,
        room: &RoomUri,
        client: &ClientUri,
        settlement: Settlement,
    ) -> Result<(), MlsError> {
        self.leave_inner(room, client, Some(settlement)).await
    }

    async fn leave_inner(
        &self,
        room: &RoomUri,
        client: &ClientUri,
        settlement: Option<Settlement>,
    ) -> Result<(), MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let rg = self.room_group(&mut tx, room).await?;
        let mut m = self
            .open_member(&mut tx, room, &rg.group_id, client)
            .await?;
        let state = room_sync::room_state(&m.group, room, &self.cp)?;
        let user = m.identity.user.clone();
        let mut messages = Vec::new();
        if state.active_clients(&user).len() <= 1
            && let Some(index) = state.participants.index_of(&user)
        {
            let update = ParticipantListUpdate {
                removed_indices: vec![index as u32],
                ..Default::default()
            };
            let bytes = wire::encode(&update).map_err(|e| MlsError::InvalidRoomState {
                room: room.to_string(),
                reason: e.to_string(),
            })?;
            let (message, _) = m
                .group
                .propose_app_data_update(
                    m.ws.provider(),
                    &m.identity.signer,
                    self.cp.participant_list,
                    AppDataUpdateOperation::Update(bytes.into()),
                )
                .during("propose leaving the participant list")?;
            messages.push(message.tls_serialize_detached().during("encode proposal")?);
        }
        let self_remove = m
            .group
            .leave_group_via_self_remove(m.ws.provider(), &m.identity.signer)
            .during("SelfRemove")?;
        messages.push(
            self_remove
                .tls_serialize_detached()
                .during("encode proposal")?,
        );
        self.fault("after-mls-step")?;
        let body = messages
            .iter()
            .map(|m| tls_codec::VLBytes::new(m.clone()))
            .collect::<Vec<_>>()
            .tls_serialize_detached()
            .during("encode proposals")?;
        outbox::enqueue(
            &mut *tx,
            &outbox::OutboxRecord {
                id: format!("proposals:{}", hex::encode(mls_blobs::hash(&body))),
                room_id: Some(room.to_string()),
                destination: room.provider().domain().to_string(),
                kind: "proposals".into(),
                sender: Some(user.to_string()),
                body,
                attempts: 0,
            },
        )
        .await?;
        settle(&mut tx, settlement.as_ref()).await?;
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m)).await
    }

    /// A commit that refreshes the committer's leaf (and the path above it).
    pub async fn self_update(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
    ) -> Result<CommitOutput, MlsError> {
        self.stage(
            room,
            committer,
            StagePlan {
                self_update: true,
                ..Default::default()
            },
        )
        .await
    }

    async fn stage(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
        plan: StagePlan,
    ) -> Result<CommitOutput, MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let rg = self.room_group(&mut tx, room).await?;
        if pending_commits::get(&mut *tx, room.as_str(), committer.as_str())
            .await?
            .is_some()
        {
            return Err(MlsError::Malformed {
                what: "commit request",
                reason: format!("{committer} already has a commit waiting for the hub in {room}"),
            });
        }
        let mut m = self
            .open_member(&mut tx, room, &rg.group_id, committer)
            .await?;
        let state = room_sync::room_state(&m.group, room, &self.cp)?;
        let mut proposals = Vec::new();
        let mut list_update = plan.list_update;
        let mut removals = Vec::new();
        if let Some((user, role)) = &plan.role_change {
            let index = state
                .participants
                .index_of(user)
                .ok_or_else(|| MlsError::Rejected {
                    room: room.to_string(),
                    rejection: crate::room::validation::Rejection::not_allowed(format!(
                        "{user} is not a participant of {room}"
                    )),
                })? as u32;
            list_update = Some(ParticipantListUpdate {
                changed_role_participants: vec![UserIndexRolePair {
                    user_index: index,
                    role_index: *role,
                }],
                ..Default::default()
            });
        }
        if let Some((user, ban)) = &plan.remove_user {
            let index = state
                .participants
                .index_of(user)
                .ok_or_else(|| MlsError::Rejected {
                    room: room.to_string(),
                    rejection: crate::room::validation::Rejection::not_allowed(format!(
                        "{user} is not a participant of {room}"
                    )),
                })? as u32;
            list_update = Some(if *ban {
                ParticipantListUpdate {
                    changed_role_participants: vec![UserIndexRolePair {
                        user_index: index,
                        role_index: crate::room::state::BANNED_ROLE,
                    }],
                    ..Default::default()
                }
            } else {
                ParticipantListUpdate {
                    removed_indices: vec![index],
                    ..Default::default()
                }
            });
            for member in m.group.members() {
                let client = client_of(&member.credential)?;
                if client.user_hint().as_ref() == Some(user) {
                    removals.push(member.index);
                }
            }
        }
        if let Some(update) = &list_update {
            let bytes = wire::encode(update).map_err(|e| MlsError::InvalidRoomState {
                room: room.to_string(),
                reason: e.to_string(),
            })?;
            proposals.push(Proposal::AppDataUpdate(Box::new(
                AppDataUpdateProposal::update(self.cp.participant_list, bytes),
            )));
        }
        if let Some(name) = &plan.rename {
            let mut metadata = state.metadata.clone();
            metadata.room_name = crate::room::wire::Utf8String::new(name);
            if metadata.room_uri.is_empty() {
                metadata.room_uri = crate::room::wire::Uri::new(room.as_str());
            }
            let bytes = wire::encode(&metadata).map_err(|e| MlsError::InvalidRoomState {
                room: room.to_string(),
                reason: e.to_string(),
            })?;
            proposals.push(Proposal::AppDataUpdate(Box::new(
                AppDataUpdateProposal::update(self.cp.room_metadata, bytes),
            )));
        }
        let local_joiners = self
            .local_owners(&mut tx, &plan.adds, m.ws.provider())
            .await?;
        let mut stage = m
            .group
            .commit_builder()
            .add_proposals(proposals)
            .propose_adds(plan.adds)
            .propose_removals(removals)
            .force_self_update(plan.self_update)
            .load_psks(m.ws.provider().storage())
            .during("commit builder")?;
        let app_changes: Vec<Change> =
            room_sync::decode_updates(room, stage.app_data_update_proposals(), &self.cp)?;
        if !app_changes.is_empty() {
            let components = room_sync::resolve(&state, &app_changes, &self.cp)?;
            let mut updater = stage.app_data_dictionary_updater();
            for c in components {
                updater.set(c);
            }
            let changes = updater.changes();
            stage.with_app_data_dictionary_updates(changes);
        }
        let bundle = cpu_bound(|| {
            stage
                .build(
                    m.ws.provider().rand(),
                    m.ws.provider().crypto(),
                    &m.identity.signer,
                    |_| true,
                )
                .during("build commit")?
                .stage_commit(m.ws.provider())
                .during("stage commit")
        })?;
        let staged = m
            .group
            .pending_commit()
            .ok_or_else(|| MlsError::Corrupt("staged commit vanished".into()))?;
        let handshake = room_sync::commit_effects(
            &m.group,
            &RoomSender::Member(committer.clone()),
            staged,
            &self.cp,
        )?;
        validate_handshake(&state, &handshake).map_err(|rejection| MlsError::Rejected {
            room: room.to_string(),
            rejection,
        })?;
        self.fault("after-mls-step")?;
        let (commit, welcome, group_info) = bundle.into_contents();
        let commit = commit.tls_serialize_detached().during("encode commit")?;
        let welcome = welcome
            .map(|w| {
                MlsMessageOut::from_welcome(w, ProtocolVersion::Mls10).tls_serialize_detached()
            })
            .transpose()
            .during("encode Welcome")?;
        let group_info = group_info
            .map(|gi| MlsMessageOut::from(gi).tls_serialize_detached())
            .transpose()
            .during("encode GroupInfo")?;
        let commit_hash = mls_blobs::put(&mut tx, &commit).await?;
        let welcome_hash = match &welcome {
            Some(w) => Some(mls_blobs::put(&mut tx, w).await?),
            None => None,
        };
        let group_info_hash = match &group_info {
            Some(gi) => Some(mls_blobs::put(&mut tx, gi).await?),
            None => None,
        };
        pending_commits::put(
            &mut *tx,
            room.as_str(),
            &PendingCommitRecord {
                client_uri: committer.to_string(),
                epoch: m.epoch,
                commit_hash: commit_hash.clone(),
                welcome_hash,
                group_info_hash,
                local_joiners: local_joiners.iter().map(|c| c.to_string()).collect(),
                legacy_event: plan.settlement.as_ref().map(|s| s.seq),
            },
        )
        .await?;
        settle(&mut tx, plan.settlement.as_ref()).await?;
        outbox::enqueue(
            &mut *tx,
            &outbox::OutboxRecord {
                id: format!("commit:{}", hex::encode(&commit_hash)),
                room_id: Some(room.to_string()),
                destination: room.provider().domain().to_string(),
                kind: "commit".into(),
                sender: None,
                body: commit.clone(),
                attempts: 0,
            },
        )
        .await?;
        self.save_member(&mut tx, room, &mut m).await?;
        let epoch = m.epoch as u64;
        self.finish(tx, room, Some(m)).await?;
        Ok(CommitOutput {
            epoch,
            commit,
            welcome,
            group_info,
        })
    }

    /// Which added key packages belong to this provider's proxy clients.
    async fn local_owners(
        &self,
        tx: &mut AnyConnection,
        kps: &[KeyPackage],
        provider: &ProxyProvider,
    ) -> Result<Vec<ClientUri>, MlsError> {
        let mut out = Vec::new();
        for kp in kps {
            let kp_ref = kp
                .hash_ref(provider.crypto())
                .during("key package reference")?;
            if let Some(owner) = key_packages::owner(&mut *tx, kp_ref.as_slice()).await? {
                let client = ClientUri::from_bytes(owner.as_bytes())
                    .map_err(|e| MlsError::Corrupt(format!("key package owner {owner}: {e}")))?;
                out.push(client);
            }
        }
        Ok(out)
    }

    /// The hub accepted the committer's pending commit: merge it, log it, and let the clients it
    /// added join (lazily) from its Welcome.
    pub async fn confirm_commit(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
    ) -> Result<RoomState, MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let rg = self.room_group(&mut tx, room).await?;
        let pending = pending_commits::get(&mut *tx, room.as_str(), committer.as_str())
            .await?
            .ok_or_else(|| MlsError::NoPendingCommit {
                room: room.to_string(),
                client: committer.to_string(),
            })?;
        let mut m = self
            .open_member(&mut tx, room, &rg.group_id, committer)
            .await?;
        if m.group.pending_commit().is_none() || m.epoch != pending.epoch {
            return Err(MlsError::Corrupt(format!(
                "{committer} in {room}: pending commit of epoch {} does not match the group at epoch {}",
                pending.epoch, m.epoch
            )));
        }
        let removes = m.group.pending_commit().is_some_and(removes_members);
        let leaving = match m.group.pending_commit() {
            Some(staged) if removes => leavers(&room_sync::commit_effects(
                &m.group,
                &RoomSender::Member(committer.clone()),
                staged,
                &self.cp,
            )?),
            _ => Vec::new(),
        };
        m.group
            .merge_pending_commit(m.ws.provider())
            .during("merge commit")?;
        self.fault("after-mls-step")?;
        m.epoch += 1;
        m.next_seq = 0;
        room_log::append(
            &mut tx,
            room.as_str(),
            pending.epoch,
            LogKind::Commit,
            &pending.commit_hash,
        )
        .await?;
        room_groups::set_epoch(&mut *tx, room.as_str(), rg.epoch, m.epoch).await?;
        room_groups::set_reader(&mut *tx, room.as_str(), Some(committer.as_str())).await?;
        if room.provider() == &self.provider {
            // This daemon is the hub: the commit is accepted with the merge.
            crate::store::hub_accepted::record(
                &mut *tx,
                room.as_str(),
                &pending.commit_hash,
                pending.epoch,
            )
            .await?;
        }
        for joiner in &pending.local_joiners {
            room_proxy_members::upsert(
                &mut *tx,
                room.as_str(),
                &ProxyMemberRecord {
                    client_uri: joiner.clone(),
                    dormant: true,
                    welcome_hash: pending.welcome_hash.clone(),
                    state_epoch: m.epoch,
                    next_seq: 0,
                },
            )
            .await?;
        }
        if removes {
            self.drop_removed_members(&mut tx, room, &m.group).await?;
        }
        pending_commits::delete(&mut *tx, room.as_str(), committer.as_str()).await?;
        for hash in pending
            .welcome_hash
            .iter()
            .chain(pending.group_info_hash.iter())
        {
            mls_blobs::delete_if_unreferenced(&mut tx, hash).await?;
        }
        let state = room_sync::room_state(&m.group, room, &self.cp)?;
        let origin = ChangeOrigin {
            committer: Some(committer.to_string()),
            legacy_event: pending.legacy_event,
            leavers: leaving,
        };
        self.record_room_state(&mut tx, room, rg.epoch, &state, &origin)
            .await?;
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m)).await?;
        Ok(state)
    }

    /// The hub refused the pending commit: drop it; the member stays at its epoch.
    pub async fn discard_commit(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
        reason: &str,
    ) -> Result<(), MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let rg = self.room_group(&mut tx, room).await?;
        let pending = pending_commits::get(&mut *tx, room.as_str(), committer.as_str()).await?;
        let mut m = self
            .open_member(&mut tx, room, &rg.group_id, committer)
            .await?;
        m.group
            .clear_pending_commit(m.ws.provider().storage())
            .during("clear pending commit")?;
        pending_commits::delete(&mut *tx, room.as_str(), committer.as_str()).await?;
        if let Some(pending) = &pending {
            for hash in std::iter::once(&pending.commit_hash)
                .chain(pending.welcome_hash.iter())
                .chain(pending.group_info_hash.iter())
            {
                mls_blobs::delete_if_unreferenced(&mut tx, hash).await?;
            }
            if let Some(seq) = pending.legacy_event {
                // The legacy event was carried out as far as this side goes; the hub said no.
                legacy_events::fail_after(&mut *tx, seq, reason).await?;
                let change = RoomChange {
                    committer: Some(committer.to_string()),
                    legacy_event: Some(seq),
                    refused: Some(reason.to_owned()),
                    ..Default::default()
                };
                journal(&mut tx, room, &change).await?;
            }
        }
        self.save_member(&mut tx, room, &mut m).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Local proxy members no longer in the group lose their room membership record.
    async fn drop_removed_members(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        group: &MlsGroup,
    ) -> Result<(), MlsError> {
        let in_group: std::collections::HashSet<String> = group
            .members()
            .filter_map(|m| client_of(&m.credential).ok())
            .map(|c| c.to_string())
            .collect();
        for member in room_proxy_members::list(&mut *tx, room.as_str()).await? {
            if !in_group.contains(&member.client_uri) {
                room_proxy_members::delete(&mut *tx, room.as_str(), &member.client_uri).await?;
                self.cache_evict(room, &member.client_uri);
            }
        }
        Ok(())
    }

    /// Stores the room's new state and journals what changed for the bridge core.
    async fn record_room_state(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        from_epoch: i64,
        state: &RoomState,
        origin: &ChangeOrigin,
    ) -> Result<(), MlsError> {
        let before = match rooms::get(&mut *tx, room.as_str()).await? {
            Some(record) => Some(self.decode_room_state(room, &record)?),
            None => None,
        };
        let mut change = RoomChange::between(before.as_ref(), state).with_leavers(&origin.leavers);
        if !change.is_empty() {
            change.committer = origin.committer.clone();
            change.legacy_event = origin.legacy_event;
            journal(tx, room, &change).await?;
        }
        let dict = state
            .to_app_data(&self.cp)
            .map_err(|e| MlsError::InvalidRoomState {
                room: room.to_string(),
                reason: e.to_string(),
            })?;
        let bytes = wire::encode(&dict).map_err(|e| MlsError::InvalidRoomState {
            room: room.to_string(),
            reason: e.to_string(),
        })?;
        match rooms::advance_epoch(tx, room.as_str(), from_epoch, state.epoch as i64, &bytes).await
        {
            Ok(()) | Err(StoreError::RoomNotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn decode_room_state(
        &self,
        room: &RoomUri,
        record: &rooms::RoomRecord,
    ) -> Result<RoomState, MlsError> {
        let invalid = |reason: String| MlsError::InvalidRoomState {
            room: room.to_string(),
            reason,
        };
        let dict: crate::room::wire::AppDataDictionary =
            wire::decode_exact(&record.app_data).map_err(|e| invalid(e.to_string()))?;
        RoomState::from_app_data(room.clone(), record.epoch as u64, &dict, &self.cp, vec![])
            .map_err(|e| invalid(e.to_string()))
    }

    // ---------------------------------------------------------------- joining

    /// A Welcome for some of this provider's proxy clients. The first local member of a room
    /// joins at once (it becomes the room's reader, after the room core confirmed that its user
    /// is a participant); later ones stay dormant until they must act.
    pub async fn join_from_welcome(
        &self,
        room: &RoomUri,
        welcome: &[u8],
    ) -> Result<Vec<ClientUri>, MlsError> {
        let parsed = parse_welcome(welcome)?;
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let mut joiners = Vec::new();
        for secret in parsed.secrets() {
            if let Some(owner) =
                key_packages::owner(&mut *tx, secret.new_member().as_slice()).await?
            {
                joiners.push(
                    ClientUri::from_bytes(owner.as_bytes()).map_err(|e| {
                        MlsError::Corrupt(format!("key package owner {owner}: {e}"))
                    })?,
                );
            }
        }
        if joiners.is_empty() {
            return Err(MlsError::WelcomeNotForUs(room.to_string()));
        }
        let welcome_hash = mls_blobs::put(&mut tx, welcome).await?;
        match room_groups::get(&mut *tx, room.as_str()).await? {
            Some(rg) => {
                for joiner in &joiners {
                    // A replayed Welcome leaves members that joined already as they are.
                    if room_proxy_members::get(&mut *tx, room.as_str(), joiner.as_str())
                        .await?
                        .is_some()
                    {
                        continue;
                    }
                    room_proxy_members::upsert(
                        &mut *tx,
                        room.as_str(),
                        &ProxyMemberRecord {
                            client_uri: joiner.to_string(),
                            dormant: true,
                            welcome_hash: Some(welcome_hash.clone()),
                            state_epoch: rg.epoch,
                            next_seq: 0,
                        },
                    )
                    .await?;
                }
            }
            None => {
                let first = &joiners[0];
                let identity = clients::load(&mut tx, &self.key, first).await?;
                let ws = WorkingSet::load(&mut tx, first.as_str(), &self.key).await?;
                let group = cpu_bound(|| join_welcome(&ws, welcome))?;
                let state = room_sync::room_state(&group, room, &self.cp)?;
                if !state.participants.contains(&identity.user) {
                    return Err(MlsError::Rejected {
                        room: room.to_string(),
                        rejection: crate::room::validation::Rejection::invalid(
                            vec![],
                            format!(
                                "the Welcome adds {first}, but its user {} is not a participant",
                                identity.user
                            ),
                        ),
                    });
                }
                self.fault("after-mls-step")?;
                let epoch = group.epoch().as_u64() as i64;
                room_groups::insert(
                    &mut *tx,
                    &room_groups::RoomGroupRecord {
                        room_id: room.to_string(),
                        group_id: group.group_id().as_slice().to_vec(),
                        epoch,
                        reader_client: Some(first.to_string()),
                    },
                )
                .await?;
                let app_data = wire::encode(&state.to_app_data(&self.cp).map_err(|e| {
                    MlsError::InvalidRoomState {
                        room: room.to_string(),
                        reason: e.to_string(),
                    }
                })?)
                .map_err(|e| MlsError::InvalidRoomState {
                    room: room.to_string(),
                    reason: e.to_string(),
                })?;
                match rooms::insert(
                    &mut *tx,
                    &NewRoom {
                        room_id: room.as_str(),
                        hub_domain: room.provider().domain(),
                        our_role: OurRole::Follower,
                        epoch,
                        app_data: &app_data,
                    },
                )
                .await
                {
                    Ok(()) | Err(StoreError::RoomExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                journal(&mut tx, room, &RoomChange::between(None, &state)).await?;
                let mut m = Opened {
                    identity,
                    ws,
                    group,
                    epoch,
                    next_seq: 0,
                    released_welcome: None,
                    stored_at: None,
                };
                self.save_member(&mut tx, room, &mut m).await?;
                for joiner in &joiners[1..] {
                    room_proxy_members::upsert(
                        &mut *tx,
                        room.as_str(),
                        &ProxyMemberRecord {
                            client_uri: joiner.to_string(),
                            dormant: true,
                            welcome_hash: Some(welcome_hash.clone()),
                            state_epoch: epoch,
                            next_seq: 0,
                        },
                    )
                    .await?;
                }
            }
        }
        self.finish(tx, room, None).await?;
        Ok(joiners)
    }

    /// Joins a room by external commit from its GroupInfo (a new device of a participant).
    /// The commit is returned for the hub; the joined state is stored at once.
    pub async fn join_by_external_commit(
        &self,
        room: &RoomUri,
        client: &ClientUri,
        group_info: &[u8],
    ) -> Result<CommitOutput, MlsError> {
        self.join_by_external_commit_with(room, client, group_info, &[])
            .await
    }

    /// Joins by external commit, including the pending proposals the hub served with the
    /// GroupInfo (openmls carries SelfRemove proposals in external commits; others are
    /// ignored).
    pub async fn join_by_external_commit_with(
        &self,
        room: &RoomUri,
        client: &ClientUri,
        group_info: &[u8],
        pending_proposals: &[Vec<u8>],
    ) -> Result<CommitOutput, MlsError> {
        let mut proposals = Vec::new();
        for bytes in pending_proposals {
            let message =
                MlsMessageIn::tls_deserialize_exact(bytes).map_err(|e| MlsError::Malformed {
                    what: "pending proposal",
                    reason: e.to_string(),
                })?;
            if let MlsMessageBodyIn::PublicMessage(p) = message.extract() {
                proposals.push(p);
            }
        }
        let message =
            MlsMessageIn::tls_deserialize_exact(group_info).map_err(|e| MlsError::Malformed {
                what: "GroupInfo",
                reason: e.to_string(),
            })?;
        let MlsMessageBodyIn::GroupInfo(verifiable) = message.extract() else {
            return Err(MlsError::Malformed {
                what: "GroupInfo",
                reason: "the message is not a GroupInfo".into(),
            });
        };
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let identity = clients::load(&mut tx, &self.key, client).await?;
        let ws = WorkingSet::load(&mut tx, client.as_str(), &self.key).await?;
        let (group, bundle) = MlsGroup::external_commit_builder()
            .with_config(join_config())
            .with_proposals(proposals)
            .build_group(ws.provider(), verifiable, identity.credential.clone())
            .during("external commit")?
            .leaf_node_parameters(
                LeafNodeParameters::builder()
                    .with_capabilities(leaf_capabilities())
                    .build(),
            )
            .load_psks(ws.provider().storage())
            .during("external commit")?
            .build(
                ws.provider().rand(),
                ws.provider().crypto(),
                &identity.signer,
                |_| true,
            )
            .during("external commit")?
            .finalize(ws.provider())
            .during("external commit")?;
        let state = room_sync::room_state(&group, room, &self.cp)?;
        if !state.participants.contains(&identity.user) {
            return Err(MlsError::Rejected {
                room: room.to_string(),
                rejection: crate::room::validation::Rejection::not_allowed(format!(
                    "{} is not a participant of {room}, so {client} cannot join",
                    identity.user
                )),
            });
        }
        self.fault("after-mls-step")?;
        let epoch = group.epoch().as_u64() as i64;
        let (commit, _welcome, group_info) = bundle.into_contents();
        let commit = commit.tls_serialize_detached().during("encode commit")?;
        let group_info_bytes = group_info
            .map(|gi| MlsMessageOut::from(gi).tls_serialize_detached())
            .transpose()
            .during("encode GroupInfo")?;
        let commit_hash = mls_blobs::put(&mut tx, &commit).await?;
        match room_groups::get(&mut *tx, room.as_str()).await? {
            Some(rg) => {
                room_log::append(
                    &mut tx,
                    room.as_str(),
                    epoch - 1,
                    LogKind::Commit,
                    &commit_hash,
                )
                .await?;
                room_groups::set_epoch(&mut *tx, room.as_str(), rg.epoch, epoch).await?;
                room_groups::set_reader(&mut *tx, room.as_str(), Some(client.as_str())).await?;
                let origin = ChangeOrigin {
                    committer: Some(client.to_string()),
                    ..Default::default()
                };
                self.record_room_state(&mut tx, room, rg.epoch, &state, &origin)
                    .await?;
            }
            None => {
                room_groups::insert(
                    &mut *tx,
                    &room_groups::RoomGroupRecord {
                        room_id: room.to_string(),
                        group_id: group.group_id().as_slice().to_vec(),
                        epoch,
                        reader_client: Some(client.to_string()),
                    },
                )
                .await?;
            }
        }
        outbox::enqueue(
            &mut *tx,
            &outbox::OutboxRecord {
                id: format!("commit:{}", hex::encode(&commit_hash)),
                room_id: Some(room.to_string()),
                destination: room.provider().domain().to_string(),
                kind: "external_commit".into(),
                sender: None,
                // The commit and the new epoch's GroupInfo, for the hub's HandshakeBundle.
                body: vec![
                    tls_codec::VLBytes::new(commit.clone()),
                    tls_codec::VLBytes::new(group_info_bytes.clone().unwrap_or_default()),
                ]
                .tls_serialize_detached()
                .during("encode external commit")?,
                attempts: 0,
            },
        )
        .await?;
        let mut m = Opened {
            identity,
            ws,
            group,
            epoch,
            next_seq: 0,
            released_welcome: None,
            stored_at: None,
        };
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m)).await?;
        Ok(CommitOutput {
            epoch: (epoch - 1) as u64,
            commit,
            welcome: None,
            group_info: group_info_bytes,
        })
    }

    /// The current GroupInfo (with the ratchet tree), signed by a local member, for external joins.
    pub async fn group_info(&self, room: &RoomUri) -> Result<Vec<u8>, MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let (group_id, reader) = self.reader_of(&mut tx, room).await?;
        let mut m = self.open_member(&mut tx, room, &group_id, &reader).await?;
        let gi = m
            .group
            .export_group_info(m.ws.provider().crypto(), &m.identity.signer, true)
            .during("export GroupInfo")?;
        let bytes = gi.tls_serialize_detached().during("encode GroupInfo")?;
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m)).await?;
        Ok(bytes)
    }

    // ---------------------------------------------------------------- incoming

    /// A handshake or message the hub fanned out. The reader processes it; a commit goes
    /// through the room core and is rejected whole when its room-state update or its
    /// membership changes are invalid.
    pub async fn process_incoming(
        &self,
        room: &RoomUri,
        message: &[u8],
    ) -> Result<Incoming, MlsError> {
        let protocol = protocol_message(message)?;
        if protocol.content_type() == ContentType::Proposal {
            let sender = self.process_proposals(room, &[message]).await?;
            return Ok(Incoming::Proposal { sender });
        }
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let rg = self.room_group(&mut tx, room).await?;
        let reader = rg
            .reader_client
            .clone()
            .ok_or_else(|| MlsError::Corrupt(format!("room {room} has no local reader")))?;
        let reader = ClientUri::from_bytes(reader.as_bytes()).map_err(|e| {
            MlsError::Corrupt(format!("room {room}: reader is not a client URI: {e}"))
        })?;
        let mut m = self
            .open_member(&mut tx, room, &rg.group_id, &reader)
            .await?;
        let state = room_sync::room_state(&m.group, room, &self.cp)?;
        let processed =
            cpu_bound(|| m.group.process_message(m.ws.provider(), protocol)).map_err(|e| {
                MlsError::Malformed {
                    what: "MLS message",
                    reason: format!("{e:?}"),
                }
            })?;
        let sender = processed.sender().clone();
        let credential = processed.credential().clone();
        let reject = |rejection| MlsError::Rejected {
            room: room.to_string(),
            rejection,
        };
        let outcome = match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => {
                let client = client_of(&credential)?;
                check_application_message(&state, &client).map_err(reject)?;
                Incoming::Application {
                    sender: client,
                    payload: app.into_bytes(),
                }
            }
            ProcessedMessageContent::ProposalMessage(_) => {
                return Err(MlsError::Corrupt(
                    "a proposal reached the single-message path".into(),
                ));
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                self.accept_commit(
                    &mut tx, room, &rg, &mut m, &state, &sender, *staged, message,
                )
                .await?
            }
            ProcessedMessageContent::UnresolvedAppDataCommit(unresolved) => {
                let changes = room_sync::decode_updates(
                    room,
                    unresolved.app_data_update_proposals(),
                    &self.cp,
                )?;
                let staged =
                    self.stage_app_data(&m.group, m.ws.provider(), &state, &changes, *unresolved)?;
                self.accept_commit(&mut tx, room, &rg, &mut m, &state, &sender, staged, message)
                    .await?
            }
            ProcessedMessageContent::ExternalJoinProposalMessage(_) => {
                return Err(MlsError::Malformed {
                    what: "proposal",
                    reason: "external join proposals are not used in MIMI rooms".into(),
                });
            }
            other => {
                return Err(MlsError::Malformed {
                    what: "MLS message",
                    reason: format!("the room's reader sent it itself: {other:?}"),
                });
            }
        };
        self.fault("after-mls-step")?;
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m)).await?;
        Ok(outcome)
    }

    /// Proposals the hub accepted and fanned out together (a HandshakeBundle's proposal and
    /// its `moreProposals`). They are checked together through the room core, as the hub
    /// checked them, then kept for the next commit and logged for the other local members.
    pub async fn process_proposals(
        &self,
        room: &RoomUri,
        messages: &[&[u8]],
    ) -> Result<RoomSender, MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let (group_id, reader) = self.reader_of(&mut tx, room).await?;
        let mut m = self.open_member(&mut tx, room, &group_id, &reader).await?;
        let state = room_sync::room_state(&m.group, room, &self.cp)?;
        let mut queued = Vec::with_capacity(messages.len());
        let mut effects = Vec::with_capacity(messages.len());
        for message in messages {
            let processed = m
                .group
                .process_message(m.ws.provider(), protocol_message(message)?)
                .map_err(|e| MlsError::Malformed {
                    what: "proposal",
                    reason: format!("{e:?}"),
                })?;
            let sender =
                room_sync::room_sender(&m.group, processed.sender(), Some(processed.credential()))?;
            let ProcessedMessageContent::ProposalMessage(q) = processed.into_content() else {
                return Err(MlsError::Malformed {
                    what: "proposal bundle",
                    reason: "it holds a message that is not a proposal".into(),
                });
            };
            effects.push(room_sync::proposal_effect(&m.group, &q, sender, &self.cp)?);
            queued.push(*q);
        }
        let Some(first) = effects.first() else {
            return Err(MlsError::Malformed {
                what: "proposal bundle",
                reason: "it is empty".into(),
            });
        };
        let sender = first.sender.clone();
        let handshake = Handshake::proposals(state.epoch, sender.clone(), effects);
        validate_handshake(&state, &handshake).map_err(|rejection| MlsError::Rejected {
            room: room.to_string(),
            rejection,
        })?;
        for (q, message) in queued.into_iter().zip(messages) {
            // A local client's own proposals come back in the hub's fan-out; they are in its
            // proposal store already.
            let known = m
                .group
                .pending_proposals()
                .any(|p| p.proposal_reference_ref() == q.proposal_reference_ref());
            if !known {
                m.group
                    .store_pending_proposal(m.ws.provider().storage(), q)
                    .during("store proposal")?;
            }
            // A retried or replayed proposal is logged (and so fanned out) once.
            let hash = mls_blobs::hash(message);
            if room.provider() == &self.provider {
                crate::store::hub_accepted::record(&mut *tx, room.as_str(), &hash, m.epoch).await?;
            }
            if !room_log::contains(&mut *tx, room.as_str(), m.epoch, &hash).await? {
                mls_blobs::put(&mut tx, message).await?;
                let seq =
                    room_log::append(&mut tx, room.as_str(), m.epoch, LogKind::Proposal, &hash)
                        .await?;
                m.next_seq = seq + 1;
            }
        }
        self.fault("after-mls-step")?;
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m)).await?;
        Ok(sender)
    }

    #[allow(clippy::too_many_arguments)]
    async fn accept_commit(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        rg: &room_groups::RoomGroupRecord,
        m: &mut Opened,
        state: &RoomState,
        sender: &Sender,
        staged: StagedCommit,
        message: &[u8],
    ) -> Result<Incoming, MlsError> {
        let joiner = staged
            .update_path_leaf_node()
            .map(|l| l.credential().clone());
        let committer = room_sync::room_sender(&m.group, sender, joiner.as_ref())?;
        let handshake = room_sync::commit_effects(&m.group, &committer, &staged, &self.cp)?;
        validate_handshake(state, &handshake).map_err(|rejection| MlsError::Rejected {
            room: room.to_string(),
            rejection,
        })?;
        let removes = removes_members(&staged);
        m.group
            .merge_staged_commit(m.ws.provider(), staged)
            .during("merge commit")?;
        let new_state = room_sync::room_state(&m.group, room, &self.cp)?;
        let hash = mls_blobs::put(&mut *tx, message).await?;
        room_log::append(&mut *tx, room.as_str(), m.epoch, LogKind::Commit, &hash).await?;
        if room.provider() == &self.provider {
            crate::store::hub_accepted::record(&mut *tx, room.as_str(), &hash, m.epoch).await?;
        }
        room_groups::set_epoch(&mut *tx, room.as_str(), rg.epoch, m.epoch + 1).await?;
        m.epoch += 1;
        m.next_seq = 0;
        if removes {
            self.drop_removed_members(&mut *tx, room, &m.group).await?;
        }
        let origin = ChangeOrigin {
            committer: match &committer {
                RoomSender::Member(client) | RoomSender::NewMember { client, .. } => {
                    Some(client.to_string())
                }
                RoomSender::Server(provider) => Some(provider.to_string()),
            },
            legacy_event: None,
            leavers: leavers(&handshake),
        };
        self.record_room_state(&mut *tx, room, rg.epoch, &new_state, &origin)
            .await?;
        Ok(Incoming::Commit {
            state: Box::new(new_state),
        })
    }

    // ---------------------------------------------------------------- messages

    /// Encrypts messages from one local member, persisting its ratchet state and queueing the
    /// messages for the hub in one transaction (many messages, one write: group commit).
    pub async fn send_messages(
        &self,
        room: &RoomUri,
        sender: &ClientUri,
        payloads: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, MlsError> {
        self.send_messages_inner(room, sender, payloads, &[]).await
    }

    /// Sends one message carrying out a legacy event, settled in the same transaction (so the
    /// event is sent once even if the daemon stops at any point).
    pub async fn send_message_for_event(
        &self,
        room: &RoomUri,
        sender: &ClientUri,
        payload: &[u8],
        settlement: Settlement,
    ) -> Result<Vec<u8>, MlsError> {
        let mut out = self
            .send_messages_inner(room, sender, &[payload], &[settlement])
            .await?;
        out.pop()
            .ok_or_else(|| MlsError::Corrupt("no message was encrypted".into()))
    }

    /// Sends several messages of one sender, each carrying out its legacy event, in one
    /// transaction (group commit): all are sent and settled, or none.
    pub async fn send_messages_for_events(
        &self,
        room: &RoomUri,
        sender: &ClientUri,
        items: &[(Vec<u8>, Settlement)],
    ) -> Result<Vec<Vec<u8>>, MlsError> {
        let payloads: Vec<&[u8]> = items.iter().map(|(p, _)| p.as_slice()).collect();
        let settlements: Vec<Settlement> = items.iter().map(|(_, s)| s.clone()).collect();
        self.send_messages_inner(room, sender, &payloads, &settlements)
            .await
    }

    async fn send_messages_inner(
        &self,
        room: &RoomUri,
        sender: &ClientUri,
        payloads: &[&[u8]],
        settlements: &[Settlement],
    ) -> Result<Vec<Vec<u8>>, MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let rg = self.room_group(&mut tx, room).await?;
        let mut m = self
            .open_member(&mut tx, room, &rg.group_id, sender)
            .await?;
        let state = room_sync::room_state(&m.group, room, &self.cp)?;
        check_application_message(&state, sender).map_err(|rejection| MlsError::Rejected {
            room: room.to_string(),
            rejection,
        })?;
        let mut out = Vec::with_capacity(payloads.len());
        for payload in payloads {
            let message = m
                .group
                .create_message(m.ws.provider(), &m.identity.signer, payload)
                .during("encrypt message")?;
            out.push(message.tls_serialize_detached().during("encode message")?);
        }
        self.fault("after-mls-step")?;
        let items: Vec<outbox::OutboxRecord> = out
            .iter()
            .map(|message| outbox::OutboxRecord {
                id: format!("message:{}", hex::encode(mls_blobs::hash(message))),
                room_id: Some(room.to_string()),
                destination: room.provider().domain().to_string(),
                kind: "message".into(),
                sender: Some(m.identity.user.to_string()),
                body: message.clone(),
                attempts: 0,
            })
            .collect();
        outbox::enqueue_many(&mut tx, &items).await?;
        for settlement in settlements {
            settle(&mut tx, Some(settlement)).await?;
        }
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m)).await?;
        Ok(out)
    }

    /// Decrypts messages with the room's reader, persisting its ratchet state once for all.
    /// The reader's own messages (the hub fans them out to their sender's provider too) are
    /// skipped: the bridge knows them already.
    pub async fn receive_messages(
        &self,
        room: &RoomUri,
        messages: &[Vec<u8>],
    ) -> Result<Vec<(ClientUri, Vec<u8>)>, MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let (group_id, reader) = self.reader_of(&mut tx, room).await?;
        let mut m = self.open_member(&mut tx, room, &group_id, &reader).await?;
        let state = room_sync::room_state(&m.group, room, &self.cp)?;
        let mut out = Vec::with_capacity(messages.len());
        for bytes in messages {
            out.extend(decrypt(&mut m, &state, room, bytes)?);
        }
        self.fault("after-mls-step")?;
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m)).await?;
        Ok(out)
    }

    /// Decrypts one fanned-out message with the room's reader and stores its plaintext for
    /// this provider's users, in the same transaction as the ratchet advance. A message seen
    /// before (a replayed fan-out) is neither decrypted nor stored again. Returns whether it
    /// was new.
    pub async fn receive_and_store(
        &self,
        room: &RoomUri,
        message: &[u8],
        hub_timestamp_ms: i64,
    ) -> Result<bool, MlsError> {
        use crate::store::inbound_messages;
        let hash = mls_blobs::hash(message);
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        if inbound_messages::seen(&mut *tx, room.as_str(), &hash).await? {
            return Ok(false);
        }
        let (group_id, reader) = self.reader_of(&mut tx, room).await?;
        let mut m = self.open_member(&mut tx, room, &group_id, &reader).await?;
        let state = room_sync::room_state(&m.group, room, &self.cp)?;
        let decrypted = decrypt(&mut m, &state, room, message)?;
        self.fault("after-mls-step")?;
        // The reader's own message needs no delivery: the bridge knows it.
        if let Some((client, payload)) = &decrypted {
            inbound_messages::push_once(
                &mut *tx,
                room.as_str(),
                &hash,
                client.as_str(),
                payload,
                hub_timestamp_ms,
            )
            .await?;
        }
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m)).await?;
        Ok(decrypted.is_some())
    }

    /// What the room costs in the store: the sealed rows of its local members and the blobs.
    pub async fn storage_report(&self, room: &RoomUri) -> Result<StorageReport, MlsError> {
        let mut tx = self.store.begin().await?;
        let mut report = StorageReport::default();
        for member in room_proxy_members::list(&mut *tx, room.as_str()).await? {
            report.client_rows +=
                crate::store::mls_kv::namespace_bytes(&mut tx, &member.client_uri).await?;
        }
        report.blobs = mls_blobs::total_bytes(&mut tx).await?;
        Ok(report)
    }

    /// The stored bytes of one client's namespace.
    pub async fn client_bytes(&self, client: &ClientUri) -> Result<i64, MlsError> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(crate::store::mls_kv::namespace_bytes(&mut conn, client.as_str()).await?)
    }
}

/// Decrypts an application message with a member: its sender and plaintext, or `None` for the
/// member's own message. A sender the room core does not let send is refused.
fn decrypt(
    m: &mut Opened,
    state: &RoomState,
    room: &RoomUri,
    bytes: &[u8],
) -> Result<Option<(ClientUri, Vec<u8>)>, MlsError> {
    let processed = m
        .group
        .process_message(m.ws.provider(), protocol_message(bytes)?)
        .during("decrypt message")?;
    let client = client_of(processed.credential())?;
    match processed.into_content() {
        ProcessedMessageContent::OwnPrivateMessage => Ok(None),
        ProcessedMessageContent::ApplicationMessage(app) => {
            check_application_message(state, &client).map_err(|rejection| MlsError::Rejected {
                room: room.to_string(),
                rejection,
            })?;
            Ok(Some((client, app.into_bytes())))
        }
        other => Err(MlsError::Malformed {
            what: "application message",
            reason: format!("expected an application message, got {other:?}"),
        }),
    }
}

/// What a `stage` call commits.
#[derive(Default)]
struct StagePlan {
    list_update: Option<ParticipantListUpdate>,
    adds: Vec<KeyPackage>,
    remove_user: Option<(UserUri, bool)>,
    role_change: Option<(UserUri, u32)>,
    rename: Option<String>,
    self_update: bool,
    /// The legacy event this commit carries out, settled in the commit's transaction.
    settlement: Option<Settlement>,
}

/// A commit the bridge core makes to carry out a legacy event.
#[derive(Clone, Debug)]
pub enum CommitOp {
    /// Add users (participant list and clients, one commit).
    AddUsers(Vec<UserAddition>),
    /// Remove (or ban) a user and all its clients.
    RemoveUser { user: UserUri, ban: bool },
    /// Change the room name (room metadata).
    Rename(String),
    /// Change a participant's role.
    ChangeRole { user: UserUri, role: u32 },
    /// Commit the proposals the room has cached.
    CommitPending,
}

/// Who made a change of the room state, for the journal the bridge core reads.
#[derive(Clone, Debug, Default)]
struct ChangeOrigin {
    committer: Option<String>,
    legacy_event: Option<i64>,
    /// Users whose own proposals (SelfRemove) the commit carries.
    leavers: Vec<String>,
}

/// The users who remove themselves in a handshake.
fn leavers(handshake: &Handshake) -> Vec<String> {
    handshake
        .effects()
        .iter()
        .filter(|p| matches!(p.change, Change::SelfRemove))
        .filter_map(|p| match &p.sender {
            RoomSender::Member(client) | RoomSender::NewMember { client, .. } => client.user_hint(),
            RoomSender::Server(_) => None,
        })
        .map(|u| u.to_string())
        .collect()
}

/// Settles the legacy event an operation carries out, in the operation's transaction. An event
/// settled already means the operation is a repeat: it is abandoned (the transaction rolls
/// back).
async fn settle(tx: &mut AnyConnection, settlement: Option<&Settlement>) -> Result<(), MlsError> {
    if let Some(settlement) = settlement
        && !settlement.apply(tx).await?
    {
        return Err(MlsError::Malformed {
            what: "legacy event",
            reason: format!("event {} was carried out already", settlement.seq),
        });
    }
    Ok(())
}

/// Writes a room change into the room's inbound stream.
async fn journal(
    tx: &mut AnyConnection,
    room: &RoomUri,
    change: &RoomChange,
) -> Result<(), MlsError> {
    let json = serde_json::to_vec(change).map_err(|e| MlsError::Corrupt(e.to_string()))?;
    inbound_messages::push_change(
        &mut *tx,
        room.as_str(),
        change.committer.as_deref().unwrap_or_default(),
        &json,
    )
    .await?;
    Ok(())
}

fn addition_plan(additions: &[UserAddition]) -> Result<StagePlan, MlsError> {
    let mut key_packages = Vec::new();
    let mut added = Vec::new();
    for a in additions {
        added.push(UserRolePair::new(a.user.as_str(), a.role));
        for bytes in &a.key_packages {
            key_packages.push(parse_key_package(bytes)?);
        }
    }
    Ok(StagePlan {
        list_update: Some(ParticipantListUpdate {
            added_participants: added,
            ..Default::default()
        }),
        adds: key_packages,
        ..Default::default()
    })
}

/// Runs CPU-heavy MLS work (a commit over a thousand members takes a quarter of a second)
/// without stalling the other tasks of a multi-threaded runtime; inline elsewhere.
fn cpu_bound<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Whether a commit removes members (so local membership records may have to go).
fn removes_members(staged: &StagedCommit) -> bool {
    staged
        .queued_proposals()
        .any(|q| matches!(q.proposal(), Proposal::Remove(_) | Proposal::SelfRemove))
}

fn protocol_message(bytes: &[u8]) -> Result<ProtocolMessage, MlsError> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|e| MlsError::Malformed {
        what: "MLS message",
        reason: e.to_string(),
    })?;
    message
        .try_into_protocol_message()
        .map_err(|e| MlsError::Malformed {
            what: "MLS message",
            reason: format!("not a handshake or application message: {e:?}"),
        })
}

fn parse_welcome(bytes: &[u8]) -> Result<Welcome, MlsError> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|e| MlsError::Malformed {
        what: "Welcome",
        reason: e.to_string(),
    })?;
    match message.extract() {
        MlsMessageBodyIn::Welcome(w) => Ok(w),
        _ => Err(MlsError::Malformed {
            what: "Welcome",
            reason: "the message is not a Welcome".into(),
        }),
    }
}

fn join_welcome(ws: &WorkingSet, bytes: &[u8]) -> Result<MlsGroup, MlsError> {
    let welcome = parse_welcome(bytes)?;
    StagedWelcome::new_from_welcome(ws.provider(), &join_config(), welcome, None)
        .during("join from Welcome")?
        .into_group(ws.provider())
        .during("join from Welcome")
}

fn parse_key_package(bytes: &[u8]) -> Result<KeyPackage, MlsError> {
    let kp = KeyPackageIn::tls_deserialize_exact(bytes).map_err(|e| MlsError::Malformed {
        what: "KeyPackage",
        reason: e.to_string(),
    })?;
    kp.validate(
        &openmls_rust_crypto::RustCrypto::default(),
        ProtocolVersion::Mls10,
    )
    .map_err(|e| MlsError::Malformed {
        what: "KeyPackage",
        reason: format!("{e:?}"),
    })
}

#[allow(dead_code)]
fn component(id: u16, data: Vec<u8>) -> ComponentData {
    ComponentData::from_parts(id, data.into())
}
