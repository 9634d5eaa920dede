-- Application services: for each, how far its filler has read the stream, the transaction
-- being sent, and the queue of what it has not acknowledged yet. A queue row names a
-- stream position (an event, a receipt or a to-device message); the transaction being sent
-- is every row up to txn_last_pos, always under the same ID until the appservice takes it.
CREATE TABLE appservice_state (
    as_id            TEXT PRIMARY KEY NOT NULL,
    stream_pos       INTEGER NOT NULL,
    next_txn         INTEGER NOT NULL DEFAULT 1,
    txn_last_pos     INTEGER,
    failures         INTEGER NOT NULL DEFAULT 0,
    retry_at         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    last_success_ts  INTEGER,
    sent_txns        INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE appservice_queue (
    as_id       TEXT NOT NULL,
    stream_pos  INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    PRIMARY KEY (as_id, stream_pos)
);
CREATE INDEX receipts_stream ON receipts (stream_pos);

-- Users an application service made (its puppets), so its exclusive namespace may cover them.
ALTER TABLE users ADD COLUMN appservice_id TEXT;
