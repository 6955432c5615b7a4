//! The protocol roles of this daemon, around one [`MimiService`]: hub of the rooms its provider
//! hosts ([`super::hub`]), follower in the others ([`super::follower`]), consent
//! ([`super::consent`]) and key material ([`super::key_material`]). The outbox they fill is
//! delivered by [`crate::delivery`].
//!
//! Handshakes and messages of local proxy clients take the same path as remote ones: the MLS
//! engine queues them for the room's hub; when that hub is this daemon, delivery hands them to
//! the hub logic directly instead of over HTTP.

use std::sync::Arc;
use std::time::Duration;

use super::client::{ClientError, MimiClient};
use super::wire;
use crate::mls::{MlsError, ProxyMls};
use crate::store::rooms::OurRole;
use crate::store::{Store, StoreError, outbox, room_groups, rooms};
use crate::uri::{ProviderId, RoomUri, UserUri};

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

    /// The MIMI side stored something for the legacy side (decrypted messages, room changes):
    /// look at the inbound stream now rather than at the next poll.
    fn inbound(&self) {}
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
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) legacy: std::sync::OnceLock<Arc<dyn LegacyOutbox>>,
    pub(crate) consent_policy: ConsentPolicy,
    /// Attempts of one outgoing MIMI call before it is dead-lettered.
    pub(crate) max_attempts: i64,
}

pub(crate) fn malformed(what: &'static str) -> impl FnOnce(String) -> ServiceError {
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
            max_attempts: 16,
        }
    }

    /// Sets what happens when a peer asks one of our users for consent.
    pub fn with_consent_policy(mut self, policy: ConsentPolicy) -> MimiService {
        self.consent_policy = policy;
        self
    }

    /// How many times an outgoing MIMI call is attempted before it is dead-lettered (at least
    /// once).
    pub fn with_max_delivery_attempts(mut self, attempts: u32) -> MimiService {
        self.max_attempts = i64::from(attempts.max(1));
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

    /// Tells the bridge core that the inbound stream has something new.
    pub(crate) fn wake_legacy(&self) {
        if let Some(legacy) = self.legacy.get() {
            legacy.inbound();
        }
    }

    pub(crate) async fn our_room(&self, room: &RoomUri) -> Result<rooms::RoomRecord, ServiceError> {
        rooms::get(self.store.pool(), room.as_str())
            .await?
            .ok_or_else(|| ServiceError::UnknownRoom(room.to_string()))
    }

    pub(crate) async fn hosted_room(&self, room: &RoomUri) -> Result<(), ServiceError> {
        match self.our_room(room).await?.our_role {
            OurRole::Hub => Ok(()),
            OurRole::Follower => Err(ServiceError::NotHub(room.to_string())),
        }
    }

    pub(crate) async fn epoch(&self, room: &RoomUri) -> Result<u64, ServiceError> {
        Ok(room_groups::get(self.store.pool(), room.as_str())
            .await?
            .ok_or_else(|| ServiceError::UnknownRoom(room.to_string()))?
            .epoch as u64)
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

    pub(crate) fn client(&self) -> Result<&MimiClient, ServiceError> {
        self.client.as_deref().ok_or_else(|| {
            ServiceError::Forbidden("the MIMI client is not configured ([mimi.tls])".into())
        })
    }
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

/// `SignWithLabel` over the TLS encoding of a to-be-signed struct.
pub(crate) fn sign_tbs(
    signer: &impl openmls_traits::signatures::Signer,
    label: &str,
    tbs: &impl tls_codec::Serialize,
) -> Result<Vec<u8>, String> {
    let content = tbs.tls_serialize_detached().map_err(|e| e.to_string())?;
    wire::common::sign_with_label(signer, label, &content).map_err(|e| format!("{e:?}"))
}

/// `VerifyWithLabel` with the signature scheme of the MIMI ciphersuite; `Err` when the
/// signature does not verify.
pub(crate) fn verify_tbs(
    key: &[u8],
    label: &str,
    content: &[u8],
    signature: &[u8],
) -> Result<(), ()> {
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
