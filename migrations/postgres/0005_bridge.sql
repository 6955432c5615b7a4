-- The bridge core's mappings between the legacy network and MIMI.

-- A legacy room and the MIMI room it is bridged to.
CREATE TABLE portals (
    legacy_room_id TEXT   NOT NULL PRIMARY KEY,
    room_id        TEXT   NOT NULL UNIQUE,
    created_at_ms  BIGINT NOT NULL
);

-- A legacy user and the MIMI user (and proxy client) the bridge acts as for them; remote MIMI
-- users appear on the legacy side under a legacy id too (a ghost), with is_ghost = 1.
CREATE TABLE puppets (
    legacy_user_id TEXT   NOT NULL PRIMARY KEY,
    user_uri       TEXT   NOT NULL UNIQUE,
    client_uri     TEXT,
    is_ghost       BIGINT NOT NULL DEFAULT 0,
    created_at_ms  BIGINT NOT NULL
);

-- Legacy message ids and MIMI message ids, both ways, for replies, edits, deletes, reactions.
CREATE TABLE message_map (
    room_id           TEXT   NOT NULL,
    legacy_message_id TEXT   NOT NULL,
    mimi_message_id   TEXT   NOT NULL,
    created_at_ms     BIGINT NOT NULL,
    PRIMARY KEY (room_id, legacy_message_id),
    UNIQUE (room_id, mimi_message_id)
);

-- Inbound webhook ids already accepted: a replay is refused, a retry is answered the same.
CREATE TABLE webhook_seen (
    webhook_id     TEXT   NOT NULL PRIMARY KEY,
    response       TEXT   NOT NULL,
    received_at_ms BIGINT NOT NULL
);

-- Outgoing calls given up on after their last retry, kept to be inspected and re-sent.
ALTER TABLE outbox ADD COLUMN dead_lettered_at_ms BIGINT;

-- Handshakes the hub accepted, written with the state change they caused: a retried /update
-- of one of them gets the same answer instead of wrongEpoch.
CREATE TABLE hub_accepted (
    room_id        TEXT   NOT NULL,
    message_hash   BYTEA   NOT NULL,
    epoch          BIGINT NOT NULL,
    accepted_at_ms BIGINT NOT NULL,
    PRIMARY KEY (room_id, message_hash)
);

-- The MLS message each inbound message came from: a replayed fan-out is recognised and not
-- decrypted (or delivered) twice.
ALTER TABLE inbound_messages ADD COLUMN message_hash BYTEA;
CREATE UNIQUE INDEX inbound_messages_by_hash ON inbound_messages (room_id, message_hash);
