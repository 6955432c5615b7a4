//! The application service API the homeserver calls: transactions (`PUT
//! /_matrix/app/v1/transactions/{txnId}`), user and room-alias queries, ping. Every call must
//! carry the `hs_token`. A transaction is recorded once its events are stored by the core, so
//! a retried or replayed one (even after a restart) is answered without processing it again;
//! a transaction that could not be stored is answered 503 and the homeserver retries it.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use mimi_bridge_connector::{ConnectorEvent, EventKind, SinkError, UserRef};
use ruma::api::IncomingRequestExt;
use ruma::api::appservice::event::push_events;
use ruma::api::client::state::get_state_event_for_key;
use ruma::events::StateEventType;
use ruma::{OwnedRoomId, UserId};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::connector::{MatrixConnector, connector_error, room_id, user_id};
use crate::content::{FromMatrix, from_matrix};

fn matrix_error(status: StatusCode, errcode: &str, error: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"errcode": errcode, "error": error.into()})),
    )
        .into_response()
}

/// A refused call: status, Matrix error code, message.
struct Refusal(StatusCode, &'static str, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        matrix_error(self.0, self.1, self.2)
    }
}

/// The hs_token check of every call.
fn authenticate(
    c: &MatrixConnector,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(), Refusal> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // The deprecated query parameter, still sent by older homeservers.
    let query_token =
        query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")));
    match bearer.or(query_token) {
        None => Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "M_UNAUTHORIZED",
            "the homeserver token is missing",
        )),
        Some(token) if token == c.settings.hs_token => Ok(()),
        Some(_) => Err(Refusal(
            StatusCode::FORBIDDEN,
            "M_FORBIDDEN",
            "the homeserver token is wrong",
        )),
    }
}

