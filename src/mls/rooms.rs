//! Rooms coming into being here: created by a local user (this provider is the hub), joined
//! from a Welcome, or joined by external commit.

use openmls::extensions::{AppDataDictionaryExtension, ExternalSendersExtension};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use sqlx::AnyConnection;

use super::clients;
use super::engine::{
    ChangeOrigin, CommitOutput, Opened, ProxyMls, cpu_bound, journal, parse_welcome, settle,
};
use super::error::{MlsError, OpenmlsResult};
use super::group_config::{CIPHERSUITE, join_config, leaf_capabilities, required_capabilities};
use super::member::join_welcome;
use super::room_sync;
use super::storage::WorkingSet;
use crate::room::change::RoomChange;
use crate::room::state::{Member, RoomState, default_roles};
use crate::room::validation::Rejection;
use crate::room::wire::{self, BaseRoomPolicy};
use crate::store::legacy_events::Settlement;
use crate::store::pending_commits::{self, PendingCommitRecord};
use crate::store::room_proxy_members;
use crate::store::rooms::{self, NewRoom, OurRole};
use crate::store::{StoreError, mls_blobs, outbox, room_groups};
use crate::uri::{ClientUri, GroupUri, RoomUri};

impl ProxyMls {
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
            // room-policy-03 §5: the other policy components in use are listed here.
            BaseRoomPolicy {
                policy_component_ids: vec![self.cp.roles_list, self.cp.preauth_list],
                ..BaseRoomPolicy::default()
            },
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
            .max_past_epochs(2)
            .with_capabilities(leaf_capabilities())
            .with_leaf_node_extensions(self.leaf_extensions())
            .during("leaf extensions")?
            .with_group_context_extensions(extensions)
            .build(ws.provider(), &identity.signer, identity.credential.clone())
            .during("create group")?;
        self.fault("after-mls-step")?;
        let state = room_sync::member_room_state(&group, room, &self.cp)?;
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
        let view = self.install_view(&mut tx, room, &opened).await?;
        self.save_member(&mut tx, room, &mut opened).await?;
        self.finish(tx, room, Some(opened), Some(view)).await?;
        Ok(state)
    }

    /// A Welcome for some of this provider's proxy clients. The first of them joins at once
    /// (after the room core confirmed that its user is a participant): when the room has no
    /// public view here, or one behind the Welcome's epoch (no local client was in the room for
    /// a while), the joined group becomes the view. The others stay dormant until they must
    /// act. A client that comes back replaces the state of its earlier stay.
    pub async fn join_from_welcome(
        &self,
        room: &RoomUri,
        welcome: &[u8],
    ) -> Result<Vec<ClientUri>, MlsError> {
        parse_welcome(welcome)?;
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let joiners = self.welcomed(&mut tx, welcome).await?;
        let Some(first) = joiners.first().cloned() else {
            return Err(MlsError::WelcomeNotForUs(room.to_string()));
        };
        let existing = room_groups::get(&mut *tx, room.as_str()).await?;
        // A repeated Welcome: the clients it adds joined (or wait to) already.
        if existing.is_some()
            && room_proxy_members::get(&mut *tx, room.as_str(), first.as_str())
                .await?
                .is_some()
        {
            return Ok(joiners);
        }
        let identity = clients::load(&mut tx, &self.key, &first).await?;
        let ws = WorkingSet::load(&mut tx, first.as_str(), &self.key).await?;
        let group = cpu_bound(|| join_welcome(&ws, welcome))?;
        let state = room_sync::member_room_state(&group, room, &self.cp)?;
        if !state.participants.contains(&identity.user) {
            return Err(MlsError::Rejected {
                room: room.to_string(),
                rejection: Rejection::invalid(
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
        let mut m = Opened {
            identity,
            ws,
            group,
            epoch,
            next_seq: 0,
            released_welcome: None,
            stored_at: None,
        };
        let view_epoch = match &existing {
            Some(_) => Some(self.open_view(&mut tx, room).await?.epoch() as i64),
            None => None,
        };
        let mut view = None;
        match (&existing, view_epoch) {
            (Some(rg), Some(at)) if at >= epoch => {
                // The view is current: the first joiner is an ordinary member.
                let _ = rg;
            }
            (Some(rg), _) => {
                view = Some(self.install_view(&mut tx, room, &m).await?);
                room_groups::set_epoch(&mut *tx, room.as_str(), rg.epoch, epoch).await?;
                self.record_room_state(&mut tx, room, rg.epoch, &state, &ChangeOrigin::default())
                    .await?;
            }
            (None, _) => {
                room_groups::insert(
                    &mut *tx,
                    &room_groups::RoomGroupRecord {
                        room_id: room.to_string(),
                        group_id: m.group.group_id().as_slice().to_vec(),
                        epoch,
                        reader_client: None,
                    },
                )
                .await?;
                view = Some(self.install_view(&mut tx, room, &m).await?);
                self.open_room_record(&mut tx, room, &state).await?;
            }
        }
        self.save_member(&mut tx, room, &mut m).await?;
        self.ensure_reader(&mut tx, room, first.as_str()).await?;
        if joiners.len() > 1 {
            self.register_joiners(&mut tx, room, welcome, epoch).await?;
        }
        self.finish(tx, room, Some(m), view).await?;
        Ok(joiners)
    }

    /// The `rooms` record of a room this daemon starts following, journalled as new.
    async fn open_room_record(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        state: &RoomState,
    ) -> Result<(), MlsError> {
        let app_data =
            wire::encode(
                &state
                    .to_app_data(&self.cp)
                    .map_err(|e| MlsError::InvalidRoomState {
                        room: room.to_string(),
                        reason: e.to_string(),
                    })?,
            )
            .map_err(|e| MlsError::InvalidRoomState {
                room: room.to_string(),
                reason: e.to_string(),
            })?;
        let inserted = rooms::insert(
            &mut *tx,
            &NewRoom {
                room_id: room.as_str(),
                hub_domain: room.provider().domain(),
                our_role: if room.provider() == &self.provider {
                    OurRole::Hub
                } else {
                    OurRole::Follower
                },
                epoch: state.epoch as i64,
                app_data: &app_data,
            },
        )
        .await;
        match inserted {
            Ok(()) => journal(tx, room, &RoomChange::between(None, state)).await,
            Err(StoreError::RoomExists { .. }) => {
                let from = rooms::get(&mut *tx, room.as_str())
                    .await?
                    .map(|r| r.epoch)
                    .unwrap_or_default();
                self.record_room_state(tx, room, from, state, &ChangeOrigin::default())
                    .await
            }
            Err(e) => Err(e.into()),
        }
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
        self.join_by_external_commit_queued(
            room,
            client,
            group_info,
            pending_proposals,
            room.provider().domain(),
            None,
        )
        .await
    }

    /// Joins by external commit, the commit queued for the hub in the outbox queue
    /// `destination` (a resync's own, so that it does not wait behind messages that wait for
    /// it), followed in that queue by `follow_up` when given, in the same transaction.
    pub async fn join_by_external_commit_queued(
        &self,
        room: &RoomUri,
        client: &ClientUri,
        group_info: &[u8],
        pending_proposals: &[Vec<u8>],
        destination: &str,
        follow_up: Option<&outbox::OutboxRecord>,
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
        // A client coming back replaces the state of its earlier stay.
        let group_id = verifiable.group_id().clone();
        if let Some(mut stale) =
            MlsGroup::load(ws.provider().storage(), &group_id).during("load group")?
        {
            stale
                .delete(ws.provider().storage())
                .during("drop an earlier stay's group")?;
        }
        let (group, bundle) = MlsGroup::external_commit_builder()
            .with_config(join_config())
            .with_proposals(proposals)
            .build_group(ws.provider(), verifiable, identity.credential.clone())
            .during("external commit")?
            .leaf_node_parameters(
                LeafNodeParameters::builder()
                    .with_capabilities(leaf_capabilities())
                    .with_extensions(self.leaf_extensions())
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
        let state = room_sync::member_room_state(&group, room, &self.cp)?;
        if !state.participants.contains(&identity.user) {
            return Err(MlsError::Rejected {
                room: room.to_string(),
                rejection: Rejection::not_allowed(format!(
                    "{} is not a participant of {room}, so {client} cannot join",
                    identity.user
                )),
            });
        }
        if pending_commits::get(&mut *tx, room.as_str(), client.as_str())
            .await?
            .is_some()
        {
            return Err(MlsError::Malformed {
                what: "external join",
                reason: format!("{client} already has a commit waiting for the hub in {room}"),
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
        let group_info_hash = match &group_info_bytes {
            Some(gi) => Some(mls_blobs::put(&mut tx, gi).await?),
            None => None,
        };
        if room_groups::get(&mut *tx, room.as_str()).await?.is_none() {
            // No view of the room here yet: it comes with the hub's acceptance.
            room_groups::insert(
                &mut *tx,
                &room_groups::RoomGroupRecord {
                    room_id: room.to_string(),
                    group_id: group.group_id().as_slice().to_vec(),
                    epoch: epoch - 1,
                    reader_client: None,
                },
            )
            .await?;
        }
        // The client's state stands at the new epoch already; the room's moves when the hub
        // accepts the commit (then the client becomes a member here), and the client's is
        // dropped if it refuses.
        pending_commits::put(
            &mut *tx,
            room.as_str(),
            &PendingCommitRecord {
                client_uri: client.to_string(),
                epoch: epoch - 1,
                commit_hash: commit_hash.clone(),
                welcome_hash: None,
                group_info_hash,
                local_joiners: Vec::new(),
                legacy_event: None,
                external: true,
            },
        )
        .await?;
        outbox::enqueue(
            &mut *tx,
            &outbox::OutboxRecord {
                id: format!("commit:{}", hex::encode(&commit_hash)),
                room_id: Some(room.to_string()),
                destination: destination.to_string(),
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
        if let Some(item) = follow_up {
            outbox::enqueue_once(&mut *tx, item).await?;
        }
        ws.flush(&mut tx, &self.key).await?;
        self.cache_evict(room, client.as_str());
        self.finish(tx, room, None, None).await?;
        Ok(CommitOutput {
            epoch: (epoch - 1) as u64,
            commit,
            welcome: None,
            group_info: group_info_bytes,
        })
    }
}
