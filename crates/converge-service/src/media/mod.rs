//! The media repository: uploads streamed to content-addressed files, downloads,
//! thumbnails and URL previews.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#content-repository>. Files live
//! under `<data_dir>/media/<first two hex digits>/<sha256>`, so identical uploads are
//! stored once; the store maps media IDs to hashes. Media IDs and server names are
//! checked against a strict alphabet before anything touches a path.

mod preview;
mod thumbnail;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use converge_store::{MediaRow, Store};
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub use preview::Previewer;
pub use thumbnail::ThumbnailSpec;

/// Parses a thumbnail method (`scale` or `crop`).
pub fn thumbnail_method(method: &str) -> Option<thumbnail::Method> {
    thumbnail::Method::parse(method)
}

use crate::caller::Caller;
use crate::config::{Config, LegacyDownload};
use crate::error::{Error, Result};
use crate::ids::random_id;
use crate::now_ms;
use crate::ratelimit::{Limit, RateLimiter};

/// How long a `/create` reservation waits for its upload.
const RESERVATION_MS: i64 = 24 * 60 * 60 * 1000;
/// The key under which the start of authenticated-only media is remembered.
const FREEZE_KEY: &str = "media_freeze_ts";

/// An upload's bytes as they arrive; an error means the client broke off.
pub type Body = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<bytes::Bytes>> + Send>>;

/// What the client says about an upload, besides its bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Upload<'a> {
    pub content_type: Option<&'a str>,
    pub filename: Option<&'a str>,
    /// The `Content-Length` the client declared, if any.
    pub declared: Option<u64>,
}

/// A stored file ready to be served.
#[derive(Debug)]
pub struct MediaFile {
    pub path: PathBuf,
    pub size: u64,
    pub content_type: String,
    pub filename: Option<String>,
}

pub struct Media {
    store: Store,
    dir: PathBuf,
    server_name: String,
    max_upload: u64,
    max_pending: i64,
    legacy: LegacyDownload,
    /// Media created before this (ms) may be served on the legacy endpoints.
    freeze_ts: i64,
    limiter: Arc<RateLimiter>,
    pub thumbnails: thumbnail::Thumbnailer,
    pub previews: Previewer,
}

/// Whether a media ID or server name part is safe: a strict alphabet, so it can never
/// name another path.
pub fn valid_media_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Content types a browser may render inline. Everything else is served as an attachment.
pub fn inline_allowed(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "text/plain"
            | "image/jpeg"
            | "image/png"
            | "image/gif"
            | "image/webp"
            | "image/apng"
            | "image/avif"
            | "image/bmp"
            | "audio/mpeg"
            | "audio/mp4"
            | "audio/ogg"
            | "audio/wav"
            | "audio/wave"
            | "audio/x-wav"
            | "audio/webm"
            | "audio/aac"
            | "audio/flac"
            | "audio/opus"
            | "video/mp4"
            | "video/webm"
            | "video/ogg"
            | "video/quicktime"
            | "video/mpeg"
    )
}

/// A content type as given by the client, if it is a plausible `type/subtype`.
fn clean_content_type(value: Option<&str>) -> Option<String> {
    let value = value?.trim();
    let essence = value.split(';').next()?.trim();
    let (kind, sub) = essence.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    (token(kind) && token(sub) && value.len() <= 255 && value.is_ascii()).then(|| value.to_owned())
}

/// A file name as given by the client, without path separators or control characters.
fn clean_filename(value: Option<&str>) -> Option<String> {
    let value = value?;
    let name: String = value
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '/' | '\\'))
        .take(255)
        .collect();
    (!name.is_empty() && name != "." && name != "..").then_some(name)
}

impl Media {
    pub async fn new(
        config: &Config,
        store: Store,
        limiter: Arc<RateLimiter>,
    ) -> Result<Self, String> {
        let dir = config.data_dir.join("media");
        tokio::fs::create_dir_all(dir.join("tmp"))
            .await
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let freeze_ts = store
            .server_meta_or_insert(FREEZE_KEY, &now_ms().to_string())
            .await
            .map_err(|e| e.to_string())?
            .parse()
            .map_err(|_| "the stored media freeze time is not a number".to_owned())?;
        let previews = Previewer::new(&config.media.url_preview).map_err(|e| e.to_string())?;
        Ok(Self {
            thumbnails: thumbnail::Thumbnailer::new(config.media.max_thumbnail_pixels),
            previews,
            store,
            dir,
            server_name: config.server_name.clone(),
            max_upload: config.media.max_upload_size,
            max_pending: i64::from(config.media.max_pending_uploads),
            legacy: config.media.legacy_download,
            freeze_ts,
            limiter,
        })
    }