impl MatrixConnector {
    /// The appservice routes, to be served on the daemon's HTTP listener.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/_matrix/app/v1/transactions/{txn_id}", put(transaction))
            .route("/_matrix/app/v1/users/{user_id}", get(query_user))
            .route("/_matrix/app/v1/rooms/{alias}", get(query_alias))
            .route("/_matrix/app/v1/ping", post(ping))
            .with_state(self.clone())
    }

    /// Submits one event to the core. A refused event is told to its sender in the room; a
    /// store that cannot take it now makes the transaction fail (the homeserver retries).
    async fn submit(&self, event: ConnectorEvent, room: &OwnedRoomId) -> Result<(), String> {
        let sink = self
            .sink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or("the connector is not started")?;
        let sender = event.sender.to_string();
        let id = event.event_id.to_string();
        match sink.submit(event).await {
            Ok(_) => Ok(()),
            Err(SinkError::Invalid { reason }) => {
                self.tell(room, &sender, &id, &reason).await;
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Delivery feedback: a notice to the room naming the sender and why.
    async fn tell(&self, room: &OwnedRoomId, sender: &str, event_id: &str, reason: &str) {
        let text =
            format!("⚠️ {sender}: your event {event_id} could not be bridged to MIMI: {reason}");
        let txn = format!("notice-{}", event_id.trim_start_matches('$'));
        if let Err(e) = self.ensure_joined(room, &self.bot.clone(), None).await {
            tracing::warn!(%room, error = %e, "the bot cannot join to report a failure");
        }
        if let Err(e) = self.notice(room, &text, &txn).await {
            tracing::warn!(%room, error = %e, "cannot report a failure to the room");
        }
    }

    /// One timeline event of a transaction.
    async fn handle_event(&self, ev: &Value) -> Result<(), String> {
        let sender = ev["sender"].as_str().unwrap_or_default();
        let kind = ev["type"].as_str().unwrap_or_default();
        let (Some(room), Some(event_id)) = (ev["room_id"].as_str(), ev["event_id"].as_str()) else {
            return Ok(());
        };
        // The bridge's own users (ghosts, the bot) act for MIMI: nothing to carry back.
        if self.ghosts.is_ghost(sender) || sender == self.bot.as_str() {
            return Ok(());
        }
        let room_id = room_id(room).map_err(|e| e.to_string())?;
        // The bridge speaks for this homeserver's users only: a user of another homeserver
        // (over federation) is not this provider's to put into MIMI.
        if sender.rsplit_once(':').map(|(_, server)| server)
            != Some(self.settings.server_name.as_str())
        {
            if kind == "m.room.message" {
                let reason = format!(
                    "only users of {} take part in MIMI through this bridge",
                    self.settings.server_name
                );
                self.tell(&room_id, sender, event_id, &reason).await;
            }
            return Ok(());
        }
        let content = &ev["content"];
        let event = |id: &str, kind: EventKind| {
            let e = ConnectorEvent::new(id, room, sender, kind);
            match ev["origin_server_ts"].as_u64() {
                Some(ts) => e.at(ts),
                None => e,
            }
        };
        let legacy = |id: &str| UserRef::legacy(id);
        let target = ev["state_key"].as_str().unwrap_or_default();
        match kind {
            "m.room.member" => match content["membership"].as_str().unwrap_or_default() {
                "invite" if self.ghosts.is_ghost(target) => {
                    // A Matrix user brings a MIMI user in: the room becomes a portal.
                    let name = self.accept_invite(&room_id, target).await?;
                    self.submit(
                        event(&format!("{event_id}#room"), EventKind::RoomCreated { name }),
                        &room_id,
                    )
                    .await?;
                    self.submit(
                        event(
                            event_id,
                            EventKind::UserInvited {
                                target: legacy(target),
                            },
                        ),
                        &room_id,
                    )
                    .await
                }
                "invite" => {
                    self.submit(
                        event(
                            event_id,
                            EventKind::UserInvited {
                                target: legacy(target),
                            },
                        ),
                        &room_id,
                    )
                    .await
                }
                "join" if target == sender => {
                    self.submit(event(event_id, EventKind::UserJoined), &room_id)
                        .await
                }
                "leave" if target == sender => {
                    self.submit(event(event_id, EventKind::UserLeft), &room_id)
                        .await
                }
                "leave" => {
                    let reason = content["reason"].as_str().map(str::to_owned);
                    self.submit(
                        event(
                            event_id,
                            EventKind::UserRemoved {
                                target: legacy(target),
                                reason,
                            },
                        ),
                        &room_id,
                    )
                    .await
                }
                "ban" => {
                    let reason = content["reason"].as_str().map(str::to_owned);
                    self.submit(
                        event(
                            event_id,
                            EventKind::UserBanned {
                                target: legacy(target),
                                reason,
                            },
                        ),
                        &room_id,
                    )
                    .await
                }
                _ => Ok(()),
            },
            "m.room.message" => match from_matrix(content, &self.settings.homeserver_url) {
                Ok(FromMatrix::Message { content, reply_to }) => {
                    self.submit(
                        event(
                            event_id,
                            EventKind::Message {
                                message_id: event_id.into(),
                                content,
                                reply_to: reply_to.map(Into::into),
                                expires: None,
                            },
                        ),
                        &room_id,
                    )
                    .await
                }
                Ok(FromMatrix::Edit { original, content }) => {
                    self.submit(
                        event(
                            event_id,
                            EventKind::Edit {
                                message_id: original.into(),
                                content,
                            },
                        ),
                        &room_id,
                    )
                    .await
                }
                Err(reason) => {
                    self.tell(&room_id, sender, event_id, &reason).await;
                    Ok(())
                }
            },
            "m.reaction" => {
                let relates = &content["m.relates_to"];
                match (relates["event_id"].as_str(), relates["key"].as_str()) {
                    (Some(target), Some(key)) if relates["rel_type"] == "m.annotation" => {
                        self.submit(
                            event(
                                event_id,
                                EventKind::Reaction {
                                    message_id: target.into(),
                                    key: key.to_owned(),
                                    reaction_id: Some(event_id.into()),
                                },
                            ),
                            &room_id,
                        )
                        .await
                    }
                    _ => Ok(()),
                }
            }
            "m.room.redaction" => {
                let redacts = ev["redacts"].as_str().or(content["redacts"].as_str());
                match redacts {
                    Some(redacts) => {
                        self.submit(
                            event(
                                event_id,
                                EventKind::Delete {
                                    message_id: redacts.into(),
                                },
                            ),
                            &room_id,
                        )
                        .await
                    }
                    None => Ok(()),
                }
            }
            "m.room.power_levels" => {
                // Role changes: users whose level moved, read against the previous content.
                let before = &ev["unsigned"]["prev_content"]["users"];
                let Some(after) = content["users"].as_object() else {
                    return Ok(());
                };
                let mut changed: Vec<(&String, i64)> = Vec::new();
                for (user, level) in after {
                    let level = level.as_i64().unwrap_or(0);
                    if before[user].as_i64().unwrap_or(0) != level {
                        changed.push((user, level));
                    }
                }
                if let Some(before) = before.as_object() {
                    for user in before.keys() {
                        if !after.contains_key(user) {
                            changed.push((user, 0));
                        }
                    }
                }
                for (user, level) in changed {
                    if user == self.bot.as_str() || user == sender {
                        continue;
                    }
                    let role = crate::connector::role_of_power_level(level);
                    self.submit(
                        event(
                            &format!("{event_id}#{user}"),
                            EventKind::RoleChanged {
                                target: legacy(user),
                                role,
                            },
                        ),
                        &room_id,
                    )
                    .await?;
                }
                Ok(())
            }
            "m.room.name" => match content["name"].as_str().filter(|n| !n.is_empty()) {
                Some(name) => {
                    self.submit(
                        event(
                            event_id,
                            EventKind::RoomRenamed {
                                name: name.to_owned(),
                            },
                        ),
                        &room_id,
                    )
                    .await
                }
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// A ghost was invited by a Matrix user: it joins, brings the bot in (for notices), and
    /// the room's name is read for the MIMI room.
    async fn accept_invite(
        &self,
        room: &OwnedRoomId,
        ghost: &str,
    ) -> Result<Option<String>, String> {
        let ghost = user_id(ghost).map_err(|e| e.to_string())?;
        let retry = |e: crate::client::MatrixError| {
            let e = connector_error(e);
            e.to_string()
        };
        self.ensure_joined(room, &ghost, None)
            .await
            .map_err(retry)?;
        if let Err(e) = self
            .ensure_joined(room, &self.bot.clone(), Some(&ghost))
            .await
        {
            tracing::warn!(%room, error = %e, "the bot could not join the portal");
        }
        let request = get_state_event_for_key::v3::Request::new(
            room.clone(),
            StateEventType::RoomName,
            String::new(),
        );
        Ok(match self.client.call(request, Some(&ghost)).await {
            Ok(r) => serde_json::from_str::<Value>(r.event_or_content.get())
                .ok()
                .and_then(|v| {
                    v["name"]
                        .as_str()
                        .or(v["content"]["name"].as_str())
                        .map(str::to_owned)
                })
                .filter(|n| !n.is_empty()),
            Err(_) => None,
        })
    }
}

async fn transaction(
    State(c): State<Arc<MatrixConnector>>,
    Path(txn_id): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if let Err(r) = authenticate(&c, &parts.headers, parts.uri.query()) {
        return r.into_response();
    }
    let bytes: Bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return matrix_error(StatusCode::BAD_REQUEST, "M_BAD_JSON", e.to_string()),
    };
    let http_request = axum::http::Request::from_parts(parts, bytes.as_ref());
    let txn =
        match push_events::v1::Request::try_from_http_request(http_request, &[txn_id.as_str()]) {
            Ok(t) => t,
            Err(e) => return matrix_error(StatusCode::BAD_REQUEST, "M_BAD_JSON", e.to_string()),
        };
    // Synapse on SQLite numbers transactions from 1 again after a restart, so the id alone does
    // not name a transaction: the id and a hash of the body do.
    let txn_key = format!(
        "{txn_id}/{}",
        hex::encode(&sha2::Sha256::digest(&bytes)[..16])
    );
    match c.transactions.is_done(&txn_key).await {
        Ok(true) => return (StatusCode::OK, axum::Json(json!({}))).into_response(),
        Ok(false) => {}
        Err(e) => return matrix_error(StatusCode::SERVICE_UNAVAILABLE, "M_UNKNOWN", e),
    }
    for raw in &txn.events {
        // One malformed event does not fail the transaction.
        let Ok(ev) = serde_json::from_str::<Value>(raw.json().get()) else {
            tracing::warn!(txn = %txn_id, "an event of the transaction is not JSON; skipped");
            continue;
        };
        if let Err(e) = c.handle_event(&ev).await {
            tracing::warn!(txn = %txn_id, event = %ev["event_id"], error = %e, "transaction not stored; the homeserver will retry");
            return matrix_error(StatusCode::SERVICE_UNAVAILABLE, "M_UNKNOWN", e);
        }
    }
    if let Err(e) = c.transactions.mark_done(&txn_key).await {
        return matrix_error(StatusCode::SERVICE_UNAVAILABLE, "M_UNKNOWN", e);
    }
    (StatusCode::OK, axum::Json(json!({}))).into_response()
}

/// The homeserver asks whether a user in the namespace exists: ghosts of MIMI users do
/// (registered on the spot).
async fn query_user(
    State(c): State<Arc<MatrixConnector>>,
    Path(user): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if let Err(r) = authenticate(&c, &headers, uri.query()) {
        return r.into_response();
    }
    let Ok(ghost) = UserId::parse(user.as_str()) else {
        return matrix_error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "not a user id");
    };
    if c.ghosts.mimi_user(ghost.as_str()).is_err() {
        return matrix_error(
            StatusCode::NOT_FOUND,
            "M_NOT_FOUND",
            "not a MIMI user's ghost",
        );
    }
    match c.ensure_ghost(&ghost).await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({}))).into_response(),
        Err(e) => matrix_error(StatusCode::SERVICE_UNAVAILABLE, "M_UNKNOWN", e.to_string()),
    }
}

