//! Rooms: their records, current state, memberships, aliases, directory visibility, and
//! the per-user rows that sync reads (account data, receipts, filters).

use converge_core::{PersistedEvent, StreamPos};
use sqlx::Row;

use crate::CONFLICT_RETRIES;
use crate::db::on_pool;
use crate::events::{event_columns, event_from_row, fetch_events};
use crate::{Store, StoreError};

/// A room's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomRow {
    pub room_id: String,
    pub room_version: String,
    pub creator: String,
    pub is_public: bool,
}

/// A user's membership in a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipRow {
    pub room_id: String,
    pub membership: String,
    pub event_id: String,
    /// The newest membership event (a profile change is one too).
    pub stream_pos: StreamPos,
    /// When the membership last changed its kind (joined, left, was invited ...).
    pub changed_pos: StreamPos,
    pub forgotten: bool,
}

/// One piece of account data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountDataRow {
    /// `None` for global account data.
    pub room_id: Option<String>,
    pub data_type: String,
    pub content: String,
    pub stream_pos: StreamPos,
}

/// One user's receipt of one type in a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptRow {
    pub room_id: String,
    pub receipt_type: String,
    pub user_id: String,
    /// The thread the receipt is for; empty for an unthreaded receipt.
    pub thread_id: String,
    pub event_id: String,
    pub ts: i64,
    pub stream_pos: StreamPos,
}

macro_rules! membership_from_row {
    ($row:expr) => {{
        let row = $row;
        MembershipRow {
            room_id: row.try_get("room_id")?,
            membership: row.try_get("membership")?,
            event_id: row.try_get("event_id")?,
            stream_pos: StreamPos(row.try_get("stream_pos")?),
            changed_pos: StreamPos(row.try_get("changed_pos")?),
            forgotten: row.try_get("forgotten")?,
        }
    }};
}

