//! The hub of the rooms this provider hosts: it orders and checks every handshake against the
//! room's public view (`/update`), stamps and fans out messages (`/submitMessage`), and serves
//! the GroupInfo external joiners need (`/groupInfo`). It is not a member of its rooms: none of
//! this depends on which local users are in a room.

use std::collections::BTreeSet;

use super::service::{MimiService, ServiceError, malformed, sign_tbs, verify_tbs};
use super::wire::{
    self, FanoutBody, FanoutMessage, GroupInfoOption, HandshakeBundleBody, MlsMessage, Protocol,
    RatchetTreeOption, SubmitMessageRequest, SubmitMessageResponse, SubmitStatus, UpdateOutcome,
    UpdateRequest, UpdateRoomResponse,
};
use crate::mls::{Applied, CommitSource, MlsError, Origin};
use crate::room::state::{BANNED_ROLE, NO_ROLE, RoomState};
use crate::room::validation::{
    RejectCode, check_application_message, may_receive_application_messages,
};
use crate::store::rooms::OurRole;
use crate::store::{StoreError, hub_accepted, mls_blobs, now_ms, outbox};
use crate::uri::{ProviderId, RoomUri, UserUri};

impl MimiService {
    /// `/update/{roomId}`: a handshake from a follower, or from this provider's own clients
    /// (`peer` is then this provider). A retry of the latest handshake the same peer had
    /// accepted gets its first answer again; any other handshake seen before is a replay and
    /// gets `wrongEpoch`.
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
        let hash = mls_blobs::hash(message.as_bytes());
        if let Some(accepted) = hub_accepted::get(self.store.pool(), room.as_str(), &hash).await? {
            let latest = match accepted.kind.as_str() {
                "commit" => accepted.epoch as u64 + 1 == current,
                _ => accepted.epoch as u64 == current,
            };
            if latest && accepted.peer == peer.domain() {
                return Ok(success(accepted.accepted_at_ms as u64));
            }
            return Ok(refused(
                RejectCode::WrongEpoch {
                    current_epoch: current,
                },
                format!(
                    "this handshake was accepted at epoch {} and the room is at epoch {current}: \
                     a replay is not a retry",
                    accepted.epoch
                ),
            ));
        }
        if message.epoch() != Some(current) {
            return Ok(refused(
                RejectCode::WrongEpoch {
                    current_epoch: current,
                },
                format!(
                    "the handshake is for epoch {}, the room is at epoch {current}",
                    message
                        .epoch()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "?".into())
                ),
            ));
        }
        let timestamp = now_ms() as u64;
        let origin = Origin::Peer(peer);
        let result = match &bundle.body {
            HandshakeBundleBody::Commit {
                welcome,
                group_info_option,
                ..
            } => {
                let welcome = welcome.as_ref().map(MlsMessage::from_welcome);
                let group_info = match group_info_option {
                    GroupInfoOption::Full(gi) => Some(MlsMessage::from_group_info(gi)),
                    GroupInfoOption::Partial(_) => None,
                };
                let fan_out = |applied: &Applied| {
                    self.commit_fan_out(room, applied, message, welcome.as_ref(), timestamp)
                };
                self.mls
                    .apply_commit(
                        room,
                        message.as_bytes(),
                        CommitSource {
                            origin,
                            welcome: welcome.as_ref().map(MlsMessage::as_bytes),
                            group_info: group_info.as_ref().map(MlsMessage::as_bytes),
                            timestamp_ms: timestamp as i64,
                        },
                        &fan_out,
                    )
                    .await
            }
            HandshakeBundleBody::Proposal { more_proposals } => {
                let mut all: Vec<&[u8]> = vec![message.as_bytes()];
                all.extend(more_proposals.iter().map(|m| m.as_bytes()));
                let fanout = FanoutMessage {
                    timestamp,
                    message: message.clone(),
                    body: FanoutBody::Proposal {
                        more_proposals: more_proposals.clone(),
                    },
                };
                let fan_out = |applied: &Applied| {
                    let targets = followers(&applied.after, &self.domain);
                    self.notify_rows(room, &targets, std::slice::from_ref(&fanout))
                };
                self.mls
                    .apply_proposals(room, &all, origin, timestamp as i64, &fan_out)
                    .await
            }
        };
        match result {
            Ok(_) => {}
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
        self.wake();
        self.wake_legacy();
        Ok(success(timestamp))
    }

    /// The fan-out of an accepted commit: the commit to every provider with clients before or
    /// after it, its Welcome to the providers of the clients it adds.
    fn commit_fan_out(
        &self,
        room: &RoomUri,
        applied: &Applied,
        commit: &MlsMessage,
        welcome: Option<&MlsMessage>,
        timestamp: u64,
    ) -> Result<Vec<outbox::OutboxRecord>, String> {
        let (before, after) = (&applied.before, &applied.after);
        let mut targets = followers(before, &self.domain);
        targets.extend(followers(after, &self.domain));
        let added: BTreeSet<ProviderId> = after
            .members
            .iter()
            .filter(|m| !before.members.iter().any(|b| b.client == m.client))
            .map(|m| m.client.provider().clone())
            .collect();
        let commit_fanout = FanoutMessage {
            timestamp,
            message: commit.clone(),
            body: FanoutBody::Commit {
                external_proposals: Vec::new(),
            },
        };
        let mut rows = Vec::new();
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
            if let (Some(w), true) = (welcome, added.contains(provider)) {
                batch.push(FanoutMessage {
                    timestamp,
                    message: w.clone(),
                    body: FanoutBody::Welcome {
                        ratchet_tree_option: RatchetTreeOption::DistributionService,
                    },
                });
            }
            rows.extend(self.notify_rows(room, &BTreeSet::from([provider.clone()]), &batch)?);
        }
        Ok(rows)
    }

    /// `/submitMessage/{roomId}` from a follower.
    pub async fn hub_submit(
        &self,
        room: &RoomUri,
        peer: &ProviderId,
        request: SubmitMessageRequest,
    ) -> Result<SubmitMessageResponse, ServiceError> {
        self.submit_to_hub(room, peer, request, true).await
    }

    /// A message for a room this daemon hosts, from `peer` (this provider itself for its own
    /// users, whose messages need no decrypting here): the same checks for both.
    pub(crate) async fn submit_to_hub(
        &self,
        room: &RoomUri,
        peer: &ProviderId,
        request: SubmitMessageRequest,
        decrypt_here: bool,
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
        if request.app_message.epoch() != Some(state.epoch) {
            return Ok(SubmitMessageResponse {
                protocol: Protocol::Mls10,
                status: SubmitStatus::EpochTooOld {
                    current_epoch: state.epoch,
                },
            });
        }
        let timestamp = self
            .accept_message(room, &state, request.app_message, decrypt_here)
            .await?;
        Ok(SubmitMessageResponse {
            protocol: Protocol::Mls10,
            status: SubmitStatus::Accepted {
                accepted_timestamp: timestamp,
                frank: None,
            },
        })
    }

    /// Stamps a message and fans it out to the providers whose users may receive it; a
    /// message from another provider is also decrypted for this provider's users, by one
    /// local member, when there is one. One transaction.
    pub(crate) async fn accept_message(
        &self,
        room: &RoomUri,
        state: &RoomState,
        message: MlsMessage,
        from_peer: bool,
    ) -> Result<u64, ServiceError> {
        let timestamp = now_ms() as u64;
        let bytes = message.as_bytes().to_vec();
        let fanout = FanoutMessage {
            timestamp,
            message,
            body: FanoutBody::Application { frank: None },
        };
        let rows = self
            .notify_rows(room, &recipients(state, &self.domain), &[fanout])
            .map_err(|e| malformed("FanoutMessage")(e))?;
        self.mls
            .deliver_message(room, &bytes, timestamp as i64, from_peer, &rows)
            .await?;
        self.wake();
        self.wake_legacy();
        Ok(timestamp)
    }

    /// Several messages of this provider's own users for a room it hosts, accepted in one
    /// transaction and fanned out in one `/notify` row per target, when each passes the checks
    /// a single one would (its user may send, it is of the current epoch). False, with nothing
    /// done, when one does not: they then go one by one.
    pub(crate) async fn accept_local_messages(
        &self,
        room: &RoomUri,
        items: &[outbox::OutboxRecord],
    ) -> Result<bool, ServiceError> {
        self.hosted_room(room).await?;
        let state = self.mls.room_state(room).await?;
        let timestamp = now_ms() as u64;
        let mut fanouts = Vec::with_capacity(items.len());
        for item in items {
            let Ok(message) = MlsMessage::from_bytes(&item.body) else {
                return Ok(false);
            };
            let sender: Option<UserUri> = item.sender.as_deref().and_then(|s| s.parse().ok());
            let allowed =
                sender.is_some_and(|u| u.provider() == &self.domain && may_send(&state, &u));
            if !allowed || message.epoch() != Some(state.epoch) {
                return Ok(false);
            }
            fanouts.push(FanoutMessage {
                timestamp,
                message,
                body: FanoutBody::Application { frank: None },
            });
        }
        let rows = self
            .notify_rows(room, &recipients(&state, &self.domain), &fanouts)
            .map_err(|e| malformed("FanoutMessage")(e))?;
        let messages: Vec<(&[u8], i64)> = fanouts
            .iter()
            .map(|f| (f.message.as_bytes(), timestamp as i64))
            .collect();
        self.mls
            .deliver_messages(room, &messages, false, &rows)
            .await?;
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        self.mls.outgoing_accepted(&ids).await?;
        self.wake();
        Ok(true)
    }

    /// One `/notify` outbox row per target for a batch of fanned-out messages. The id names
    /// the messages, not their timestamps: queueing the same fan-out again adds nothing.
    pub(crate) fn notify_rows(
        &self,
        room: &RoomUri,
        targets: &BTreeSet<ProviderId>,
        messages: &[FanoutMessage],
    ) -> Result<Vec<outbox::OutboxRecord>, String> {
        if targets.is_empty() || messages.is_empty() {
            return Ok(Vec::new());
        }
        let body = wire::join_notify_body(messages).map_err(|e| e.to_string())?;
        let mut content = Vec::new();
        for m in messages {
            content.extend_from_slice(&mls_blobs::hash(m.message.as_bytes()));
        }
        let hash = hex::encode(mls_blobs::hash(&content));
        Ok(targets
            .iter()
            .map(|target| outbox::OutboxRecord {
                id: format!("notify:{}:{hash}", target.domain()),
                room_id: Some(room.to_string()),
                destination: target.domain().to_string(),
                kind: "notify".into(),
                sender: None,
                body: body.clone(),
                attempts: 0,
            })
            .collect())
    }

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
        let Some(group_info) = self.mls.group_info(room).await? else {
            // The last commit came without a GroupInfo and no local member can make one.
            return Ok(refuse(wire::GroupInfoStatus::NoSuchRoom));
        };
        let group_info = MlsMessage::from_bytes(&group_info)
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
    pub(crate) async fn pending_proposals(
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
}

fn success(accepted_timestamp: u64) -> UpdateRoomResponse {
    UpdateRoomResponse {
        error_description: String::new(),
        outcome: UpdateOutcome::Success { accepted_timestamp },
    }
}

/// Providers other than `own` with clients in the room (handshakes reach them all).
pub(crate) fn followers(state: &RoomState, own: &ProviderId) -> BTreeSet<ProviderId> {
    state
        .members
        .iter()
        .map(|m| m.client.provider().clone())
        .filter(|p| p != own)
        .collect()
}

/// Providers other than `own` with a client that may receive application messages: clients of
/// exiting, removed or banned users are no reason to send a provider the room's messages.
fn recipients(state: &RoomState, own: &ProviderId) -> BTreeSet<ProviderId> {
    state
        .members
        .iter()
        .filter(|m| may_receive_application_messages(state, &m.client))
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

pub(crate) fn refused(code: RejectCode, reason: String) -> UpdateRoomResponse {
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
