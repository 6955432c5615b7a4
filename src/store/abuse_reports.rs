//! Table `abuse_reports`: reports received for rooms this provider hosts.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

pub async fn insert<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
    reporter: &str,
    alleged: &str,
    note: &str,
    report: &[u8],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO abuse_reports (room_id, reporter_uri, alleged_uri, note, report, received_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(room_id)
    .bind(reporter)
    .bind(alleged)
    .bind(note)
    .bind(report)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

/// (reporter, alleged abuser, note) of a room's reports, oldest first.
pub async fn list<'e>(
    db: impl AnyExecutor<'e>,
    room_id: &str,
) -> Result<Vec<(String, String, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT reporter_uri, alleged_uri, note FROM abuse_reports WHERE room_id = $1 ORDER BY received_at_ms",
    )
    .bind(room_id)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get("reporter_uri")?,
                r.try_get("alleged_uri")?,
                r.try_get("note")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}
