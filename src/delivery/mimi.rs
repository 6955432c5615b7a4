//! The MIMI protocol's outgoing calls: commits, external commits and proposals to the room's
//! hub (`/update`), messages (`/submitMessage`), fan-out to followers (`/notify`), consent.
//! When this daemon is the room's hub, handshakes and messages of its own clients go to the
//! hub logic directly, through the same checks as a peer's.

use std::time::Duration;

use super::is_permanent;
use crate::mls::{CommitSource, Origin, no_fan_out};
use crate::protocol::directory::Endpoint;
use crate::protocol::resync::{RESYNC_KIND, RESYNC_QUEUE};
use crate::protocol::service::{Attempt, LEGACY_KIND, MimiService, ServiceError, malformed};
use crate::protocol::wire::{
    self, GroupInfoOption, HandshakeBundle, HandshakeBundleBody, MlsMessage, RatchetTreeOption,
    UpdateOutcome, UpdateRequest, UpdateRoomResponse,
};
use crate::store::{StoreError, mls_blobs, outbox, pending_commits};
use crate::uri::{ClientUri, ProviderId, RoomUri};

impl MimiService {
    pub(crate) async fn try_deliver(
        &self,
        item: &outbox::OutboxRecord,
    ) -> Result<Attempt, ServiceError> {
        if item.kind == LEGACY_KIND {
            return Ok(match self.legacy.get() {
                Some(legacy) => legacy.deliver(item).await,
                // No connector yet (still starting): keep the commands for it.
                None => Attempt::Retry(Some(Duration::from_secs(1))),
            });
        }
        if item.kind == "consent" {
            let entry: wire::ConsentEntry = wire::decode_exact(&item.body)
                .map_err(|e| malformed("queued consent")(e.to_string()))?;
            let peer = ProviderId::new(&item.destination)
                .map_err(|e| malformed("outbox destination")(e.to_string()))?;
            let endpoint = match entry.consent {
                wire::Consent::Request | wire::Consent::Cancel => Endpoint::RequestConsent,
                _ => Endpoint::UpdateConsent,
            };
            let answer = self
                .client()?
                // protocol-06 §5.7: requestConsent names the target's domain, updateConsent
                // the requester's; either way the provider this goes to.
                .post(&peer, endpoint, peer.domain(), item.body.clone())
                .await?;
            return Ok(match answer.status {
                200 | 201 => Attempt::Delivered,
                404 => {
                    tracing::warn!(peer = %peer.domain(), "consent: the peer does not know the user");
                    Attempt::Delivered
                }
                // Refused for good: kept as a dead letter for the operator; the queue moves on.
                status if is_permanent(status) => {
                    tracing::warn!(
                        peer = %peer.domain(),
                        status,
                        answer = %String::from_utf8_lossy(&answer.body),
                        "consent refused; dead-lettered"
                    );
                    outbox::dead_letter(self.store.pool(), &item.id).await?;
                    Attempt::DeadLettered
                }
                _ => Attempt::Retry(answer.retry_after),
            });
        }
        let room: RoomUri = item
            .room_id
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| malformed("outbox room")(format!("{e}")))?;
        match item.kind.as_str() {
            "commit" => self.deliver_commit(&room, item).await,
            "external_commit" => self.deliver_external_commit(&room, item).await,
            "message" => self.deliver_message(&room, item).await,
            "notify" => {
                let peer = ProviderId::new(&item.destination)
                    .map_err(|e| malformed("outbox destination")(e.to_string()))?;
                let answer = self
                    .client()?
                    .post(&peer, Endpoint::Notify, room.as_str(), item.body.clone())
                    .await?;
                if answer.status == 201 || answer.status == 200 {
                    Ok(Attempt::Delivered)
                } else if is_permanent(answer.status) {
                    // The peer refuses this body for good (malformed, unknown room, not its
                    // hub): retrying cannot help and would hold up the room's queue. Kept as a
                    // dead letter for the operator; the queue moves on.
                    tracing::warn!(
                        %room,
                        peer = %peer.domain(),
                        status = answer.status,
                        answer = %String::from_utf8_lossy(&answer.body),
                        "notify refused; dead-lettered"
                    );
                    outbox::dead_letter(self.store.pool(), &item.id).await?;
                    Ok(Attempt::DeadLettered)
                } else {
                    tracing::info!(
                        %room,
                        peer = %peer.domain(),
                        status = answer.status,
                        answer = %String::from_utf8_lossy(&answer.body),
                        "notify not accepted yet"
                    );
                    Ok(Attempt::Retry(answer.retry_after))
                }
            }
            "proposals" => self.deliver_proposals(&room, item).await,
            RESYNC_KIND => self.deliver_resync(&room, item).await,
            other => Err(malformed("outbox item")(format!("unknown kind `{other}`"))),
        }
    }

    /// Sends an `UpdateRequest` to the room's hub, or hands it to the hub logic when the hub
    /// is this daemon: the answer, or when to try again.
    pub(super) async fn update_hub(
        &self,
        room: &RoomUri,
        request: UpdateRequest,
    ) -> Result<Result<UpdateRoomResponse, Option<Duration>>, ServiceError> {
        if room.provider() == &self.domain {
            return Ok(Ok(self
                .hub_update(room, &self.domain.clone(), request)
                .await?));
        }
        self.send_update(room, &request).await
    }

    /// A commit the room's hub never answered: dropped as if refused, so the room's queue moves
    /// on and the legacy event it carried out is reported.
    pub(crate) async fn release_unanswered_commit(
        &self,
        item: &outbox::OutboxRecord,
    ) -> Result<(), ServiceError> {
        let room: RoomUri = item
            .room_id
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| malformed("outbox room")(format!("{e}")))?;
        let commit = if item.kind == "external_commit" {
            let parts: Vec<tls_codec::VLBytes> =
                tls_codec::Deserialize::tls_deserialize_exact(&item.body)
                    .map_err(|e| malformed("queued external commit")(e.to_string()))?;
            parts
                .first()
                .map(|c| c.as_slice().to_vec())
                .unwrap_or_default()
        } else {
            item.body.clone()
        };
        let Some(committer) = self.waiting_committer(&room, &commit).await? else {
            return Ok(());
        };
        let reason = format!(
            "the room's host {} did not answer after {} attempts",
            room.provider().domain(),
            item.attempts + 1
        );
        self.mls.discard_commit(&room, &committer, &reason).await?;
        Ok(())
    }

    /// A local client's commit goes to the room's hub; the hub's answer settles it: accepted,
    /// it is applied here (unless the hub's fan-out did that first); refused, it is dropped
    /// and the legacy event it carried out is reported.
    async fn deliver_commit(
        &self,
        room: &RoomUri,
        item: &outbox::OutboxRecord,
    ) -> Result<Attempt, ServiceError> {
        let Some(committer) = self.waiting_committer(room, &item.body).await? else {
            return Ok(Attempt::Delivered); // answered already
        };
        let request = self.update_request(room, &committer, &item.body).await?;
        let response = match self.update_hub(room, request).await? {
            Ok(response) => response,
            Err(retry) => return Ok(Attempt::Retry(retry)),
        };
        if let Some(wait) = self.behind_hub(room, &response).await? {
            return Ok(wait);
        }
        self.settle_own_commit(room, &committer, &item.body, response)
            .await?;
        Ok(Attempt::Delivered)
    }

    /// A `wrongEpoch` naming an epoch this side's view has not reached: the commit that came
    /// first is still on its way here (or lost, and the view is resynchronised). The refused
    /// call waits for it rather than being made again on an epoch already gone.
    pub(super) async fn behind_hub(
        &self,
        room: &RoomUri,
        response: &UpdateRoomResponse,
    ) -> Result<Option<Attempt>, ServiceError> {
        let UpdateOutcome::WrongEpoch { current_epoch } = response.outcome else {
            return Ok(None);
        };
        let ours = self.epoch(room).await?;
        if ours >= current_epoch {
            return Ok(None);
        }
        self.request_resync(
            room,
            ours,
            &format!("the hub answered wrongEpoch: it is at epoch {current_epoch}"),
        )
        .await?;
        Ok(Some(Attempt::Retry(None)))
    }

    /// The local client whose commit this is, while it waits for the hub's answer.
    async fn waiting_committer(
        &self,
        room: &RoomUri,
        commit: &[u8],
    ) -> Result<Option<ClientUri>, ServiceError> {
        let hash = mls_blobs::hash(commit);
        let Some(client) =
            pending_commits::by_commit(self.store.pool(), room.as_str(), &hash).await?
        else {
            return Ok(None);
        };
        ClientUri::from_bytes(client.as_bytes())
            .map(Some)
            .map_err(|e| malformed("stored client")(e.to_string()))
    }

    /// The hub's answer to one of our commits.
    async fn settle_own_commit(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
        commit: &[u8],
        response: UpdateRoomResponse,
    ) -> Result<(), ServiceError> {
        let pending =
            pending_commits::get(self.store.pool(), room.as_str(), committer.as_str()).await?;
        let Some(pending) = pending.filter(|p| p.commit_hash == mls_blobs::hash(commit)) else {
            return Ok(()); // applied already (the hub's fan-out came first, or the hub is us)
        };
        match response.outcome {
            UpdateOutcome::Success { accepted_timestamp } => {
                let group_info = match &pending.group_info_hash {
                    Some(h) => {
                        let mut conn = self
                            .store
                            .pool()
                            .acquire()
                            .await
                            .map_err(StoreError::from)?;
                        mls_blobs::get(&mut conn, h).await?
                    }
                    None => None,
                };
                self.mls
                    .apply_commit(
                        room,
                        commit,
                        CommitSource {
                            origin: Origin::Hub,
                            welcome: None,
                            group_info: group_info.as_deref(),
                            timestamp_ms: accepted_timestamp as i64,
                        },
                        &no_fan_out,
                    )
                    .await?;
            }
            UpdateOutcome::WrongEpoch { current_epoch } => {
                tracing::info!(%room, %committer, current_epoch, "a commit lost its epoch at the hub; its event is carried out again");
                let reason = format!(
                    "another change of the room came first (the room is at epoch \
                     {current_epoch}): {}",
                    response.error_description
                );
                self.mls
                    .discard_commit_to_retry(room, committer, &reason)
                    .await?;
            }
            other => {
                tracing::warn!(%room, %committer, outcome = ?other, reason = %response.error_description, "the hub refused a commit");
                let reason = format!(
                    "the hub refused the commit ({other:?}): {}",
                    response.error_description
                );
                self.mls.discard_commit(room, committer, &reason).await?;
            }
        }
        Ok(())
    }

    /// A local client's external commit (a new device joining) goes to the hub with the new
    /// epoch's GroupInfo.
    async fn deliver_external_commit(
        &self,
        room: &RoomUri,
        item: &outbox::OutboxRecord,
    ) -> Result<Attempt, ServiceError> {
        let parts: Vec<tls_codec::VLBytes> =
            tls_codec::Deserialize::tls_deserialize_exact(&item.body)
                .map_err(|e| malformed("queued external commit")(e.to_string()))?;
        let [commit, group_info] = parts.as_slice() else {
            return Err(malformed("queued external commit")(
                "expected a commit and a GroupInfo".into(),
            ));
        };
        let Some(joiner) = self.waiting_committer(room, commit.as_slice()).await? else {
            return Ok(Attempt::Delivered); // answered already
        };
        let message = MlsMessage::from_bytes(commit.as_slice())
            .map_err(|e| malformed("commit")(e.to_string()))?;
        let group_info = MlsMessage::from_bytes(group_info.as_slice())
            .ok()
            .and_then(|g| g.group_info())
            .ok_or_else(|| malformed("queued external commit")("no GroupInfo".into()))?;
        let request = UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: message,
                body: HandshakeBundleBody::Commit {
                    welcome: None,
                    group_info_option: GroupInfoOption::Full(group_info),
                    ratchet_tree_option: RatchetTreeOption::DistributionService,
                },
            },
        };
        let response = match self.update_hub(room, request).await? {
            Ok(response) => response,
            Err(retry) => return Ok(Attempt::Retry(retry)),
        };
        if let Some(wait) = self.behind_hub(room, &response).await? {
            return Ok(wait);
        }
        self.settle_own_commit(room, &joiner, commit.as_slice(), response)
            .await?;
        if item.destination == RESYNC_QUEUE {
            // A client rejoined: the room's messages that waited for it go now.
            outbox::hasten(self.store.pool(), room.provider().domain(), room.as_str()).await?;
        }
        Ok(Attempt::Delivered)
    }

    /// Sends an `UpdateRequest` to the room's hub: its answer, or when to try again.
    async fn send_update(
        &self,
        room: &RoomUri,
        request: &UpdateRequest,
    ) -> Result<Result<UpdateRoomResponse, Option<Duration>>, ServiceError> {
        let body = wire::encode(request).map_err(|e| malformed("UpdateRequest")(e.to_string()))?;
        let answer = self
            .client()?
            .post(room.provider(), Endpoint::Update, room.as_str(), body)
            .await?;
        if answer.status != 200 {
            return Ok(Err(answer.retry_after));
        }
        Ok(Ok(wire::decode_exact(&answer.body).map_err(|e| {
            malformed("UpdateRoomResponse")(e.to_string())
        })?))
    }

    pub(crate) async fn update_request(
        &self,
        room: &RoomUri,
        committer: &ClientUri,
        commit: &[u8],
    ) -> Result<UpdateRequest, ServiceError> {
        let pending = pending_commits::get(self.store.pool(), room.as_str(), committer.as_str())
            .await?
            .ok_or_else(|| {
                malformed("pending commit")(format!("{committer} has no pending commit in {room}"))
            })?;
        let mut conn = self
            .store
            .pool()
            .acquire()
            .await
            .map_err(StoreError::from)?;
        let blob =
            |m: Option<Vec<u8>>, what: &'static str| -> Result<Option<MlsMessage>, ServiceError> {
                m.map(|b| MlsMessage::from_bytes(&b))
                    .transpose()
                    .map_err(|e| malformed(what)(e.to_string()))
            };
        let welcome = match &pending.welcome_hash {
            Some(h) => blob(mls_blobs::get(&mut conn, h).await?, "Welcome")?,
            None => None,
        };
        let group_info = match &pending.group_info_hash {
            Some(h) => blob(mls_blobs::get(&mut conn, h).await?, "GroupInfo")?,
            None => None,
        };
        let group_info = group_info.and_then(|g| g.group_info()).ok_or_else(|| {
            malformed("pending commit")("no GroupInfo was kept with the commit".into())
        })?;
        Ok(UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: MlsMessage::from_bytes(commit)
                    .map_err(|e| malformed("commit")(e.to_string()))?,
                body: HandshakeBundleBody::Commit {
                    welcome: welcome.and_then(|w| w.welcome()),
                    group_info_option: GroupInfoOption::Full(group_info),
                    ratchet_tree_option: RatchetTreeOption::DistributionService,
                },
            },
        })
    }
}
