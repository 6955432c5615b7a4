//! The proxy MLS engine: every MLS operation the bridge performs for a room and its local users.
//!
//! A room lives in its *public view* ([`super::public`]): the ratchet tree, the GroupContext
//! with the room state and the pending proposals, kept as openmls' `PublicGroup` and advanced
//! with every handshake the room's hub accepts, whether or not any local user is in the room.
//! Validation, room-state queries, the membership journal and fan-out targets all read it.
//! Proxy clients ([`super::member`]) hold only their own keys: they catch up from the room log
//! when they must encrypt, decrypt or commit, and can be replaced when their user comes back.
//!
//! Each operation loads what it needs and does the MLS step under the room's lock but outside
//! the store's write lock, checks it through the room core, then writes the changed state, the
//! room log, the outbox rows and the room's epoch in one transaction
//! ([`ProxyMls::write_phase`]). A failure anywhere (including an injected one, see
//! [`ProxyMls::inject_fault`]) rolls the whole operation back, so the store always holds the
//! state after the last operation that completed, and a failed operation can be retried.
//!
//! Commits a proxy client makes are two-phase, as the hub decides: `stage_*` writes the commit
//! as pending and queues it for the hub; once the hub accepted it, the commit is applied to the
//! public view and the committer's pending commit merged in the same transaction
//! ([`ProxyMls::apply_commit`]); [`ProxyMls::discard_commit`] drops it when the hub refused it.
//!
//! The engine's operations are split by concern: [`super::rooms`] (creating and joining rooms),
//! [`super::commits`], [`super::messages`], [`super::public`] (handshakes applied to the public
//! view), [`super::admission`] (identities bound to the providers that bring them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openmls::extensions::ExternalSender;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use sqlx::AnyConnection;

use super::clients::{self, ClientIdentity};
use super::error::{MlsError, OpenmlsResult};
use super::group_config::CIPHERSUITE;
use super::public::PublicView;
use super::sealing::StateKey;
use super::storage::WorkingSet;
use crate::room::change::RoomChange;
use crate::room::code_points::ComponentCodePoints;
use crate::room::handshake::{Change, Handshake, Sender as RoomSender};
use crate::room::state::RoomState;
use crate::store::legacy_events::Settlement;
use crate::store::{Store, inbound_messages, mls_blobs, proxy_clients, room_proxy_members};
use crate::uri::{ClientUri, ProviderId, RoomUri, UserUri};

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
    Proposals { state: Box<RoomState> },
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

/// An operation stopped by [`ProxyMls::pause_before_writing`].
pub struct PausedOperation {
    /// Fires when the operation has done its MLS work and waits.
    pub reached: tokio::sync::oneshot::Receiver<()>,
    /// Lets it go on (dropping it does too).
    pub resume: tokio::sync::oneshot::Sender<()>,
}

/// A member opened for an operation.
pub(super) struct Opened {
    pub(super) identity: ClientIdentity,
    pub(super) ws: WorkingSet,
    pub(super) group: MlsGroup,
    pub(super) epoch: i64,
    pub(super) next_seq: i64,
    /// The Welcome a dormant member joined from in this operation (its blob may go).
    pub(super) released_welcome: Option<Vec<u8>>,
    /// The (epoch, next_seq) the store's member record holds for an active member.
    pub(super) stored_at: Option<(i64, i64)>,
}

/// The engine. Cheap to share behind an `Arc`; holds no MLS state between operations.
pub struct ProxyMls {
    pub(super) store: Store,
    pub(super) key: StateKey,
    pub(super) cp: ComponentCodePoints,
    /// Made from `cp` once: every key package and leaf carries it.
    leaf: Extensions<LeafNode>,
    pub(super) provider: ProviderId,
    pub(super) pool_size: usize,
    /// How many epochs of the room log are kept for members to catch up from.
    pub(super) catch_up_bound: i64,
    room_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    fault: Mutex<Option<&'static str>>,
    pause: Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::sync::oneshot::Receiver<()>,
        )>,
    >,
    /// Members opened by earlier operations, as the store holds them: saves reloading and
    /// re-parsing their state on every message. An operation takes its member out and puts
    /// it back only after its transaction committed, so a failure leaves nothing stale.
    cache: Mutex<HashMap<(String, String), Opened>>,
    /// Public views opened by earlier operations, kept the same way.
    pub(super) views: Mutex<HashMap<String, PublicView>>,
}

