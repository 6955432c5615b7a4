//! Outgoing MIMI calls: mutual TLS, discovery of the peer's directory, the From header.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use super::directory::{Directory, DirectoryError, Endpoint};
use super::tls::{TlsError, TlsIdentity, client_config};
use crate::uri::ProviderId;

/// Where a peer provider is reached when it is not at `https://<domain>` through DNS.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerAddress {
    /// `IP:port` to connect to; TLS still verifies the peer's domain.
    pub address: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    #[error("{domain}: {reason}")]
    Transport { domain: String, reason: String },
    #[error("{domain}: the directory answered {status}")]
    DirectoryStatus { domain: String, status: u16 },
    #[error("{domain}: the directory is not valid JSON: {reason}")]
    DirectoryJson { domain: String, reason: String },
    #[error("{domain}: {source}")]
    Directory {
        domain: String,
        #[source]
        source: DirectoryError,
    },
}

/// A peer's answer.
#[derive(Clone, Debug)]
pub struct PeerResponse {
    pub status: u16,
    /// `Retry-After`, in seconds, when the peer sent one.
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// The MIMI HTTP client of one provider.
pub struct MimiClient {
    http: reqwest::Client,
    own: ProviderId,
    ports: HashMap<String, u16>,
    directories: Mutex<HashMap<String, Directory>>,
}

/// Calls give up after this long; the outbox retries them.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl MimiClient {
    pub fn new(
        own: ProviderId,
        identity: &TlsIdentity,
        roots: rustls::RootCertStore,
        peers: &BTreeMap<String, PeerAddress>,
    ) -> Result<MimiClient, ClientError> {
        let tls = client_config(identity, roots)?;
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none());
        let mut ports = HashMap::new();
        for (domain, peer) in peers {
            builder = builder.resolve(domain, peer.address);
            ports.insert(domain.to_ascii_lowercase(), peer.address.port());
        }
        Ok(MimiClient {
            http: builder
                .build()
                .map_err(|e| ClientError::Build(e.to_string()))?,
            own,
            ports,
            directories: Mutex::new(HashMap::new()),
        })
    }

    fn base(&self, peer: &ProviderId) -> String {
        match self.ports.get(peer.domain()).or(peer.port().as_ref()) {
            Some(port) if *port != 443 => format!("https://{}:{port}", peer.domain()),
            _ => format!("https://{}", peer.domain()),
        }
    }

    fn transport(peer: &ProviderId, e: reqwest::Error) -> ClientError {
        // reqwest's Display hides the cause (a refused certificate, say): walk the chain.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        ClientError::Transport {
            domain: peer.domain().to_string(),
            reason,
        }
    }

    /// The peer's directory, fetched once and checked.
    pub async fn directory(&self, peer: &ProviderId) -> Result<Directory, ClientError> {
        if let Some(d) = self
            .directories
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(peer.domain())
        {
            return Ok(d.clone());
        }
        let url = format!("{}/.well-known/mimi-protocol-directory", self.base(peer));
        let response = self
            .http
            .get(&url)
            .header(reqwest::header::FROM, format!("mimi@{}", self.own.domain()))
            .send()
            .await
            .map_err(|e| Self::transport(peer, e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(ClientError::DirectoryStatus {
                domain: peer.domain().to_string(),
                status,
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Self::transport(peer, e))?;
        let mut directory: Directory =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::DirectoryJson {
                domain: peer.domain().to_string(),
                reason: e.to_string(),
            })?;
        for dropped in directory.check(peer) {
            tracing::warn!(peer = %peer.domain(), error = %dropped, "a directory entry of the peer is unusable: calls to it fail");
        }
        self.directories
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer.domain().to_string(), directory.clone());
        Ok(directory)
    }

    /// POSTs a TLS-encoded body to one of the peer's endpoints.
    pub async fn post(
        &self,
        peer: &ProviderId,
        endpoint: Endpoint,
        param: &str,
        body: Vec<u8>,
    ) -> Result<PeerResponse, ClientError> {
        let url = self
            .directory(peer)
            .await?
            .url(endpoint, param)
            .map_err(|source| ClientError::Directory {
                domain: peer.domain().to_string(),
                source,
            })?;
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::FROM, format!("mimi@{}", self.own.domain()))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| Self::transport(peer, e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .bytes()
            .await
            .map_err(|e| Self::transport(peer, e))?
            .to_vec();
        Ok(PeerResponse {
            status,
            retry_after,
            body,
        })
    }
}
