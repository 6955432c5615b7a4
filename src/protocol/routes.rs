//! The MIMI endpoints this daemon serves on its mutual-TLS listener.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::directory::Directory;
use super::endpoints;
use super::service::MimiService;
use crate::mls::ProxyMls;
use crate::store::Store;
use crate::uri::ProviderId;

/// What the MIMI handlers share.
#[derive(Clone)]
pub struct ProtocolState {
    pub domain: ProviderId,
    pub directory: Arc<Directory>,
    pub store: Store,
    pub mls: Arc<ProxyMls>,
    pub service: Arc<MimiService>,
}

/// Largest request body: a commit adding a thousand members is about 300 KiB.
const BODY_LIMIT: usize = 16 << 20;

pub fn router(state: ProtocolState) -> Router {
    Router::new()
        .route("/.well-known/mimi-protocol-directory", get(directory))
        .route(
            "/mimi/v1/keyMaterial/{target}",
            post(endpoints::key_material),
        )
        .route("/mimi/v1/update/{room}", post(endpoints::update))
        .route(
            "/mimi/v1/submitMessage/{room}",
            post(endpoints::submit_message),
        )
        .route("/mimi/v1/notify/{room}", post(endpoints::notify))
        .route("/mimi/v1/groupInfo/{room}", post(endpoints::group_info))
        .route(
            "/mimi/v1/identifierQuery/{domain}",
            post(endpoints::identifier_query),
        )
        .route("/mimi/v1/reportAbuse/{room}", post(endpoints::report_abuse))
        .route(
            "/mimi/v1/requestConsent/{domain}",
            post(endpoints::request_consent),
        )
        .route(
            "/mimi/v1/updateConsent/{domain}",
            post(endpoints::update_consent),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .fallback(crate::server::not_found)
        .with_state(state)
}

async fn directory(State(state): State<ProtocolState>) -> Json<Directory> {
    Json((*state.directory).clone())
}