/// Epochs of room log kept for catching up, unless configured.
pub const DEFAULT_CATCH_UP_BOUND: u32 = 256;

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
            leaf: super::group_config::leaf_extensions(&cp),
            cp,
            provider,
            pool_size: 8,
            catch_up_bound: DEFAULT_CATCH_UP_BOUND as i64,
            room_locks: Mutex::new(HashMap::new()),
            fault: Mutex::new(None),
            pause: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            views: Mutex::new(HashMap::new()),
        }
    }

    /// How many single-use key packages each proxy client keeps ready.
    pub fn with_key_package_pool(mut self, size: usize) -> ProxyMls {
        self.pool_size = size;
        self
    }

    /// How many epochs of a room's log are kept for local members to catch up from (at
    /// least 2). A member further behind rejoins by external commit; the room's reader is
    /// kept within half of it as commits are applied, so it never has to.
    pub fn with_catch_up_bound(mut self, epochs: u32) -> ProxyMls {
        self.catch_up_bound = i64::from(epochs.max(2));
        self
    }

    /// The LeafNode extensions of this bridge's clients (see [`super::group_config::leaf_extensions`]).
    pub(super) fn leaf_extensions(&self) -> Extensions<LeafNode> {
        self.leaf.clone()
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

    /// Makes the next operation that has done its MLS work stop before it takes the store's
    /// write lock, until the test resumes it: shows that other writers go on meanwhile.
    pub fn pause_before_writing(&self) -> PausedOperation {
        let (reached_tx, reached) = tokio::sync::oneshot::channel();
        let (resume, resume_rx) = tokio::sync::oneshot::channel();
        *self.pause.lock().unwrap_or_else(|e| e.into_inner()) = Some((reached_tx, resume_rx));
        PausedOperation { reached, resume }
    }

    /// The write phase of an operation: its MLS work is done (read from the store without a
    /// write lock, computed under the room's lock), and now its results are written in one
    /// transaction. On SQLite the transaction holds the database's only write lock, so a long
    /// MLS step (a commit adding a thousand clients, a long catch-up) done inside it would
    /// stall every other writer; done before it, it stalls only its own room. The room lock
    /// keeps this process's other operations on the room out meanwhile, and commits check the
    /// room's epoch where they write it.
    pub(super) async fn write_phase(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, MlsError> {
        let armed = self.pause.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((reached, resume)) = armed {
            let _ = reached.send(());
            let _ = resume.await;
        }
        Ok(self.store.begin().await?)
    }

    pub(super) fn fault(&self, point: &'static str) -> Result<(), MlsError> {
        let mut armed = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        if *armed == Some(point) {
            *armed = None;
            return Err(MlsError::Injected(point));
        }
        Ok(())
    }

    pub(super) fn cache_take(&self, room: &RoomUri, client: &ClientUri) -> Option<Opened> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.remove(&(room.to_string(), client.to_string()))
    }

    pub(super) fn cache_put(&self, room: &RoomUri, m: Opened) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY
            && let Some(victim) = cache.keys().next().cloned()
        {
            cache.remove(&victim);
        }
        cache.insert((room.to_string(), m.identity.client.to_string()), m);
    }

    pub(super) fn cache_evict(&self, room: &RoomUri, client: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.remove(&(room.to_string(), client.to_string()));
    }

    pub(super) fn view_take(&self, room: &RoomUri) -> Option<PublicView> {
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        views.remove(room.as_str())
    }

    pub(super) fn view_put(&self, room: &RoomUri, view: PublicView) {
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        if views.len() >= CACHE_CAPACITY
            && let Some(victim) = views.keys().next().cloned()
        {
            views.remove(&victim);
        }
        views.insert(room.to_string(), view);
    }

    /// Commits the operation's transaction; the member and the public view it opened go back to
    /// their caches.
    pub(super) async fn finish(
        &self,
        tx: sqlx::Transaction<'static, sqlx::Any>,
        room: &RoomUri,
        m: Option<Opened>,
        view: Option<PublicView>,
    ) -> Result<(), MlsError> {
        self.fault("before-commit")?;
        tx.commit().await?;
        if let Some(mut m) = m
            && m.group.is_active()
        {
            m.ws.mark_persisted()?;
            self.cache_put(room, m);
        }
        if let Some(mut view) = view {
            view.ws.mark_persisted()?;
            self.view_put(room, view);
        }
        Ok(())
    }

    pub(super) async fn lock_room(&self, room: &RoomUri) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.room_locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(room.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    // ---------------------------------------------------------------- proxy clients

    /// Creates the proxy client (keys, credential, key package pool) if it does not exist.
    pub async fn create_client(&self, client: &ClientUri) -> Result<bool, MlsError> {
        Ok(self
            .create_clients(std::slice::from_ref(client), self.pool_size)
            .await?
            == 1)
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
            created += usize::from(
                clients::create(&mut tx, &self.key, c, pool_size, &self.leaf_extensions()).await?,
            );
        }
        tx.commit().await?;
        Ok(created)
    }

    /// Hands out one key package of a local client (single use; the pool is refilled).
    pub async fn key_package(&self, client: &ClientUri) -> Result<Vec<u8>, MlsError> {
        let mut tx = self.store.begin().await?;
        let kp = clients::take_key_package(
            &mut tx,
            &self.key,
            client,
            self.pool_size,
            &self.leaf_extensions(),
        )
        .await?;
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
            out.push(
                clients::take_key_package(
                    &mut tx,
                    &self.key,
                    client,
                    self.pool_size,
                    &self.leaf_extensions(),
                )
                .await?,
            );
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
pub(super) struct ChangeOrigin {
    pub(super) committer: Option<String>,
    pub(super) legacy_event: Option<i64>,
    /// Users whose own proposals (SelfRemove) the commit carries.
    pub(super) leavers: Vec<String>,
}

/// The users who remove themselves in a handshake.
pub(super) fn leavers(handshake: &Handshake) -> Vec<String> {
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
pub(super) async fn settle(
    tx: &mut AnyConnection,
    settlement: Option<&Settlement>,
) -> Result<(), MlsError> {
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
pub(super) async fn journal(
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

/// Journals the hub's refusal of what `committer` sent for legacy event `seq`: the bridge core
/// reads it and reports it to the legacy sender, or, with `retry`, carries the event out again.
pub(super) async fn journal_refusal(
    tx: &mut AnyConnection,
    room: &RoomUri,
    committer: &str,
    seq: i64,
    reason: &str,
    retry: bool,
) -> Result<(), MlsError> {
    let change = RoomChange {
        committer: Some(committer.to_owned()),
        legacy_event: Some(seq),
        refused: Some(reason.to_owned()),
        retry,
        ..Default::default()
    };
    journal(tx, room, &change).await
}

/// A client URI the store holds (`what` says where, for the error).
pub(super) fn stored_client(uri: &str, what: &str) -> Result<ClientUri, MlsError> {
    ClientUri::from_bytes(uri.as_bytes())
        .map_err(|e| MlsError::Corrupt(format!("{what} `{uri}` is not a client URI: {e}")))
}

/// Runs CPU-heavy MLS work (a commit over a thousand members takes a quarter of a second)
/// without stalling the other tasks of a multi-threaded runtime; inline elsewhere.
pub(super) fn cpu_bound<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Whether a commit removes members (so local membership records may have to go).
pub(super) fn removes_members(staged: &StagedCommit) -> bool {
    staged
        .queued_proposals()
        .any(|q| matches!(q.proposal(), Proposal::Remove(_) | Proposal::SelfRemove))
}

pub(super) fn protocol_message(bytes: &[u8]) -> Result<ProtocolMessage, MlsError> {
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

pub(super) fn parse_welcome(bytes: &[u8]) -> Result<Welcome, MlsError> {
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

pub(super) fn parse_key_package(bytes: &[u8]) -> Result<KeyPackage, MlsError> {
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
