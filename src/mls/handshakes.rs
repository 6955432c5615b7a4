//! Handshakes applied to a room's public view, each in one transaction with everything that
//! follows from it: the room log (for proxy members that catch up later), the hub's record of
//! what it accepted and from whom, the GroupInfo the committer sent (served to external
//! joiners), the room-state journal for the bridge core, membership records of local clients
//! that leave or join, the committer's own pending commit when it is ours, and the outbox rows
//! of the fan-out, which the protocol layer describes and this layer writes.

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use sqlx::AnyConnection;

use super::admission::{self, Origin};
use super::clients::{self};
use super::engine::{
    ChangeOrigin, Opened, ProxyMls, cpu_bound, leavers, protocol_message, removes_members,
    stored_client,
};
use super::error::{MlsError, OpenmlsResult};
use super::public::namespace;
use super::room_sync;
use super::storage::WorkingSet;
use crate::room::handshake::Handshake;
use crate::room::state::RoomState;
use crate::room::validation::{Rejection, validate_handshake};
use crate::store::hub_accepted::{self, Accepted};
use crate::store::room_log::{self, LogKind};
use crate::store::{mls_blobs, outbox, pending_commits, room_groups, room_proxy_members};
use crate::uri::{ClientUri, RoomUri};

/// What applying a handshake did, for the fan-out and the caller.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The epoch the handshake was made in.
    pub epoch: u64,
    pub before: RoomState,
    pub after: RoomState,
    /// The handshake was applied before (a repeated fan-out or answer): nothing changed.
    pub repeated: bool,
}

/// What the protocol layer sends out for an applied handshake: outbox rows written in the same
/// transaction.
pub type FanOut<'a> =
    &'a (dyn Fn(&Applied) -> Result<Vec<outbox::OutboxRecord>, String> + Send + Sync);

/// No fan-out (a follower applying what its hub sent).
pub fn no_fan_out(_: &Applied) -> Result<Vec<outbox::OutboxRecord>, String> {
    Ok(Vec::new())
}

/// What came with a commit.
#[derive(Clone, Copy, Debug)]
pub struct CommitSource<'a> {
    pub origin: Origin<'a>,
    /// The commit's Welcome (this provider's clients it adds join from it).
    pub welcome: Option<&'a [u8]>,
    /// The GroupInfo of the epoch the commit creates, as the committer sent it.
    pub group_info: Option<&'a [u8]>,
    /// The hub's timestamp of acceptance (ms).
    pub timestamp_ms: i64,
}

impl ProxyMls {
    /// The hub accepted a local client's pending commit: it is applied here, as a follower
    /// applies its own commit on the hub's answer.
    pub async fn confirm_commit(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
    ) -> Result<RoomState, MlsError> {
        let (commit, welcome, group_info) = {
            let mut conn = self.store.pool().acquire().await?;
            let pending = pending_commits::get(&mut *conn, room.as_str(), committer.as_str())
                .await?
                .ok_or_else(|| MlsError::NoPendingCommit {
                    room: room.to_string(),
                    client: committer.to_string(),
                })?;
            let mut blob = async |hash: Option<&Vec<u8>>| -> Result<Option<Vec<u8>>, MlsError> {
                match hash {
                    Some(h) => Ok(mls_blobs::get(&mut conn, h).await?),
                    None => Ok(None),
                }
            };
            let commit = blob(Some(&pending.commit_hash)).await?.ok_or_else(|| {
                MlsError::Corrupt(format!("the pending commit of {committer} is missing"))
            })?;
            let welcome = blob(pending.welcome_hash.as_ref()).await?;
            let group_info = blob(pending.group_info_hash.as_ref()).await?;
            (commit, welcome, group_info)
        };
        let applied = self
            .apply_commit(
                room,
                &commit,
                CommitSource {
                    origin: Origin::Hub,
                    welcome: welcome.as_deref(),
                    group_info: group_info.as_deref(),
                    timestamp_ms: crate::store::now_ms(),
                },
                &no_fan_out,
            )
            .await?;
        Ok(applied.after)
    }

