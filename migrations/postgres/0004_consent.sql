-- Consent between users of different providers (protocol-06 §5.7). A request is recorded on
-- the target's side; a grant, revocation or cancellation on both. room_id '' means any room.
CREATE TABLE consents (
    requester_uri TEXT   NOT NULL,
    target_uri    TEXT   NOT NULL,
    room_id       TEXT   NOT NULL DEFAULT '',
    state         TEXT   NOT NULL CHECK (state IN ('requested', 'granted', 'revoked', 'cancelled')),
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (requester_uri, target_uri, room_id)
);

-- Abuse reports received for rooms this provider hosts (protocol-06 §5.9), kept for the
-- operator.
CREATE TABLE abuse_reports (
    room_id        TEXT   NOT NULL,
    reporter_uri   TEXT   NOT NULL,
    alleged_uri    TEXT   NOT NULL,
    note           TEXT   NOT NULL,
    report         BYTEA   NOT NULL,
    received_at_ms BIGINT NOT NULL
);
