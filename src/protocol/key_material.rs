//! Key material: this provider's users' key packages for peers (with consent), relayed by the
//! hub for followers, and fetched for commits that add users. Every KeyPackage that passes
//! through is bound to the user it was served for.

use super::directory::Endpoint;
use super::service::{MimiService, ServiceError, malformed, sign_tbs, verify_tbs};
use super::wire::{
    self, ClientKeyMaterial, ClientStatus, IdentifierUri, KeyMaterialRequest, KeyMaterialResponse,
    KeyMaterialUserCode, Protocol,
};
use crate::mls::MlsError;
use crate::store::consents::{self, ConsentState};
use crate::store::{StoreError, proxy_clients};
use crate::uri::{ClientUri, ProviderId, RoomUri, UserUri};

impl MimiService {
    /// `/keyMaterial/{targetUser}` for one of this provider's users: one key package of each of
    /// its proxy clients.
    pub async fn key_material(
        &self,
        peer: &ProviderId,
        target: &UserUri,
        request: &KeyMaterialRequest,
    ) -> Result<KeyMaterialResponse, ServiceError> {
        self.check_key_material_request(peer, request)?;
        let mut response = KeyMaterialResponse {
            protocol: Protocol::Mls10,
            user_status: KeyMaterialUserCode::UserUnknown,
            user_uri: IdentifierUri::new(target.as_str()),
            clients: Vec::new(),
        };
        if request.target_user.as_str() != Some(target.as_str()) {
            return Err(ServiceError::Malformed {
                what: "KeyMaterialRequest",
                reason: "targetUser differs from the user in the path".into(),
            });
        }
        if target.provider() != &self.domain {
            return self.relay_key_material(target, request, response).await;
        }
        if request.target_user.as_str() != Some(target.as_str()) {
            return Err(ServiceError::Malformed {
                what: "KeyMaterialRequest",
                reason: "targetUser differs from the user in the path".into(),
            });
        }
        let clients = proxy_clients::for_user(self.store.pool(), target.as_str()).await?;
        if clients.is_empty() {
            return Ok(response);
        }
        // A user of another provider is added only with the target user's consent.
        let requester = request.requesting_user.as_str().unwrap_or_default();
        {
            let room = request.room_id.as_str().unwrap_or_default();
            let consent =
                consents::effective(self.store.pool(), requester, target.as_str(), room).await?;
            if consent != Some(ConsentState::Granted) {
                // noConsentForThisRoom only where the target did consent for another room
                // (§5.2); otherwise, and for a request naming no room, noConsent.
                let elsewhere = !room.is_empty()
                    && consents::granted_for_another_room(
                        self.store.pool(),
                        requester,
                        target.as_str(),
                        room,
                    )
                    .await?;
                response.user_status = if elsewhere {
                    KeyMaterialUserCode::NoConsentForThisRoom
                } else {
                    KeyMaterialUserCode::NoConsent
                };
                return Ok(response);
            }
        }
        for c in clients {
            let client = ClientUri::from_bytes(c.as_bytes())
                .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.to_string().into())))?;
            let status = match self.mls.key_package(&client).await {
                Ok(kp) => ClientStatus::Success(
                    wire::KeyPackageBytes::from_bytes(&kp)
                        .map_err(|e| malformed("stored key package")(e.to_string()))?,
                ),
                Err(MlsError::NoKeyPackage { .. }) => ClientStatus::KeyMaterialExhausted,
                Err(e) => return Err(e.into()),
            };
            response.clients.push(ClientKeyMaterial {
                client_uri: IdentifierUri::new(client.as_str()),
                status,
            });
        }
        response.user_status = match response
            .clients
            .iter()
            .filter(|c| matches!(c.status, ClientStatus::Success(_)))
            .count()
        {
            0 if response.clients.is_empty() => KeyMaterialUserCode::UserUnknown,
            0 => KeyMaterialUserCode::NoCompatibleMaterial,
            n if n == response.clients.len() => KeyMaterialUserCode::Success,
            _ => KeyMaterialUserCode::PartialSuccess,
        };
        Ok(response)
    }

    /// Who may ask for key material: the requester's own provider, or the hub of the room it
    /// names (relaying a follower's request). The request must be signed by the requester's
    /// client, whose credential names the requesting user.
    fn check_key_material_request(
        &self,
        peer: &ProviderId,
        request: &KeyMaterialRequest,
    ) -> Result<(), ServiceError> {
        let forbidden = |why: String| Err(ServiceError::Forbidden(why));
        let requester: UserUri = match request.requesting_user.as_str().map(str::parse) {
            Some(Ok(u)) => u,
            _ => return forbidden("requestingUser is not a user URI".into()),
        };
        let room_hub = request
            .room_id
            .as_str()
            .and_then(|r| r.parse::<RoomUri>().ok())
            .map(|r| r.provider().clone());
        if requester.provider() != peer && room_hub.as_ref() != Some(peer) {
            return forbidden(format!(
                "{} may not ask for key material on behalf of {requester}",
                peer.domain()
            ));
        }
        if requester.provider() == &self.domain {
            return forbidden(format!(
                "{requester} is a user of this provider; its requests do not come from peers"
            ));
        }
        let client = crate::mls::clients::client_of(&request.requester_credential)?;
        if client.user_hint().as_ref() != Some(&requester) {
            return forbidden(format!(
                "the requester credential {client} is not a client of {requester}"
            ));
        }
        let tbs = request
            .tbs_bytes()
            .map_err(|e| malformed("KeyMaterialRequest")(e.to_string()))?;
        verify_tbs(
            request.requester_signature_key.as_slice(),
            wire::key_material::KEY_MATERIAL_REQUEST_LABEL,
            &tbs,
            request.key_material_request_signature.as_slice(),
        )
        .map_err(|_| {
            ServiceError::Forbidden("the KeyMaterialRequest signature does not verify".into())
        })
    }

    /// A follower asks the hub for key material of another provider's user: the hub relays
    /// the request, for a room it hosts, and returns the target provider's answer.
    async fn relay_key_material(
        &self,
        target: &UserUri,
        request: &KeyMaterialRequest,
        unknown: KeyMaterialResponse,
    ) -> Result<KeyMaterialResponse, ServiceError> {
        let room: Option<RoomUri> = request.room_id.as_str().and_then(|r| r.parse().ok());
        let Some(room) = room.filter(|r| r.provider() == &self.domain) else {
            return Ok(unknown);
        };
        self.hosted_room(&room).await?;
        let body =
            wire::encode(request).map_err(|e| malformed("KeyMaterialRequest")(e.to_string()))?;
        let answer = self
            .client()?
            .post(
                target.provider(),
                Endpoint::KeyMaterial,
                target.as_str(),
                body,
            )
            .await?;
        if answer.status != 200 {
            return Err(ServiceError::Forbidden(format!(
                "{} answered the relayed key material request with HTTP {}",
                target.provider().domain(),
                answer.status
            )));
        }
        let response: KeyMaterialResponse = wire::decode_exact(&answer.body)
            .map_err(|e| malformed("KeyMaterialResponse")(e.to_string()))?;
        self.bind_served(target, &response).await?;
        Ok(response)
    }

    /// Records which user each served KeyPackage was served for, and by whom: the hub admits
    /// another provider's client only with key material served for it (protocol-06 §5.2).
    async fn bind_served(
        &self,
        target: &UserUri,
        response: &KeyMaterialResponse,
    ) -> Result<(), ServiceError> {
        for c in &response.clients {
            if let ClientStatus::Success(kp) = &c.status {
                self.mls
                    .bind_key_package(kp.as_bytes(), target.provider(), target)
                    .await?;
            }
        }
        Ok(())
    }

    /// Fetches key packages of a remote user from its provider (this daemon being the hub).
    pub async fn fetch_key_material(
        &self,
        requester: &ClientUri,
        target: &UserUri,
        room: &RoomUri,
    ) -> Result<Vec<Vec<u8>>, ServiceError> {
        if target.provider() == &self.domain {
            let clients = proxy_clients::for_user(self.store.pool(), target.as_str()).await?;
            let mut out = Vec::new();
            for c in clients {
                let client = ClientUri::from_bytes(c.as_bytes())
                    .map_err(|e| malformed("stored client")(e.to_string()))?;
                out.push(self.mls.key_package(&client).await?);
            }
            return Ok(out);
        }
        let client = self.client.as_ref().ok_or_else(|| {
            ServiceError::Forbidden("the MIMI client is not configured ([mimi.tls])".into())
        })?;
        let request = self.key_material_request(requester, target, room).await?;
        let body =
            wire::encode(&request).map_err(|e| malformed("KeyMaterialRequest")(e.to_string()))?;
        // Key packages are fetched through the hub of the room that will use them
        // (protocol-06 §5.2): straight from the target's provider when this daemon is the hub,
        // relayed by the hub otherwise.
        let via = if room.provider() == &self.domain {
            target.provider()
        } else {
            room.provider()
        };
        let answer = client
            .post(via, Endpoint::KeyMaterial, target.as_str(), body)
            .await?;
        if answer.status != 200 {
            return Err(ServiceError::Forbidden(format!(
                "{} answered the key material request with HTTP {}: {}",
                target.provider().domain(),
                answer.status,
                String::from_utf8_lossy(&answer.body)
            )));
        }
        let response: KeyMaterialResponse = wire::decode_exact(&answer.body)
            .map_err(|e| malformed("KeyMaterialResponse")(e.to_string()))?;
        self.bind_served(target, &response).await?;
        let kps: Vec<Vec<u8>> = response
            .clients
            .into_iter()
            .filter_map(|c| match c.status {
                ClientStatus::Success(kp) => Some(kp.as_bytes().to_vec()),
                _ => None,
            })
            .collect();
        if kps.is_empty() {
            return Err(ServiceError::Forbidden(format!(
                "{} has no key material for {target} ({:?})",
                target.provider().domain(),
                response.user_status
            )));
        }
        Ok(kps)
    }

    async fn key_material_request(
        &self,
        requester: &ClientUri,
        target: &UserUri,
        room: &RoomUri,
    ) -> Result<KeyMaterialRequest, ServiceError> {
        use crate::mls::group_config::{CIPHERSUITE, required_capabilities};
        let requesting_user = requester
            .user_hint()
            .ok_or_else(|| malformed("requester")(format!("{requester} does not name its user")))?;
        let signed = self
            .mls
            .with_client_identity(requester, |signer, credential| {
                let tbs = wire::KeyMaterialRequestTbs {
                    protocol: Protocol::Mls10,
                    requesting_user: IdentifierUri::new(requesting_user.as_str()),
                    target_user: IdentifierUri::new(target.as_str()),
                    room_id: IdentifierUri::new(room.as_str()),
                    acceptable_ciphersuites: vec![CIPHERSUITE.into()],
                    required_capabilities: required_capabilities(),
                    requester_signature_key: credential.signature_key.clone(),
                    requester_credential: credential.credential.clone(),
                };
                let signature =
                    sign_tbs(signer, wire::key_material::KEY_MATERIAL_REQUEST_LABEL, &tbs)?;
                Ok::<_, String>(tbs.with_signature(signature))
            })
            .await?;
        signed.map_err(malformed("KeyMaterialRequest"))
    }
}
