//! Push: the notification actions stored with each event (counted for unread counts,
//! listed by `/notifications`, delivered to pushers) and the pushers themselves.

use converge_core::StreamPos;
use sqlx::Row;

use crate::db::{BeginWrite, on_pool};
use crate::{Store, StoreError};

/// What a member's push rules decided for one event, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationRow {
    pub stream_pos: StreamPos,
    pub room_id: String,
    pub event_id: String,
    pub thread_id: String,
    pub highlight: bool,
    pub actions: String,
    pub ts: i64,
}

/// Unread notification counts of one thread (`main` for the main timeline).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadCounts {
    pub thread_id: String,
    pub notifications: u64,
    pub highlights: u64,
}

/// A pusher: where a user's notifications are delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PusherRow {
    pub user_id: String,
    pub app_id: String,
    pub pushkey: String,
    pub kind: String,
    pub app_display_name: String,
    pub device_display_name: String,
    pub profile_tag: Option<String>,
    pub lang: String,
    /// The pusher's `data` object as JSON (`url`, `format`, ...).
    pub data: String,
    pub created_ts: i64,
    /// Notifications up to here are delivered.
    pub delivered_pos: StreamPos,
    pub failures: i64,
    pub retry_at: i64,
    pub last_error: Option<String>,
}

const PUSHER_COLUMNS: &str = "user_id, app_id, pushkey, kind, app_display_name, \
     device_display_name, profile_tag, lang, data, created_ts, delivered_pos, failures, retry_at, last_error";

macro_rules! pusher_from_row {
    ($row:expr) => {{
        let row = $row;
        PusherRow {
            user_id: row.try_get("user_id")?,
            app_id: row.try_get("app_id")?,
            pushkey: row.try_get("pushkey")?,
            kind: row.try_get("kind")?,
            app_display_name: row.try_get("app_display_name")?,
            device_display_name: row.try_get("device_display_name")?,
            profile_tag: row.try_get("profile_tag")?,
            lang: row.try_get("lang")?,
            data: row.try_get("data")?,
            created_ts: row.try_get("created_ts")?,
            delivered_pos: StreamPos(row.try_get("delivered_pos")?),
            failures: row.try_get("failures")?,
            retry_at: row.try_get("retry_at")?,
            last_error: row.try_get("last_error")?,
        }
    }};
}

/// A user's notifications: in rooms they are joined to, the events since they joined that
/// are not their own and notify them (by the members' outcome, unless a row of their own
/// says otherwise); in rooms they are invited to, their own rows that notify (the invite).
/// Rooms they left notify them no more. `$1` is the user.
const USER_NOTIFICATIONS: &str = "\
    SELECT p.stream_pos, p.room_id, p.event_id, p.thread_id, p.ts, \
           COALESCE(x.highlight, p.highlight) AS highlight, COALESCE(x.actions, p.actions) AS actions \
    FROM memberships m JOIN event_push p ON p.room_id = m.room_id AND p.stream_pos > m.changed_pos \
    LEFT JOIN event_push_exceptions x ON x.stream_pos = p.stream_pos AND x.user_id = $1 \
    WHERE m.user_id = $1 AND m.membership = 'join' AND p.sender <> $1 \
      AND COALESCE(x.notify, p.members_notify) \
    UNION ALL \
    SELECT p.stream_pos, p.room_id, p.event_id, p.thread_id, p.ts, x.highlight, x.actions \
    FROM event_push_exceptions x JOIN event_push p ON p.stream_pos = x.stream_pos \
    WHERE x.user_id = $1 AND x.notify AND EXISTS (SELECT 1 FROM memberships m \
      WHERE m.user_id = $1 AND m.room_id = p.room_id AND m.membership = 'invite')";

macro_rules! notification_from_row {
    ($row:expr) => {{
        let row = $row;
        NotificationRow {
            stream_pos: StreamPos(row.try_get("stream_pos")?),
            room_id: row.try_get("room_id")?,
            event_id: row.try_get("event_id")?,
            thread_id: row.try_get("thread_id")?,
            highlight: row.try_get("highlight")?,
            actions: row.try_get("actions")?,
            ts: row.try_get("ts")?,
        }
    }};
}

