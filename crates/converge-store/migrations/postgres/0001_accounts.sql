-- Accounts, devices, tokens and registration tokens.
CREATE TABLE users (
    localpart      TEXT PRIMARY KEY NOT NULL,
    password_hash  TEXT,
    is_admin       BOOLEAN NOT NULL DEFAULT FALSE,
    deactivated    BOOLEAN NOT NULL DEFAULT FALSE,
    displayname    TEXT,
    avatar_url     TEXT,
    created_ts     BIGINT NOT NULL
);

CREATE TABLE devices (
    localpart      TEXT NOT NULL REFERENCES users (localpart),
    device_id      TEXT NOT NULL,
    display_name   TEXT,
    last_seen_ts   BIGINT,
    last_seen_ip   TEXT,
    created_ts     BIGINT NOT NULL,
    PRIMARY KEY (localpart, device_id)
);

CREATE TABLE access_tokens (
    token_hash          BYTEA PRIMARY KEY NOT NULL,
    localpart           TEXT NOT NULL,
    device_id           TEXT NOT NULL,
    expires_ts          BIGINT,
    refresh_token_hash  BYTEA UNIQUE,
    created_ts          BIGINT NOT NULL,
    FOREIGN KEY (localpart, device_id) REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);
CREATE INDEX access_tokens_device ON access_tokens (localpart, device_id);

CREATE TABLE registration_tokens (
    token          TEXT PRIMARY KEY NOT NULL,
    uses_allowed   BIGINT,
    completed      BIGINT NOT NULL DEFAULT 0,
    expiry_ts      BIGINT,
    created_ts     BIGINT NOT NULL
);
