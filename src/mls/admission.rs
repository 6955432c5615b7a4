//! Identities bound to the providers that bring them.
//!
//! Credentials in MLS are self-asserted: a leaf can claim to be any MIMI client. What makes a
//! claim true in a MIMI room is who vouches for it. The hub therefore checks, for every
//! handshake a peer sends:
//! - its sender is a client of that peer (a member's leaf, or the new leaf of an external
//!   commit); external-sender proposals come from the hub only;
//! - an Add of another provider's client uses a KeyPackage that this daemon served or relayed
//!   for exactly that user, from that user's provider (`key_package_bindings`); an Add of this
//!   provider's own client uses one of its own key packages; a peer may add its own clients
//!   with any key package (it speaks for them);
//! - no Update or commit path changes the identity of a leaf.
//!
//! A follower applies what it can know to the commits the hub fans out: an Add of one of its
//! own clients must use one of its own key packages.

use openmls::prelude::*;
use sqlx::AnyConnection;

use super::clients::{client_of, user_of};
use super::error::{MlsError, OpenmlsResult};
use super::storage::ProxyProvider;
use crate::room::handshake::{ProposalRef, Sender as RoomSender};
use crate::room::validation::Rejection;
use crate::store::{key_package_bindings, key_packages};
use crate::uri::{ClientUri, ProviderId, RoomUri, UserUri};

/// Where a handshake came from, as far as this daemon can tell.
#[derive(Clone, Copy, Debug)]
pub enum Origin<'a> {
    /// This daemon is the hub: the authenticated peer that sent it (this provider for the
    /// handshakes of its own clients).
    Peer(&'a ProviderId),
    /// This daemon follows the room: the hub fanned it out.
    Hub,
}

/// An Add in a handshake, with what its KeyPackage claims.
pub(super) struct AddClaim {
    reference: ProposalRef,
    kp_ref: Vec<u8>,
    client: ClientUri,
    user: UserUri,
}

/// The Adds of queued proposals, with their KeyPackageRefs.
pub(super) fn add_claims<'a>(
    provider: &ProxyProvider,
    proposals: impl IntoIterator<Item = &'a QueuedProposal>,
) -> Result<Vec<AddClaim>, MlsError> {
    let mut out = Vec::new();
    for q in proposals {
        if let Proposal::Add(add) = q.proposal() {
            let kp = add.key_package();
            let client = client_of(kp.leaf_node().credential())?;
            out.push(AddClaim {
                reference: ProposalRef(q.proposal_reference_ref().as_slice().to_vec()),
                kp_ref: kp
                    .hash_ref(provider.crypto())
                    .during("key package reference")?
                    .as_slice()
                    .to_vec(),
                user: user_of(&client)?,
                client,
            });
        }
    }
    Ok(out)
}

/// The sender of a handshake must speak for itself: a client of the peer that sent it.
pub(super) fn check_sender(
    origin: Origin<'_>,
    hub: &ProviderId,
    sender: &RoomSender,
) -> Result<(), Rejection> {
    let Origin::Peer(peer) = origin else {
        return Ok(());
    };
    match sender {
        RoomSender::Member(client) | RoomSender::NewMember { client, .. } => {
            if client.provider() != peer {
                return Err(Rejection::not_allowed(format!(
                    "{} sent a handshake signed by {client}, a client of {}: a provider speaks \
                     only for its own clients",
                    peer.domain(),
                    client.provider().domain()
                )));
            }
        }
        RoomSender::Server(server) => {
            if server != hub || peer != hub {
                return Err(Rejection::not_allowed(format!(
                    "{} sent a proposal of the external sender {}: only the hub makes \
                     external proposals",
                    peer.domain(),
                    server.domain()
                )));
            }
        }
    }
    Ok(())
}

