//! Media metadata: uploads, thumbnails, cached URL previews, and server facts.
//!
//! The bytes live on disk, named by their SHA-256; the store only says which media ID
//! points at which content.

use sqlx::Row;

use crate::db::{BeginWrite, on_pool};
use crate::{Store, StoreError};

/// One media item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaRow {
    pub media_id: String,
    pub uploader: String,
    /// `None` while the media is reserved (`/create`) but not uploaded.
    pub sha256: Option<String>,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub size: Option<i64>,
    pub created_ts: i64,
    pub pending_until: Option<i64>,
}

/// A generated thumbnail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThumbnailRow {
    pub width: i64,
    pub height: i64,
    pub method: String,
    pub content_type: String,
    pub sha256: String,
    pub size: i64,
}

macro_rules! media_from_row {
    ($row:expr) => {{
        let row = $row;
        MediaRow {
            media_id: row.try_get("media_id")?,
            uploader: row.try_get("uploader")?,
            sha256: row.try_get("sha256")?,
            content_type: row.try_get("content_type")?,
            filename: row.try_get("filename")?,
            size: row.try_get("size")?,
            created_ts: row.try_get("created_ts")?,
            pending_until: row.try_get("pending_until")?,
        }
    }};
}

/// The hashes among `$candidates` that no media row and no thumbnail uses any more,
/// read inside the transaction `$tx` that just deleted rows.
macro_rules! unused_hashes {
    ($tx:expr, $candidates:expr) => {{
        let mut unused = Vec::new();
        for sha in $candidates {
            let used: i64 = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM media WHERE sha256 = $1) + (SELECT COUNT(*) FROM media_thumbnails WHERE sha256 = $1) AS n",
            )
            .bind(&sha)
            .fetch_one($tx)
            .await?
            .try_get("n")?;
            if used == 0 {
                unused.push(sha);
            }
        }
        unused
    }};
}

