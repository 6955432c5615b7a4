//! The MIMI endpoints (protocol-06 §5): thin handlers that decode the TLS body, call the
//! service, and encode the answer. Errors are JSON with an HTTP 4xx/5xx status.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::peer::AuthenticatedPeer;
use super::routes::ProtocolState;
use super::service::ServiceError;
use super::wire::{self, KeyMaterialRequest, SubmitMessageRequest, UpdateRequest, WireStruct};
use crate::mls::MlsError;
use crate::server::ApiError;
use crate::uri::{RoomUri, UserUri};

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        let (status, code) = match &e {
            ServiceError::UnknownRoom(_) => (StatusCode::NOT_FOUND, "unknown_room"),
            ServiceError::NotHub(_) => (StatusCode::NOT_FOUND, "not_hub"),
            ServiceError::UnknownUser(_) => (StatusCode::NOT_FOUND, "unknown_user"),
            ServiceError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ServiceError::Malformed { .. } | ServiceError::Mls(MlsError::Malformed { .. }) => {
                (StatusCode::BAD_REQUEST, "malformed")
            }
            ServiceError::Mls(MlsError::UnknownRoom(_)) => (StatusCode::NOT_FOUND, "unknown_room"),
            ServiceError::Mls(MlsError::Rejected { .. }) => (StatusCode::CONFLICT, "rejected"),
            // A Welcome or handshake whose group carries no (or no valid) MIMI room state: the
            // sender's to fix, and not worth retrying.
            ServiceError::Mls(MlsError::InvalidRoomState { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_room_state")
            }
            // Busy rejoining: try again.
            ServiceError::Mls(MlsError::Behind { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "catching_up")
            }
            ServiceError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            ServiceError::Client(_) => (StatusCode::BAD_GATEWAY, "peer_unreachable"),
            ServiceError::Mls(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

fn decode<T: WireStruct>(body: &[u8]) -> Result<T, ApiError> {
    wire::decode_exact(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", e.to_string()))
}

fn encoded<T: WireStruct>(status: StatusCode, value: &T) -> Result<Response, ApiError> {
    let bytes = wire::encode(value)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok((
        status,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response())
}

fn room_param(raw: &str) -> Result<RoomUri, ApiError> {
    RoomUri::from_path_param(raw).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_room_id",
            format!("`{raw}` is not a room URI: {e}"),
        )
    })
}

/// `POST /keyMaterial/{targetUser}`
pub async fn key_material(
    State(state): State<ProtocolState>,
    AuthenticatedPeer(peer): AuthenticatedPeer,
    Path(target): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = UserUri::from_path_param(&target).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_user",
            format!("`{target}` is not a user URI: {e}"),
        )
    })?;
    let request: KeyMaterialRequest = decode(&body)?;
    let response = state.service.key_material(&peer, &target, &request).await?;
    encoded(StatusCode::OK, &response)
}

/// `POST /update/{roomId}`
pub async fn update(
    State(state): State<ProtocolState>,
    AuthenticatedPeer(peer): AuthenticatedPeer,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let room = room_param(&room)?;
    let request: UpdateRequest = decode(&body)?;
    let response = state.service.hub_update(&room, &peer, request).await?;
    encoded(StatusCode::OK, &response)
}

/// `POST /submitMessage/{roomId}`
pub async fn submit_message(
    State(state): State<ProtocolState>,
    AuthenticatedPeer(peer): AuthenticatedPeer,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let room = room_param(&room)?;
    let request: SubmitMessageRequest = decode(&body)?;
    let response = state.service.hub_submit(&room, &peer, request).await?;
    encoded(StatusCode::OK, &response)
}

/// `POST /notify/{roomId}`: 201, also for a byte-identical duplicate (processed once).
pub async fn notify(
    State(state): State<ProtocolState>,
    AuthenticatedPeer(peer): AuthenticatedPeer,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let room = room_param(&room)?;
    state.service.follower_notify(&room, &peer, &body).await?;
    Ok(StatusCode::CREATED.into_response())
}

/// `POST /requestConsent/{targetDomain}`: 201, or 404 for an unknown target user.
pub async fn request_consent(
    State(state): State<ProtocolState>,
    AuthenticatedPeer(peer): AuthenticatedPeer,
    Path(_target_domain): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let entry: wire::ConsentEntry = decode(&body)?;
    state.service.consent_requested(&peer, &entry).await?;
    Ok(StatusCode::CREATED.into_response())
}

/// `POST /updateConsent/{requesterDomain}`: 201, or 404 for an unknown requester.
pub async fn update_consent(
    State(state): State<ProtocolState>,
    AuthenticatedPeer(peer): AuthenticatedPeer,
    Path(_requester_domain): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let entry: wire::ConsentEntry = decode(&body)?;
    state.service.consent_updated(&peer, &entry).await?;
    Ok(StatusCode::CREATED.into_response())
}

/// `POST /groupInfo/{roomId}`
pub async fn group_info(
    State(state): State<ProtocolState>,
    AuthenticatedPeer(peer): AuthenticatedPeer,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let room = room_param(&room)?;
    let request: wire::GroupInfoRequest = decode(&body)?;
    let response = state
        .service
        .group_info_request(&room, &peer, &request)
        .await?;
    encoded(StatusCode::OK, &response)
}

/// `POST /identifierQuery/{domain}`
pub async fn identifier_query(
    State(state): State<ProtocolState>,
    AuthenticatedPeer(_peer): AuthenticatedPeer,
    Path(_domain): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: wire::IdentifierRequest = decode(&body)?;
    let response = state.service.identifier_query(&request).await?;
    encoded(StatusCode::OK, &response)
}

/// `POST /reportAbuse/{roomId}`: no body, 201.
pub async fn report_abuse(
    State(state): State<ProtocolState>,
    AuthenticatedPeer(peer): AuthenticatedPeer,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let room = room_param(&room)?;
    let report: wire::AbuseReport = decode(&body)?;
    state
        .service
        .report_abuse(&room, &peer, &report, &body)
        .await?;
    Ok(StatusCode::CREATED.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: ServiceError) -> (StatusCode, serde_json::Value) {
        let response = ApiError::from(e).into_response();
        let status = response.status();
        let body = futures_body(response);
        (status, body)
    }

    fn futures_body(response: Response) -> serde_json::Value {
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn a_peers_group_without_room_state_is_its_fault_not_ours() {
        let (code, body) = status(ServiceError::Mls(MlsError::InvalidRoomState {
            room: "mimi://a.example/r/x".into(),
            reason: "no participant list".into(),
        }));
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"], "invalid_room_state");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("no participant list"),
            "{body}"
        );
        let (code, _) = status(ServiceError::Mls(MlsError::Corrupt("ours".into())));
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
