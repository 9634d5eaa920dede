//! Reading room events back from the stream.

use converge_core::{PersistedEvent, StreamPos};
use sqlx::Row;

use crate::db::on_pool;
use crate::{Store, StoreError};

const EVENT_COLUMNS: &str =
    "stream_pos, event_id, room_id, sender, event_type, state_key, origin_server_ts, json";

macro_rules! event_from_row {
    ($row:expr) => {{
        let row = $row;
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
            },
        )
    }};
}

impl Store {
    /// One event by its ID, with its stream position.
    pub async fn event(
        &self,
        event_id: &str,
    ) -> Result<Option<(StreamPos, PersistedEvent)>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_id = $1");
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(event_id).fetch_optional(pool).await?;
            Ok(match row { Some(row) => Some(event_from_row!(row)), None => None })
        })
    }

    /// Events after `after`, oldest first, at most `limit` of them.
    pub async fn events_after(
        &self,
        after: StreamPos,
        limit: u32,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_pos > $1 ORDER BY stream_pos LIMIT $2"
        );
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(after.0).bind(i64::from(limit)).fetch_all(pool).await?;
            let mut events = Vec::with_capacity(rows.len());
            for row in rows {
                events.push(event_from_row!(row));
            }
            Ok(events)
        })
    }
}