    /// A handshake or message as a follower receives it from the hub: a commit or proposal is
    /// applied to the public view, a message decrypted by the room's reader.
    pub async fn process_incoming(
        &self,
        room: &RoomUri,
        message: &[u8],
    ) -> Result<super::Incoming, MlsError> {
        let protocol = protocol_message(message)?;
        let source = CommitSource {
            origin: Origin::Hub,
            welcome: None,
            group_info: None,
            timestamp_ms: crate::store::now_ms(),
        };
        match protocol.content_type() {
            ContentType::Commit => {
                let applied = self
                    .apply_commit(room, message, source, &no_fan_out)
                    .await?;
                Ok(super::Incoming::Commit {
                    state: Box::new(applied.after),
                })
            }
            ContentType::Proposal => {
                let applied = self
                    .apply_proposals(
                        room,
                        &[message],
                        Origin::Hub,
                        source.timestamp_ms,
                        &no_fan_out,
                    )
                    .await?;
                Ok(super::Incoming::Proposals {
                    state: Box::new(applied.after),
                })
            }
            ContentType::Application => {
                let mut out = self.receive_messages(room, &[message.to_vec()]).await?;
                let (sender, payload) = out.pop().ok_or_else(|| MlsError::Malformed {
                    what: "application message",
                    reason: "it is the reader's own".into(),
                })?;
                Ok(super::Incoming::Application { sender, payload })
            }
        }
    }

    /// Proposals the hub fanned out together, applied here as a follower applies them.
    pub async fn process_proposals(
        &self,
        room: &RoomUri,
        messages: &[&[u8]],
    ) -> Result<RoomState, MlsError> {
        let applied = self
            .apply_proposals(
                room,
                messages,
                Origin::Hub,
                crate::store::now_ms(),
                &no_fan_out,
            )
            .await?;
        Ok(applied.after)
    }

    // ---------------------------------------------------------------- proposals

