//! Configuration: a TOML file (see `config/mimi-bridge.example.toml`) or the embedded defaults.
//!
//! Loading is two steps: serde parses the shape (unknown keys are refused, so a typo is an
//! error, not a silently ignored setting), then [`Config::validate`] checks the values and
//! names the field at fault.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::mls::StateKey;
use crate::room::code_points::ComponentCodePoints;
use crate::store::{Backend, StoreOptions};
use crate::uri::ProviderId;

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub provider: ProviderConfig,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub mimi: MimiConfig,
    pub mls: MlsConfig,
    pub bridge: BridgeConfig,
    /// The generic webhook connector; absent: no connector runs (the operator API can still
    /// drive rooms).
    pub webhook: Option<WebhookConfig>,
    /// The Matrix connector (an application service); absent: not run. At most one connector
    /// runs per daemon.
    pub matrix: Option<MatrixConfig>,
    pub log: LogConfig,
}

/// The legacy provider this bridge speaks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// The provider domain: the host of every MIMI URI this bridge issues (`mimi://DOMAIN/u/...`).
    pub domain: String,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            domain: "localhost".into(),
        }
    }
}

/// The HTTP listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on. Port 0 picks a free port (logged at start).
    pub listen: String,
    /// Seconds to let in-flight requests finish after SIGINT or SIGTERM.
    pub shutdown_grace_seconds: u64,
    /// Bearer token of the operator API (`/admin/v1`); absent: the API is off.
    pub admin_token: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8448".into(),
            shutdown_grace_seconds: 10,
            admin_token: None,
        }
    }
}

/// The store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (the default, a file under ./data) or `postgres://USER@HOST:PORT/DB`.
    pub url: String,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://data/mimi-bridge.db".into(),
            max_connections: 8,
        }
    }
}

/// MIMI protocol settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MimiConfig {
    /// Component ids of the room state in the GroupContext; the drafts only suggest them.
    pub code_points: ComponentCodePoints,
    /// The mutual-TLS listener for other providers. Absent: this daemon takes no part in
    /// MIMI traffic (useful to try the legacy side alone).
    pub tls: Option<MimiTlsConfig>,
    /// Providers reached at a fixed address instead of `https://<domain>` through DNS.
    pub peers: std::collections::BTreeMap<String, crate::protocol::client::PeerAddress>,
    /// Content extension keys of draft-mimi-content-more-extensions (a bridged message's
    /// legacy id and time); private-range until assigned.
    pub content_extensions: crate::content::origin::OriginKeys,
}

/// The MIMI listener and this provider's certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimiTlsConfig {
    /// Address and port of the MIMI listener (HTTPS, client certificates required).
    pub listen: String,
    /// PEM certificate chain for the provider domain (serverAuth and clientAuth).
    pub certificate: PathBuf,
    /// PEM private key of that certificate.
    pub private_key: PathBuf,
    /// PEM certificates of the authorities peers' certificates must chain to.
    pub trust_anchors: PathBuf,
    /// The base URL peers reach this listener at; default `https://<domain>` with the listen
    /// port when it is not 443.
    #[serde(default)]
    pub public_url: Option<String>,
}

/// The proxy MLS clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlsConfig {
    /// File with the 32-byte key (64 hex digits) that seals MLS secrets in the store; created
    /// with a fresh random key (mode 0600) when missing. `MIMI_BRIDGE_STATE_KEY` (64 hex digits)
    /// overrides it.
    pub state_key_file: PathBuf,
    /// Single-use key packages each proxy client keeps ready (plus one last-resort package).
    pub key_package_pool: usize,
    /// Epochs of each room's log kept for local clients to catch up from; a client further
    /// behind (a user who stayed silent while the room changed) rejoins by external commit.
    pub catch_up_epochs: u32,
}

impl Default for MlsConfig {
    fn default() -> Self {
        MlsConfig {
            state_key_file: PathBuf::from("data/state.key"),
            key_package_pool: 8,
            catch_up_epochs: 256,
        }
    }
}

/// The bridge core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    /// What happens when another provider asks one of this provider's users for consent to be
    /// added to a room: `ask` records the request for the user to answer (operator API);
    /// `grant` grants it at once and sets up the user's proxy client, for legacy providers
    /// whose users can be added by anyone.
    pub consent: ConsentMode,
    /// Seconds an invitation of a remote user waits for their consent before it fails.
    pub consent_wait_seconds: u64,
    /// Delivery attempts of one command to the connector (backoff from 0.25 s doubling up to
    /// 64 s) before it is dead-lettered.
    pub max_delivery_attempts: u32,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            consent: ConsentMode::Ask,
            consent_wait_seconds: 300,
            max_delivery_attempts: 16,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentMode {
    #[default]
    Ask,
    Grant,
}

