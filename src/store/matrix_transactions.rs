//! Table `matrix_transactions`: homeserver transactions the Matrix connector has processed.

use sqlx::AnyExecutor;

use super::{StoreError, now_ms};

pub async fn is_done<'e>(db: impl AnyExecutor<'e>, txn_id: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 FROM matrix_transactions WHERE txn_id = $1")
            .bind(txn_id)
            .fetch_optional(db)
            .await?
            .is_some(),
    )
}

/// Records a processed transaction; false when it was recorded already.
pub async fn mark_done<'e>(db: impl AnyExecutor<'e>, txn_id: &str) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO matrix_transactions (txn_id, processed_at_ms) VALUES ($1, $2) \
         ON CONFLICT (txn_id) DO NOTHING",
    )
    .bind(txn_id)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}
