-- What Element needs beyond the core: OpenID tokens for widgets and calls, content reports,
-- and the indexes behind timestamp lookups and thread lists.
CREATE TABLE openid_tokens (
    token_hash  BYTEA PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL,
    expires_ts  BIGINT NOT NULL
);
CREATE INDEX openid_tokens_expiry ON openid_tokens (expires_ts);

CREATE TABLE reports (
    id           BIGSERIAL PRIMARY KEY,
    room_id      TEXT NOT NULL,
    event_id     TEXT,
    reporter     TEXT NOT NULL,
    reason       TEXT,
    score        BIGINT,
    received_ts  BIGINT NOT NULL
);

CREATE INDEX events_room_ts ON events (room_id, origin_server_ts);
CREATE INDEX events_threads ON events (room_id, relates_to, stream_pos) WHERE rel_type = 'm.thread';
