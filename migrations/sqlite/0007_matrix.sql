-- The Matrix connector: homeserver transactions already processed (a retried or replayed one
-- is answered without processing it again, across restarts too).
CREATE TABLE matrix_transactions (
    txn_id          TEXT   NOT NULL PRIMARY KEY,
    processed_at_ms BIGINT NOT NULL
);