/// Portals are made when the MIMI side adds a Matrix user; an alias alone names none.
async fn query_alias(
    State(c): State<Arc<MatrixConnector>>,
    Path(_alias): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if let Err(r) = authenticate(&c, &headers, uri.query()) {
        return r.into_response();
    }
    matrix_error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "no such portal")
}

async fn ping(
    State(c): State<Arc<MatrixConnector>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if let Err(r) = authenticate(&c, &headers, uri.query()) {
        return r.into_response();
    }
    (StatusCode::OK, axum::Json(json!({}))).into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mimi_bridge_connector::testing::MemorySink;
    use mimi_bridge_connector::{Connector, EventKind, async_trait};

    use super::*;
    use crate::{MatrixSettings, TransactionLog};

    struct NoLog;

    #[async_trait]
    impl TransactionLog for NoLog {
        async fn is_done(&self, _: &str) -> Result<bool, String> {
            Ok(false)
        }
        async fn mark_done(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
    }

    async fn connector() -> (Arc<MatrixConnector>, Arc<MemorySink>) {
        let settings = MatrixSettings {
            // Nothing listens there: notices fail (and are logged), events still go to the sink.
            homeserver_url: "http://127.0.0.1:9".into(),
            server_name: "hs.example".into(),
            appservice_id: "mimi-bridge".into(),
            appservice_url: "http://127.0.0.1:8448".into(),
            as_token: "a".repeat(32),
            hs_token: "h".repeat(32),
            bot_localpart: "mimibot".into(),
            prefix: "mimi_".into(),
        };
        let c = MatrixConnector::new(settings, Arc::new(NoLog)).unwrap();
        let sink = Arc::new(MemorySink::new());
        c.start(sink.clone()).await.unwrap();
        (c, sink)
    }

    fn message(sender: &str, id: &str) -> Value {
        json!({"type": "m.room.message", "sender": sender, "room_id": "!r:hs.example",
               "event_id": id, "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": "hi"}})
    }

    #[tokio::test]
    async fn only_this_homeservers_users_are_bridged_and_the_bridges_own_are_not_echoed() {
        let (c, sink) = connector().await;
        c.handle_event(&message("@alice:hs.example", "$1"))
            .await
            .unwrap();
        c.handle_event(&message("@mallory:elsewhere.example", "$2"))
            .await
            .unwrap();
        c.handle_event(&message("@mimi_b.example_bob:hs.example", "$3"))
            .await
            .unwrap();
        c.handle_event(&message("@mimibot:hs.example", "$4"))
            .await
            .unwrap();
        let events = sink.events();
        assert_eq!(events.len(), 1, "{events:#?}");
        assert_eq!(events[0].sender.as_str(), "@alice:hs.example");
        assert!(matches!(events[0].kind, EventKind::Message { .. }));
    }

    #[tokio::test]
    async fn membership_and_relations_become_their_events() {
        let (c, sink) = connector().await;
        let member = |id: &str, sender: &str, target: &str, membership: &str| {
            json!({"type": "m.room.member", "sender": sender, "room_id": "!r:hs.example",
                   "event_id": id, "state_key": target, "content": {"membership": membership}})
        };
        for ev in [
            member("$j", "@carol:hs.example", "@carol:hs.example", "join"),
            member("$l", "@carol:hs.example", "@carol:hs.example", "leave"),
            member("$k", "@alice:hs.example", "@dave:hs.example", "leave"),
            member(
                "$b",
                "@alice:hs.example",
                "@mimi_b.example_bob:hs.example",
                "ban",
            ),
            json!({"type": "m.reaction", "sender": "@alice:hs.example", "room_id": "!r:hs.example",
                   "event_id": "$r", "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$1", "key": "👍"}}}),
            json!({"type": "m.room.redaction", "sender": "@alice:hs.example", "room_id": "!r:hs.example",
                   "event_id": "$x", "redacts": "$1", "content": {}}),
            json!({"type": "m.room.power_levels", "sender": "@alice:hs.example", "room_id": "!r:hs.example",
                   "event_id": "$p", "state_key": "", "content": {"users": {"@alice:hs.example": 100, "@carol:hs.example": 50}},
                   "unsigned": {"prev_content": {"users": {"@alice:hs.example": 100}}}}),
        ] {
            c.handle_event(&ev).await.unwrap();
        }
        let kinds: Vec<_> = sink
            .events()
            .into_iter()
            .map(|e| {
                serde_json::to_value(&e).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "user_joined",
                "user_left",
                "user_removed",
                "user_banned",
                "reaction",
                "delete",
                "role_changed"
            ]
        );
        let role = sink.events().pop().unwrap();
        assert!(
            matches!(role.kind, EventKind::RoleChanged { role: 3, .. }),
            "{role:?}"
        );
    }
}
