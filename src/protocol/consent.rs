//! Consent: peers ask this provider's users (`/requestConsent`), and hear their answers
//! (`/updateConsent`); this provider's own requests and answers go out through the outbox.

use super::service::{ConsentPolicy, MimiService, ServiceError, malformed};
use super::wire::{self, IdentifierUri};
use crate::store::consents::{self, ConsentState};
use crate::store::{StoreError, mls_blobs, now_ms, outbox, proxy_clients};
use crate::uri::{ProviderId, RoomUri, UserUri};

impl MimiService {
    /// `/requestConsent/{targetDomain}`: a peer asks (or stops asking) for one of our users'
    /// consent. Unknown target users are `Err(UnknownUser)` (HTTP 404).
    pub async fn consent_requested(
        &self,
        peer: &ProviderId,
        entry: &wire::ConsentEntry,
    ) -> Result<(), ServiceError> {
        let (requester, target, room) = consent_parties(entry)?;
        if requester.provider() != peer {
            return Err(ServiceError::Forbidden(format!(
                "{} cannot ask for consent on behalf of {requester}",
                peer.domain()
            )));
        }
        if target.provider() != &self.domain {
            return Err(ServiceError::UnknownUser(target.to_string()));
        }
        let known = !proxy_clients::for_user(self.store.pool(), target.as_str())
            .await?
            .is_empty();
        if self.consent_policy == ConsentPolicy::Grant && entry.consent == wire::Consent::Request {
            if !known {
                let client = crate::mls::proxy_client_of(&target)
                    .map_err(|e| malformed("target")(e.to_string()))?;
                self.mls.create_client(&client).await?;
            }
            let room = room
                .as_deref()
                .map(|r| r.parse::<RoomUri>())
                .transpose()
                .map_err(|e| malformed("room")(e.to_string()))?;
            return self
                .send_consent(
                    wire::Consent::Grant {
                        client_key_packages: vec![],
                    },
                    &requester,
                    &target,
                    room.as_ref(),
                )
                .await;
        }
        if !known {
            return Err(ServiceError::UnknownUser(target.to_string()));
        }
        let state = match entry.consent {
            wire::Consent::Request => ConsentState::Requested,
            wire::Consent::Cancel => ConsentState::Cancelled,
            _ => {
                return Err(malformed("ConsentEntry")(
                    "/requestConsent takes request or cancel".into(),
                ));
            }
        };
        // A request that arrives after (or races with) the target's grant changes nothing.
        if state == ConsentState::Requested {
            consents::request(
                self.store.pool(),
                requester.as_str(),
                target.as_str(),
                room.as_deref(),
            )
            .await?;
            return Ok(());
        }
        consents::set(
            self.store.pool(),
            requester.as_str(),
            target.as_str(),
            room.as_deref(),
            state,
        )
        .await?;
        Ok(())
    }

    /// `/updateConsent/{requesterDomain}`: a peer's user granted or revoked consent to one of
    /// our users.
    pub async fn consent_updated(
        &self,
        peer: &ProviderId,
        entry: &wire::ConsentEntry,
    ) -> Result<(), ServiceError> {
        let (requester, target, room) = consent_parties(entry)?;
        if target.provider() != peer {
            return Err(ServiceError::Forbidden(format!(
                "{} cannot answer for {target}",
                peer.domain()
            )));
        }
        if requester.provider() != &self.domain {
            return Err(ServiceError::UnknownUser(requester.to_string()));
        }
        let state = match entry.consent {
            wire::Consent::Grant { .. } => ConsentState::Granted,
            wire::Consent::Revoke => ConsentState::Revoked,
            _ => {
                return Err(malformed("ConsentEntry")(
                    "/updateConsent takes grant or revoke".into(),
                ));
            }
        };
        consents::set(
            self.store.pool(),
            requester.as_str(),
            target.as_str(),
            room.as_deref(),
            state,
        )
        .await?;
        Ok(())
    }

    /// Queues a consent operation for the other provider: a request or cancel goes to the
    /// target's provider, a grant or revoke to the requester's. Local effects are recorded now.
    pub async fn send_consent(
        &self,
        operation: wire::Consent,
        requester: &UserUri,
        target: &UserUri,
        room: Option<&RoomUri>,
    ) -> Result<(), ServiceError> {
        let (destination, state) = match operation {
            wire::Consent::Request => (target.provider(), ConsentState::Requested),
            wire::Consent::Cancel => (target.provider(), ConsentState::Cancelled),
            wire::Consent::Grant { .. } => (requester.provider(), ConsentState::Granted),
            wire::Consent::Revoke => (requester.provider(), ConsentState::Revoked),
        };
        let entry = wire::ConsentEntry {
            consent: operation,
            requester_uri: IdentifierUri::new(requester.as_str()),
            target_uri: IdentifierUri::new(target.as_str()),
            room_id: room.map(|r| IdentifierUri::new(r.as_str())),
            consent_extensions: Default::default(),
        };
        let body = wire::encode(&entry).map_err(|e| malformed("ConsentEntry")(e.to_string()))?;
        let mut tx = self.store.begin().await?;
        consents::set(
            &mut *tx,
            requester.as_str(),
            target.as_str(),
            room.map(|r| r.as_str()),
            state,
        )
        .await?;
        outbox::enqueue(
            &mut *tx,
            &outbox::OutboxRecord {
                id: format!(
                    "consent:{}",
                    hex::encode(mls_blobs::hash(
                        &[body.as_slice(), &now_ms().to_be_bytes()].concat()
                    ))
                ),
                room_id: None,
                destination: destination.domain().to_string(),
                kind: "consent".into(),
                sender: None,
                body,
                attempts: 0,
            },
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.wake();
        Ok(())
    }
}

/// The requester, target and room of a consent entry.
fn consent_parties(
    entry: &wire::ConsentEntry,
) -> Result<(UserUri, UserUri, Option<String>), ServiceError> {
    let user = |uri: &IdentifierUri, what: &str| -> Result<UserUri, ServiceError> {
        uri.as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| malformed("ConsentEntry")(format!("{what} is not a user URI: {e}")))
    };
    let room = entry
        .room_id
        .as_ref()
        .and_then(|r| r.as_str().map(str::to_string))
        .filter(|r| !r.is_empty());
    Ok((
        user(&entry.requester_uri, "requesterUri")?,
        user(&entry.target_uri, "targetUri")?,
        room,
    ))
}
