-- Notifications stored once per event, not once per member: a room of 1,000 members wrote
-- 999 rows per message (one per member, in a per-member index), which cost the send path
-- far more than evaluating the rules. Now an event that notifies anyone has one row saying
-- what it means for the room's joined members, and one row per member (or invitee) whose
-- rules decided otherwise. A member's notifications are the event rows after they joined,
-- with their own row where they have one.
CREATE TABLE event_push (
    stream_pos      INTEGER PRIMARY KEY NOT NULL,
    room_id         TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    sender          TEXT NOT NULL,
    thread_id       TEXT NOT NULL,
    ts              INTEGER NOT NULL,
    -- What the event means for joined members without their own row: notify or not, and
    -- if so, whether it highlights and the actions for pushers.
    members_notify  BOOLEAN NOT NULL,
    highlight       BOOLEAN NOT NULL,
    actions         TEXT NOT NULL
);
CREATE INDEX event_push_room ON event_push (room_id, stream_pos);

CREATE TABLE event_push_exceptions (
    stream_pos  INTEGER NOT NULL,
    user_id     TEXT NOT NULL,
    notify      BOOLEAN NOT NULL,
    highlight   BOOLEAN NOT NULL,
    actions     TEXT NOT NULL,
    PRIMARY KEY (stream_pos, user_id)
) WITHOUT ROWID;
CREATE INDEX event_push_exceptions_user ON event_push_exceptions (user_id, stream_pos);

-- Every stored notification carries over as its member's own row.
INSERT INTO event_push (stream_pos, room_id, event_id, sender, thread_id, ts, members_notify, highlight, actions)
SELECT a.stream_pos, MIN(a.room_id), MIN(a.event_id), COALESCE(MIN(e.sender), ''), MIN(a.thread_id), MIN(a.ts),
       FALSE, FALSE, '[]'
FROM event_push_actions a LEFT JOIN events e ON e.stream_pos = a.stream_pos
GROUP BY a.stream_pos;
INSERT INTO event_push_exceptions (stream_pos, user_id, notify, highlight, actions)
SELECT stream_pos, user_id, TRUE, highlight, actions FROM event_push_actions;
DROP TABLE event_push_actions;
