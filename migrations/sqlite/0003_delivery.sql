-- Messages decrypted for this provider's users, in hub order: the queue towards the
-- legacy side.
CREATE TABLE inbound_messages (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id          TEXT   NOT NULL,
    sender_client    TEXT   NOT NULL,
    payload          BLOB   NOT NULL,
    hub_timestamp_ms BIGINT NOT NULL,
    received_at_ms   BIGINT NOT NULL
);
CREATE INDEX inbound_messages_by_room ON inbound_messages (room_id, seq);

-- Hashes of /notify bodies already processed: a byte-identical retry is answered 201 and
-- not processed again (protocol-06 §5.5).
CREATE TABLE notify_seen (
    body_hash      BLOB   NOT NULL PRIMARY KEY,
    room_id        TEXT   NOT NULL,
    received_at_ms BIGINT NOT NULL
);
