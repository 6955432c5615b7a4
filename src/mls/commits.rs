//! Commits proxy clients make (adds, removals and bans, role changes, renames, cached
//! proposals, leaf updates), staged for the hub and answered later; and leaving, which is
//! proposals the next committer includes.

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;

use super::clients::client_of;
use super::engine::{
    CommitOp, CommitOutput, ProxyMls, UserAddition, cpu_bound, journal_refusal, parse_key_package,
    settle,
};
use super::error::{MlsError, OpenmlsResult};
use super::room_sync;
use crate::room::handshake::{Change, Handshake, Sender as RoomSender};
use crate::room::validation::validate_handshake;
use crate::room::wire::{self, ParticipantListUpdate, UserIndexRolePair, UserRolePair};
use crate::store::legacy_events::Settlement;
use crate::store::pending_commits::{self, PendingCommitRecord};
use crate::store::{mls_blobs, outbox, outbox_origins, room_groups};
use crate::uri::{ClientUri, RoomUri, UserUri};

impl ProxyMls {
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
        let mut m = self.open_member(&mut tx, room, &rg, client).await?;
        let state = room_sync::member_room_state(&m.group, room, &self.cp)?;
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
        // Checked as the hub will check them: a leave the room's policy refuses (its last
        // admin leaving, say) is refused here, in words, rather than lost at the hub.
        let own = Sender::Member(m.group.own_leaf_index());
        let sender = RoomSender::Member(client.clone());
        let effects = m
            .group
            .pending_proposals()
            .filter(|q| q.sender() == &own)
            .map(|q| {
                room_sync::proposal_effect(m.group.public_group(), q, sender.clone(), &self.cp)
            })
            .collect::<Result<Vec<_>, _>>()?;
        validate_handshake(&state, &Handshake::proposals(state.epoch, sender, effects)).map_err(
            |rejection| MlsError::Rejected {
                room: room.to_string(),
                rejection,
            },
        )?;
        self.fault("after-mls-step")?;
        let body = messages
            .iter()
            .map(|m| tls_codec::VLBytes::new(m.clone()))
            .collect::<Vec<_>>()
            .tls_serialize_detached()
            .during("encode proposals")?;
        let id = format!("proposals:{}", hex::encode(mls_blobs::hash(&body)));
        outbox::enqueue(
            &mut *tx,
            &outbox::OutboxRecord {
                id: id.clone(),
                room_id: Some(room.to_string()),
                destination: room.provider().domain().to_string(),
                kind: "proposals".into(),
                sender: Some(user.to_string()),
                body,
                attempts: 0,
            },
        )
        .await?;
        // The hub's refusal of the leave reaches the one who left.
        outbox_origins::put_many(
            &mut tx,
            &[outbox_origins::OriginRecord {
                outbox_id: id,
                room_id: room.to_string(),
                client_uri: client.to_string(),
                legacy_event: settlement.as_ref().map(|s| s.seq),
                payload: None,
            }],
        )
        .await?;
        settle(&mut tx, settlement.as_ref()).await?;
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m), None).await
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
        // Read and compute without the store's write lock (see `write_phase`): building a
        // commit that adds many clients is the heaviest MLS step there is.
        let mut conn = self.store.pool().acquire().await?;
        let rg = self.room_group(&mut conn, room).await?;
        if pending_commits::get(&mut *conn, room.as_str(), committer.as_str())
            .await?
            .is_some()
        {
            return Err(MlsError::Malformed {
                what: "commit request",
                reason: format!("{committer} already has a commit waiting for the hub in {room}"),
            });
        }
        let mut m = self.open_member(&mut conn, room, &rg, committer).await?;
        let state = room_sync::member_room_state(&m.group, room, &self.cp)?;
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
            m.group.public_group(),
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
        drop(conn);
        let mut tx = self.write_phase().await?;
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
                local_joiners: Vec::new(),
                legacy_event: plan.settlement.as_ref().map(|s| s.seq),
                external: false,
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
        self.finish(tx, room, Some(m), None).await?;
        Ok(CommitOutput {
            epoch,
            commit,
            welcome,
            group_info,
        })
    }

    /// The hub refused the pending commit: drop it; the member stays at its epoch.
    pub async fn discard_commit(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
        reason: &str,
    ) -> Result<(), MlsError> {
        self.drop_pending_commit(room, committer, reason, false)
            .await
    }

    /// The hub answered `wrongEpoch`: the pending commit is dropped, and the legacy event it
    /// carried out is handed back to the bridge core to be carried out again on the new epoch.
    pub async fn discard_commit_to_retry(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
        reason: &str,
    ) -> Result<(), MlsError> {
        self.drop_pending_commit(room, committer, reason, true)
            .await
    }

    async fn drop_pending_commit(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
        reason: &str,
        retry: bool,
    ) -> Result<(), MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let rg = self.room_group(&mut tx, room).await?;
        let pending = pending_commits::get(&mut *tx, room.as_str(), committer.as_str()).await?;
        let external = pending.as_ref().is_some_and(|p| p.external);
        let mut member = None;
        if !external {
            let mut m = self.open_member(&mut tx, room, &rg, committer).await?;
            m.group
                .clear_pending_commit(m.ws.provider().storage())
                .during("clear pending commit")?;
            member = Some(m);
        }
        if let Some(pending) = &pending {
            self.forget_pending(&mut tx, room, pending).await?;
            if let Some(seq) = pending.legacy_event {
                journal_refusal(&mut tx, room, committer.as_str(), seq, reason, retry).await?;
            }
        }
        if external {
            // The refused joiner's state goes with the next join; a room this daemon knew only
            // through that join is forgotten.
            self.cache_evict(room, committer.as_str());
            if rg.reader_client.is_none()
                && crate::store::room_proxy_members::list(&mut *tx, room.as_str())
                    .await?
                    .is_empty()
                && crate::store::rooms::get(&mut *tx, room.as_str())
                    .await?
                    .is_none()
            {
                room_groups::delete(&mut *tx, room.as_str()).await?;
            }
        }
        if let Some(m) = member.as_mut() {
            self.save_member(&mut tx, room, m).await?;
        }
        tx.commit().await?;
        Ok(())
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

fn addition_plan(additions: &[UserAddition]) -> Result<StagePlan, MlsError> {
    let mut key_packages = Vec::new();
    let mut added = Vec::new();
    for a in additions {
        added.push(UserRolePair::new(a.user.as_str(), a.role));
        // Key packages are chosen per client: one that lacks what the room requires is left
        // out (its client is not added), and the user only fails when none is left.
        let mut usable = 0;
        let mut missing = Vec::new();
        for bytes in &a.key_packages {
            let kp = parse_key_package(bytes)?;
            let lacks = super::group_config::missing_capabilities(&kp);
            if lacks.is_empty() {
                key_packages.push(kp);
                usable += 1;
            } else {
                let client = super::clients::client_of(kp.leaf_node().credential())
                    .map(|c| c.to_string())
                    .unwrap_or_else(|_| "a client".into());
                tracing::warn!(user = %a.user, %client, lacks = %lacks.join("; "), "a key package that cannot join a MIMI room is left out");
                missing.push(format!("{client} lacks {}", lacks.join(", ")));
            }
        }
        if usable == 0 && !missing.is_empty() {
            return Err(MlsError::InsufficientCapabilities {
                user: a.user.to_string(),
                missing,
            });
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
