//! Numbered migrations, embedded in the binary, one list per backend.
//!
//! A database migrated by a newer binary is refused rather than used: its schema may mean
//! something this binary does not know.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Row, SqlSafeStr};

use super::{Backend, Store, StoreError};

/// (version, description, SQL) for SQLite.
const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "room core",
        include_str!("../../migrations/sqlite/0001_room_core.sql"),
    ),
    (
        2,
        "mls",
        include_str!("../../migrations/sqlite/0002_mls.sql"),
    ),
    (
        3,
        "delivery",
        include_str!("../../migrations/sqlite/0003_delivery.sql"),
    ),
    (
        4,
        "consent and abuse reports",
        include_str!("../../migrations/sqlite/0004_consent.sql"),
    ),
    (
        5,
        "bridge mappings",
        include_str!("../../migrations/sqlite/0005_bridge.sql"),
    ),
    (
        6,
        "bridge queues",
        include_str!("../../migrations/sqlite/0006_bridge_queues.sql"),
    ),
    (
        7,
        "matrix connector",
        include_str!("../../migrations/sqlite/0007_matrix.sql"),
    ),
    (
        8,
        "outbox queues",
        include_str!("../../migrations/sqlite/0008_outbox_queues.sql"),
    ),
    (
        9,
        "public view of rooms",
        include_str!("../../migrations/sqlite/0009_public_view.sql"),
    ),
    (
        10,
        "outgoing call origins",
        include_str!("../../migrations/sqlite/0010_outbox_origins.sql"),
    ),
];

/// (version, description, SQL) for Postgres.
const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "room core",
        include_str!("../../migrations/postgres/0001_room_core.sql"),
    ),
    (
        2,
        "mls",
        include_str!("../../migrations/postgres/0002_mls.sql"),
    ),
    (
        3,
        "delivery",
        include_str!("../../migrations/postgres/0003_delivery.sql"),
    ),
    (
        4,
        "consent and abuse reports",
        include_str!("../../migrations/postgres/0004_consent.sql"),
    ),
    (
        5,
        "bridge mappings",
        include_str!("../../migrations/postgres/0005_bridge.sql"),
    ),
    (
        6,
        "bridge queues",
        include_str!("../../migrations/postgres/0006_bridge_queues.sql"),
    ),
    (
        7,
        "matrix connector",
        include_str!("../../migrations/postgres/0007_matrix.sql"),
    ),
    (
        8,
        "outbox queues",
        include_str!("../../migrations/postgres/0008_outbox_queues.sql"),
    ),
    (
        9,
        "public view of rooms",
        include_str!("../../migrations/postgres/0009_public_view.sql"),
    ),
    (
        10,
        "outgoing call origins",
        include_str!("../../migrations/postgres/0010_outbox_origins.sql"),
    ),
];

/// Where a database stands relative to this binary's migrations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The highest version applied to the database, 0 for an empty database.
    pub database: i64,
    /// The highest version this binary carries.
    pub binary: i64,
}

impl SchemaStatus {
    pub fn pending(&self) -> i64 {
        (self.binary - self.database).max(0)
    }
}

fn migrator(backend: Backend) -> Migrator {
    let list = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    Migrator::with_migrations(
        list.iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

impl Store {
    /// The highest migration version this binary knows for the store's backend.
    pub fn binary_schema_version(&self) -> i64 {
        match self.backend {
            Backend::Sqlite => SQLITE,
            Backend::Postgres => POSTGRES,
        }
        .iter()
        .map(|(v, _, _)| *v)
        .max()
        .unwrap_or(0)
    }

    /// Reads the applied schema version without changing anything.
    pub async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        let exists: bool = match self.backend {
            Backend::Sqlite => {
                sqlx::query(
                    "SELECT COUNT(*) AS n FROM sqlite_master \
                     WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(&self.pool)
                .await?
                .try_get::<i64, _>("n")?
                    > 0
            }
            Backend::Postgres => {
                sqlx::query(
                    "SELECT COUNT(*) AS n FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
                )
                .fetch_one(&self.pool)
                .await?
                .try_get::<i64, _>("n")?
                    > 0
            }
        };
        let database = if exists {
            sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?
                .try_get::<i64, _>("v")?
        } else {
            0
        };
        Ok(SchemaStatus {
            database,
            binary: self.binary_schema_version(),
        })
    }

    /// Applies pending migrations. Refuses a database whose schema is newer than this binary.
    pub async fn migrate(&self) -> Result<SchemaStatus, StoreError> {
        let status = self.schema_status().await?;
        if status.database > status.binary {
            return Err(StoreError::SchemaTooNew {
                database: status.database,
                binary: status.binary,
            });
        }
        match migrator(self.backend).run(&self.pool).await {
            Ok(()) => {}
            Err(sqlx::migrate::MigrateError::VersionMismatch(version)) => {
                return Err(StoreError::SchemaMismatch {
                    version,
                    detail: "its checksum is not the one this binary carries".into(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        self.schema_status().await
    }
}