impl Store {
    /// A room's record.
    pub async fn room(&self, room_id: &str) -> Result<Option<RoomRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query("SELECT room_id, room_version, creator, is_public FROM rooms WHERE room_id = $1")
                .bind(room_id)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(row) => Some(RoomRow {
                    room_id: row.try_get("room_id")?,
                    room_version: row.try_get("room_version")?,
                    creator: row.try_get("creator")?,
                    is_public: row.try_get("is_public")?,
                }),
                None => None,
            })
        })
    }

    /// The events that make up a room's current state, with their positions.
    pub async fn room_state(
        &self,
        room_id: &str,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE event_id IN ",
            "(SELECT event_id FROM current_state WHERE room_id = $1)"
        );
        fetch_events!(&self.inner.db, sqlx::query(SQL).bind(room_id))
    }

    /// The current state events of a room that changed after `after`.
    pub async fn room_state_since(
        &self,
        room_id: &str,
        after: StreamPos,
    ) -> Result<Vec<(StreamPos, PersistedEvent)>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE event_id IN ",
            "(SELECT event_id FROM current_state WHERE room_id = $1 AND stream_pos > $2)"
        );
        fetch_events!(&self.inner.db, sqlx::query(SQL).bind(room_id).bind(after.0))
    }

    /// The newest event of a room: the one new events point at.
    pub async fn room_latest_event(
        &self,
        room_id: &str,
    ) -> Result<Option<(StreamPos, PersistedEvent)>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE room_id = $1 ORDER BY stream_pos DESC LIMIT 1"
        );
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(SQL).bind(room_id).fetch_optional(pool).await?;
            Ok(match row { Some(row) => Some(event_from_row!(row)), None => None })
        })
    }

    /// Every room a user has a membership in (any membership), with forgotten ones.
    pub async fn user_memberships(&self, user_id: &str) -> Result<Vec<MembershipRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT room_id, membership, event_id, stream_pos, changed_pos, forgotten FROM memberships WHERE user_id = $1",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(membership_from_row!(row));
            }
            Ok(out)
        })
    }

    /// Hides a room the user left from their room lists.
    pub async fn forget_room(&self, user_id: &str, room_id: &str) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool =>
            sqlx::query("UPDATE memberships SET forgotten = TRUE WHERE user_id = $1 AND room_id = $2")
                .bind(user_id).bind(room_id).execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Publishes a room in the directory, or takes it out.
    pub async fn set_room_public(&self, room_id: &str, public: bool) -> Result<(), StoreError> {
        let done = on_pool!(&self.inner.db, pool =>
            sqlx::query("UPDATE rooms SET is_public = $1 WHERE room_id = $2")
                .bind(public).bind(room_id).execute(pool).await?.rows_affected());
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// The rooms published in the directory.
    pub async fn public_rooms(&self) -> Result<Vec<String>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query("SELECT room_id FROM rooms WHERE is_public = TRUE ORDER BY room_id")
                .fetch_all(pool)
                .await?;
            rows.iter().map(|row| row.try_get("room_id").map_err(StoreError::from)).collect()
        })
    }

    /// Creates an alias; `Ok(false)` if it is taken.
    pub async fn create_alias(
        &self,
        alias: &str,
        room_id: &str,
        creator: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(&self.inner.db, pool =>
            sqlx::query(
                "INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (alias) DO NOTHING",
            )
            .bind(alias).bind(room_id).bind(creator).bind(now)
            .execute(pool).await?.rows_affected());
        Ok(done == 1)
    }

    /// The room and creator of an alias.
    pub async fn alias(&self, alias: &str) -> Result<Option<(String, String)>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query("SELECT room_id, creator FROM room_aliases WHERE alias = $1")
                .bind(alias)
                .fetch_optional(pool)
                .await?;
            Ok(match row { Some(row) => Some((row.try_get("room_id")?, row.try_get("creator")?)), None => None })
        })
    }

    /// Deletes an alias; `Ok(false)` if there was none.
    pub async fn delete_alias(&self, alias: &str) -> Result<bool, StoreError> {
        let done = on_pool!(&self.inner.db, pool =>
            sqlx::query("DELETE FROM room_aliases WHERE alias = $1").bind(alias).execute(pool).await?.rows_affected());
        Ok(done == 1)
    }

    /// A room's aliases.
    pub async fn room_aliases(&self, room_id: &str) -> Result<Vec<String>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query("SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias")
                .bind(room_id)
                .fetch_all(pool)
                .await?;
            rows.iter().map(|row| row.try_get("alias").map_err(StoreError::from)).collect()
        })
    }

    /// A user's account data changed after `after` (global and per room).
    pub async fn account_data_since(
        &self,
        user_id: &str,
        after: StreamPos,
    ) -> Result<Vec<AccountDataRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT room_id, data_type, content, stream_pos FROM account_data \
                 WHERE user_id = $1 AND stream_pos > $2 ORDER BY stream_pos",
            )
            .bind(user_id)
            .bind(after.0)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let room_id: String = row.try_get("room_id")?;
                out.push(AccountDataRow {
                    room_id: (!room_id.is_empty()).then_some(room_id),
                    data_type: row.try_get("data_type")?,
                    content: row.try_get("content")?,
                    stream_pos: StreamPos(row.try_get("stream_pos")?),
                });
            }
            Ok(out)
        })
    }

    /// One piece of account data.
    pub async fn account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
    ) -> Result<Option<String>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(
                "SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND data_type = $3",
            )
            .bind(user_id)
            .bind(room_id.unwrap_or(""))
            .bind(data_type)
            .fetch_optional(pool)
            .await?;
            Ok(match row { Some(row) => Some(row.try_get("content")?), None => None })
        })
    }

    /// Receipts in a room written after `after`.
    pub async fn receipts_since(
        &self,
        room_id: &str,
        after: StreamPos,
    ) -> Result<Vec<ReceiptRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, stream_pos FROM receipts \
                 WHERE room_id = $1 AND stream_pos > $2 ORDER BY stream_pos",
            )
            .bind(room_id)
            .bind(after.0)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(ReceiptRow {
                    room_id: row.try_get("room_id")?,
                    receipt_type: row.try_get("receipt_type")?,
                    user_id: row.try_get("user_id")?,
                    thread_id: row.try_get("thread_id")?,
                    event_id: row.try_get("event_id")?,
                    ts: row.try_get("ts")?,
                    stream_pos: StreamPos(row.try_get("stream_pos")?),
                });
            }
            Ok(out)
        })
    }

    /// Stores a filter and returns its ID (per user, counting up from 0). A filter the user
    /// stored before gets its old ID back: clients upload the same filter on every start.
    pub async fn create_filter(&self, user_id: &str, json: &str) -> Result<i64, StoreError> {
        // Two writers may pick the same next ID at once (PostgreSQL reads the maximum
        // without locking); the loser tries again with the next one.
        for _ in 0..CONFLICT_RETRIES {
            let attempt = on_pool!(&self.inner.db, pool => {
                let existing = sqlx::query(
                    "SELECT filter_id FROM filters WHERE user_id = $1 AND json = $2 \
                     ORDER BY filter_id LIMIT 1",
                )
                .bind(user_id)
                .bind(json)
                .fetch_optional(pool)
                .await?;
                if let Some(row) = existing {
                    return Ok(row.try_get("filter_id")?);
                }
                sqlx::query(
                    "INSERT INTO filters (user_id, filter_id, json) \
                     SELECT $1, COALESCE(MAX(filter_id) + 1, 0), $2 FROM filters WHERE user_id = $1 \
                     RETURNING filter_id",
                )
                .bind(user_id)
                .bind(json)
                .fetch_one(pool)
                .await
                .and_then(|row| row.try_get::<i64, _>("filter_id"))
            });
            match attempt {
                Ok(id) => return Ok(id),
                Err(err) if StoreError::is_unique_violation(&err) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(StoreError::Contended("filter IDs"))
    }

    /// A stored filter.
    pub async fn filter(
        &self,
        user_id: &str,
        filter_id: i64,
    ) -> Result<Option<String>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query("SELECT json FROM filters WHERE user_id = $1 AND filter_id = $2")
                .bind(user_id)
                .bind(filter_id)
                .fetch_optional(pool)
                .await?;
            Ok(match row { Some(row) => Some(row.try_get("json")?), None => None })
        })
    }

    /// Local users whose localpart or display name contains `term` (case-insensitive),
    /// at most `limit`: (localpart, display name, avatar URL).
    pub async fn search_users(
        &self,
        term: &str,
        limit: u32,
    ) -> Result<Vec<(String, Option<String>, Option<String>)>, StoreError> {
        let pattern = crate::accounts::contains_pattern(term);
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT localpart, displayname, avatar_url FROM users WHERE deactivated = FALSE AND \
                 (LOWER(localpart) LIKE $1 ESCAPE '\\' OR LOWER(COALESCE(displayname, '')) LIKE $1 ESCAPE '\\') \
                 ORDER BY localpart LIMIT $2",
            )
            .bind(pattern)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push((row.try_get("localpart")?, row.try_get("displayname")?, row.try_get("avatar_url")?));
            }
            Ok(out)
        })
    }
}
