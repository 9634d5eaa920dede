-- What the admin pages and analytics read, kept as the server goes so that no request
-- scans the events: per room and day (days since the Unix epoch, UTC), the events and the
-- messages among them; who was active each day; and named daily counters (gateway traffic).
CREATE TABLE room_daily_stats (
    room_id   TEXT NOT NULL,
    day       BIGINT NOT NULL,
    events    BIGINT NOT NULL,
    messages  BIGINT NOT NULL,
    PRIMARY KEY (room_id, day)
);
CREATE INDEX room_daily_stats_day ON room_daily_stats (day);

CREATE TABLE daily_active_users (
    day        BIGINT NOT NULL,
    localpart  TEXT NOT NULL,
    PRIMARY KEY (day, localpart)
);

CREATE TABLE daily_counters (
    day    BIGINT NOT NULL,
    name   TEXT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (day, name)
);

-- Rooms a server admin shut down: nobody local joins them again.
CREATE TABLE blocked_rooms (
    room_id     TEXT PRIMARY KEY NOT NULL,
    blocked_by  TEXT NOT NULL,
    blocked_ts  BIGINT NOT NULL
);

INSERT INTO room_daily_stats (room_id, day, events, messages)
SELECT room_id, origin_server_ts / 86400000, COUNT(*),
       SUM(CASE WHEN event_type IN ('m.room.message', 'm.room.encrypted', 'm.sticker') THEN 1 ELSE 0 END)
FROM events GROUP BY room_id, origin_server_ts / 86400000;