impl Store {
    /// Records a media item (uploaded, or reserved when `sha256` is `None`).
    pub async fn insert_media(&self, media: &MediaRow) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool =>
            sqlx::query(
                "INSERT INTO media (media_id, uploader, sha256, content_type, filename, size, created_ts, pending_until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&media.media_id).bind(&media.uploader).bind(&media.sha256).bind(&media.content_type)
            .bind(&media.filename).bind(media.size).bind(media.created_ts).bind(media.pending_until)
            .execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Fills in a reserved media item; `Ok(false)` if it is not reserved by `uploader`
    /// (unknown, someone else's, or already uploaded).
    pub async fn complete_media(
        &self,
        media_id: &str,
        uploader: &str,
        sha256: &str,
        content_type: Option<&str>,
        filename: Option<&str>,
        size: i64,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(&self.inner.db, pool =>
            sqlx::query(
                "UPDATE media SET sha256 = $1, content_type = $2, filename = $3, size = $4, pending_until = NULL \
                 WHERE media_id = $5 AND uploader = $6 AND sha256 IS NULL",
            )
            .bind(sha256).bind(content_type).bind(filename).bind(size).bind(media_id).bind(uploader)
            .execute(pool).await?.rows_affected());
        Ok(done == 1)
    }

    pub async fn media(&self, media_id: &str) -> Result<Option<MediaRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(
                "SELECT media_id, uploader, sha256, content_type, filename, size, created_ts, pending_until \
                 FROM media WHERE media_id = $1",
            )
            .bind(media_id)
            .fetch_optional(pool)
            .await?;
            Ok(match row { Some(row) => Some(media_from_row!(row)), None => None })
        })
    }

    /// How many reservations a user holds that are neither uploaded nor lapsed at `now`.
    pub async fn pending_media_count(&self, uploader: &str, now: i64) -> Result<i64, StoreError> {
        on_pool!(&self.inner.db, pool => {
            Ok(sqlx::query(
                "SELECT COUNT(*) AS n FROM media WHERE uploader = $1 AND sha256 IS NULL AND pending_until > $2",
            )
            .bind(uploader)
            .bind(now)
            .fetch_one(pool)
            .await?
            .try_get::<i64, _>("n")?)
        })
    }

    pub async fn thumbnail(
        &self,
        media_id: &str,
        width: i64,
        height: i64,
        method: &str,
    ) -> Result<Option<ThumbnailRow>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(
                "SELECT width, height, method, content_type, sha256, size FROM media_thumbnails \
                 WHERE media_id = $1 AND width = $2 AND height = $3 AND method = $4",
            )
            .bind(media_id).bind(width).bind(height).bind(method)
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some(ThumbnailRow {
                    width: row.try_get("width")?,
                    height: row.try_get("height")?,
                    method: row.try_get("method")?,
                    content_type: row.try_get("content_type")?,
                    sha256: row.try_get("sha256")?,
                    size: row.try_get("size")?,
                }),
                None => None,
            })
        })
    }

    pub async fn insert_thumbnail(
        &self,
        media_id: &str,
        thumbnail: &ThumbnailRow,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool =>
            sqlx::query(
                "INSERT INTO media_thumbnails (media_id, width, height, method, content_type, sha256, size) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (media_id, width, height, method) DO NOTHING",
            )
            .bind(media_id).bind(thumbnail.width).bind(thumbnail.height).bind(&thumbnail.method)
            .bind(&thumbnail.content_type).bind(&thumbnail.sha256).bind(thumbnail.size)
            .execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Deletes media created before `before` (and their thumbnails); returns the content
    /// hashes no remaining media or thumbnail uses, so their files can be removed.
    pub async fn purge_media_before(&self, before: i64) -> Result<(u64, Vec<String>), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            let rows = sqlx::query(
                "SELECT sha256 FROM media WHERE created_ts < $1 AND sha256 IS NOT NULL \
                 UNION SELECT t.sha256 FROM media_thumbnails t JOIN media m ON m.media_id = t.media_id WHERE m.created_ts < $1",
            )
            .bind(before)
            .fetch_all(&mut *tx)
            .await?;
            let candidates: Vec<String> = rows.iter().map(|r| r.try_get("sha256")).collect::<Result<_, _>>()?;
            sqlx::query("DELETE FROM media_thumbnails WHERE media_id IN (SELECT media_id FROM media WHERE created_ts < $1)")
                .bind(before)
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query("DELETE FROM media WHERE created_ts < $1").bind(before).execute(&mut *tx).await?.rows_affected();
            let orphans = unused_hashes!(&mut *tx, candidates);
            tx.commit().await?;
            Ok((deleted, orphans))
        })
    }

    /// Media created before `before` that nothing points at: no event (its content, as
    /// stored) and no profile mentions its `mxc://` URI. `mxc_prefix` is
    /// `mxc://<server_name>/`. Media IDs are letters and digits only, so they are safe
    /// inside a LIKE pattern.
    pub async fn unreferenced_media(
        &self,
        mxc_prefix: &str,
        before: i64,
    ) -> Result<Vec<String>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT m.media_id FROM media m WHERE m.created_ts < $1 AND m.sha256 IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.json LIKE '%' || $2 || m.media_id || '%') \
                 AND NOT EXISTS (SELECT 1 FROM users u WHERE u.avatar_url = $2 || m.media_id) \
                 ORDER BY m.media_id",
            )
            .bind(before)
            .bind(mxc_prefix)
            .fetch_all(pool)
            .await?;
            rows.iter().map(|row| row.try_get("media_id").map_err(StoreError::from)).collect()
        })
    }

    /// Deletes the named media (and their thumbnails); returns the content hashes no
    /// remaining media or thumbnail uses.
    pub async fn delete_media(&self, media_ids: &[String]) -> Result<Vec<String>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            let mut candidates = Vec::new();
            for id in media_ids {
                let rows = sqlx::query(
                    "SELECT sha256 FROM media WHERE media_id = $1 AND sha256 IS NOT NULL \
                     UNION SELECT sha256 FROM media_thumbnails WHERE media_id = $1",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                for row in rows {
                    candidates.push(row.try_get::<String, _>("sha256")?);
                }
                sqlx::query("DELETE FROM media_thumbnails WHERE media_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM media WHERE media_id = $1").bind(id).execute(&mut *tx).await?;
            }
            candidates.sort();
            candidates.dedup();
            let orphans = unused_hashes!(&mut *tx, candidates);
            tx.commit().await?;
            Ok(orphans)
        })
    }

    pub async fn url_preview(
        &self,
        url: &str,
        newer_than: i64,
    ) -> Result<Option<String>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query("SELECT json FROM url_previews WHERE url = $1 AND fetched_ts > $2")
                .bind(url)
                .bind(newer_than)
                .fetch_optional(pool)
                .await?;
            Ok(match row { Some(row) => Some(row.try_get("json")?), None => None })
        })
    }

    pub async fn put_url_preview(&self, url: &str, json: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool =>
            sqlx::query(
                "INSERT INTO url_previews (url, json, fetched_ts) VALUES ($1, $2, $3) \
                 ON CONFLICT (url) DO UPDATE SET json = excluded.json, fetched_ts = excluded.fetched_ts",
            )
            .bind(url).bind(json).bind(now)
            .execute(pool).await.map(drop))?;
        Ok(())
    }

    /// A server fact, set once: returns the stored value, storing `value` if there was none.
    pub async fn server_meta_or_insert(
        &self,
        key: &str,
        value: &str,
    ) -> Result<String, StoreError> {
        on_pool!(&self.inner.db, pool => {
            sqlx::query("INSERT INTO server_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(pool)
                .await?;
            Ok(sqlx::query("SELECT value FROM server_meta WHERE key = $1")
                .bind(key)
                .fetch_one(pool)
                .await?
                .try_get::<String, _>("value")?)
        })
    }
}