/// The generic webhook connector: commands are POSTed to `url`, events are accepted at
/// `POST /webhook/v1/events` on the HTTP listener, both signed per Standard Webhooks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The provider's URL that receives commands (http or https).
    pub url: String,
    /// `whsec_...` secrets shared with the provider. Every one signs outbound calls and any one
    /// verifies inbound calls, so a rotation lists the new secret next to the old one for a
    /// while.
    pub secrets: Vec<String>,
}

impl WebhookConfig {
    pub fn parsed_secrets(&self) -> Result<Vec<mimi_bridge_webhook::WebhookSecret>, String> {
        self.secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<mimi_bridge_webhook::WebhookSecret>()
                    .map_err(|e| format!("secret {i}: {e}"))
            })
            .collect()
    }
}

/// The Matrix connector: an application service of a homeserver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// The homeserver's client-server API, e.g. `http://127.0.0.1:8008`.
    pub homeserver_url: String,
    /// The homeserver's server name (the part after `:` in user ids).
    pub server_name: String,
    /// The token the bridge uses towards the homeserver (at least 16 characters).
    pub as_token: String,
    /// The token the homeserver uses towards the bridge (at least 16 characters).
    pub hs_token: String,
    /// Where the homeserver reaches the bridge's HTTP listener; default `http://<server.listen>`.
    #[serde(default)]
    pub appservice_url: Option<String>,
    /// The appservice id in the registration.
    #[serde(default = "default_appservice_id")]
    pub appservice_id: String,
    /// The bridge bot's localpart.
    #[serde(default = "default_bot")]
    pub bot_localpart: String,
    /// Prefix of ghost localparts and portal aliases (the registration's exclusive namespaces).
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_appservice_id() -> String {
    "mimi-bridge".into()
}

fn default_bot() -> String {
    "mimibot".into()
}

fn default_prefix() -> String {
    "mimi_".into()
}

impl Config {
    /// The Matrix connector's settings, when `[matrix]` is configured.
    pub fn matrix_settings(&self) -> Option<mimi_bridge_matrix::MatrixSettings> {
        let m = self.matrix.as_ref()?;
        Some(mimi_bridge_matrix::MatrixSettings {
            homeserver_url: m.homeserver_url.trim_end_matches('/').to_owned(),
            server_name: m.server_name.clone(),
            appservice_id: m.appservice_id.clone(),
            appservice_url: m
                .appservice_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", self.server.listen)),
            as_token: m.as_token.clone(),
            hs_token: m.hs_token.clone(),
            bot_localpart: m.bot_localpart.clone(),
            prefix: m.prefix.clone(),
        })
    }
}

/// The environment variable that carries the state key instead of the key file.
pub const STATE_KEY_ENV: &str = "MIMI_BRIDGE_STATE_KEY";

