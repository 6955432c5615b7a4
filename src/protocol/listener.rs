//! The MIMI listener: HTTPS with mandatory client certificates, serving an axum router.
//!
//! axum's own server does not expose the TLS session, so connections are accepted here: the
//! TLS handshake (which verifies the client chain), then the peer's end-entity certificate is
//! attached to every request of the connection as a [`PeerCertificate`] extension.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::peer::PeerCertificate;

/// How long a client gets to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct MimiListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl MimiListener {
    pub async fn bind(
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<MimiListener> {
        Ok(MimiListener {
            listener: TcpListener::bind(addr).await?,
            acceptor: TlsAcceptor::from(tls),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; connections in progress are then given
    /// `grace` to finish.
    pub async fn serve(
        self,
        router: Router,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) -> std::io::Result<()> {
        // Watches every served connection, so shutdown can close idle keep-alive
        // connections at once and let busy ones finish their request.
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (tcp, remote) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "MIMI listener: accept failed");
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let acceptor = self.acceptor.clone();
            let router = router.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::info!(%remote, error = %e, "MIMI listener: TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%remote, "MIMI listener: TLS handshake timed out");
                        return;
                    }
                };
                let Some(cert) = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| PeerCertificate(c.clone().into_owned()))
                else {
                    // The verifier requires a certificate; this cannot happen with our config.
                    tracing::warn!(%remote, "MIMI listener: no client certificate after handshake");
                    return;
                };
                let service = router.map_request(
                    move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(cert.clone());
                        req
                    },
                );
                let hyper_service = TowerToHyperService::new(service);
                let builder = Builder::new(TokioExecutor::new());
                let connection = watcher.watch(
                    builder
                        .serve_connection(TokioIo::new(tls), hyper_service)
                        .into_owned(),
                );
                if let Err(e) = connection.await {
                    tracing::debug!(%remote, error = %e, "MIMI listener: connection ended with an error");
                }
            });
        }
        drop(self.listener);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("MIMI listener: connections still open after the grace period");
        }
        Ok(())
    }
}
