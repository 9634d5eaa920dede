-- Gateways: how far each has read the event stream, their registries (incoming and
-- outgoing webhooks, IoT devices), the outgoing-webhook outbox and device telemetry.
CREATE TABLE gateway_cursors (
    name        TEXT PRIMARY KEY NOT NULL,
    stream_pos  INTEGER NOT NULL
);

CREATE TABLE webhooks (
    hook_id     TEXT PRIMARY KEY NOT NULL,
    room_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    secret      TEXT NOT NULL,
    signed      BOOLEAN NOT NULL,
    created_by  TEXT NOT NULL,
    created_ts  INTEGER NOT NULL
);
CREATE INDEX webhooks_room ON webhooks (room_id);

CREATE TABLE webhook_subscriptions (
    sub_id      TEXT PRIMARY KEY NOT NULL,
    room_id     TEXT NOT NULL,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    event_types TEXT NOT NULL,
    pattern     TEXT,
    created_by  TEXT NOT NULL,
    created_ts  INTEGER NOT NULL,
    after_pos   INTEGER NOT NULL,
    failures    INTEGER NOT NULL DEFAULT 0,
    retry_at    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
);
CREATE INDEX webhook_subscriptions_room ON webhook_subscriptions (room_id);

CREATE TABLE webhook_outbox (
    sub_id      TEXT NOT NULL,
    stream_pos  INTEGER NOT NULL,
    event_id    TEXT NOT NULL,
    PRIMARY KEY (sub_id, stream_pos)
);

CREATE TABLE iot_devices (
    device_id   TEXT PRIMARY KEY NOT NULL,
    room_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    alerts      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_ts  INTEGER NOT NULL
);
CREATE INDEX iot_devices_room ON iot_devices (room_id);

CREATE TABLE iot_telemetry (
    device_id   TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    payload     TEXT NOT NULL
);
CREATE INDEX iot_telemetry_device ON iot_telemetry (device_id, ts);
