-- The media repository: uploads (content-addressed files on disk), their thumbnails,
-- cached URL previews, and small facts about this server.
CREATE TABLE media (
    media_id      TEXT PRIMARY KEY NOT NULL,
    uploader      TEXT NOT NULL,
    sha256        TEXT,
    content_type  TEXT,
    filename      TEXT,
    size          INTEGER,
    created_ts    INTEGER NOT NULL,
    -- For media created with /create and not yet uploaded: when the reservation lapses.
    pending_until INTEGER
);
CREATE INDEX media_sha256 ON media (sha256);
CREATE INDEX media_created ON media (created_ts);

CREATE TABLE media_thumbnails (
    media_id      TEXT NOT NULL,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    method        TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    PRIMARY KEY (media_id, width, height, method)
);

CREATE TABLE url_previews (
    url         TEXT PRIMARY KEY NOT NULL,
    json        TEXT NOT NULL,
    fetched_ts  INTEGER NOT NULL
);

CREATE TABLE server_meta (
    key    TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
);