impl Store {
    /// A user's notification counts in a room after `after`, per thread: events after that
    /// position (and after they joined) that notify them.
    pub async fn notification_counts(
        &self,
        user_id: &str,
        room_id: &str,
        after: StreamPos,
    ) -> Result<Vec<ThreadCounts>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT p.thread_id, COUNT(*) AS n, \
                 SUM(CASE WHEN COALESCE(x.highlight, p.highlight) THEN 1 ELSE 0 END) AS h \
                 FROM event_push p \
                 LEFT JOIN event_push_exceptions x ON x.stream_pos = p.stream_pos AND x.user_id = $1 \
                 WHERE p.room_id = $2 AND p.stream_pos > $3 AND CASE WHEN x.user_id IS NULL THEN \
                   p.members_notify AND p.sender <> $1 AND p.stream_pos > COALESCE((SELECT m.changed_pos \
                   FROM memberships m WHERE m.user_id = $1 AND m.room_id = $2 AND m.membership = 'join'), \
                   9223372036854775807) \
                 ELSE x.notify END \
                 GROUP BY p.thread_id",
            )
            .bind(user_id).bind(room_id).bind(after.0)
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let n: i64 = row.try_get("n")?;
                let h: Option<i64> = row.try_get("h")?;
                out.push(ThreadCounts {
                    thread_id: row.try_get("thread_id")?,
                    notifications: n.max(0) as u64,
                    highlights: h.unwrap_or(0).max(0) as u64,
                });
            }
            Ok(out)
        })
    }

    /// The positions of the events a user's read receipts (public and private) point at in
    /// a room, the newest per thread (`""` for unthreaded receipts).
    pub async fn read_positions(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> Result<Vec<(String, StreamPos)>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT r.thread_id, MAX(e.stream_pos) AS pos FROM receipts r \
                 JOIN events e ON e.event_id = r.event_id \
                 WHERE r.room_id = $1 AND r.user_id = $2 AND r.receipt_type IN ('m.read', 'm.read.private') \
                 GROUP BY r.thread_id",
            )
            .bind(room_id).bind(user_id)
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push((row.try_get("thread_id")?, StreamPos(row.try_get("pos")?)));
            }
            Ok(out)
        })
    }

    /// A user's notifications, newest first, before `before` (exclusive), at most `limit`;
    /// only highlights if asked.
    pub async fn notifications(
        &self,
        user_id: &str,
        before: StreamPos,
        limit: u32,
        only_highlight: bool,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let sql = format!(
            "SELECT * FROM ({USER_NOTIFICATIONS}) n WHERE n.stream_pos < $2 AND (n.highlight OR NOT $3) \
             ORDER BY n.stream_pos DESC LIMIT $4"
        );
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(user_id).bind(before.0).bind(only_highlight).bind(i64::from(limit))
                .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(notification_from_row!(row));
            }
            Ok(out)
        })
    }

    /// A user's notifications after `after` (oldest first, at most `limit`), for delivery.
    pub async fn notifications_after(
        &self,
        user_id: &str,
        after: StreamPos,
        limit: u32,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let sql = format!(
            "SELECT * FROM ({USER_NOTIFICATIONS}) n WHERE n.stream_pos > $2 \
             ORDER BY n.stream_pos LIMIT $3"
        );
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(user_id).bind(after.0).bind(i64::from(limit))
                .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(notification_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Every pusher of a user, or of everyone.
    pub async fn pushers(&self, user_id: Option<&str>) -> Result<Vec<PusherRow>, StoreError> {
        let sql = format!(
            "SELECT {PUSHER_COLUMNS} FROM pushers WHERE ($1 IS NULL OR user_id = $1) \
             ORDER BY user_id, app_id, pushkey"
        );
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(user_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(pusher_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Creates or updates a pusher (keeping its delivery state), and with `exclusive`
    /// removes other users' pushers with the same app ID and pushkey (`append: false`).
    pub async fn set_pusher(&self, pusher: &PusherRow, exclusive: bool) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            if exclusive {
                sqlx::query("DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3")
                    .bind(&pusher.app_id).bind(&pusher.pushkey).bind(&pusher.user_id)
                    .execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name, device_display_name, \
                 profile_tag, lang, data, created_ts, delivered_pos, failures, retry_at, last_error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, 0, NULL) \
                 ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET kind = excluded.kind, \
                 app_display_name = excluded.app_display_name, device_display_name = excluded.device_display_name, \
                 profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data",
            )
            .bind(&pusher.user_id).bind(&pusher.app_id).bind(&pusher.pushkey).bind(&pusher.kind)
            .bind(&pusher.app_display_name).bind(&pusher.device_display_name).bind(&pusher.profile_tag)
            .bind(&pusher.lang).bind(&pusher.data).bind(pusher.created_ts).bind(pusher.delivered_pos.0)
            .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Deletes a pusher; `false` if there was none.
    pub async fn delete_pusher(
        &self,
        user_id: &str,
        app_id: &str,
        pushkey: &str,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(&self.inner.db, pool => sqlx::query(
            "DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3",
        )
        .bind(user_id).bind(app_id).bind(pushkey)
        .execute(pool).await?.rows_affected());
        Ok(n == 1)
    }

    /// Records a delivery: everything up to `pos` arrived; failures are cleared.
    pub async fn pusher_delivered(
        &self,
        pusher: &PusherRow,
        pos: StreamPos,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query(
            "UPDATE pushers SET delivered_pos = $1, failures = 0, retry_at = 0, last_error = NULL \
             WHERE user_id = $2 AND app_id = $3 AND pushkey = $4",
        )
        .bind(pos.0).bind(&pusher.user_id).bind(&pusher.app_id).bind(&pusher.pushkey)
        .execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Records a failed delivery: one more failure, the next try at `retry_at`.
    pub async fn pusher_failed(
        &self,
        pusher: &PusherRow,
        retry_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query(
            "UPDATE pushers SET failures = failures + 1, retry_at = $1, last_error = $2 \
             WHERE user_id = $3 AND app_id = $4 AND pushkey = $5",
        )
        .bind(retry_at).bind(error).bind(&pusher.user_id).bind(&pusher.app_id).bind(&pusher.pushkey)
        .execute(pool).await.map(drop))?;
        Ok(())
    }

    /// How many of a user's notifications are unread, in all rooms: those after each room's
    /// newest read receipt and, in rooms the user joined, after the join (an invite counts
    /// until it is accepted).
    pub async fn unread_total(&self, user_id: &str) -> Result<i64, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM ({USER_NOTIFICATIONS}) a WHERE a.stream_pos > \
             COALESCE((SELECT MAX(e.stream_pos) FROM receipts r JOIN events e ON e.event_id = r.event_id \
             WHERE r.room_id = a.room_id AND r.user_id = $1 AND r.receipt_type IN ('m.read', 'm.read.private')), 0)"
        );
        on_pool!(&self.inner.db, pool => Ok(sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(user_id)
            .fetch_one(pool).await?.try_get("n")?))
    }
}
