//! Our messages and leaves at the room's hub, and what its answer means for the legacy sender:
//! accepted, the call is done; a message refused as too old is encrypted again for the current
//! epoch (same content, same MIMI message id) once this side's view has caught up; a leave that
//! lost an epoch race is made again on the new epoch; any other refusal is reported to the one
//! who sent it, in words.

use std::time::Duration;

use super::is_permanent;
use crate::mls::Reencryption;
use crate::protocol::directory::Endpoint;
use crate::protocol::service::{Attempt, MimiService, ServiceError, malformed};
use crate::protocol::wire::{
    self, HandshakeBundle, HandshakeBundleBody, IdentifierUri, MlsMessage, Protocol,
    SubmitMessageRequest, SubmitMessageResponse, SubmitStatus, UpdateOutcome, UpdateRequest,
};
use crate::store::outbox;
use crate::uri::RoomUri;

impl MimiService {
    pub(super) async fn deliver_message(
        &self,
        room: &RoomUri,
        item: &outbox::OutboxRecord,
    ) -> Result<Attempt, ServiceError> {
        let message =
            MlsMessage::from_bytes(&item.body).map_err(|e| malformed("message")(e.to_string()))?;
        let request = SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: message,
            sending_uri: IdentifierUri::new(item.sender.as_deref().unwrap_or_default()),
        };
        let status = if room.provider() == &self.domain {
            // Our own user's message at our own hub: the same checks as a peer's; the legacy
            // side has it already, so nothing is decrypted.
            let domain = self.domain.clone();
            self.submit_to_hub(room, &domain, request, false)
                .await?
                .status
        } else {
            let body = wire::encode(&request)
                .map_err(|e| malformed("SubmitMessageRequest")(e.to_string()))?;
            let answer = self
                .client()?
                .post(
                    room.provider(),
                    Endpoint::SubmitMessage,
                    room.as_str(),
                    body,
                )
                .await?;
            if is_permanent(answer.status) {
                let reason = format!(
                    "the room's host {} refused the message ({})",
                    room.provider().domain(),
                    refusal_text(answer.status, &answer.body)
                );
                return self.refused(room, item, &reason, false).await;
            }
            if answer.status != 200 {
                return Ok(Attempt::Retry(answer.retry_after));
            }
            let response: SubmitMessageResponse = wire::decode_exact(&answer.body)
                .map_err(|e| malformed("SubmitMessageResponse")(e.to_string()))?;
            response.status
        };
        match status {
            SubmitStatus::Accepted { .. } => {
                self.mls.outgoing_accepted(&[item.id.as_str()]).await?;
                Ok(Attempt::Delivered)
            }
            SubmitStatus::EpochTooOld { current_epoch } => {
                self.message_too_old(room, item, current_epoch).await
            }
            SubmitStatus::NotAllowed => {
                let reason = format!(
                    "the room's host {} refused the message: {} may not send messages in this \
                     room now",
                    room.provider().domain(),
                    item.sender.as_deref().unwrap_or("the sender")
                );
                self.refused(room, item, &reason, false).await
            }
        }
    }

    /// `epochTooOld`: once this side's view has reached the hub's epoch, the message is
    /// encrypted again and sent at once; until then it waits (a view that stays behind is
    /// resynchronised).
    async fn message_too_old(
        &self,
        room: &RoomUri,
        item: &outbox::OutboxRecord,
        current_epoch: u64,
    ) -> Result<Attempt, ServiceError> {
        let ours = self.epoch(room).await?;
        if ours < current_epoch {
            tracing::info!(%room, ours, current_epoch, "a message waits for this side to reach the hub's epoch");
            self.request_resync(
                room,
                ours,
                &format!("the hub answered epochTooOld: it is at epoch {current_epoch}"),
            )
            .await?;
            return Ok(Attempt::Retry(None));
        }
        match self.mls.reencrypt_message(room, &item.id).await? {
            Reencryption::Done => {
                tracing::info!(%room, id = %item.id, current_epoch, "a message refused as too old was encrypted again");
                Ok(Attempt::Retry(Some(Duration::ZERO)))
            }
            Reencryption::NotYet(why) => {
                tracing::info!(%room, id = %item.id, %why, "a message refused as too old cannot be encrypted again yet");
                Ok(Attempt::Retry(None))
            }
            Reencryption::Impossible(why) => {
                let reason = format!("the message could not be sent: {why}");
                self.refused(room, item, &reason, false).await
            }
        }
    }

    /// A local client's proposals (leaving) go to the hub as one bundle.
    pub(super) async fn deliver_proposals(
        &self,
        room: &RoomUri,
        item: &outbox::OutboxRecord,
    ) -> Result<Attempt, ServiceError> {
        let messages: Vec<tls_codec::VLBytes> =
            tls_codec::Deserialize::tls_deserialize_exact(&item.body)
                .map_err(|e| malformed("queued proposals")(e.to_string()))?;
        let parsed = messages
            .iter()
            .map(|m| MlsMessage::from_bytes(m.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| malformed("queued proposals")(e.to_string()))?;
        let Some((first, rest)) = parsed.split_first() else {
            return Ok(Attempt::Delivered);
        };
        let request = UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: first.clone(),
                body: HandshakeBundleBody::Proposal {
                    more_proposals: rest.to_vec(),
                },
            },
        };
        let response = match self.update_hub(room, request).await? {
            Ok(response) => response,
            Err(retry) => return Ok(Attempt::Retry(retry)),
        };
        match response.outcome {
            UpdateOutcome::Success { .. } => {
                self.mls.outgoing_accepted(&[item.id.as_str()]).await?;
                Ok(Attempt::Delivered)
            }
            UpdateOutcome::WrongEpoch { current_epoch } => {
                // Made again once this side has the commit that came first.
                if let Some(wait) = self.behind_hub(room, &response).await? {
                    return Ok(wait);
                }
                tracing::info!(%room, current_epoch, "a leave lost its epoch at the hub; it is made again");
                let reason = format!(
                    "another change of the room came first (the room is at epoch \
                     {current_epoch}): {}",
                    response.error_description
                );
                self.refused(room, item, &reason, true).await
            }
            other => {
                tracing::warn!(%room, outcome = ?other, reason = %response.error_description, "the hub refused proposals");
                let reason = format!(
                    "the room's host {} refused the leave: {}",
                    room.provider().domain(),
                    response.error_description
                );
                self.refused(room, item, &reason, false).await
            }
        }
    }

    /// The hub refused an outgoing message or leave: the legacy sender is told why (or, with
    /// `retry`, the leave is made again), and the call is settled.
    async fn refused(
        &self,
        room: &RoomUri,
        item: &outbox::OutboxRecord,
        reason: &str,
        retry: bool,
    ) -> Result<Attempt, ServiceError> {
        tracing::info!(%room, id = %item.id, %reason, "an outgoing call was refused; its sender is told");
        self.mls
            .outgoing_refused(room, &item.id, reason, retry)
            .await?;
        Ok(Attempt::Delivered)
    }
}

/// A peer's 4xx answer in words: the `message` of its JSON error body when it has one.
pub(super) fn refusal_text(status: u16, body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned));
    match message {
        Some(m) if !m.is_empty() => format!("HTTP {status}: {m}"),
        _ => format!("HTTP {status}"),
    }
}
