//! The durable store: sqlx over SQLite (the embedded default, WAL) or Postgres, chosen by the
//! database URL. One repository module per table; numbered migrations per backend under
//! `migrations/`. The store knows nothing of the layers above: it stores bytes and strings.

pub mod abuse_reports;
pub mod bridge_cursors;
pub mod consents;
mod error;
pub mod hub_accepted;
pub mod inbound_messages;
pub mod key_package_bindings;
pub mod key_packages;
pub mod legacy_events;
pub mod matrix_transactions;
pub mod message_map;
mod migrations;
pub mod mimi_reactions;
pub mod mls_blobs;
pub mod mls_kv;
pub mod notify_seen;
pub mod outbox;
pub mod outbox_origins;
pub mod pending_commits;
pub mod pending_proposals;
pub mod portals;
pub mod proxy_clients;
pub mod puppets;
pub mod room_groups;
pub mod room_log;
pub mod room_members;
pub mod room_proxy_members;
pub mod rooms;
pub mod webhook_seen;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use error::StoreError;
pub use migrations::SchemaStatus;

/// Which database engine a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names, or an error saying which schemes are understood.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::UnsupportedUrl { url: redact(url) }),
        }
    }
}

/// The handle every repository function takes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// How to open a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions {
            url: url.into(),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

impl Store {
    /// Opens (and for SQLite, creates) the database. Does not migrate: see [`Store::migrate`].
    pub async fn open(options: &StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(&options.url)?;
        let mut url = options.url.clone();
        if backend == Backend::Sqlite {
            url = prepare_sqlite_url(&url)?;
        }
        let connect = AnyConnectOptions::from_str(&url).map_err(|source| StoreError::Connect {
            url: redact(&options.url),
            source,
        })?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        if backend == Backend::Sqlite {
            // A connection to a local file cannot go stale: no ping before each use (by
            // default sqlx sends one on every acquire, a round trip to the connection's worker
            // thread for every statement run on the pool).
            pool = pool.test_before_acquire(false);
            // WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool
            .connect_with(connect)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact(&options.url),
                source,
            })?;
        Ok(Store { pool, backend })
    }

    /// Opens the store, refuses a schema newer than this binary, and applies pending migrations.
    pub async fn open_and_migrate(options: &StoreOptions) -> Result<Store, StoreError> {
        let store = Store::open(options).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction; repository functions take `&mut *tx` as their executor.
    ///
    /// On SQLite the transaction takes the write lock at once (`BEGIN IMMEDIATE`): a deferred
    /// transaction that reads and then writes fails with SQLITE_BUSY_SNAPSHOT when another
    /// writer committed in between, and no busy timeout can save it.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the parent folder of a SQLite file and asks sqlx to create the file when missing.
fn prepare_sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_string());
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
            path: parent.display().to_string(),
            source,
        })?;
    }
    if query.split('&').any(|kv| kv.starts_with("mode=")) {
        Ok(url.to_string())
    } else if query.is_empty() {
        Ok(format!("sqlite://{path}?mode=rwc"))
    } else {
        Ok(format!("sqlite://{path}?{query}&mode=rwc"))
    }
}

/// Hides a password in a database URL before it goes into a message.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            let creds = &url[start + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..start + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Milliseconds since the UNIX epoch, the time unit of every `*_ms` column.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_chosen_by_the_url_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://data/x.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("sqlite::memory:").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        let err = Backend::from_url("mysql://root:pw@h/db").unwrap_err();
        assert!(err.to_string().contains("mysql://root:***@h/db"), "{err}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.db");
        let url = prepare_sqlite_url(&format!("sqlite://{}", path.display())).unwrap();
        assert!(url.ends_with("?mode=rwc"), "{url}");
        assert!(path.parent().unwrap().is_dir());
        let url = prepare_sqlite_url("sqlite://x.db?mode=ro").unwrap();
        assert_eq!(url, "sqlite://x.db?mode=ro");
    }
}
