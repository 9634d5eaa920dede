-- Accounts, devices, tokens and registration tokens.
CREATE TABLE users (
    localpart      TEXT PRIMARY KEY NOT NULL,
    password_hash  TEXT,
    is_admin       BOOLEAN NOT NULL DEFAULT FALSE,
    deactivated    BOOLEAN NOT NULL DEFAULT FALSE,
    displayname    TEXT,
    avatar_url     TEXT,
    created_ts     INTEGER NOT NULL
);

CREATE TABLE devices (
    localpart      TEXT NOT NULL REFERENCES users (localpart),
    device_id      TEXT NOT NULL,
    display_name   TEXT,
    last_seen_ts   INTEGER,
    last_seen_ip   TEXT,
    created_ts     INTEGER NOT NULL,
    PRIMARY KEY (localpart, device_id)
);

CREATE TABLE access_tokens (
    token_hash          BLOB PRIMARY KEY NOT NULL,
    localpart           TEXT NOT NULL,
    device_id           TEXT NOT NULL,
    expires_ts          INTEGER,
    refresh_token_hash  BLOB UNIQUE,
    created_ts          INTEGER NOT NULL,
    FOREIGN KEY (localpart, device_id) REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);
CREATE INDEX access_tokens_device ON access_tokens (localpart, device_id);

CREATE TABLE registration_tokens (
    token          TEXT PRIMARY KEY NOT NULL,
    uses_allowed   INTEGER,
    completed      INTEGER NOT NULL DEFAULT 0,
    expiry_ts      INTEGER,
    created_ts     INTEGER NOT NULL
);