/// Logging.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `mimi_bridge=debug,sqlx=warn`. `RUST_LOG` overrides it.
    pub filter: String,
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{field}` {reason}")]
    Invalid {
        path: PathBuf,
        field: String,
        reason: String,
    },
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// The file at `path` when given, or the embedded defaults.
    pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => Config::load(p),
            None => {
                let config = Config::default();
                config.validate(Path::new("<defaults>"))?;
                Ok(config)
            }
        }
    }

    /// Parses and validates TOML; `origin` names the source in error messages.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: parse_message(&e),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks every value; the error names the first field at fault.
    pub fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            path: origin.to_path_buf(),
            field: field.to_string(),
            reason,
        };
        ProviderId::new(&self.provider.domain)
            .map_err(|e| invalid("provider.domain", format!("is not a provider domain: {e}")))?;
        self.listen_addr()
            .map_err(|e| invalid("server.listen", format!("is not an address:port ({e})")))?;
        Backend::from_url(&self.database.url)
            .map_err(|e| invalid("database.url", e.to_string()))?;
        if self.database.max_connections == 0 {
            return Err(invalid(
                "database.max_connections",
                "must be at least 1".into(),
            ));
        }
        if let Some(tls) = &self.mimi.tls {
            let addr: SocketAddr = tls
                .listen
                .parse()
                .map_err(|e| invalid("mimi.tls.listen", format!("is not an address:port ({e})")))?;
            for (field, path) in [
                ("mimi.tls.certificate", &tls.certificate),
                ("mimi.tls.private_key", &tls.private_key),
                ("mimi.tls.trust_anchors", &tls.trust_anchors),
            ] {
                if !path.is_file() {
                    return Err(invalid(
                        field,
                        format!("names {}, which is not a file", path.display()),
                    ));
                }
            }
            if let Some(url) = &tls.public_url
                && !url.starts_with("https://")
            {
                return Err(invalid(
                    "mimi.tls.public_url",
                    format!("`{url}` is not an https URL"),
                ));
            }
            let _ = addr;
        }
        for domain in self.mimi.peers.keys() {
            ProviderId::new(domain).map_err(|e| {
                invalid(
                    &format!("mimi.peers.{domain}"),
                    format!("is not a provider domain: {e}"),
                )
            })?;
        }
        if let Err((field, reason)) = self.mimi.code_points.validate() {
            return Err(invalid(&format!("mimi.code_points.{field}"), reason));
        }
        if self.mls.state_key_file.as_os_str().is_empty() {
            return Err(invalid("mls.state_key_file", "must name a file".into()));
        }
        if !(1..=1000).contains(&self.mls.key_package_pool) {
            return Err(invalid(
                "mls.key_package_pool",
                format!(
                    "must be between 1 and 1000, got {}",
                    self.mls.key_package_pool
                ),
            ));
        }
        self.mimi
            .content_extensions
            .check()
            .map_err(|reason| invalid("mimi.content_extensions", reason))?;
        if !(2..=100_000).contains(&self.mls.catch_up_epochs) {
            return Err(invalid(
                "mls.catch_up_epochs",
                format!(
                    "must be between 2 and 100000, got {}",
                    self.mls.catch_up_epochs
                ),
            ));
        }
        if self.bridge.max_delivery_attempts == 0 {
            return Err(invalid(
                "bridge.max_delivery_attempts",
                "must be at least 1".into(),
            ));
        }
        if let Some(webhook) = &self.webhook {
            if !(webhook.url.starts_with("http://") || webhook.url.starts_with("https://")) {
                return Err(invalid(
                    "webhook.url",
                    format!("`{}` is not an http(s) URL", webhook.url),
                ));
            }
            if webhook.secrets.is_empty() {
                return Err(invalid(
                    "webhook.secrets",
                    "must list at least one whsec_ secret".into(),
                ));
            }
            webhook
                .parsed_secrets()
                .map_err(|e| invalid("webhook.secrets", e))?;
        }
        if let Some(matrix) = &self.matrix {
            if self.webhook.is_some() {
                return Err(invalid(
                    "matrix",
                    "and [webhook] are both set; one daemon runs one connector".into(),
                ));
            }
            for (field, url) in [
                ("matrix.homeserver_url", Some(&matrix.homeserver_url)),
                ("matrix.appservice_url", matrix.appservice_url.as_ref()),
            ] {
                if let Some(url) = url
                    && !(url.starts_with("http://") || url.starts_with("https://"))
                {
                    return Err(invalid(field, format!("`{url}` is not an http(s) URL")));
                }
            }
            for (field, token) in [
                ("matrix.as_token", &matrix.as_token),
                ("matrix.hs_token", &matrix.hs_token),
            ] {
                if token.len() < 16 {
                    return Err(invalid(field, "must be at least 16 characters".into()));
                }
            }
            if matrix.as_token == matrix.hs_token {
                return Err(invalid(
                    "matrix.hs_token",
                    "must differ from matrix.as_token".into(),
                ));
            }
            if matrix.server_name.is_empty() || matrix.server_name.contains('/') {
                return Err(invalid(
                    "matrix.server_name",
                    format!("`{}` is not a server name", matrix.server_name),
                ));
            }
            for (field, part) in [
                ("matrix.bot_localpart", &matrix.bot_localpart),
                ("matrix.prefix", &matrix.prefix),
            ] {
                if part.is_empty()
                    || !part
                        .bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/'))
                {
                    return Err(invalid(
                        field,
                        format!("`{part}` is not a valid Matrix localpart"),
                    ));
                }
            }
            if matrix.bot_localpart.starts_with(&matrix.prefix) {
                return Err(invalid(
                    "matrix.bot_localpart",
                    "must not start with matrix.prefix (the ghosts' namespace)".into(),
                ));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.filter)
            .map_err(|e| invalid("log.filter", format!("is not a log filter: {e}")))?;
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        self.server.listen.parse()
    }

    /// The state key: from `MIMI_BRIDGE_STATE_KEY`, else the key file (created when missing).
    pub fn state_key(&self) -> Result<StateKey, String> {
        match std::env::var(STATE_KEY_ENV) {
            Ok(hex_key) => {
                StateKey::from_hex(&hex_key).map_err(|e| format!("{STATE_KEY_ENV}: {e}"))
            }
            Err(_) => StateKey::load_or_create(&self.mls.state_key_file).map_err(|e| e.to_string()),
        }
    }

    /// The base URL of this provider's MIMI listener, as peers see it, given the port it is
    /// bound to.
    pub fn public_url(&self, bound_port: u16) -> Option<String> {
        let tls = self.mimi.tls.as_ref()?;
        if let Some(url) = &tls.public_url {
            return Some(url.trim_end_matches('/').to_string());
        }
        let port = bound_port;
        Some(if port == 443 {
            format!("https://{}", self.provider.domain)
        } else {
            format!("https://{}:{port}", self.provider.domain)
        })
    }

    pub fn store_options(&self) -> StoreOptions {
        let mut options = StoreOptions::new(&self.database.url);
        options.max_connections = self.database.max_connections;
        options
    }
}

/// toml's report: the line and column, the offending line quoted, and serde's message, which
/// names the unknown or mistyped key.
fn parse_message(e: &toml::de::Error) -> String {
    e.to_string().trim_end().to_string()
}

#[cfg(test)]
mod tests;
