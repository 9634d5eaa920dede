-- Rooms, their current state and memberships, and the per-user streams around them.
ALTER TABLE events ADD COLUMN depth BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN unsigned TEXT;
ALTER TABLE events ADD COLUMN txn_device TEXT;
ALTER TABLE events ADD COLUMN txn_id TEXT;
ALTER TABLE events ADD COLUMN relates_to TEXT;
ALTER TABLE events ADD COLUMN rel_type TEXT;
ALTER TABLE events ADD COLUMN redacted_because TEXT;
CREATE UNIQUE INDEX events_txn ON events (sender, txn_device, txn_id) WHERE txn_id IS NOT NULL;
CREATE INDEX events_relations ON events (relates_to, stream_pos) WHERE relates_to IS NOT NULL;

CREATE TABLE rooms (
    room_id       TEXT PRIMARY KEY NOT NULL,
    room_version  TEXT NOT NULL,
    creator       TEXT NOT NULL,
    is_public     BOOLEAN NOT NULL DEFAULT FALSE,
    created_ts    BIGINT NOT NULL
);

CREATE TABLE current_state (
    room_id     TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    state_key   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    stream_pos  BIGINT NOT NULL,
    PRIMARY KEY (room_id, event_type, state_key)
);

CREATE TABLE memberships (
    user_id     TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    membership  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    stream_pos  BIGINT NOT NULL,
    forgotten   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, room_id)
);
CREATE INDEX memberships_room ON memberships (room_id, membership);

CREATE TABLE account_data (
    user_id     TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    data_type   TEXT NOT NULL,
    content     TEXT NOT NULL,
    stream_pos  BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, data_type)
);
CREATE INDEX account_data_pos ON account_data (user_id, stream_pos);

CREATE TABLE receipts (
    room_id       TEXT NOT NULL,
    receipt_type  TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    ts            BIGINT NOT NULL,
    stream_pos    BIGINT NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id)
);
CREATE INDEX receipts_pos ON receipts (room_id, stream_pos);

CREATE TABLE room_aliases (
    alias       TEXT PRIMARY KEY NOT NULL,
    room_id     TEXT NOT NULL,
    creator     TEXT NOT NULL,
    created_ts  BIGINT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

CREATE TABLE filters (
    user_id    TEXT NOT NULL,
    filter_id  BIGINT NOT NULL,
    json       TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);
