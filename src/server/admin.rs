//! The operator API (`/admin/v1`): drive rooms by hand and read what arrived. It stands in
//! for a connector until one is configured, and is how the integration tests act as users.
//! Enabled only when `server.admin_token` is set; every call needs `Authorization: Bearer`.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::mls::UserAddition;
use crate::room::state::RoomState;
use crate::store::{inbound_messages, outbox};
use crate::uri::{ClientUri, RoomUri, UserUri};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/clients", post(create_client))
        .route("/admin/v1/rooms", post(create_room))
        .route("/admin/v1/rooms/{room}", get(room_view))
        .route("/admin/v1/rooms/{room}/members", post(add_member))
        .route("/admin/v1/rooms/{room}/removals", post(remove_member))
        .route("/admin/v1/rooms/{room}/roles", post(change_role))
        .route("/admin/v1/consent/requests", post(request_consent))
        .route("/admin/v1/consent/answers", post(answer_consent))
        .route("/admin/v1/rooms/{room}/leave", post(leave))
        .route("/admin/v1/rooms/{room}/devices", post(join_device))
        .route("/admin/v1/rooms/{room}/commit", post(commit_pending))
        .route(
            "/admin/v1/rooms/{room}/messages",
            post(send_message).get(messages),
        )
        .route("/admin/v1/lookups", post(look_up))
        .route("/admin/v1/outbox/dead-letters", get(dead_letters))
        .route(
            "/admin/v1/outbox/dead-letters/{id}/resend",
            post(resend_dead_letter),
        )
}

/// The bearer token check.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let expected = state.config.server.admin_token.as_deref().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "the admin API is off (server.admin_token)",
            )
        })?;
        let given = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(expected) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid admin bearer token is required",
            ));
        }
        Ok(Operator)
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        format!("{what}: {e}"),
    )
}

/// A field of a request, parsed, or a 400 naming the field.
fn parse<T: std::str::FromStr>(what: &str, raw: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    raw.parse().map_err(|e| bad(what, e))
}

fn room_param(raw: &str) -> Result<RoomUri, ApiError> {
    RoomUri::from_path_param(raw).map_err(|e| bad("room", e))
}

fn failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClient {
    client: String,
}

async fn create_client(
    _: Operator,
    State(s): State<AppState>,
    Json(req): Json<NewClient>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let client: ClientUri = parse("client", &req.client)?;
    if client.provider() != s.mls.provider_id() {
        return Err(bad(
            "client",
            format!("{client} is not a client of this provider"),
        ));
    }
    let created = s.mls.create_client(&client).await.map_err(failed)?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "client": client, "created": created })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRoom {
    room: String,
    creator: String,
    #[serde(default = "admin_role")]
    role: u32,
}

fn admin_role() -> u32 {
    3
}

#[derive(Serialize)]
struct RoomView {
    room: String,
    epoch: u64,
    /// Hex; absent when no local client is in the room (it is a secret of the members).
    epoch_authenticator: Option<String>,
    participants: Vec<ParticipantView>,
    members: Vec<MemberView>,
    pending_proposals: usize,
}

#[derive(Serialize)]
struct ParticipantView {
    user: String,
    role: u32,
}

#[derive(Serialize)]
struct MemberView {
    client: String,
    user: String,
}

fn view(state: &RoomState, authenticator: Option<&[u8]>) -> RoomView {
    RoomView {
        room: state.room.to_string(),
        epoch: state.epoch,
        epoch_authenticator: authenticator.map(hex::encode),
        participants: state
            .participants
            .iter()
            .map(|p| ParticipantView {
                user: p.user.to_string(),
                role: p.role,
            })
            .collect(),
        members: state
            .members
            .iter()
            .map(|m| MemberView {
                client: m.client.to_string(),
                user: m.user.to_string(),
            })
            .collect(),
        pending_proposals: state.pending.len(),
    }
}

async fn create_room(
    _: Operator,
    State(s): State<AppState>,
    Json(req): Json<NewRoom>,
) -> Result<(StatusCode, Json<RoomView>), ApiError> {
    let room: RoomUri = parse("room", &req.room)?;
    if room.provider() != s.mls.provider_id() {
        return Err(bad(
            "room",
            format!("{room} is not hosted by this provider"),
        ));
    }
    let creator: ClientUri = parse("creator", &req.creator)?;
    s.mls
        .create_room(&room, &creator, req.role)
        .await
        .map_err(failed)?;
    let (state, auth) = s.mls.room_view(&room).await.map_err(failed)?;
    Ok((StatusCode::CREATED, Json(view(&state, auth.as_deref()))))
}

