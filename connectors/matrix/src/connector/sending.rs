//! Writing to a room: message-like and state events, notices, redactions, and media put into
//! the content repository.

use mimi_bridge_connector::ConnectorError;
use ruma::api::client::media::create_content;
use ruma::api::client::message::send_message_event;
use ruma::api::client::redact::redact_event;
use ruma::api::client::state::send_state_event;
use ruma::events::{MessageLikeEventType, StateEventType};
use ruma::serde::Raw;
use ruma::{OwnedEventId, OwnedRoomId, UserId};
use serde_json::{Value, json};

use super::{MatrixConnector, connector_error, event_id};
use crate::client::MatrixError;

/// The largest external part the bridge copies into the content repository.
const MAX_MEDIA_BYTES: usize = 50 * 1024 * 1024;

impl MatrixConnector {
    /// Sends a message-like event as `user` (the bot when `None`), under the command's id as
    /// transaction id, so a retried command is one event.
    pub(crate) async fn send_event(
        &self,
        room: &OwnedRoomId,
        user: Option<&UserId>,
        event_type: &str,
        content: Value,
        txn_id: &str,
        ts: Option<u64>,
    ) -> Result<OwnedEventId, MatrixError> {
        let raw = Raw::from_json(
            serde_json::value::to_raw_value(&content)
                .map_err(|e| MatrixError::Invalid(e.to_string()))?,
        );
        let mut request = send_message_event::v3::Request::new_raw(
            room.clone(),
            txn_id.into(),
            MessageLikeEventType::from(event_type),
            raw,
        );
        // Appservices may set the event's timestamp: the hub's, for MIMI messages.
        request.timestamp = ts
            .and_then(ruma::UInt::new)
            .map(ruma::MilliSecondsSinceUnixEpoch);
        Ok(self.client.call(request, user).await?.event_id)
    }

    pub(super) async fn send_state(
        &self,
        room: &OwnedRoomId,
        user: Option<&UserId>,
        event_type: &str,
        state_key: &str,
        content: Value,
    ) -> Result<(), MatrixError> {
        let raw = Raw::from_json(
            serde_json::value::to_raw_value(&content)
                .map_err(|e| MatrixError::Invalid(e.to_string()))?,
        );
        let request = send_state_event::v3::Request::new_raw(
            room.clone(),
            StateEventType::from(event_type),
            state_key.to_owned(),
            raw,
        );
        self.client.call(request, user).await.map(|_| ())
    }

    /// A notice from the bot to the room (delivery feedback).
    pub(crate) async fn notice(
        &self,
        room: &OwnedRoomId,
        text: &str,
        txn_id: &str,
    ) -> Result<OwnedEventId, MatrixError> {
        self.send_event(
            room,
            None,
            "m.room.message",
            json!({"msgtype": "m.notice", "body": text}),
            txn_id,
            None,
        )
        .await
    }

    /// Sends as a ghost; a ghost that is not (yet) in the room joins first.
    pub(super) async fn send_as_member(
        &self,
        room: &OwnedRoomId,
        ghost: &UserId,
        event_type: &str,
        content: Value,
        txn: &str,
        ts: Option<u64>,
    ) -> Result<OwnedEventId, ConnectorError> {
        match self
            .send_event(room, Some(ghost), event_type, content.clone(), txn, ts)
            .await
        {
            Ok(id) => Ok(id),
            Err(err) if err.errcode() == Some("M_FORBIDDEN") => {
                self.ensure_joined(room, ghost, None)
                    .await
                    .map_err(connector_error)?;
                self.send_event(room, Some(ghost), event_type, content, txn, ts)
                    .await
                    .map_err(connector_error)
            }
            Err(err) => Err(connector_error(err)),
        }
    }

    pub(super) async fn redact(
        &self,
        room: &OwnedRoomId,
        ghost: &UserId,
        event: &str,
        txn: &str,
    ) -> Result<(), ConnectorError> {
        let request = redact_event::v3::Request::new(room.clone(), event_id(event)?, txn.into());
        match self.client.call(request, Some(ghost)).await {
            Ok(_) => Ok(()),
            Err(err) if err.errcode() == Some("M_NOT_FOUND") => Ok(()),
            Err(err) => Err(connector_error(err)),
        }
    }

    /// Puts a (plain) external part into the content repository; its `mxc://` URI.
    pub(super) async fn upload(
        &self,
        media: &mimi_bridge_connector::MediaRef,
    ) -> Result<String, MatrixError> {
        if media.encryption.is_some() {
            return Err(MatrixError::Invalid(
                "encrypted media are not decrypted by the bridge".into(),
            ));
        }
        let bytes = self.client.fetch(&media.url, MAX_MEDIA_BYTES).await?;
        let mut request = create_content::v3::Request::new(bytes);
        request.filename = media.name.clone();
        request.content_type = Some(media.media_type.clone());
        Ok(self
            .client
            .call(request, None)
            .await?
            .content_uri
            .to_string())
    }
}
