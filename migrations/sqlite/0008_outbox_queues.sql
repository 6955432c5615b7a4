-- The outbox's queue heads come from the undelivered rows only: an index of just those, by
-- queue, keeps finding the heads proportional to what is waiting, not to everything ever sent.
CREATE INDEX outbox_waiting ON outbox (destination, room_id, seq)
    WHERE delivered_at_ms IS NULL AND dead_lettered_at_ms IS NULL;
