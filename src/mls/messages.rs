//! Application messages: encrypted by a local member for the hub, decrypted by one local
//! member for this provider's users.

use openmls::prelude::tls_codec::Serialize as _;

use super::engine::ProxyMls;
use super::engine::settle;
use super::error::{MlsError, OpenmlsResult};
use super::member::decrypt;
use super::room_sync;
use crate::room::validation::check_application_message;
use crate::store::legacy_events::Settlement;
use crate::store::{inbound_messages, mls_blobs, outbox, outbox_origins};
use crate::uri::{ClientUri, RoomUri};

impl ProxyMls {
    /// Encrypts messages from one local member, persisting its ratchet state and queueing the
    /// messages for the hub in one transaction (many messages, one write: group commit).
    pub async fn send_messages(
        &self,
        room: &RoomUri,
        sender: &ClientUri,
        payloads: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, MlsError> {
        self.send_messages_inner(room, sender, payloads, &[]).await
    }

    /// Sends one message carrying out a legacy event, settled in the same transaction (so the
    /// event is sent once even if the daemon stops at any point).
    pub async fn send_message_for_event(
        &self,
        room: &RoomUri,
        sender: &ClientUri,
        payload: &[u8],
        settlement: Settlement,
    ) -> Result<Vec<u8>, MlsError> {
        let mut out = self
            .send_messages_inner(room, sender, &[payload], &[settlement])
            .await?;
        out.pop()
            .ok_or_else(|| MlsError::Corrupt("no message was encrypted".into()))
    }

    /// Sends several messages of one sender, each carrying out its legacy event, in one
    /// transaction (group commit): all are sent and settled, or none.
    pub async fn send_messages_for_events(
        &self,
        room: &RoomUri,
        sender: &ClientUri,
        items: &[(Vec<u8>, Settlement)],
    ) -> Result<Vec<Vec<u8>>, MlsError> {
        let payloads: Vec<&[u8]> = items.iter().map(|(p, _)| p.as_slice()).collect();
        let settlements: Vec<Settlement> = items.iter().map(|(_, s)| s.clone()).collect();
        self.send_messages_inner(room, sender, &payloads, &settlements)
            .await
    }

    async fn send_messages_inner(
        &self,
        room: &RoomUri,
        sender: &ClientUri,
        payloads: &[&[u8]],
        settlements: &[Settlement],
    ) -> Result<Vec<Vec<u8>>, MlsError> {
        let _guard = self.lock_room(room).await;
        let mut conn = self.store.pool().acquire().await?;
        let rg = self.room_group(&mut conn, room).await?;
        let mut m = self.open_member(&mut conn, room, &rg, sender).await?;
        let state = room_sync::member_room_state(&m.group, room, &self.cp)?;
        check_application_message(&state, sender).map_err(|rejection| MlsError::Rejected {
            room: room.to_string(),
            rejection,
        })?;
        let mut out = Vec::with_capacity(payloads.len());
        for payload in payloads {
            let message = m
                .group
                .create_message(m.ws.provider(), &m.identity.signer, payload)
                .during("encrypt message")?;
            out.push(message.tls_serialize_detached().during("encode message")?);
        }
        self.fault("after-mls-step")?;
        drop(conn);
        let mut tx = self.write_phase().await?;
        let items: Vec<outbox::OutboxRecord> = out
            .iter()
            .map(|message| outbox::OutboxRecord {
                id: format!("message:{}", hex::encode(mls_blobs::hash(message))),
                room_id: Some(room.to_string()),
                destination: room.provider().domain().to_string(),
                kind: "message".into(),
                sender: Some(m.identity.user.to_string()),
                body: message.clone(),
                attempts: 0,
            })
            .collect();
        outbox::enqueue_many(&mut tx, &items).await?;
        // What each message carries out, and its plaintext: the hub's refusal reaches the
        // legacy sender, and a message refused as too old is encrypted again as it was.
        let origins: Vec<outbox_origins::OriginRecord> = items
            .iter()
            .zip(payloads)
            .enumerate()
            .map(|(i, (item, payload))| outbox_origins::OriginRecord {
                outbox_id: item.id.clone(),
                room_id: room.to_string(),
                client_uri: sender.to_string(),
                legacy_event: settlements.get(i).map(|s| s.seq),
                payload: Some(payload.to_vec()),
            })
            .collect();
        outbox_origins::put_many(&mut tx, &origins).await?;
        for settlement in settlements {
            settle(&mut tx, Some(settlement)).await?;
        }
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m), None).await?;
        Ok(out)
    }

    /// Decrypts messages with the room's reader, persisting its ratchet state once for all.
    /// The reader's own messages (the hub fans them out to their sender's provider too) are
    /// skipped: the bridge knows them already.
    pub async fn receive_messages(
        &self,
        room: &RoomUri,
        messages: &[Vec<u8>],
    ) -> Result<Vec<(ClientUri, Vec<u8>)>, MlsError> {
        let _guard = self.lock_room(room).await;
        let mut conn = self.store.pool().acquire().await?;
        let (rg, reader) = self.reader_of(&mut conn, room).await?;
        let mut m = self.open_member(&mut conn, room, &rg, &reader).await?;
        let state = room_sync::member_room_state(&m.group, room, &self.cp)?;
        let mut out = Vec::with_capacity(messages.len());
        for bytes in messages {
            out.extend(decrypt(&mut m, &state, room, bytes)?);
        }
        self.fault("after-mls-step")?;
        drop(conn);
        let mut tx = self.write_phase().await?;
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m), None).await?;
        Ok(out)
    }

    /// A message the hub accepted, in one transaction: see [`Self::deliver_messages`].
    /// Returns whether it was decrypted and stored.
    pub async fn deliver_message(
        &self,
        room: &RoomUri,
        message: &[u8],
        hub_timestamp_ms: i64,
        decrypt_here: bool,
        fan_out: &[outbox::OutboxRecord],
    ) -> Result<bool, MlsError> {
        Ok(self
            .deliver_messages(room, &[(message, hub_timestamp_ms)], decrypt_here, fan_out)
            .await?
            > 0)
    }

    /// Messages the hub accepted (with their hub timestamps), in one transaction: when
    /// `decrypt_here` and a local member can, each is decrypted and its plaintext stored for
    /// this provider's users; the fan-out rows are queued. A message seen before (a replayed
    /// fan-out) is neither decrypted nor stored again; the reader's own messages need no
    /// delivery (the bridge knows them). Returns how many were stored.
    pub async fn deliver_messages(
        &self,
        room: &RoomUri,
        messages: &[(&[u8], i64)],
        decrypt_here: bool,
        fan_out: &[outbox::OutboxRecord],
    ) -> Result<usize, MlsError> {
        let _guard = self.lock_room(room).await;
        let mut conn = self.store.pool().acquire().await?;
        let rg = self.room_group(&mut conn, room).await?;
        let reader = if decrypt_here {
            rg.reader_client
                .as_deref()
                .and_then(|r| ClientUri::from_bytes(r.as_bytes()).ok())
        } else {
            None
        };
        let at_hub = room.provider() == &self.provider;
        let mut member = None;
        // (hash, sender, plaintext, hub timestamp) of each message to store.
        let mut decrypted: Vec<(Vec<u8>, ClientUri, Vec<u8>, i64)> = Vec::new();
        for (message, hub_timestamp_ms) in messages {
            let Some(reader) = &reader else { break };
            let hash = mls_blobs::hash(message);
            if decrypted.iter().any(|(h, ..)| h == &hash)
                || inbound_messages::seen(&mut *conn, room.as_str(), &hash).await?
            {
                continue;
            }
            if member.is_none() {
                let opened = async {
                    let m = self.open_member(&mut conn, room, &rg, reader).await?;
                    let state = room_sync::member_room_state(&m.group, room, &self.cp)?;
                    Ok::<_, MlsError>((m, state))
                }
                .await;
                match opened {
                    Ok(opened) => member = Some(opened),
                    Err(e @ (MlsError::Store(_) | MlsError::Database(_))) => return Err(e),
                    // At the hub, the room's other providers do not wait for this side's local
                    // delivery: the messages are accepted and fanned out, the failure is the
                    // operator's.
                    Err(e) if at_hub => {
                        tracing::error!(%room, %reader, error = %e, "messages accepted by the hub could not be decrypted for local delivery");
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            let (m, state) = member.as_mut().expect("opened above");
            match decrypt(m, state, room, message) {
                Ok(Some((client, payload))) => {
                    decrypted.push((hash, client, payload, *hub_timestamp_ms))
                }
                Ok(None) => {}
                Err(e @ (MlsError::Store(_) | MlsError::Database(_))) => return Err(e),
                Err(e) if at_hub => {
                    tracing::error!(%room, %reader, error = %e, "a message accepted by the hub could not be decrypted for local delivery");
                }
                Err(e) => return Err(e),
            }
        }
        self.fault("after-mls-step")?;
        drop(conn);
        let mut tx = self.write_phase().await?;
        for row in fan_out {
            outbox::enqueue_once(&mut *tx, row).await?;
        }
        for (hash, client, payload, hub_timestamp_ms) in &decrypted {
            inbound_messages::push_once(
                &mut *tx,
                room.as_str(),
                hash,
                client.as_str(),
                payload,
                *hub_timestamp_ms,
            )
            .await?;
        }
        let mut member = member.map(|(m, _)| m);
        if let Some(m) = member.as_mut() {
            self.save_member(&mut tx, room, m).await?;
        }
        self.finish(tx, room, member, None).await?;
        Ok(decrypted.len())
    }

    async fn reader_of(
        &self,
        tx: &mut sqlx::AnyConnection,
        room: &RoomUri,
    ) -> Result<(crate::store::room_groups::RoomGroupRecord, ClientUri), MlsError> {
        let rg = self.room_group(tx, room).await?;
        let reader = rg
            .reader_client
            .as_deref()
            .ok_or_else(|| MlsError::NotAMember {
                room: room.to_string(),
                client: "any local client".into(),
            })?;
        let reader = super::engine::stored_client(reader, "the reader of a room")?;
        Ok((rg, reader))
    }
}