    /// Proposals accepted together (a HandshakeBundle's proposal and its `moreProposals`):
    /// checked through the room core and the admission rules, kept in the public view for the
    /// next commit and logged for the local members. A proposal applied before is not applied
    /// or logged again.
    pub async fn apply_proposals(
        &self,
        room: &RoomUri,
        messages: &[&[u8]],
        origin: Origin<'_>,
        timestamp_ms: i64,
        fan_out: FanOut<'_>,
    ) -> Result<Applied, MlsError> {
        let _guard = self.lock_room(room).await;
        // Read and compute without the store's write lock (see `write_phase`).
        let mut conn = self.store.pool().acquire().await?;
        let mut view = self.open_view(&mut conn, room).await?;
        let before = view.state(room, &self.cp)?;
        let epoch = view.epoch();
        let reject = |rejection| MlsError::Rejected {
            room: room.to_string(),
            rejection,
        };
        let mut queued = Vec::with_capacity(messages.len());
        let mut effects = Vec::with_capacity(messages.len());
        for message in messages {
            let protocol = protocol_message(message)?;
            if protocol.epoch().as_u64() != epoch {
                return Err(reject(Rejection::wrong_epoch(
                    epoch,
                    format!(
                        "the proposal is for epoch {}, the room is at epoch {epoch}",
                        protocol.epoch().as_u64()
                    ),
                )));
            }
            let processed = view
                .group
                .process_message(view.ws.provider().crypto(), protocol)
                .map_err(|e| MlsError::Malformed {
                    what: "proposal",
                    reason: format!("{e:?}"),
                })?;
            let sender = room_sync::room_sender(
                &view.group,
                processed.sender(),
                Some(processed.credential()),
            )?;
            let ProcessedMessageContent::ProposalMessage(q) = processed.into_content() else {
                return Err(MlsError::Malformed {
                    what: "proposal bundle",
                    reason: "it holds a message that is not a proposal (external join \
                             proposals are not used in MIMI rooms)"
                        .into(),
                });
            };
            admission::check_sender(origin, room.provider(), &sender).map_err(reject)?;
            effects.push(room_sync::proposal_effect(
                &view.group,
                &q,
                sender,
                &self.cp,
            )?);
            queued.push(*q);
        }
        let Some(first) = effects.first() else {
            return Err(MlsError::Malformed {
                what: "proposal bundle",
                reason: "it is empty".into(),
            });
        };
        let handshake = Handshake::proposals(epoch, first.sender.clone(), effects.clone());
        validate_handshake(&before, &handshake).map_err(reject)?;
        for (sender, leaf) in admission::updates(&queued) {
            admission::check_leaf_identity(&view.group, &sender, Some(&leaf)).map_err(reject)?;
        }
        let adds = admission::add_claims(view.ws.provider(), &queued)?;
        admission::check_adds(&mut conn, origin, &self.provider, room, &adds).await?;
        drop(conn);
        let mut tx = self.write_phase().await?;
        let known: Vec<_> = view
            .pending()?
            .iter()
            .map(|q| q.proposal_reference_ref().clone())
            .collect();
        let mut new = false;
        for (q, message) in queued.into_iter().zip(messages) {
            if !known.contains(q.proposal_reference_ref()) {
                view.group
                    .add_proposal(view.ws.provider().storage(), q)
                    .during("store proposal")?;
            }
            let hash = mls_blobs::hash(message);
            record_acceptance(
                &mut tx,
                room,
                &hash,
                epoch,
                origin,
                "proposal",
                timestamp_ms,
            )
            .await?;
            if !room_log::contains(&mut *tx, room.as_str(), epoch as i64, &hash).await? {
                mls_blobs::put(&mut tx, message).await?;
                room_log::append(
                    &mut tx,
                    room.as_str(),
                    epoch as i64,
                    LogKind::Proposal,
                    &hash,
                )
                .await?;
                new = true;
            }
        }
        self.fault("after-mls-step")?;
        let applied = Applied {
            epoch,
            after: view.state(room, &self.cp)?,
            before,
            repeated: !new,
        };
        self.enqueue_fan_out(&mut tx, fan_out, &applied).await?;
        view.ws.flush(&mut tx, &self.key).await?;
        self.finish(tx, room, None, Some(view)).await?;
        Ok(applied)
    }

