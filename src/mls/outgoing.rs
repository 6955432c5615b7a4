//! The hub's answers to our outgoing messages and leaves. Each such outbox row has an origin
//! (`outbox_origins`): the local client that made it, the legacy event it settled and, for a
//! message, its plaintext. An accepted call forgets its origin; a refused one is reported to the
//! legacy sender through the room's journal (a leave also withdraws the proposals it made); a
//! message refused as too old is encrypted again, same content and so same MIMI message id, at
//! the room's current epoch.

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;

use super::engine::{ProxyMls, journal_refusal, stored_client};
use super::error::{MlsError, OpenmlsResult};
use super::room_sync;
use crate::room::validation::check_application_message;
use crate::store::{outbox, outbox_origins};
use crate::uri::RoomUri;

/// What became of encrypting a message again for the room's current epoch.
#[derive(Debug, PartialEq, Eq)]
pub enum Reencryption {
    /// Encrypted again: the outbox row holds the new message, under the same id.
    Done,
    /// Not yet: the sender's state cannot reach the current epoch now (it holds proposals
    /// waiting for a commit, or it is rejoining after a resync). Why, for the log.
    NotYet(String),
    /// The message can no longer be sent: why, in words for the sender.
    Impossible(String),
}

impl ProxyMls {
    /// Encrypts the message of outbox row `outbox_id` again, from its kept plaintext, with its
    /// sender's state caught up to the room's view; the row keeps its id and place in its queue.
    pub async fn reencrypt_message(
        &self,
        room: &RoomUri,
        outbox_id: &str,
    ) -> Result<Reencryption, MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let Some(origin) = outbox_origins::get(&mut *tx, outbox_id).await? else {
            return Ok(Reencryption::Impossible(
                "the bridge no longer has the message's content to send it again".into(),
            ));
        };
        let Some(payload) = origin.payload else {
            return Err(MlsError::Corrupt(format!(
                "outbox row {outbox_id} is not a message"
            )));
        };
        let client = stored_client(&origin.client_uri, "the sender of a message")?;
        let rg = self.room_group(&mut tx, room).await?;
        let mut m = match self.open_member(&mut tx, room, &rg, &client).await {
            Ok(m) => m,
            Err(MlsError::NotAMember { .. }) => {
                return Ok(Reencryption::Impossible(format!(
                    "{} is no longer a member of this room",
                    client
                        .user_hint()
                        .map(|u| u.to_string())
                        .unwrap_or_default()
                )));
            }
            Err(e @ (MlsError::Store(_) | MlsError::Database(_))) => return Err(e),
            Err(e) => return Ok(Reencryption::NotYet(e.to_string())),
        };
        let state = room_sync::member_room_state(&m.group, room, &self.cp)?;
        if let Err(rejection) = check_application_message(&state, &client) {
            return Ok(Reencryption::Impossible(rejection.reason));
        }
        let message = match m
            .group
            .create_message(m.ws.provider(), &m.identity.signer, &payload)
        {
            Ok(message) => message,
            // e.g. proposals waiting for a commit: openmls encrypts again once it is made.
            Err(e) => return Ok(Reencryption::NotYet(format!("{e:?}"))),
        };
        let bytes = message.tls_serialize_detached().during("encode message")?;
        self.fault("after-mls-step")?;
        if !outbox::replace_body(&mut *tx, outbox_id, &bytes).await? {
            return Ok(Reencryption::Impossible(
                "the message is no longer queued".into(),
            ));
        }
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m), None).await?;
        Ok(Reencryption::Done)
    }

    /// The hub accepted outbox rows `outbox_ids`: their origins are no longer needed.
    pub async fn outgoing_accepted(&self, outbox_ids: &[&str]) -> Result<(), MlsError> {
        outbox_origins::delete_many(self.store.pool(), outbox_ids).await?;
        Ok(())
    }

    /// The hub refused outbox row `outbox_id` (or never answered it), for `reason`. A leave's
    /// own proposals are withdrawn from its client's state; the legacy event is reported to
    /// its sender through the room's journal, or, with `retry` (a leave that lost an epoch
    /// race), handed back to the bridge core to be carried out again. One transaction.
    pub async fn outgoing_refused(
        &self,
        room: &RoomUri,
        outbox_id: &str,
        reason: &str,
        retry: bool,
    ) -> Result<(), MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let Some(origin) = outbox_origins::get(&mut *tx, outbox_id).await? else {
            return Ok(()); // settled before (a repeated answer)
        };
        let client = stored_client(&origin.client_uri, "the sender of an outgoing call")?;
        let mut member = None;
        if origin.payload.is_none() {
            // A leave: the client's own proposals are not in the room after all.
            let rg = self.room_group(&mut tx, room).await?;
            match self.open_member(&mut tx, room, &rg, &client).await {
                Ok(mut m) => {
                    let own = Sender::Member(m.group.own_leaf_index());
                    let refs: Vec<_> = m
                        .group
                        .pending_proposals()
                        .filter(|q| q.sender() == &own)
                        .map(|q| q.proposal_reference_ref().clone())
                        .collect();
                    for r in &refs {
                        m.group
                            .remove_pending_proposal(m.ws.provider().storage(), r)
                            .during("withdraw a refused proposal")?;
                    }
                    member = Some(m);
                }
                Err(e @ (MlsError::Store(_) | MlsError::Database(_))) => return Err(e),
                // Gone from the room (or rejoining): nothing of its own is left to withdraw.
                Err(e) => {
                    tracing::debug!(%room, %client, error = %e, "no state to withdraw proposals from")
                }
            }
        }
        if let Some(seq) = origin.legacy_event {
            journal_refusal(&mut tx, room, client.as_str(), seq, reason, retry).await?;
        }
        outbox_origins::delete(&mut *tx, outbox_id).await?;
        if let Some(m) = member.as_mut() {
            self.save_member(&mut tx, room, m).await?;
        }
        self.finish(tx, room, member, None).await
    }
}