async fn room_view(
    _: Operator,
    State(s): State<AppState>,
    Path(room): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    let room = room_param(&room)?;
    let (state, auth) = s
        .mls
        .room_view(&room)
        .await
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "unknown_room", e.to_string()))?;
    Ok(Json(view(&state, auth.as_deref())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    committer: String,
    user: String,
    #[serde(default = "ordinary_role")]
    role: u32,
}

fn ordinary_role() -> u32 {
    2
}

async fn add_member(
    _: Operator,
    State(s): State<AppState>,
    Path(room): Path<String>,
    Json(req): Json<NewMember>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let room = room_param(&room)?;
    let committer: ClientUri = parse("committer", &req.committer)?;
    let user: UserUri = parse("user", &req.user)?;
    let key_packages = s
        .service
        .fetch_key_material(&committer, &user, &room)
        .await
        .map_err(failed)?;
    let out = s
        .mls
        .add_users(
            &room,
            &committer,
            &[UserAddition {
                user,
                role: req.role,
                key_packages,
            }],
        )
        .await
        .map_err(failed)?;
    s.service.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "epoch": out.epoch })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Removal {
    committer: String,
    user: String,
    #[serde(default)]
    ban: bool,
}

async fn remove_member(
    _: Operator,
    State(s): State<AppState>,
    Path(room): Path<String>,
    Json(req): Json<Removal>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let room = room_param(&room)?;
    let committer: ClientUri = parse("committer", &req.committer)?;
    let user: UserUri = parse("user", &req.user)?;
    let out = s
        .mls
        .remove_user(&room, &committer, &user, req.ban)
        .await
        .map_err(failed)?;
    s.service.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "epoch": out.epoch })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    sender: String,
    text: String,
}

async fn send_message(
    _: Operator,
    State(s): State<AppState>,
    Path(room): Path<String>,
    Json(req): Json<NewMessage>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let room = room_param(&room)?;
    let sender: ClientUri = parse("sender", &req.sender)?;
    s.mls
        .send_messages(&room, &sender, &[req.text.as_bytes()])
        .await
        .map_err(failed)?;
    s.service.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "queued": 1 })),
    ))
}

#[derive(Deserialize)]
struct After {
    #[serde(default)]
    after: i64,
}

#[derive(Serialize)]
struct MessageView {
    seq: i64,
    sender: String,
    text: String,
    hub_timestamp_ms: i64,
}

async fn messages(
    _: Operator,
    State(s): State<AppState>,
    Path(room): Path<String>,
    Query(q): Query<After>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    let room = room_param(&room)?;
    let list = inbound_messages::list(s.store.pool(), room.as_str(), q.after)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            )
        })?;
    Ok(Json(
        list.into_iter()
            .map(|m| MessageView {
                seq: m.seq,
                sender: m.sender_client,
                text: String::from_utf8_lossy(&m.payload).into_owned(),
                hub_timestamp_ms: m.hub_timestamp_ms,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    committer: String,
    user: String,
    role: u32,
}

async fn change_role(
    _: Operator,
    State(s): State<AppState>,
    Path(room): Path<String>,
    Json(req): Json<RoleChange>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let room = room_param(&room)?;
    let committer: ClientUri = parse("committer", &req.committer)?;
    let user: UserUri = parse("user", &req.user)?;
    let out = s
        .mls
        .change_role(&room, &committer, &user, req.role)
        .await
        .map_err(failed)?;
    s.service.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "epoch": out.epoch })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Leave {
    client: String,
}

async fn leave(
    _: Operator,
    State(s): State<AppState>,
    Path(room): Path<String>,
    Json(req): Json<Leave>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let room = room_param(&room)?;
    let client: ClientUri = parse("client", &req.client)?;
    s.mls.leave(&room, &client).await.map_err(failed)?;
    s.service.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "leaving": client })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Commit {
    committer: String,
}

async fn commit_pending(
    _: Operator,
    State(s): State<AppState>,
    Path(room): Path<String>,
    Json(req): Json<Commit>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let room = room_param(&room)?;
    let committer: ClientUri = parse("committer", &req.committer)?;
    let out = s
        .mls
        .commit_pending_proposals(&room, &committer)
        .await
        .map_err(failed)?;
    s.service.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "epoch": out.epoch })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentRequest {
    requester: String,
    target: String,
    #[serde(default)]
    room: Option<String>,
}