    async fn enqueue_fan_out(
        &self,
        tx: &mut AnyConnection,
        fan_out: FanOut<'_>,
        applied: &Applied,
    ) -> Result<(), MlsError> {
        if applied.repeated {
            return Ok(());
        }
        let rows = fan_out(applied).map_err(|reason| MlsError::Malformed {
            what: "fan-out",
            reason,
        })?;
        for row in &rows {
            outbox::enqueue_once(&mut *tx, row).await?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- commits

    /// A commit the hub accepted (or, at the hub, that it accepts now): checked through the
    /// room core and the admission rules and merged into the public view; a commit of one of
    /// our clients also merges its pending commit; local clients it adds are registered to join
    /// from its Welcome, local clients it removes lose their membership. A commit applied
    /// before changes nothing (`repeated`).
    pub async fn apply_commit(
        &self,
        room: &RoomUri,
        commit: &[u8],
        source: CommitSource<'_>,
        fan_out: FanOut<'_>,
    ) -> Result<Applied, MlsError> {
        let protocol = protocol_message(commit)?;
        let hash = mls_blobs::hash(commit);
        let _guard = self.lock_room(room).await;
        // Read and compute without the store's write lock (see `write_phase`).
        let mut conn = self.store.pool().acquire().await?;
        let rg = self.room_group(&mut conn, room).await?;
        let own = pending_commits::by_commit(&mut *conn, room.as_str(), &hash).await?;
        let own = match own {
            Some(client) => pending_commits::get(&mut *conn, room.as_str(), &client).await?,
            None => None,
        };
        // Our own external commit into a room we have no view of: the joined client's group
        // is the view.
        if let Some(pending) = own.as_ref().filter(|p| p.external)
            && self.view_missing(&mut conn, room, &rg).await?
        {
            drop(conn);
            let tx = self.write_phase().await?;
            return self.accept_own_join(tx, room, &rg, pending, source).await;
        }
        let mut view = self.open_view(&mut conn, room).await?;
        let before = view.state(room, &self.cp)?;
        let epoch = view.epoch();
        // A commit of an epoch this view has passed: from the hub, one applied already (our
        // own, confirmed by the hub's answer before its fan-out came); at the hub, a replay is
        // refused below.
        if protocol.epoch().as_u64() < epoch
            && (matches!(source.origin, Origin::Hub)
                || room_log::contains(
                    &mut *conn,
                    room.as_str(),
                    protocol.epoch().as_u64() as i64,
                    &hash,
                )
                .await?)
        {
            self.view_put(room, view);
            return Ok(Applied {
                epoch: protocol.epoch().as_u64(),
                after: before.clone(),
                before,
                repeated: true,
            });
        }
        let reject = |rejection| MlsError::Rejected {
            room: room.to_string(),
            rejection,
        };
        if protocol.epoch().as_u64() != epoch {
            return Err(reject(Rejection::wrong_epoch(
                epoch,
                format!(
                    "the commit is for epoch {}, the room is at epoch {epoch}",
                    protocol.epoch().as_u64()
                ),
            )));
        }
        let processed = cpu_bound(|| {
            view.group
                .process_message(view.ws.provider().crypto(), protocol)
        })
        .map_err(|e| MlsError::Malformed {
            what: "commit",
            reason: format!("{e:?}"),
        })?;
        let sender = processed.sender().clone();
        let staged = match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => *staged,
            ProcessedMessageContent::UnresolvedAppDataCommit(unresolved) => {
                let changes = room_sync::decode_updates(
                    room,
                    unresolved.app_data_update_proposals(),
                    &self.cp,
                )?;
                let components = room_sync::resolve(&before, &changes, &self.cp)?;
                let mut updater = view.group.app_data_dictionary_updater();
                for c in components {
                    updater.set(c);
                }
                let updates = updater.changes();
                view.group
                    .stage_app_data_commit(view.ws.provider().crypto(), *unresolved, updates)
                    .during("stage AppDataUpdate commit")?
            }
            _ => {
                return Err(MlsError::Malformed {
                    what: "commit",
                    reason: "the message is not a commit".into(),
                });
            }
        };
        let joiner = staged
            .update_path_leaf_node()
            .map(|l| l.credential().clone());
        let committer = room_sync::room_sender(&view.group, &sender, joiner.as_ref())?;
        let handshake = room_sync::commit_effects(&view.group, &committer, &staged, &self.cp)?;
        validate_handshake(&before, &handshake).map_err(reject)?;
        admission::check_sender(source.origin, room.provider(), &committer).map_err(reject)?;
        admission::check_leaf_identity(&view.group, &sender, staged.update_path_leaf_node())
            .map_err(reject)?;
        for (sender, leaf) in admission::updates(staged.queued_proposals()) {
            admission::check_leaf_identity(&view.group, &sender, Some(&leaf)).map_err(reject)?;
        }
        let adds = admission::add_claims(view.ws.provider(), staged.queued_proposals())?;
        admission::check_adds(&mut conn, source.origin, &self.provider, room, &adds).await?;
        let removes = removes_members(&staged);
        // Our own commit: the committer's pending commit merges with it (opened before the
        // commit enters the room log, which the member must not replay).
        let mut member = None;
        if let Some(pending) = own.as_ref().filter(|p| !p.external) {
            let client = stored_client(&pending.client_uri, "the committer of a pending commit")?;
            let mut m = self.open_member(&mut conn, room, &rg, &client).await?;
            if m.group.pending_commit().is_none() || m.epoch != pending.epoch {
                return Err(MlsError::Corrupt(format!(
                    "{client} in {room}: its pending commit of epoch {} does not match its group \
                     at epoch {}",
                    pending.epoch, m.epoch
                )));
            }
            m.group
                .merge_pending_commit(m.ws.provider())
                .during("merge commit")?;
            m.epoch += 1;
            m.next_seq = 0;
            member = Some(m);
        }
        let mut reader = self
            .reader_to_catch_up(&mut conn, room, &rg, epoch, member.as_ref())
            .await?;
        view.group
            .merge_commit(view.ws.provider().storage(), staged)
            .during("merge commit into the public view")?;
        let after = view.state(room, &self.cp)?;
        self.fault("after-mls-step")?;
        drop(conn);
        let mut tx = self.write_phase().await?;
        room_groups::set_epoch(&mut *tx, room.as_str(), rg.epoch, epoch as i64 + 1).await?;
        mls_blobs::put(&mut tx, commit).await?;
        room_log::append(&mut tx, room.as_str(), epoch as i64, LogKind::Commit, &hash).await?;
        record_acceptance(
            &mut tx,
            room,
            &hash,
            epoch,
            source.origin,
            "commit",
            source.timestamp_ms,
        )
        .await?;
        let group_info = match source.group_info {
            Some(gi) if group_info_epoch(gi) == Some(epoch + 1) => {
                Some(mls_blobs::put(&mut tx, gi).await?)
            }
            _ => None,
        };
        self.replace_group_info(&mut tx, room, group_info.as_deref())
            .await?;
        let mut origin = ChangeOrigin {
            committer: Some(match &committer {
                crate::room::handshake::Sender::Member(c)
                | crate::room::handshake::Sender::NewMember { client: c, .. } => c.to_string(),
                crate::room::handshake::Sender::Server(p) => p.to_string(),
            }),
            legacy_event: None,
            leavers: leavers(&handshake),
        };
        let mut welcome = source.welcome.map(<[u8]>::to_vec);
        if let Some(pending) = &own {
            origin.legacy_event = pending.legacy_event;
            if welcome.is_none()
                && let Some(h) = &pending.welcome_hash
            {
                welcome = mls_blobs::get(&mut tx, h).await?;
            }
            self.forget_pending(&mut tx, room, pending).await?;
            if pending.external {
                self.register_joined(&mut tx, room, &pending.client_uri, epoch as i64 + 1)
                    .await?;
            }
        }
        if let Some(welcome) = welcome {
            self.register_joiners(&mut tx, room, &welcome, epoch as i64 + 1)
                .await?;
        }
        if removes {
            self.drop_removed_members(&mut tx, room, &view.group)
                .await?;
        }
        self.record_room_state(&mut tx, room, rg.epoch, &after, &origin)
            .await?;
        let applied = Applied {
            epoch,
            before,
            after,
            repeated: false,
        };
        self.enqueue_fan_out(&mut tx, fan_out, &applied).await?;
        view.ws.flush(&mut tx, &self.key).await?;
        if let Some(m) = member.as_mut() {
            self.save_member(&mut tx, room, m).await?;
        }
        if let Some(r) = reader.as_mut() {
            self.save_member(&mut tx, room, r).await?;
        }
        self.prune_log(&mut tx, room).await?;
        self.finish(tx, room, member, Some(view)).await?;
        if let Some(mut r) = reader.filter(|r| r.group.is_active()) {
            r.ws.mark_persisted()?;
            self.cache_put(room, r);
        }
        Ok(applied)
    }

    /// The room's reader decrypts every message for this provider's users, so it must never
    /// fall behind the room log ([`ProxyMls::with_catch_up_bound`]): once it is half the bound
    /// behind, a commit catches it up (before the write lock, like the rest of the commit's
    /// MLS work). Other members catch up when they act, or rejoin.
    async fn reader_to_catch_up(
        &self,
        conn: &mut AnyConnection,
        room: &RoomUri,
        rg: &room_groups::RoomGroupRecord,
        epoch: u64,
        committer: Option<&Opened>,
    ) -> Result<Option<Opened>, MlsError> {
        let Some(reader) = rg.reader_client.as_deref() else {
            return Ok(None);
        };
        if committer.is_some_and(|m| m.identity.client.as_str() == reader) {
            return Ok(None);
        }
        let Some(record) = room_proxy_members::get(&mut *conn, room.as_str(), reader).await? else {
            return Ok(None);
        };
        if (epoch as i64) - record.state_epoch < self.catch_up_bound / 2 {
            return Ok(None);
        }
        let client = stored_client(reader, "the reader of a room")?;
        match self.open_member(conn, room, rg, &client).await {
            Ok(m) => Ok(Some(m)),
            Err(e @ (MlsError::Store(_) | MlsError::Database(_))) => Err(e),
            // The commit is the room's, not the reader's: it is applied all the same.
            Err(e) => {
                tracing::warn!(%room, %client, error = %e, "the room's reader could not catch up");
                Ok(None)
            }
        }
    }

    async fn view_missing(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        rg: &room_groups::RoomGroupRecord,
    ) -> Result<bool, MlsError> {
        if self
            .views
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(room.as_str())
        {
            return Ok(false);
        }
        let ws = WorkingSet::load(&mut *tx, &namespace(room), &self.key).await?;
        Ok(
            PublicGroup::load(ws.provider().storage(), &GroupId::from_slice(&rg.group_id))
                .during("load public view")?
                .is_none()
                && rg.reader_client.is_none(),
        )
    }

    /// The hub accepted our client's external commit into a room we had no view of: the
    /// client's group becomes the view.
    async fn accept_own_join(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        room: &RoomUri,
        rg: &room_groups::RoomGroupRecord,
        pending: &pending_commits::PendingCommitRecord,
        source: CommitSource<'_>,
    ) -> Result<Applied, MlsError> {
        let client = stored_client(&pending.client_uri, "the committer of a pending commit")?;
        let identity = clients::load(&mut tx, &self.key, &client).await?;
        let ws = WorkingSet::load(&mut tx, client.as_str(), &self.key).await?;
        let group = MlsGroup::load(ws.provider().storage(), &GroupId::from_slice(&rg.group_id))
            .during("load group")?
            .ok_or_else(|| MlsError::Corrupt(format!("{client} has no group for {room}")))?;
        let epoch = group.epoch().as_u64() as i64;
        let m = Opened {
            identity,
            ws,
            group,
            epoch,
            next_seq: 0,
            released_welcome: None,
            stored_at: None,
        };
        let view = self.install_view(&mut tx, room, &m).await?;
        let after = view.state(room, &self.cp)?;
        room_groups::set_epoch(&mut *tx, room.as_str(), rg.epoch, epoch).await?;
        self.forget_pending(&mut tx, room, pending).await?;
        self.register_joined(&mut tx, room, client.as_str(), epoch)
            .await?;
        let origin = ChangeOrigin {
            committer: Some(client.to_string()),
            ..Default::default()
        };
        self.record_room_state(&mut tx, room, rg.epoch, &after, &origin)
            .await?;
        let _ = source;
        self.finish(tx, room, None, Some(view)).await?;
        Ok(Applied {
            epoch: (epoch - 1).max(0) as u64,
            before: after.clone(),
            after,
            repeated: false,
        })
    }
}

/// At the hub, records who sent an accepted handshake and when it was answered.
async fn record_acceptance(
    tx: &mut AnyConnection,
    room: &RoomUri,
    hash: &[u8],
    epoch: u64,
    origin: Origin<'_>,
    kind: &str,
    timestamp_ms: i64,
) -> Result<(), MlsError> {
    if let Origin::Peer(peer) = origin {
        hub_accepted::record(
            &mut *tx,
            room.as_str(),
            hash,
            &Accepted {
                epoch: epoch as i64,
                peer: peer.domain().to_string(),
                kind: kind.into(),
                accepted_at_ms: timestamp_ms,
            },
        )
        .await?;
    }
    Ok(())
}

/// The epoch a GroupInfo message is for, if it is one.
fn group_info_epoch(bytes: &[u8]) -> Option<u64> {
    match MlsMessageIn::tls_deserialize_exact(bytes).ok()?.extract() {
        MlsMessageBodyIn::GroupInfo(gi) => Some(gi.epoch().as_u64()),
        _ => None,
    }
}