/// Each Add must use a KeyPackage vouched for by the added client's own provider.
pub(super) async fn check_adds(
    tx: &mut AnyConnection,
    origin: Origin<'_>,
    own: &ProviderId,
    room: &RoomUri,
    adds: &[AddClaim],
) -> Result<(), MlsError> {
    for add in adds {
        let refuse = |reason: String| MlsError::Rejected {
            room: room.to_string(),
            rejection: Rejection::invalid(vec![add.reference.clone()], reason),
        };
        if add.client.provider() == own {
            let owner = key_packages::owner(&mut *tx, &add.kp_ref).await?;
            if owner.as_deref() != Some(add.client.as_str()) {
                return Err(refuse(format!(
                    "the Add of {} uses a KeyPackage that {} did not make for it",
                    add.client,
                    own.domain()
                )));
            }
            continue;
        }
        let peer = match origin {
            Origin::Peer(peer) => peer,
            // A follower cannot know which key material another provider served.
            Origin::Hub => continue,
        };
        if add.client.provider() == peer {
            continue;
        }
        let binding = key_package_bindings::get(&mut *tx, &add.kp_ref).await?;
        let vouched = binding.as_ref().is_some_and(|b| {
            b.user_uri == add.user.as_str() && b.served_by == add.client.provider().domain()
        });
        if !vouched {
            let served = match &binding {
                Some(b) => format!("it was served by {} for {}", b.served_by, b.user_uri),
                None => "the hub never relayed it".to_string(),
            };
            return Err(refuse(format!(
                "{} added {} with a KeyPackage {} did not serve for {}: {served}",
                peer.domain(),
                add.client,
                add.client.provider().domain(),
                add.user
            )));
        }
    }
    Ok(())
}

/// No leaf changes whose client it is: an Update proposal or a commit's path keeps the
/// credential of the leaf it replaces.
pub(super) fn check_leaf_identity(
    group: &PublicGroup,
    sender: &Sender,
    new_leaf: Option<&LeafNode>,
) -> Result<(), Rejection> {
    let (Sender::Member(index), Some(new_leaf)) = (sender, new_leaf) else {
        return Ok(());
    };
    let Some(old) = group.leaf(*index) else {
        return Ok(());
    };
    if old.credential() != new_leaf.credential() {
        let describe = |c: &Credential| {
            client_of(c)
                .map(|c| c.to_string())
                .unwrap_or_else(|_| "an unreadable credential".into())
        };
        return Err(Rejection::not_allowed(format!(
            "the leaf of {} would become {}: a client cannot change its identity",
            describe(old.credential()),
            describe(new_leaf.credential())
        )));
    }
    Ok(())
}

/// The Update proposals' new leaves, by sender, for [`check_leaf_identity`].
pub(super) fn updates<'a>(
    proposals: impl IntoIterator<Item = &'a QueuedProposal>,
) -> Vec<(Sender, LeafNode)> {
    proposals
        .into_iter()
        .filter_map(|q| match q.proposal() {
            Proposal::Update(u) => Some((q.sender().clone(), u.leaf_node().clone())),
            _ => None,
        })
        .collect()
}

impl super::engine::ProxyMls {
    /// Records that `served_by` served this KeyPackage for `user` (key material this daemon
    /// relayed or fetched): the hub then admits the client it adds as that user's.
    pub async fn bind_key_package(
        &self,
        key_package: &[u8],
        served_by: &ProviderId,
        user: &UserUri,
    ) -> Result<(), MlsError> {
        let kp = super::engine::parse_key_package(key_package)?;
        let kp_ref = kp
            .hash_ref(&openmls_rust_crypto::RustCrypto::default())
            .during("key package reference")?;
        let mut conn = self.store.pool().acquire().await?;
        key_package_bindings::record(
            &mut *conn,
            kp_ref.as_slice(),
            &key_package_bindings::Binding {
                served_by: served_by.domain().to_string(),
                user_uri: user.to_string(),
            },
        )
        .await?;
        Ok(())
    }
}
