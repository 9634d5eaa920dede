//! Reading room events back from the stream.

use std::collections::HashMap;

use converge_core::{PersistedEvent, StreamPos};
use sqlx::Row;

use crate::db::{fetch_in, on_pool, placeholders};
use crate::{Store, StoreError};

macro_rules! event_columns {
    () => {
        "stream_pos, event_id, room_id, sender, event_type, state_key, origin_server_ts, json, \
         depth, unsigned, txn_device, txn_id, relates_to, rel_type, redacted_because"
    };
}
pub(crate) use event_columns;

macro_rules! event_from_row {
    ($row:expr) => {{
        let row = $row;
        let txn_device: Option<String> = row.try_get("txn_device")?;
        let txn_id: Option<String> = row.try_get("txn_id")?;
        let relates_to: Option<String> = row.try_get("relates_to")?;
        let rel_type: Option<String> = row.try_get("rel_type")?;
        (
            StreamPos(row.try_get("stream_pos")?),
            PersistedEvent {
                event_id: row.try_get("event_id")?,
                room_id: row.try_get("room_id")?,
                sender: row.try_get("sender")?,
                event_type: row.try_get("event_type")?,
                state_key: row.try_get("state_key")?,
                origin_server_ts: row.try_get("origin_server_ts")?,
                json: row.try_get("json")?,
                depth: row.try_get("depth")?,
                unsigned: row.try_get("unsigned")?,
                txn: txn_device.zip(txn_id),
                relation: relates_to.zip(rel_type),
                redacted_because: row.try_get("redacted_because")?,
            },
        )
    }};
}
pub(crate) use event_from_row;

/// Runs an event query and collects its rows.
macro_rules! fetch_events {
    ($db:expr, $query:expr) => {
        on_pool!($db, pool => {
            let rows = $query.fetch_all(pool).await?;
            let mut events = Vec::with_capacity(rows.len());
            for row in rows {
                events.push(event_from_row!(row));
            }
            Ok(events)
        })
    };
}
pub(crate) use fetch_events;

/// Which way a range of a room's events is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first.
    Backward,
}

