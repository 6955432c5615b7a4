//! Following rooms hosted elsewhere: what the hub fans out (`/notify`) is applied to the
//! room's public view, Welcomes bring local clients in, messages are decrypted for this
//! provider's users; a new device of a local user joins by external commit from the hub's
//! GroupInfo.

use super::directory::Endpoint;
use super::service::{MimiService, ServiceError, malformed, sign_tbs, verify_tbs};
use super::wire::{self, FanoutBody, FanoutMessage, MlsMessage, Protocol};
use crate::mls::{CommitSource, MlsError, Origin, no_fan_out};
use crate::store::{mls_blobs, notify_seen, room_groups};
use crate::uri::{ClientUri, ProviderId, RoomUri};

impl MimiService {
    /// A new device of a local participant joins by external commit: the GroupInfo comes
    /// from the hub (over `/groupInfo`, or directly when this daemon is the hub).
    pub async fn join_new_device(
        &self,
        room: &RoomUri,
        client: &ClientUri,
    ) -> Result<(), ServiceError> {
        let (group_info, pending) = self.fetch_group_info(room, client).await?;
        self.mls
            .join_by_external_commit_with(room, client, &group_info, &pending)
            .await?;
        self.wake();
        Ok(())
    }

    /// The room's GroupInfo (with its ratchet tree) and the proposals its hub has cached, as
    /// the hub gives them to `client`: over `/groupInfo`, or directly when the hub is us.
    pub(crate) async fn fetch_group_info(
        &self,
        room: &RoomUri,
        client: &ClientUri,
    ) -> Result<(Vec<u8>, Vec<Vec<u8>>), ServiceError> {
        use crate::mls::group_config::CIPHERSUITE;
        use openmls_traits::crypto::OpenMlsCrypto;
        use openmls_traits::random::OpenMlsRand;
        if room.provider() == &self.domain {
            let group_info = self.mls.group_info(room).await?.ok_or_else(|| {
                ServiceError::Forbidden(format!("no GroupInfo of {room} is at hand"))
            })?;
            return Ok((group_info, Vec::new()));
        }
        let crypto = openmls_rust_crypto::RustCrypto::default();
        let ikm: [u8; 32] = crypto
            .random_array()
            .map_err(|e| malformed("randomness")(format!("{e:?}")))?;
        let keys = crypto
            .derive_hpke_keypair(CIPHERSUITE.hpke_config(), &ikm)
            .map_err(|e| malformed("HPKE key")(format!("{e:?}")))?;
        let request = self
            .mls
            .with_client_identity(client, |signer, credential| {
                let tbs = wire::GroupInfoRequestTbs {
                    protocol: Protocol::Mls10,
                    cipher_suite: CIPHERSUITE.into(),
                    requesting_signature_key: credential.signature_key.clone(),
                    requesting_credential: credential.credential.clone(),
                    group_info_public_key: keys.public.clone().into(),
                    joining_code: Vec::new().into(),
                };
                let signature = sign_tbs(signer, wire::group_info::GROUP_INFO_REQUEST_LABEL, &tbs)?;
                Ok::<_, String>(tbs.with_signature(signature))
            })
            .await?
            .map_err(malformed("GroupInfoRequest"))?;
        let body =
            wire::encode(&request).map_err(|e| malformed("GroupInfoRequest")(e.to_string()))?;
        let answer = self
            .client()?
            .post(room.provider(), Endpoint::GroupInfo, room.as_str(), body)
            .await?;
        if answer.status != 200 {
            return Err(ServiceError::Forbidden(format!(
                "the hub answered /groupInfo with HTTP {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            )));
        }
        let response: wire::GroupInfoResponse = wire::decode_exact(&answer.body)
            .map_err(|e| malformed("GroupInfoResponse")(e.to_string()))?;
        let wire::GroupInfoStatus::Success(success) = &response.status else {
            return Err(ServiceError::Forbidden(format!(
                "the hub refused the GroupInfo: {:?}",
                response.status.code()
            )));
        };
        let tbs = response
            .tbs_bytes()
            .ok_or_else(|| malformed("GroupInfoResponse")("no signed content".into()))?
            .map_err(|e| malformed("GroupInfoResponse")(e.to_string()))?;
        verify_tbs(
            success.hub_sender.signature_key.as_slice(),
            wire::group_info::GROUP_INFO_RESPONSE_LABEL,
            &tbs,
            success.signature.as_slice(),
        )
        .map_err(|_| {
            ServiceError::Forbidden("the hub's GroupInfoResponse signature does not verify".into())
        })?;
        let tbe = wire::GroupInfoRatchetTreeTbe::open(
            &crypto,
            CIPHERSUITE,
            &keys.private,
            room.as_str().as_bytes(),
            &success.encrypted_groupinfo_and_tree,
        )
        .map_err(|e| malformed("encrypted GroupInfo")(format!("{e:?}")))?;
        let pending = tbe
            .pending_proposals
            .iter()
            .map(|p| p.proposal.as_bytes().to_vec())
            .collect();
        Ok((
            MlsMessage::from_group_info(&tbe.group_info).into_bytes(),
            pending,
        ))
    }

    /// `/notify/{roomId}` from the room's hub. A byte-identical body seen before is not
    /// processed again.
    pub async fn follower_notify(
        &self,
        room: &RoomUri,
        peer: &ProviderId,
        body: &[u8],
    ) -> Result<(), ServiceError> {
        if room.provider() != peer {
            return Err(ServiceError::Forbidden(format!(
                "{} is not the hub of {room}: only the hub notifies",
                peer.domain()
            )));
        }
        let hash = mls_blobs::hash(body);
        if notify_seen::seen(self.store.pool(), &hash).await? {
            return Ok(());
        }
        let messages =
            wire::split_notify_body(body).map_err(|e| malformed("notify body")(e.to_string()))?;
        let joining = messages
            .iter()
            .any(|m| matches!(m.body, FanoutBody::Welcome { .. }));
        if !joining
            && room_groups::get(self.store.pool(), room.as_str())
                .await?
                .is_none()
        {
            return Err(ServiceError::UnknownRoom(room.to_string()));
        }
        // Consecutive application messages are decrypted together, in one transaction.
        let mut run = Vec::new();
        for fanout in messages {
            if matches!(fanout.body, FanoutBody::Application { .. }) {
                run.push(fanout);
                continue;
            }
            self.apply_messages(room, std::mem::take(&mut run)).await?;
            self.apply_fanout(room, fanout).await?;
        }
        self.apply_messages(room, run).await?;
        notify_seen::record(self.store.pool(), &hash, room.as_str()).await?;
        self.wake_legacy();
        Ok(())
    }

    async fn apply_fanout(
        &self,
        room: &RoomUri,
        fanout: FanoutMessage,
    ) -> Result<(), ServiceError> {
        let bytes = fanout.message.as_bytes();
        let known_epoch = room_groups::get(self.store.pool(), room.as_str())
            .await?
            .map(|g| g.epoch as u64);
        match fanout.body {
            FanoutBody::Welcome { .. } => match self.mls.join_from_welcome(room, bytes).await {
                // A hub re-sending a fan-out may send a Welcome to every follower.
                Ok(_) | Err(MlsError::WelcomeNotForUs(_)) => {}
                Err(e) => return Err(e.into()),
            },
            FanoutBody::Commit { .. } => {
                let Some(known) = known_epoch else {
                    return Ok(()); // not in the room yet: the Welcome brings it
                };
                let epoch = fanout.message.epoch().unwrap_or_default();
                if epoch < known {
                    return Ok(()); // applied already
                }
                if epoch > known {
                    // A commit of the hub's went missing (a `/notify` it gave up on).
                    let reason = format!(
                        "a commit of epoch {epoch} arrived while this side was at epoch {known}"
                    );
                    return self.request_resync(room, known, &reason).await;
                }
                // Our own commit may arrive here before the hub's answer does: applying it
                // confirms it.
                let applied = self
                    .mls
                    .apply_commit(
                        room,
                        bytes,
                        CommitSource {
                            origin: Origin::Hub,
                            welcome: None,
                            group_info: None,
                            timestamp_ms: fanout.timestamp as i64,
                        },
                        &no_fan_out,
                    )
                    .await;
                match applied {
                    Ok(_) => {}
                    // The view forked from the hub's: it cannot follow this commit.
                    Err(e @ (MlsError::Malformed { .. } | MlsError::Corrupt(_))) => {
                        tracing::warn!(%room, epoch, error = %e, "a fanned-out commit cannot be applied to this side's view");
                        let reason =
                            format!("the hub's commit of epoch {epoch} did not apply here");
                        return self.request_resync(room, known, &reason).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            FanoutBody::Proposal { more_proposals } => {
                if known_epoch.is_some() && fanout.message.epoch() >= known_epoch {
                    let mut all: Vec<&[u8]> = vec![bytes];
                    all.extend(more_proposals.iter().map(|m| m.as_bytes()));
                    self.mls
                        .apply_proposals(
                            room,
                            &all,
                            Origin::Hub,
                            fanout.timestamp as i64,
                            &no_fan_out,
                        )
                        .await?;
                }
            }
            FanoutBody::Application { .. } => self.apply_messages(room, vec![fanout]).await?,
        }
        Ok(())
    }

    /// Fanned-out application messages, decrypted for this provider's users in one
    /// transaction. A message of an epoch this side has not reached means it missed a commit.
    async fn apply_messages(
        &self,
        room: &RoomUri,
        run: Vec<FanoutMessage>,
    ) -> Result<(), ServiceError> {
        if run.is_empty() {
            return Ok(());
        }
        let Some(known) = room_groups::get(self.store.pool(), room.as_str())
            .await?
            .map(|g| g.epoch as u64)
        else {
            return Ok(());
        };
        if let Some(epoch) = run
            .iter()
            .filter_map(|f| f.message.epoch())
            .find(|e| *e > known)
        {
            let reason =
                format!("a message of epoch {epoch} arrived while this side was at epoch {known}");
            self.request_resync(room, known, &reason).await?;
        }
        let messages: Vec<(&[u8], i64)> = run
            .iter()
            .filter(|f| f.message.epoch().is_none_or(|e| e <= known))
            .map(|f| (f.message.as_bytes(), f.timestamp as i64))
            .collect();
        self.mls
            .deliver_messages(room, &messages, true, &[])
            .await?;
        Ok(())
    }
}
