//! What the admin pages and analytics read: per-room daily counts (kept by the ordered
//! writer), daily active users (kept with a device's last-seen time), named daily counters,
//! the rooms listing, and rooms shut down. Every query reads these small tables by day or by
//! room, never the events.

use sqlx::Row;

use crate::db::on_pool;
use crate::{Store, StoreError};

/// A day in milliseconds: days are counted since the Unix epoch, in UTC.
pub const DAY_MS: i64 = 86_400_000;

/// A room as the admin pages list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomSummary {
    pub room_id: String,
    pub creator: String,
    pub is_public: bool,
    pub created_ts: i64,
    pub joined_members: i64,
    pub events: i64,
    /// The current `m.room.name` and `m.room.canonical_alias` events, as JSON.
    pub name_event: Option<String>,
    pub alias_event: Option<String>,
    pub blocked: bool,
}

/// One day's count of something.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayCount {
    pub day: i64,
    pub count: i64,
}

impl Store {
    /// Adds to named daily counters (gateway traffic and the like).
    pub async fn add_counters(&self, counts: &[(i64, &str, i64)]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin().await?;
            for (day, name, count) in counts {
                sqlx::query(
                    "INSERT INTO daily_counters (day, name, count) VALUES ($1, $2, $3) \
                     ON CONFLICT (day, name) DO UPDATE SET count = daily_counters.count + excluded.count",
                )
                .bind(day).bind(name).bind(count)
                .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The named counters from `from_day` on: (day, name, count), by day.
    pub async fn counters(&self, from_day: i64) -> Result<Vec<(i64, String, i64)>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT day, name, count FROM daily_counters WHERE day >= $1 ORDER BY day, name",
            )
            .bind(from_day)
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push((row.try_get("day")?, row.try_get("name")?, row.try_get("count")?));
            }
            Ok(out)
        })
    }

    /// Messages per day in all rooms from `from_day` on.
    pub async fn messages_per_day(&self, from_day: i64) -> Result<Vec<DayCount>, StoreError> {
        self.day_counts(
            "SELECT day, CAST(SUM(messages) AS BIGINT) AS n FROM room_daily_stats WHERE day >= $1 AND messages > 0 \
             GROUP BY day ORDER BY day",
            from_day,
        )
        .await
    }

    /// Users active each day from `from_day` on.
    pub async fn daily_active_users(&self, from_day: i64) -> Result<Vec<DayCount>, StoreError> {
        self.day_counts(
            "SELECT day, COUNT(*) AS n FROM daily_active_users WHERE day >= $1 \
             GROUP BY day ORDER BY day",
            from_day,
        )
        .await
    }

    async fn day_counts(
        &self,
        sql: &'static str,
        from_day: i64,
    ) -> Result<Vec<DayCount>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(sql).bind(from_day).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(DayCount { day: row.try_get("day")?, count: row.try_get("n")? });
            }
            Ok(out)
        })
    }

    /// How many different users were active from `from_day` on.
    pub async fn active_users_since(&self, from_day: i64) -> Result<i64, StoreError> {
        on_pool!(&self.inner.db, pool => Ok(sqlx::query(
            "SELECT COUNT(DISTINCT localpart) AS n FROM daily_active_users WHERE day >= $1",
        )
        .bind(from_day)
        .fetch_one(pool).await?.try_get("n")?))
    }

    /// The rooms with the most messages from `from_day` on, at most `limit`.
    pub async fn top_rooms(
        &self,
        from_day: i64,
        limit: u32,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT room_id, CAST(SUM(messages) AS BIGINT) AS n FROM room_daily_stats WHERE day >= $1 \
                 GROUP BY room_id HAVING SUM(messages) > 0 ORDER BY n DESC, room_id LIMIT $2",
            )
            .bind(from_day).bind(i64::from(limit))
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push((row.try_get("room_id")?, row.try_get("n")?));
            }
            Ok(out)
        })
    }

    /// Messages per day from `from_day` on in one room.
    pub async fn room_messages_per_day(
        &self,
        room_id: &str,
        from_day: i64,
    ) -> Result<Vec<DayCount>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT day, messages AS n FROM room_daily_stats WHERE room_id = $1 AND day >= $2 \
                 AND messages > 0 ORDER BY day",
            )
            .bind(room_id).bind(from_day)
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(DayCount { day: row.try_get("day")?, count: row.try_get("n")? });
            }
            Ok(out)
        })
    }

    /// The media stored: how many files and their bytes.
    pub async fn media_totals(&self) -> Result<(i64, i64), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM media \
                 WHERE size IS NOT NULL",
            )
            .fetch_one(pool).await?;
            Ok((row.try_get("n")?, row.try_get("bytes")?))
        })
    }

    /// Rooms in ID order after `after`, at most `limit`, with what the admin pages show.
    pub async fn list_rooms(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RoomSummary>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT r.room_id, r.creator, r.is_public, r.created_ts, \
                 (SELECT COUNT(*) FROM memberships m WHERE m.room_id = r.room_id AND m.membership = 'join') AS joined, \
                 (SELECT CAST(COALESCE(SUM(s.events), 0) AS BIGINT) FROM room_daily_stats s WHERE s.room_id = r.room_id) AS events, \
                 (SELECT e.json FROM current_state c JOIN events e ON e.event_id = c.event_id \
                  WHERE c.room_id = r.room_id AND c.event_type = 'm.room.name' AND c.state_key = '') AS name_event, \
                 (SELECT e.json FROM current_state c JOIN events e ON e.event_id = c.event_id \
                  WHERE c.room_id = r.room_id AND c.event_type = 'm.room.canonical_alias' AND c.state_key = '') AS alias_event, \
                 EXISTS (SELECT 1 FROM blocked_rooms b WHERE b.room_id = r.room_id) AS blocked \
                 FROM rooms r WHERE r.room_id > $1 ORDER BY r.room_id LIMIT $2",
            )
            .bind(after.unwrap_or("")).bind(i64::from(limit))
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(RoomSummary {
                    room_id: row.try_get("room_id")?,
                    creator: row.try_get("creator")?,
                    is_public: row.try_get("is_public")?,
                    created_ts: row.try_get("created_ts")?,
                    joined_members: row.try_get("joined")?,
                    events: row.try_get("events")?,
                    name_event: row.try_get("name_event")?,
                    alias_event: row.try_get("alias_event")?,
                    blocked: row.try_get("blocked")?,
                });
            }
            Ok(out)
        })
    }

    /// Marks a room as shut down by a server admin.
    pub async fn block_room(&self, room_id: &str, by: &str, ts: i64) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query(
            "INSERT INTO blocked_rooms (room_id, blocked_by, blocked_ts) VALUES ($1, $2, $3) \
             ON CONFLICT (room_id) DO NOTHING",
        )
        .bind(room_id).bind(by).bind(ts)
        .execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Whether a server admin shut the room down.
    pub async fn room_blocked(&self, room_id: &str) -> Result<bool, StoreError> {
        on_pool!(&self.inner.db, pool => Ok(sqlx::query(
            "SELECT 1 AS one FROM blocked_rooms WHERE room_id = $1",
        )
        .bind(room_id)
        .fetch_optional(pool).await?.is_some()))
    }
}
