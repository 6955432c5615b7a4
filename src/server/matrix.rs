//! The Matrix connector's ties to the daemon: its transaction log in the store.

use mimi_bridge_connector::async_trait;
use mimi_bridge_matrix::TransactionLog;

use crate::store::{Store, matrix_transactions};

/// Processed homeserver transactions, in the store (so a restart does not process one twice).
pub struct StoreTransactionLog(pub Store);

#[async_trait]
impl TransactionLog for StoreTransactionLog {
    async fn is_done(&self, txn_id: &str) -> Result<bool, String> {
        matrix_transactions::is_done(self.0.pool(), txn_id)
            .await
            .map_err(|e| e.to_string())
    }

    async fn mark_done(&self, txn_id: &str) -> Result<(), String> {
        matrix_transactions::mark_done(self.0.pool(), txn_id)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
