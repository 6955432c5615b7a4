//! Table `mimi_reactions`: reactions by MIMI id, so taking one back can name its key and target.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaction {
    pub mimi_message_id: String,
    pub target: String,
    pub sender: String,
    pub key: String,
}

pub async fn insert<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    mimi_message_id: &str,
    target: &str,
    sender: &str,
    key: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mimi_reactions (room_id, mimi_message_id, target, sender, reaction_key, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(room_id)
    .bind(mimi_message_id)
    .bind(target)
    .bind(sender)
    .bind(key)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

fn from_row(row: sqlx::any::AnyRow) -> Result<Reaction, sqlx::Error> {
    Ok(Reaction {
        mimi_message_id: row.try_get("mimi_message_id")?,
        target: row.try_get("target")?,
        sender: row.try_get("sender")?,
        key: row.try_get("reaction_key")?,
    })
}

pub async fn get<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    mimi_message_id: &str,
) -> Result<Option<Reaction>, StoreError> {
    let row = sqlx::query(
        "SELECT mimi_message_id, target, sender, reaction_key FROM mimi_reactions \
         WHERE room_id = $1 AND mimi_message_id = $2",
    )
    .bind(room_id)
    .bind(mimi_message_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(from_row).transpose()?)
}

/// The newest reaction `key` of `sender` to `target`.
pub async fn find<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    target: &str,
    sender: &str,
    key: &str,
) -> Result<Option<Reaction>, StoreError> {
    let row = sqlx::query(
        "SELECT mimi_message_id, target, sender, reaction_key FROM mimi_reactions \
         WHERE room_id = $1 AND target = $2 AND sender = $3 AND reaction_key = $4 \
         ORDER BY created_at_ms DESC LIMIT 1",
    )
    .bind(room_id)
    .bind(target)
    .bind(sender)
    .bind(key)
    .fetch_optional(db)
    .await?;
    Ok(row.map(from_row).transpose()?)
}
