//! Local membership records: which of this provider's clients are in a room, which one
//! decrypts for local delivery, and the pending commits they have with the hub.

use openmls::prelude::*;
use sqlx::AnyConnection;

use super::clients::client_of;
use super::engine::{ProxyMls, parse_welcome, stored_client};
use super::error::MlsError;
use crate::store::room_proxy_members::{self, ProxyMemberRecord};
use crate::store::{key_packages, mls_blobs, pending_commits, room_groups};
use crate::uri::{ClientUri, RoomUri};

impl ProxyMls {
    /// Drops an answered pending commit and the blobs only it needed.
    pub(super) async fn forget_pending(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        pending: &pending_commits::PendingCommitRecord,
    ) -> Result<(), MlsError> {
        pending_commits::delete(&mut *tx, room.as_str(), &pending.client_uri).await?;
        for hash in std::iter::once(&pending.commit_hash)
            .chain(pending.welcome_hash.iter())
            .chain(pending.group_info_hash.iter())
        {
            mls_blobs::delete_if_unreferenced(&mut *tx, hash).await?;
        }
        Ok(())
    }

    /// A local client whose state stands at `epoch` already (it joined by external commit).
    pub(super) async fn register_joined(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        client: &str,
        epoch: i64,
    ) -> Result<(), MlsError> {
        room_proxy_members::upsert(
            &mut *tx,
            room.as_str(),
            &ProxyMemberRecord {
                client_uri: client.to_string(),
                dormant: false,
                welcome_hash: None,
                state_epoch: epoch,
                next_seq: 0,
            },
        )
        .await?;
        self.ensure_reader(tx, room, client).await
    }

    pub(super) async fn ensure_reader(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        client: &str,
    ) -> Result<(), MlsError> {
        if let Some(rg) = room_groups::get(&mut *tx, room.as_str()).await?
            && rg.reader_client.is_none()
        {
            room_groups::set_reader(&mut *tx, room.as_str(), Some(client)).await?;
        }
        Ok(())
    }

    /// This provider's clients a Welcome adds: registered to join from it when they first act.
    /// A client registered already (a repeated Welcome) stays as it is.
    pub(super) async fn register_joiners(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        welcome: &[u8],
        epoch: i64,
    ) -> Result<Vec<ClientUri>, MlsError> {
        let joiners = self.welcomed(tx, welcome).await?;
        if joiners.is_empty() {
            return Ok(joiners);
        }
        let hash = mls_blobs::put(&mut *tx, welcome).await?;
        for joiner in &joiners {
            if room_proxy_members::get(&mut *tx, room.as_str(), joiner.as_str())
                .await?
                .is_some()
            {
                continue;
            }
            self.cache_evict(room, joiner.as_str());
            room_proxy_members::upsert(
                &mut *tx,
                room.as_str(),
                &ProxyMemberRecord {
                    client_uri: joiner.to_string(),
                    dormant: true,
                    welcome_hash: Some(hash.clone()),
                    state_epoch: epoch,
                    next_seq: 0,
                },
            )
            .await?;
            self.ensure_reader(tx, room, joiner.as_str()).await?;
        }
        mls_blobs::delete_if_unreferenced(&mut *tx, &hash).await?;
        Ok(joiners)
    }

    /// This provider's clients a Welcome welcomes (by the key packages they own).
    pub(super) async fn welcomed(
        &self,
        tx: &mut AnyConnection,
        welcome: &[u8],
    ) -> Result<Vec<ClientUri>, MlsError> {
        let parsed = parse_welcome(welcome)?;
        let mut joiners = Vec::new();
        for secret in parsed.secrets() {
            if let Some(owner) =
                key_packages::owner(&mut *tx, secret.new_member().as_slice()).await?
            {
                joiners.push(stored_client(&owner, "the owner of a key package")?);
            }
        }
        Ok(joiners)
    }

    /// Local proxy members no longer in the group lose their room membership record.
    pub(super) async fn drop_removed_members(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        group: &PublicGroup,
    ) -> Result<(), MlsError> {
        let in_group: std::collections::HashSet<String> = group
            .members()
            .filter_map(|m| client_of(&m.credential).ok())
            .map(|c| c.to_string())
            .collect();
        let mut reader_gone = false;
        let reader = room_groups::get(&mut *tx, room.as_str())
            .await?
            .and_then(|rg| rg.reader_client);
        for member in room_proxy_members::list(&mut *tx, room.as_str()).await? {
            if !in_group.contains(&member.client_uri) {
                room_proxy_members::delete(&mut *tx, room.as_str(), &member.client_uri).await?;
                self.cache_evict(room, &member.client_uri);
                reader_gone |= reader.as_deref() == Some(member.client_uri.as_str());
            }
        }
        if reader_gone {
            let next = room_proxy_members::list(&mut *tx, room.as_str())
                .await?
                .into_iter()
                .next()
                .map(|r| r.client_uri);
            room_groups::set_reader(&mut *tx, room.as_str(), next.as_deref()).await?;
        }
        Ok(())
    }
}
