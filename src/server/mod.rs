//! The daemon's HTTP side: one [`AppState`], thin handlers, JSON errors.

mod admin;
mod error;
mod health;
pub mod matrix;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::mls::ProxyMls;
use crate::store::Store;

pub use error::{ApiError, not_found};
pub use webhook::OPENAPI;

/// Everything a handler may use, shared by all of them.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub mls: Arc<ProxyMls>,
    pub service: Arc<crate::protocol::service::MimiService>,
    /// The webhook connector's inbound side, when it is configured.
    pub webhook: Option<WebhookInbound>,
    /// The Matrix connector, whose appservice API this listener serves, when it is configured.
    pub matrix: Option<Arc<mimi_bridge_matrix::MatrixConnector>>,
}

/// What the webhook connector's inbound API needs: the secrets' verifier and the core.
#[derive(Clone)]
pub struct WebhookInbound {
    pub verifier: Arc<mimi_bridge_webhook::Verifier>,
    pub bridge: Arc<crate::core::Bridge>,
}

/// The daemon's routes.
pub fn router(state: AppState) -> Router {
    let appservice = state
        .matrix
        .as_ref()
        .map(|m| m.router())
        .unwrap_or_default();
    Router::new()
        .route("/health", get(health::health))
        .route("/webhook/v1/events", axum::routing::post(webhook::events))
        .route("/webhook/v1/openapi.json", get(webhook::openapi))
        .merge(admin::routes())
        .fallback(error::not_found)
        .with_state(state)
        .merge(appservice)
}

/// A bound listener, so callers learn the real port before serving.
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    pub async fn bind(state: AppState) -> std::io::Result<Server> {
        let addr = state
            .config
            .listen_addr()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(addr).await?;
        Ok(Server { listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for at most the
    /// configured grace period.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_seconds);
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(self.state);
        let serve = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        });
        let serve = tokio::spawn(async move { serve.await });
        tokio::pin!(serve);
        tokio::select! {
            result = &mut serve => return result.map_err(std::io::Error::other)?,
            _ = stopping_rx => {}
        }
        match tokio::time::timeout(grace, &mut serve).await {
            Ok(result) => result.map_err(std::io::Error::other)?,
            Err(_) => {
                tracing::warn!(
                    grace_seconds = grace.as_secs(),
                    "in-flight requests did not finish in time"
                );
                Ok(())
            }
        }
    }
}

/// SIGINT and SIGTERM handlers, installed before anything slow happens, so that a signal that
/// arrives during start-up (migrations, binding) still shuts the daemon down gracefully.
pub struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    pub fn install() -> std::io::Result<ShutdownSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(ShutdownSignals {})
        }
    }

    /// Completes on the first SIGINT or SIGTERM.
    pub async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = self.terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("interrupt received, shutting down");
        }
    }
}