impl Store {
    /// One event by its ID, with its stream position.
    pub async fn event(
        &self,
        event_id: &str,
    ) -> Result<Option<(StreamPos, PersistedEvent)>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE event_id = $1"
        );
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(SQL).bind(event_id).fetch_optional(pool).await?;
            Ok(match row { Some(row) => Some(event_from_row!(row)), None => None })
        })
    }

    /// The event at a stream position, if that position holds one.
    pub async fn event_at(&self, pos: StreamPos) -> Result<Option<PersistedEvent>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE stream_pos = $1"
        );
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(SQL).bind(pos.0).fetch_optional(pool).await?;
            Ok(match row { Some(row) => Some(event_from_row!(row).1), None => None })
        })
    }

    /// For each room `user_id` has a membership in, the position of its newest event of
    /// one of `types` (rooms without one are left out).
    pub async fn bump_positions(
        &self,
        user_id: &str,
        types: &[&str],
    ) -> Result<HashMap<String, StreamPos>, StoreError> {
        let placeholders = placeholders(types.len());
        let user_param = types.len() + 1;
        // Walking each room's events newest first finds the newest bumping event after a
        // few rows; SQLite is told to, or it may sort all of the room's messages instead.
        let index_hint = match &self.inner.db {
            crate::db::Db::Sqlite(_) => "INDEXED BY events_room",
            crate::db::Db::Postgres(_) => "",
        };
        let sql = format!(
            "SELECT m.room_id, (SELECT e.stream_pos FROM events e {index_hint} \
             WHERE e.room_id = m.room_id AND e.event_type IN ({placeholders}) \
             ORDER BY e.stream_pos DESC LIMIT 1) AS pos \
             FROM memberships m WHERE m.user_id = ${user_param}"
        );
        on_pool!(&self.inner.db, pool => {
            // Only placeholders and a fixed index name are formatted into the SQL.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for t in types {
                query = query.bind(*t);
            }
            let rows = query.bind(user_id).fetch_all(pool).await?;
            let mut out = HashMap::with_capacity(rows.len());
            for row in rows {
                if let Some(pos) = row.try_get::<Option<i64>, _>("pos")? {
                    out.insert(row.try_get("room_id")?, StreamPos(pos));
                }
            }
            Ok(out)
        })
    }

    /// The events with these IDs (unknown IDs are skipped), in stream order.
    pub async fn events_by_id(
        &self,
        event_ids: &[&str],
    ) -> Result<Vec<PersistedEvent>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE event_id IN ({in}) ORDER BY stream_pos"
        );
        Ok(fetch_in!(&self.inner.db, SQL, event_ids, |row| {
            event_from_row!(row).1
        }))
    }

    /// Events after `after`, oldest first, at most `limit` of them, across all rooms.
    pub async fn events_after(
        &self,
        after: StreamPos,
        limit: u32,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE stream_pos > $1 ORDER BY stream_pos LIMIT $2"
        );
        fetch_events!(
            &self.inner.db,
            sqlx::query(SQL).bind(after.0).bind(i64::from(limit))
        )
    }

    /// A room's events with `after < position <= until`, at most `limit`, read in
    /// `direction` (so a backward read returns the newest `limit` events of the range).
    pub async fn room_events(
        &self,
        room_id: &str,
        after: StreamPos,
        until: StreamPos,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>, StoreError> {
        const FORWARD: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE room_id = $1 AND stream_pos > $2 AND stream_pos <= $3 ORDER BY stream_pos ASC LIMIT $4"
        );
        const BACKWARD: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE room_id = $1 AND stream_pos > $2 AND stream_pos <= $3 ORDER BY stream_pos DESC LIMIT $4"
        );
        let sql = match direction {
            Direction::Forward => FORWARD,
            Direction::Backward => BACKWARD,
        };
        fetch_events!(
            &self.inner.db,
            sqlx::query(sql)
                .bind(room_id)
                .bind(after.0)
                .bind(until.0)
                .bind(i64::from(limit))
        )
    }

    /// The event a device sent with a transaction key, if it did.
    pub async fn event_by_txn(
        &self,
        sender: &str,
        device_id: &str,
        txn: &str,
    ) -> Result<Option<String>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(
                "SELECT event_id FROM events WHERE sender = $1 AND txn_device = $2 AND txn_id = $3",
            )
            .bind(sender)
            .bind(device_id)
            .bind(txn)
            .fetch_optional(pool)
            .await?;
            Ok(match row { Some(row) => Some(row.try_get("event_id")?), None => None })
        })
    }

    /// Events relating to `event_id` in `room_id` with `after < position < before`, at
    /// most `limit`, newest first (`Backward`) or oldest first (`Forward`).
    pub async fn relations(
        &self,
        room_id: &str,
        event_id: &str,
        after: StreamPos,
        before: StreamPos,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>, StoreError> {
        const BACKWARD: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE relates_to = $1 AND room_id = $2 AND stream_pos > $3 AND stream_pos < $4 \
             ORDER BY stream_pos DESC LIMIT $5"
        );
        const FORWARD: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE relates_to = $1 AND room_id = $2 AND stream_pos > $3 AND stream_pos < $4 \
             ORDER BY stream_pos ASC LIMIT $5"
        );
        let sql = match direction {
            Direction::Backward => BACKWARD,
            Direction::Forward => FORWARD,
        };
        fetch_events!(
            &self.inner.db,
            sqlx::query(sql)
                .bind(event_id)
                .bind(room_id)
                .bind(after.0)
                .bind(before.0)
                .bind(i64::from(limit))
        )
    }

    /// Events after `after`, oldest first, in the rooms `user_id` is joined to now, plus
    /// membership events about `user_id` anywhere (so invites are seen).
    pub async fn events_visible_to(
        &self,
        user_id: &str,
        after: StreamPos,
        limit: u32,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE stream_pos > $1 AND (room_id IN \
             (SELECT room_id FROM memberships WHERE user_id = $2 AND membership = 'join') \
             OR (event_type = 'm.room.member' AND state_key = $2)) \
             ORDER BY stream_pos LIMIT $3"
        );
        fetch_events!(
            &self.inner.db,
            sqlx::query(SQL)
                .bind(after.0)
                .bind(user_id)
                .bind(i64::from(limit))
        )
    }

    /// How a room's history visibility and `user_id`'s membership changed, oldest first:
    /// `(position, history_visibility)` and `(position, membership)` as their events set them.
    pub async fn visibility_changes(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> Result<(Vec<(StreamPos, String)>, Vec<(StreamPos, String)>), StoreError> {
        let rows: Vec<(i64, String, String)> = on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT stream_pos, event_type, json FROM events WHERE room_id = $1 AND \
                 ((event_type = 'm.room.history_visibility' AND state_key = '') OR \
                 (event_type = 'm.room.member' AND state_key = $2)) ORDER BY stream_pos",
            )
            .bind(room_id)
            .bind(user_id)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push((row.try_get("stream_pos")?, row.try_get("event_type")?, row.try_get("json")?));
            }
            out
        });
        let (mut settings, mut memberships) = (Vec::new(), Vec::new());
        for (pos, event_type, json) in rows {
            let content = serde_json::from_str::<serde_json::Value>(&json)
                .map(|pdu| pdu["content"].clone())
                .unwrap_or_default();
            if event_type == "m.room.member" {
                let membership = content["membership"].as_str().unwrap_or("leave").to_owned();
                memberships.push((StreamPos(pos), membership));
            } else {
                let setting = content["history_visibility"]
                    .as_str()
                    .unwrap_or("shared")
                    .to_owned();
                settings.push((StreamPos(pos), setting));
            }
        }
        Ok((settings, memberships))
    }
}
