//! Store errors: each says which database or which row, and what went wrong.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL `{url}`: expected sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl { url: String },
    #[error("cannot create the database folder {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the database {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "the database schema is at version {database}, newer than this binary knows ({binary}); \
         run a mimi-bridge release that includes migration {database}"
    )]
    SchemaTooNew { database: i64, binary: i64 },
    #[error(
        "the database was migrated by a different build: migration {version} differs ({detail})"
    )]
    SchemaMismatch { version: i64, detail: String },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("room {room_id} is not in the store")]
    RoomNotFound { room_id: String },
    #[error("room {room_id} already exists")]
    RoomExists { room_id: String },
    #[error("room {room_id} is at epoch {actual:?}, not {expected} as the update assumed")]
    EpochConflict {
        room_id: String,
        expected: i64,
        actual: Option<i64>,
    },
    #[error("the store holds a value this binary cannot read: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}
