-- Room events, appended only by the ordered writer.
CREATE TABLE events (
    stream_pos        BIGINT PRIMARY KEY NOT NULL,
    event_id          TEXT NOT NULL UNIQUE,
    room_id           TEXT NOT NULL,
    sender            TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    state_key         TEXT,
    origin_server_ts  BIGINT NOT NULL,
    json              TEXT NOT NULL
);
CREATE INDEX events_room ON events (room_id, stream_pos);
