-- A public view of every room, whether or not a local user is in it: the ratchet tree, the
-- GroupContext and the pending proposals live in the openmls storage namespace `room:<room id>`
-- (mls_kv), advanced with every accepted handshake. Proxy clients keep only their own state.

-- The GroupInfo the last committer sent with its commit, served by the hub to external joiners.
ALTER TABLE room_groups ADD COLUMN group_info_hash BYTEA;

-- Who a handshake accepted by the hub came from, and what it was: only a retry of the latest
-- accepted handshake by the same peer gets its first answer again; older ones are replays.
ALTER TABLE hub_accepted ADD COLUMN peer TEXT NOT NULL DEFAULT '';
ALTER TABLE hub_accepted ADD COLUMN kind TEXT NOT NULL DEFAULT 'commit';

-- Key material that passed through this daemon (handed out for a local user, or relayed or
-- fetched for a remote one): which provider served it, for which user. An Add of another
-- provider's client is accepted only with a KeyPackage served for that very user.
CREATE TABLE key_package_bindings (
    kp_ref         BYTEA   NOT NULL PRIMARY KEY,
    served_by      TEXT   NOT NULL,
    user_uri       TEXT   NOT NULL,
    recorded_at_ms BIGINT NOT NULL
);

-- An external commit of a local client waiting for the hub: the client's state has moved on
-- already; the room's public view moves when the hub accepts it.
ALTER TABLE pending_commits ADD COLUMN external BIGINT NOT NULL DEFAULT 0;
