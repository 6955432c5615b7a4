-- Proxy MLS clients: one per legacy user device the bridge acts for.
-- signature_private is sealed (ChaCha20-Poly1305) under the configured state key.
CREATE TABLE proxy_clients (
    client_uri        TEXT   NOT NULL PRIMARY KEY,
    user_uri          TEXT   NOT NULL,
    signature_public  BLOB   NOT NULL,
    signature_private BLOB   NOT NULL,
    created_at_ms     BIGINT NOT NULL
);
CREATE INDEX proxy_clients_by_user ON proxy_clients (user_uri);

-- openmls storage, one namespace per proxy client (openmls keys its storage by group id only,
-- so clients sharing a group cannot share a namespace). Secret values are sealed; large public
-- values (ratchet trees) are stored once in mls_blobs and referenced by hash.
CREATE TABLE mls_kv (
    namespace TEXT NOT NULL,
    key       BLOB NOT NULL,
    sealed    BLOB,
    blob_hash BLOB,
    PRIMARY KEY (namespace, key),
    CHECK ((sealed IS NULL) <> (blob_hash IS NULL))
);
CREATE INDEX mls_kv_by_blob ON mls_kv (blob_hash);

-- Content-addressed public data: ratchet trees, Welcomes, commits of the room logs.
CREATE TABLE mls_blobs (
    hash  BLOB NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
);

-- Key packages of each proxy client, ready for the keyMaterial flow. Single use, except the
-- last-resort package. The private parts live in the client's mls_kv namespace.
CREATE TABLE key_packages (
    kp_ref        BLOB   NOT NULL PRIMARY KEY,
    client_uri    TEXT   NOT NULL REFERENCES proxy_clients (client_uri) ON DELETE CASCADE,
    key_package   BLOB   NOT NULL,
    last_resort   BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    consumed_at_ms BIGINT
);
CREATE INDEX key_packages_available ON key_packages (client_uri, consumed_at_ms, last_resort);

-- The local view of each room's MLS group. One local proxy client, the reader, processes every
-- handshake and decrypts; the others catch up from room_log only when they must act.
CREATE TABLE room_groups (
    room_id       TEXT   NOT NULL PRIMARY KEY,
    group_id      BLOB   NOT NULL UNIQUE,
    epoch         BIGINT NOT NULL,
    reader_client TEXT
);

-- Every handshake of a room in order: (epoch, seq). A commit ends its epoch.
CREATE TABLE room_log (
    room_id      TEXT   NOT NULL REFERENCES room_groups (room_id) ON DELETE CASCADE,
    epoch        BIGINT NOT NULL,
    seq          BIGINT NOT NULL,
    kind         TEXT   NOT NULL CHECK (kind IN ('proposal', 'commit')),
    message_hash BLOB   NOT NULL,
    PRIMARY KEY (room_id, epoch, seq)
);

-- Local proxy clients in each room and how far their stored MLS state has come.
-- A dormant member has not processed its Welcome yet (welcome_hash says which).
CREATE TABLE room_proxy_members (
    room_id      TEXT   NOT NULL REFERENCES room_groups (room_id) ON DELETE CASCADE,
    client_uri   TEXT   NOT NULL REFERENCES proxy_clients (client_uri) ON DELETE CASCADE,
    status       TEXT   NOT NULL CHECK (status IN ('dormant', 'active')),
    welcome_hash BLOB,
    state_epoch  BIGINT NOT NULL,
    next_seq     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, client_uri)
);

-- A commit a local proxy client made and sent to the hub, waiting for the hub's answer.
-- On acceptance it is merged and logged; the clients it adds join from its Welcome.
CREATE TABLE pending_commits (
    room_id      TEXT   NOT NULL REFERENCES room_groups (room_id) ON DELETE CASCADE,
    client_uri   TEXT   NOT NULL,
    epoch        BIGINT NOT NULL,
    commit_hash  BLOB    NOT NULL,
    welcome_hash BLOB,
    group_info_hash BLOB,
    local_joiners TEXT  NOT NULL,
    PRIMARY KEY (room_id, client_uri)
);

-- Every outgoing call, written in the same transaction as the state change that caused it and
-- retried with the same id until the peer accepts it.
-- seq keeps the order items were queued in.
CREATE TABLE outbox (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT   NOT NULL UNIQUE,
    room_id            TEXT,
    destination        TEXT   NOT NULL,
    kind               TEXT   NOT NULL,
    -- the MIMI user an outgoing message is sent as
    sender             TEXT,
    body               BLOB   NOT NULL,
    created_at_ms      BIGINT NOT NULL,
    attempts           BIGINT NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT NOT NULL,
    delivered_at_ms    BIGINT
);
CREATE INDEX outbox_due ON outbox (delivered_at_ms, next_attempt_at_ms);
