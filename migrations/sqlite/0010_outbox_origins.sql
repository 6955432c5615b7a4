-- What an outgoing message or leave (an outbox row) carries out: the local client that made it,
-- the legacy event it settled and, for a message, the plaintext it encrypts, so that a refusal
-- by the hub reaches the legacy sender and an `epochTooOld` answer is met by encrypting the
-- same content (same MIMI message id) at the room's current epoch. A row goes when the hub has
-- answered.
CREATE TABLE outbox_origins (
    outbox_id    TEXT   NOT NULL PRIMARY KEY,
    room_id      TEXT   NOT NULL,
    client_uri   TEXT   NOT NULL,
    legacy_event BIGINT,
    payload      BLOB
);

