//! Shared set-up for integration tests: real databases, real processes.
#![allow(dead_code)]

use mimi_bridge::store::{Store, StoreOptions};

/// The Postgres server the tests use. Override with `MIMI_TEST_POSTGRES_URL`
/// (any database on the server works: each test creates and drops its own database).
pub fn postgres_admin_url() -> String {
    std::env::var("MIMI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh, empty database for one test; dropped (Postgres) or deleted (SQLite) at the end.
pub struct TestDb {
    pub url: String,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/store.db", dir.path().display());
        TestDb {
            url,
            backend: "sqlite",
            _dir: Some(dir),
            pg_name: None,
        }
    }

    pub async fn postgres() -> TestDb {
        let admin = postgres_admin_url();
        let name = format!(
            "mimi_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let store = Store::open(&StoreOptions::new(&admin)).await.unwrap_or_else(|e| {
            panic!(
                "the store tests need Postgres ({e}). Start one, or point MIMI_TEST_POSTGRES_URL \
                 at a server where this user may CREATE DATABASE."
            )
        });
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(store.pool())
        .await
        .expect("drop old test database");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(store.pool())
            .await
            .expect("create test database");
        store.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        TestDb {
            url: format!("{base}/{name}"),
            backend: "postgres",
            _dir: None,
            pg_name: Some(name),
        }
    }

    pub async fn store(&self) -> Store {
        Store::open_and_migrate(&StoreOptions::new(&self.url))
            .await
            .expect("open and migrate the test store")
    }
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Best effort, on a thread of its own: Drop cannot be async.
            let admin = postgres_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let store = Store::open(&StoreOptions::new(&admin)).await.ok()?;
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(store.pool())
                    .await;
                    store.close().await;
                    Some(())
                })
            })
            .join();
        }
    }
}

/// Generates one `#[tokio::test]` per backend for a test body `async fn(TestDb)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::TestDb::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::TestDb::postgres().await).await
                }
            )*
        }
    };
}
