-- End-to-end encryption (device and cross-signing keys, one-time and fallback keys,
-- signatures, to-device messages, device-list changes, server-side key backup), push
-- (per-event notification actions, pushers), threaded receipts, and when a membership
-- last changed its kind (a profile update is no rejoin).

CREATE TABLE device_keys (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    keys        TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE one_time_keys (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    json        TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);

CREATE TABLE fallback_keys (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    json        TEXT NOT NULL,
    used        BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, device_id, algorithm)
);

CREATE TABLE cross_signing_keys (
    user_id     TEXT NOT NULL,
    key_type    TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    json        TEXT NOT NULL,
    PRIMARY KEY (user_id, key_type)
);

-- Signatures uploaded for keys (devices or cross-signing keys) after the fact.
CREATE TABLE key_signatures (
    target_user     TEXT NOT NULL,
    target_key      TEXT NOT NULL,
    signer_user     TEXT NOT NULL,
    signer_key_id   TEXT NOT NULL,
    signature       TEXT NOT NULL,
    PRIMARY KEY (target_user, target_key, signer_user, signer_key_id)
);

-- A user's devices or keys changed at this stream position.
CREATE TABLE device_list_changes (
    stream_pos  INTEGER PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL
);
CREATE INDEX device_list_changes_user ON device_list_changes (user_id, stream_pos);

CREATE TABLE to_device (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    stream_pos  INTEGER NOT NULL,
    sender      TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    content     TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_pos)
);

-- Transactions of /sendToDevice already carried out, per sending device.
CREATE TABLE to_device_txns (
    sender      TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    txn_id      TEXT NOT NULL,
    created_ts  INTEGER NOT NULL,
    PRIMARY KEY (sender, device_id, txn_id)
);

CREATE TABLE key_backup_versions (
    user_id     TEXT NOT NULL,
    version     INTEGER NOT NULL,
    algorithm   TEXT NOT NULL,
    auth_data   TEXT NOT NULL,
    etag        INTEGER NOT NULL DEFAULT 0,
    deleted     BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE key_backup_sessions (
    user_id              TEXT NOT NULL,
    version              INTEGER NOT NULL,
    room_id              TEXT NOT NULL,
    session_id           TEXT NOT NULL,
    first_message_index  INTEGER NOT NULL,
    forwarded_count      INTEGER NOT NULL,
    is_verified          BOOLEAN NOT NULL,
    session_data         TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);

-- What the push rules of each member decided for an event that notifies them: counted
-- after their read receipt for the unread counts, listed by /notifications.
CREATE TABLE event_push_actions (
    user_id     TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    stream_pos  INTEGER NOT NULL,
    event_id    TEXT NOT NULL,
    thread_id   TEXT NOT NULL,
    highlight   BOOLEAN NOT NULL,
    actions     TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, stream_pos)
);
CREATE INDEX event_push_actions_user ON event_push_actions (user_id, stream_pos);

CREATE TABLE pushers (
    user_id              TEXT NOT NULL,
    app_id               TEXT NOT NULL,
    pushkey              TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    app_display_name     TEXT NOT NULL,
    device_display_name  TEXT NOT NULL,
    profile_tag          TEXT,
    lang                 TEXT NOT NULL,
    data                 TEXT NOT NULL,
    created_ts           INTEGER NOT NULL,
    -- Delivery: notifications up to this position are delivered.
    delivered_pos        INTEGER NOT NULL,
    failures             INTEGER NOT NULL DEFAULT 0,
    retry_at             INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    PRIMARY KEY (user_id, app_id, pushkey)
);
CREATE INDEX pushers_key ON pushers (app_id, pushkey);

-- Receipts per thread (`thread_id` '' for unthreaded ones).
CREATE TABLE receipts_threaded (
    room_id       TEXT NOT NULL,
    receipt_type  TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    ts            INTEGER NOT NULL,
    stream_pos    INTEGER NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
INSERT INTO receipts_threaded (room_id, receipt_type, user_id, thread_id, event_id, ts, stream_pos)
    SELECT room_id, receipt_type, user_id, '', event_id, ts, stream_pos FROM receipts;
DROP TABLE receipts;
ALTER TABLE receipts_threaded RENAME TO receipts;
CREATE INDEX receipts_pos ON receipts (room_id, stream_pos);

ALTER TABLE memberships ADD COLUMN changed_pos INTEGER NOT NULL DEFAULT 0;
UPDATE memberships SET changed_pos = stream_pos;

-- History visibility is judged at each event: the room's settings and one user's
-- memberships over time are read from the state events by type and key.
CREATE INDEX events_state_history ON events (room_id, event_type, state_key, stream_pos);