    pub fn max_upload(&self) -> u64 {
        self.max_upload
    }

    fn content_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(&sha256[..2]).join(sha256)
    }

    fn new_media_id() -> String {
        let mut id = random_id(24);
        id.make_ascii_uppercase();
        id
    }

    fn mxc(&self, media_id: &str) -> String {
        format!("mxc://{}/{media_id}", self.server_name)
    }

    /// `POST /_matrix/media/v3/upload`: streams the body to disk and returns its `mxc://`.
    pub async fn upload(&self, caller: &Caller, upload: Upload<'_>, body: Body) -> Result<String> {
        let Upload {
            content_type,
            filename,
            declared,
        } = upload;
        self.limiter.check_caller(Limit::Upload, caller)?;
        if declared.is_some_and(|len| len > self.max_upload) {
            return Err(Error::TooLarge {
                limit: self.max_upload,
            });
        }
        let (sha256, size) = self.store_body(body).await?;
        let media_id = Self::new_media_id();
        let row = MediaRow {
            media_id: media_id.clone(),
            uploader: caller.user_id.to_string(),
            sha256: Some(sha256),
            content_type: clean_content_type(content_type),
            filename: clean_filename(filename),
            size: Some(size as i64),
            created_ts: now_ms(),
            pending_until: None,
        };
        self.store.insert_media(&row).await?;
        Ok(self.mxc(&media_id))
    }

    /// `POST /_matrix/media/v1/create`: reserves a media ID to upload to later.
    pub async fn create(&self, caller: &Caller) -> Result<(String, i64)> {
        self.limiter.check_caller(Limit::Upload, caller)?;
        let now = now_ms();
        if self
            .store
            .pending_media_count(caller.user_id.as_str(), now)
            .await?
            >= self.max_pending
        {
            return Err(Error::LimitExceeded {
                retry_after_ms: 60_000,
            });
        }
        let media_id = Self::new_media_id();
        let row = MediaRow {
            media_id: media_id.clone(),
            uploader: caller.user_id.to_string(),
            sha256: None,
            content_type: None,
            filename: None,
            size: None,
            created_ts: now,
            pending_until: Some(now + RESERVATION_MS),
        };
        self.store.insert_media(&row).await?;
        Ok((self.mxc(&media_id), now + RESERVATION_MS))
    }

    /// `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`: fills a reservation.
    pub async fn upload_reserved(
        &self,
        caller: &Caller,
        server_name: &str,
        media_id: &str,
        upload: Upload<'_>,
        body: Body,
    ) -> Result<()> {
        let Upload {
            content_type,
            filename,
            declared,
        } = upload;
        let row = self.local_row(server_name, media_id).await?;
        if row.uploader != caller.user_id.as_str() {
            return Err(Error::forbidden(
                "this media ID was reserved by someone else",
            ));
        }
        if row.sha256.is_some() {
            return Err(Error::CannotOverwriteMedia);
        }
        if row.pending_until.is_some_and(|until| until < now_ms()) {
            return Err(Error::NotFound("the reservation has expired".into()));
        }
        if declared.is_some_and(|len| len > self.max_upload) {
            return Err(Error::TooLarge {
                limit: self.max_upload,
            });
        }
        let (sha256, size) = self.store_body(body).await?;
        let done = self
            .store
            .complete_media(
                media_id,
                caller.user_id.as_str(),
                &sha256,
                clean_content_type(content_type).as_deref(),
                clean_filename(filename).as_deref(),
                size as i64,
            )
            .await?;
        if !done {
            return Err(Error::CannotOverwriteMedia);
        }
        Ok(())
    }

    /// Streams a body into a temporary file, hashing it on the way and stopping as soon as
    /// it passes the size limit, then moves it to its content address.
    async fn store_body(&self, body: Body) -> Result<(String, u64)> {
        let tmp = self.dir.join("tmp").join(random_id(24));
        let result = self.write_tmp(&tmp, body).await;
        let (sha256, size) = match result {
            Ok(done) => done,
            Err(err) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(err);
            }
        };
        let target = self.content_path(&sha256);
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            // Already stored once: keep the one copy.
            let _ = tokio::fs::remove_file(&tmp).await;
        } else {
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(Error::internal)?;
            }
            tokio::fs::rename(&tmp, &target)
                .await
                .map_err(Error::internal)?;
        }
        Ok((sha256, size))
    }

    async fn write_tmp(&self, tmp: &Path, body: Body) -> Result<(String, u64)> {
        let mut file = tokio::fs::File::create(tmp)
            .await
            .map_err(Error::internal)?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut stream = body;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::BadJson(format!("the upload broke off: {e}")))?;
            size += chunk.len() as u64;
            if size > self.max_upload {
                return Err(Error::TooLarge {
                    limit: self.max_upload,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(Error::internal)?;
        }
        // Acknowledged uploads are durable.
        file.sync_all().await.map_err(Error::internal)?;
        Ok((hex::encode(hasher.finalize()), size))
    }

    /// The media row for a local `server_name/media_id`, with both checked first.
    async fn local_row(&self, server_name: &str, media_id: &str) -> Result<MediaRow> {
        if !valid_media_id(media_id) || ruma::ServerName::parse(server_name).is_err() {
            return Err(Error::InvalidParam(
                "invalid server name or media ID".into(),
            ));
        }
        if server_name != self.server_name {
            // No federation yet: remote media cannot be fetched.
            return Err(Error::NotFound(
                "media on other servers is not available here".into(),
            ));
        }
        self.store
            .media(media_id)
            .await?
            .ok_or_else(|| Error::NotFound("no such media".into()))
    }

    /// The file behind an `mxc://` URI, for download. `legacy` marks the unauthenticated
    /// endpoints, which only serve what the configuration allows.
    pub async fn open(&self, server_name: &str, media_id: &str, legacy: bool) -> Result<MediaFile> {
        let row = self.local_row(server_name, media_id).await?;
        if legacy {
            let allowed = match self.legacy {
                LegacyDownload::All => true,
                LegacyDownload::None => false,
                LegacyDownload::BeforeFreeze => row.created_ts < self.freeze_ts,
            };
            if !allowed {
                return Err(Error::NotFound(
                    "this media is only available through the authenticated endpoints".into(),
                ));
            }
        }
        let Some(sha256) = row.sha256 else {
            return Err(Error::NotYetUploaded);
        };
        let path = self.content_path(&sha256);
        let size = tokio::fs::metadata(&path)
            .await
            .map_err(|e| Error::internal(format!("media file {sha256}: {e}")))?
            .len();
        Ok(MediaFile {
            path,
            size,
            content_type: row
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
            filename: row.filename,
        })
    }

    /// A thumbnail of an image, generated once and then served from the cache.
    pub async fn thumbnail(
        &self,
        server_name: &str,
        media_id: &str,
        spec: ThumbnailSpec,
        legacy: bool,
    ) -> Result<MediaFile> {
        let original = self.open(server_name, media_id, legacy).await?;
        let size = spec.standard();
        if let Some(cached) = self
            .store
            .thumbnail(media_id, size.width, size.height, size.method.as_str())
            .await?
        {
            let path = self.content_path(&cached.sha256);
            return Ok(MediaFile {
                path,
                size: cached.size as u64,
                content_type: cached.content_type,
                filename: None,
            });
        }
        let (bytes, content_type) = self.thumbnails.generate(&original, size).await?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let path = self.content_path(&sha256);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(Error::internal)?;
        }
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            let tmp = self.dir.join("tmp").join(random_id(24));
            tokio::fs::write(&tmp, &bytes)
                .await
                .map_err(Error::internal)?;
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(Error::internal)?;
        }
        let row = converge_store::ThumbnailRow {
            width: size.width,
            height: size.height,
            method: size.method.as_str().to_owned(),
            content_type: content_type.to_owned(),
            sha256,
            size: bytes.len() as i64,
        };
        self.store.insert_thumbnail(media_id, &row).await?;
        Ok(MediaFile {
            path,
            size: bytes.len() as u64,
            content_type: content_type.to_owned(),
            filename: None,
        })
    }

    /// Stores bytes fetched by the server itself (a preview's image) as new media.
    async fn store_fetched(
        &self,
        uploader: &str,
        bytes: Vec<u8>,
        content_type: Option<String>,
    ) -> Result<String> {
        let body: Body = Box::pin(futures_util::stream::once(async move {
            Ok(bytes::Bytes::from(bytes))
        }));
        let (sha256, size) = self.store_body(body).await?;
        let media_id = Self::new_media_id();
        self.store
            .insert_media(&MediaRow {
                media_id: media_id.clone(),
                uploader: uploader.to_owned(),
                sha256: Some(sha256),
                content_type,
                filename: None,
                size: Some(size as i64),
                created_ts: now_ms(),
                pending_until: None,
            })
            .await?;
        Ok(self.mxc(&media_id))
    }

    /// `GET /_matrix/client/v1/media/preview_url`.
    pub async fn preview_url(&self, caller: &Caller, url: &str) -> Result<serde_json::Value> {
        self.limiter.check_caller(Limit::Upload, caller)?;
        if let Some(cached) = self
            .store
            .url_preview(url, now_ms() - preview::CACHE_MS)
            .await?
        {
            return serde_json::from_str(&cached).map_err(Error::internal);
        }
        let mut preview = self.previews.fetch(url).await?;
        if let Some(image) = preview.image.take() {
            let (width, height) = self.thumbnails.dimensions(&image.bytes).unwrap_or((0, 0));
            let size = image.bytes.len();
            match self
                .store_fetched(
                    caller.user_id.as_str(),
                    image.bytes,
                    image.content_type.clone(),
                )
                .await
            {
                Ok(mxc) => {
                    preview.og["og:image"] = mxc.into();
                    preview.og["matrix:image:size"] = size.into();
                    if width > 0 {
                        preview.og["og:image:width"] = width.into();
                        preview.og["og:image:height"] = height.into();
                    }
                    if let Some(ct) = image.content_type {
                        preview.og["og:image:type"] = ct.into();
                    }
                }
                Err(err) => tracing::debug!(error = %err, "could not keep a preview image"),
            }
        }
        self.store
            .put_url_preview(url, &preview.og.to_string(), now_ms())
            .await?;
        Ok(preview.og)
    }

    /// Deletes media uploaded before `before` (ms) and the files nothing else uses.
    pub async fn purge_before(&self, before: i64) -> Result<u64> {
        let (deleted, orphans) = self.store.purge_media_before(before).await?;
        self.remove_files(orphans).await;
        Ok(deleted)
    }

    /// Deletes media uploaded before `before` (ms) that no event and no profile mentions.
    pub async fn purge_unreferenced(&self, before: i64) -> Result<u64> {
        let ids = self
            .store
            .unreferenced_media(&format!("mxc://{}/", self.server_name), before)
            .await?;
        let orphans = self.store.delete_media(&ids).await?;
        self.remove_files(orphans).await;
        Ok(ids.len() as u64)
    }

    async fn remove_files(&self, orphans: Vec<String>) {
        for sha256 in orphans {
            if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                let _ = tokio::fs::remove_file(self.content_path(&sha256)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids_never_name_paths() {
        for good in ["abc", "ABC_def-123", &"a".repeat(255)] {
            assert!(valid_media_id(good), "{good}");
        }
        for bad in [
            "",
            "..",
            "a/b",
            "a\\b",
            "a\0b",
            "a.b",
            "%2e%2e",
            "ä",
            &"a".repeat(256),
            "a b",
        ] {
            assert!(!valid_media_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn only_safe_types_are_inline() {
        for inline in [
            "image/png",
            "IMAGE/PNG",
            "image/jpeg; charset=x",
            "video/mp4",
            "audio/ogg",
            "text/plain; charset=utf-8",
        ] {
            assert!(inline_allowed(inline), "{inline}");
        }
        for attachment in [
            "text/html",
            "TEXT/HTML",
            "text/html; charset=utf-8",
            "image/svg+xml",
            "Image/SVG+XML",
            "application/javascript",
            "text/javascript",
            "application/xhtml+xml",
            "application/octet-stream",
            "",
        ] {
            assert!(!inline_allowed(attachment), "{attachment}");
        }
    }

    #[test]
    fn client_names_and_types_are_cleaned() {
        assert_eq!(
            clean_filename(Some("../../etc/passwd")).as_deref(),
            Some("....etcpasswd")
        );
        assert_eq!(clean_filename(Some("..")), None);
        assert_eq!(clean_filename(Some("a\nb.png")).as_deref(), Some("ab.png"));
        assert_eq!(
            clean_content_type(Some("image/png")).as_deref(),
            Some("image/png")
        );
        assert_eq!(clean_content_type(Some("not a type")), None);
        assert_eq!(clean_content_type(Some("text/html\r\nX-Injected: 1")), None);
    }
}
