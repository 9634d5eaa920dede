//! Finding events other than by position: the event nearest a timestamp, the roots of a
//! room's threads ordered by their latest reply, and the current state events of one type.

use converge_core::{PersistedEvent, StreamPos};
use sqlx::Row;

use crate::db::on_pool;
use crate::events::{Direction, event_columns, event_from_row, fetch_events};
use crate::{Store, StoreError};

/// A thread as the list of threads shows it: its root and a summary of its replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadRow {
    pub root_id: String,
    /// The newest reply: its position orders the list and pages through it.
    pub latest_id: String,
    pub latest_pos: StreamPos,
    /// How many replies the thread has.
    pub count: i64,
    /// Whether the user asked about sent the root or a reply.
    pub participated: bool,
}

impl Store {
    /// A room's events from `(ts, after)` on in `direction`, ordered by `origin_server_ts`
    /// and then position: `Forward`, oldest first, those after `ts`, or at `ts` and after
    /// position `after`; `Backward`, newest first, those before `ts`, or at `ts` and before
    /// `after`. Only positions up to `until`, at most `limit`: the candidates for
    /// `timestamp_to_event`, and the cursor to read on from the last of them.
    pub async fn events_near_ts(
        &self,
        room_id: &str,
        (ts, after): (i64, StreamPos),
        direction: Direction,
        until: StreamPos,
        limit: u32,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>, StoreError> {
        const FORWARD: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE room_id = $1 AND stream_pos <= $3 \
             AND (origin_server_ts > $2 OR (origin_server_ts = $2 AND stream_pos > $5)) \
             ORDER BY origin_server_ts ASC, stream_pos ASC LIMIT $4"
        );
        const BACKWARD: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE room_id = $1 AND stream_pos <= $3 \
             AND (origin_server_ts < $2 OR (origin_server_ts = $2 AND stream_pos < $5)) \
             ORDER BY origin_server_ts DESC, stream_pos DESC LIMIT $4"
        );
        let sql = match direction {
            Direction::Forward => FORWARD,
            Direction::Backward => BACKWARD,
        };
        fetch_events!(
            &self.inner.db,
            sqlx::query(sql)
                .bind(room_id)
                .bind(ts)
                .bind(until.0)
                .bind(i64::from(limit))
                .bind(after.0)
        )
    }

    /// The threads of a room whose roots and replies are at positions up to `until`, with
    /// their newest reply before `before`, newest reply first, at most `limit`. With
    /// `participated_only`, only threads `user_id` started or replied to.
    pub async fn thread_roots(
        &self,
        room_id: &str,
        user_id: &str,
        until: StreamPos,
        before: StreamPos,
        participated_only: bool,
        limit: u32,
    ) -> Result<Vec<ThreadRow>, StoreError> {
        // The root must be a stored event of the same room: a relation to an unknown event
        // is no thread. Counting happens in SQL so a long thread costs one row.
        const ALL: &str = "SELECT t.root, l.event_id AS latest_id, t.latest, t.n, \
             CAST(CASE WHEN t.mine = 1 OR r.sender = $2 THEN 1 ELSE 0 END AS BIGINT) AS participated \
             FROM (SELECT relates_to AS root, MAX(stream_pos) AS latest, COUNT(*) AS n, \
                   CAST(MAX(CASE WHEN sender = $2 THEN 1 ELSE 0 END) AS BIGINT) AS mine \
                   FROM events WHERE room_id = $1 AND rel_type = 'm.thread' AND stream_pos <= $3 \
                   GROUP BY relates_to) t \
             JOIN events r ON r.event_id = t.root AND r.room_id = $1 AND r.stream_pos <= $3 \
             JOIN events l ON l.stream_pos = t.latest \
             WHERE t.latest < $4 \
             ORDER BY t.latest DESC LIMIT $5";
        const PARTICIPATED: &str = "SELECT t.root, l.event_id AS latest_id, t.latest, t.n, \
             CAST(1 AS BIGINT) AS participated \
             FROM (SELECT relates_to AS root, MAX(stream_pos) AS latest, COUNT(*) AS n, \
                   CAST(MAX(CASE WHEN sender = $2 THEN 1 ELSE 0 END) AS BIGINT) AS mine \
                   FROM events WHERE room_id = $1 AND rel_type = 'm.thread' AND stream_pos <= $3 \
                   GROUP BY relates_to) t \
             JOIN events r ON r.event_id = t.root AND r.room_id = $1 AND r.stream_pos <= $3 \
             JOIN events l ON l.stream_pos = t.latest \
             WHERE t.latest < $4 AND (t.mine = 1 OR r.sender = $2) \
             ORDER BY t.latest DESC LIMIT $5";
        let sql = if participated_only { PARTICIPATED } else { ALL };
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(sql)
                .bind(room_id)
                .bind(user_id)
                .bind(until.0)
                .bind(before.0)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let participated: i64 = row.try_get("participated")?;
                out.push(ThreadRow {
                    root_id: row.try_get("root")?,
                    latest_id: row.try_get("latest_id")?,
                    latest_pos: StreamPos(row.try_get("latest")?),
                    count: row.try_get("n")?,
                    participated: participated == 1,
                });
            }
            Ok(out)
        })
    }

    /// The current state events of one type in a room (`m.space.child`, ...), with their
    /// positions.
    pub async fn room_state_of_type(
        &self,
        room_id: &str,
        event_type: &str,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE event_id IN ",
            "(SELECT event_id FROM current_state WHERE room_id = $1 AND event_type = $2)"
        );
        fetch_events!(
            &self.inner.db,
            sqlx::query(SQL).bind(room_id).bind(event_type)
        )
    }

    /// Points every alias of `from` at `to` (a room upgrade); returns how many moved.
    pub async fn move_aliases(&self, from: &str, to: &str) -> Result<u64, StoreError> {
        Ok(on_pool!(&self.inner.db, pool =>
            sqlx::query("UPDATE room_aliases SET room_id = $1 WHERE room_id = $2")
                .bind(to)
                .bind(from)
                .execute(pool)
                .await?
                .rows_affected()))
    }
}