fn consent_parties(req: &ConsentRequest) -> Result<(UserUri, UserUri, Option<RoomUri>), ApiError> {
    let requester: UserUri = parse("requester", &req.requester)?;
    let target: UserUri = parse("target", &req.target)?;
    let room = req.room.as_deref().map(|r| parse("room", r)).transpose()?;
    Ok((requester, target, room))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupRequest {
    /// The provider to ask.
    provider: String,
    /// The whole handle (`im:bob@b.example`); or
    #[serde(default)]
    handle: Option<String>,
    /// the user part alone (`bob`).
    #[serde(default)]
    nick: Option<String>,
}

/// Resolves a handle or a nickname to a MIMI user with the provider's `/identifierQuery`.
async fn look_up(
    _: Operator,
    State(s): State<AppState>,
    Json(req): Json<LookupRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use crate::protocol::lookup::Lookup;
    let provider: crate::uri::ProviderId = parse("provider", &req.provider)?;
    let lookup = match (req.handle, req.nick) {
        (Some(h), None) => Lookup::Handle(h),
        (None, Some(n)) => Lookup::Nick(n),
        _ => return Err(bad("lookup", "give exactly one of `handle` and `nick`")),
    };
    let found = s
        .service
        .look_up(&provider, &lookup)
        .await
        .map_err(failed)?;
    // The draft's spelling: `success`, `notFound`, …
    let code = format!("{:?}", found.code);
    let code = code[..1].to_lowercase() + &code[1..];
    Ok(Json(
        serde_json::json!({ "code": code, "users": found.users }),
    ))
}

/// A local user asks a remote user for consent to add them.
async fn request_consent(
    _: Operator,
    State(s): State<AppState>,
    Json(req): Json<ConsentRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let (requester, target, room) = consent_parties(&req)?;
    if requester.provider() != s.mls.provider_id() {
        return Err(bad(
            "requester",
            format!("{requester} is not a user of this provider"),
        ));
    }
    s.service
        .send_consent(
            crate::protocol::wire::Consent::Request,
            &requester,
            &target,
            room.as_ref(),
        )
        .await
        .map_err(failed)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "requested": target })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentAnswer {
    requester: String,
    target: String,
    #[serde(default)]
    room: Option<String>,
    grant: bool,
}

/// A local user grants (or revokes) consent to a remote requester.
async fn answer_consent(
    _: Operator,
    State(s): State<AppState>,
    Json(req): Json<ConsentAnswer>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let (requester, target, room) = consent_parties(&ConsentRequest {
        requester: req.requester,
        target: req.target,
        room: req.room,
    })?;
    if target.provider() != s.mls.provider_id() {
        return Err(bad(
            "target",
            format!("{target} is not a user of this provider"),
        ));
    }
    let operation = if req.grant {
        crate::protocol::wire::Consent::Grant {
            client_key_packages: vec![],
        }
    } else {
        crate::protocol::wire::Consent::Revoke
    };
    s.service
        .send_consent(operation, &requester, &target, room.as_ref())
        .await
        .map_err(failed)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "granted": req.grant })),
    ))
}

/// A new device of a local participant joins the room by external commit.
async fn join_device(
    _: Operator,
    State(s): State<AppState>,
    Path(room): Path<String>,
    Json(req): Json<Leave>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let room = room_param(&room)?;
    let client: ClientUri = parse("client", &req.client)?;
    s.service
        .join_new_device(&room, &client)
        .await
        .map_err(failed)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "joined": client })),
    ))
}

#[derive(Serialize)]
struct DeadLetterView {
    id: String,
    room: Option<String>,
    destination: String,
    kind: String,
    attempts: i64,
    dead_lettered_at_ms: i64,
    /// The command (JSON) for the connector's items, base64 of the bytes otherwise.
    body: serde_json::Value,
}

fn store_unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        e.to_string(),
    )
}

/// Outgoing calls given up on (commands the connector refused for good or kept failing, MIMI
/// calls a peer refused), oldest first.
async fn dead_letters(
    _: Operator,
    State(s): State<AppState>,
) -> Result<Json<Vec<DeadLetterView>>, ApiError> {
    use base64::Engine as _;
    let items = outbox::all_dead_letters(s.store.pool())
        .await
        .map_err(store_unavailable)?;
    Ok(Json(
        items
            .into_iter()
            .map(|(item, at)| DeadLetterView {
                body: if item.kind == crate::protocol::service::LEGACY_KIND {
                    serde_json::from_slice(&item.body).unwrap_or(serde_json::Value::Null)
                } else {
                    serde_json::Value::String(
                        base64::engine::general_purpose::STANDARD.encode(&item.body),
                    )
                },
                id: item.id,
                room: item.room_id,
                destination: item.destination,
                kind: item.kind,
                attempts: item.attempts,
                dead_lettered_at_ms: at,
            })
            .collect(),
    ))
}

/// Puts a dead letter back in its queue (same id: the receiver can still drop a duplicate).
async fn resend_dead_letter(
    _: Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    if !outbox::resend(s.store.pool(), &id)
        .await
        .map_err(store_unavailable)?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no dead letter `{id}`"),
        ));
    }
    s.service.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "resent": id })),
    ))
}
