//! Proxy members: the local clients in a room, holding only their own keys. A member is opened
//! for an operation (from the cache or the store), caught up from the room log, and saved in the
//! operation's transaction. A dormant member (added by a Welcome it has not processed) joins
//! when it first has to act.

use openmls::prelude::*;
use sqlx::AnyConnection;

use super::clients;
use super::clients::client_of;
use super::engine::{Opened, ProxyMls, cpu_bound, parse_welcome, protocol_message};
use super::error::{MlsError, OpenmlsResult};
use super::group_config::join_config;
use super::room_sync;
use super::storage::{ProxyProvider, WorkingSet};
use crate::room::handshake::Change;
use crate::room::state::RoomState;
use crate::room::validation::check_application_message;
use crate::store::room_log;
use crate::store::room_proxy_members::{self, ProxyMemberRecord};
use crate::store::{mls_blobs, room_groups};
use crate::uri::{ClientUri, RoomUri};

impl ProxyMls {
    pub(super) async fn open_member(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        rg: &room_groups::RoomGroupRecord,
        client: &ClientUri,
    ) -> Result<Opened, MlsError> {
        let group_id = rg.group_id.as_slice();
        if let Some(mut m) = self.cache_take(room, client) {
            self.catch_up(tx, room, rg.epoch, &mut m).await?;
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
        self.catch_up(tx, room, rg.epoch, &mut opened).await?;
        Ok(opened)
    }

    /// Replays the room log from where the member's stored state stands. The log holds a
    /// bounded number of epochs ([`ProxyMls::with_catch_up_bound`]): a member further behind
    /// (a user who never spoke while the room moved on) cannot replay it and rejoins instead
    /// ([`MlsError::Behind`]).
    pub(super) async fn catch_up(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        room_epoch: i64,
        m: &mut Opened,
    ) -> Result<(), MlsError> {
        let entries = room_log::since(&mut *tx, room.as_str(), m.epoch).await?;
        if m.epoch < room_epoch && entries.first().map(|e| e.epoch) != Some(m.epoch) {
            return Err(MlsError::Behind {
                room: room.to_string(),
                client: m.identity.client.to_string(),
                epoch: m.epoch,
                room_epoch,
            });
        }
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
            // The member's own proposals are in its proposal store since it made them.
            if let ProtocolMessage::PublicMessage(public) = &message
                && public.content_type() == ContentType::Proposal
                && public.sender() == &Sender::Member(m.group.own_leaf_index())
            {
                m.next_seq = entry.seq + 1;
                continue;
            }
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
                    let state = room_sync::member_room_state(&m.group, room, &self.cp)?;
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

    pub(super) fn stage_app_data(
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
    pub(super) async fn save_member(
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

    /// Drops the room log before the epoch every local member has reached (all of it before
    /// the current epoch when no local member is left), and in any case before the last
    /// [`ProxyMls::with_catch_up_bound`] epochs, with its blobs. The current epoch's proposals
    /// stay: external joiners need them.
    pub(super) async fn prune_log(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
    ) -> Result<(), MlsError> {
        let Some(current) = room_groups::get(&mut *tx, room.as_str())
            .await?
            .map(|rg| rg.epoch)
        else {
            return Ok(());
        };
        let members = room_proxy_members::min_state_epoch(&mut *tx, room.as_str()).await?;
        let kept_from = members.unwrap_or(current).min(current);
        let min_epoch = kept_from.max(current - self.catch_up_bound);
        for hash in room_log::prune_before(&mut *tx, room.as_str(), min_epoch).await? {
            mls_blobs::delete_if_unreferenced(&mut *tx, &hash).await?;
        }
        Ok(())
    }
}

pub(super) fn decrypt(
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

pub(super) fn join_welcome(ws: &WorkingSet, bytes: &[u8]) -> Result<MlsGroup, MlsError> {
    let welcome = parse_welcome(bytes)?;
    // A user who comes back into a room joins anew: the state its client kept from an earlier
    // stay (removed, banned, left) is replaced, not collided with.
    let builder = StagedWelcome::build_from_welcome(ws.provider(), &join_config(), welcome)
        .during("join from Welcome")?;
    // All of it, proposals it made before leaving included (replacing the group keeps them).
    let group_id = builder
        .processed_welcome()
        .unverified_group_info()
        .group_id()
        .clone();
    if let Some(mut stale) =
        MlsGroup::load(ws.provider().storage(), &group_id).during("load group")?
    {
        stale
            .delete(ws.provider().storage())
            .during("drop an earlier stay's group")?;
    }
    builder
        .replace_old_group()
        .build()
        .during("join from Welcome")?
        .into_group(ws.provider())
        .during("join from Welcome")
}
