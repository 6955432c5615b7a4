-- Rooms this bridge takes part in, as hub or follower.
-- app_data is the TLS-encoded AppDataDictionary of the last epoch the hub accepted.
CREATE TABLE rooms (
    room_id       TEXT    NOT NULL PRIMARY KEY,
    hub_domain    TEXT    NOT NULL,
    our_role      TEXT    NOT NULL CHECK (our_role IN ('hub', 'follower')),
    epoch         BIGINT  NOT NULL CHECK (epoch >= 0),
    app_data      BLOB    NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    updated_at_ms BIGINT  NOT NULL
);

-- The clients in each room's MLS group, with the user each belongs to.
CREATE TABLE room_members (
    room_id    TEXT NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    client_uri TEXT NOT NULL,
    user_uri   TEXT NOT NULL,
    PRIMARY KEY (room_id, client_uri)
);
CREATE INDEX room_members_by_user ON room_members (room_id, user_uri);

-- Proposals the hub accepted and cached; the next commit in the room must include them.
CREATE TABLE pending_proposals (
    room_id        TEXT   NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    proposal_ref   BLOB   NOT NULL,
    epoch          BIGINT NOT NULL,
    message        BLOB   NOT NULL,
    accepted_at_ms BIGINT NOT NULL,
    PRIMARY KEY (room_id, proposal_ref)
);
