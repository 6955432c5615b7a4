//! The MIMI endpoints this daemon serves on its mutual-TLS listener.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::directory::Directory;
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
}

pub fn router(state: ProtocolState) -> Router {
    Router::new()
        .route("/.well-known/mimi-protocol-directory", get(directory))
        .fallback(crate::server::not_found)
        .with_state(state)
}

async fn directory(State(state): State<ProtocolState>) -> Json<Directory> {
    Json((*state.directory).clone())
}
