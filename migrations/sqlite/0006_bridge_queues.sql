-- The bridge core's two queues: events from the legacy network waiting to be carried into MIMI,
-- and room changes (next to the decrypted messages) waiting to be carried to the legacy network.

-- Events the connector submitted, in arrival order; each legacy room's pending events are that
-- room's ordered queue. Accepted = a row here.
CREATE TABLE legacy_events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT   NOT NULL UNIQUE,
    legacy_room_id TEXT   NOT NULL,
    body           TEXT   NOT NULL,
    state          TEXT   NOT NULL DEFAULT 'pending',
    error          TEXT,
    created_at_ms  BIGINT NOT NULL,
    settled_at_ms  BIGINT
);
CREATE INDEX legacy_events_pending ON legacy_events (state, legacy_room_id, seq);

-- A room's inbound stream holds messages and, in the same order, changes of the room state
-- (participants, roles, name) the bridge must show on the legacy side.
ALTER TABLE inbound_messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';

-- How far each room's inbound stream has been turned into connector commands.
CREATE TABLE bridge_cursors (
    room_id  TEXT   NOT NULL PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

-- What a webhook call was signed with: the same id and timestamp again is a replay; the same
-- id, a new timestamp and the same body is a retry.
ALTER TABLE webhook_seen ADD COLUMN signed_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_seen ADD COLUMN body_hash TEXT NOT NULL DEFAULT '';

-- The legacy event a pending commit was made for: its outcome settles that event (a refusal is
-- reported to the connector), and the change it makes is not echoed back to the legacy side.
ALTER TABLE pending_commits ADD COLUMN legacy_event BIGINT;

-- Reactions by MIMI id, so taking one back can name its key and target.
CREATE TABLE mimi_reactions (
    room_id         TEXT   NOT NULL,
    mimi_message_id TEXT   NOT NULL,
    target          TEXT   NOT NULL,
    sender          TEXT   NOT NULL,
    reaction_key    TEXT   NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (room_id, mimi_message_id)
);
CREATE INDEX mimi_reactions_by_target ON mimi_reactions (room_id, target, sender, reaction_key);
