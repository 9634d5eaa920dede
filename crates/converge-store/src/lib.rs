//! Converge's store: one interface over an embedded SQLite file or a PostgreSQL database.
//!
//! The store speaks plain Rust and core types; each backend owns its schema and migrations
//! (`migrations/<backend>/`). Queries are written once in portable SQL and run on whichever
//! pool the URL scheme picked (see [`db`]). Room events are appended only through the
//! ordered writer ([`writer`]), which batches concurrent appends into one commit.

mod accounts;
mod appservices;
mod db;
mod error;
mod events;
mod keys;
mod lookups;
mod media;
mod migrate;
mod openid;
mod push;
mod reports;
mod rooms;
pub mod stats;
mod tables;
pub mod testing;
mod writer;

use std::sync::Arc;
use std::time::Duration;

pub use accounts::{Device, NewSession, NewUser, RegistrationToken, Session, User, UserSummary};
pub use appservices::{AppServiceState, QueuedKind, ToDeviceRow};
pub use error::StoreError;
pub use events::Direction;
pub use keys::{
    BackupSession, BackupVersion, CrossSigningKey, KeySignature, OneTimeKey, OneTimeKeysAdded,
    ToDeviceMessage,
};
pub use lookups::ThreadRow;
pub use media::{MediaRow, ThumbnailRow};
pub use push::{NotificationRow, PusherRow, ThreadCounts};
pub use reports::{NewReport, ReportRow};
pub use rooms::{AccountDataRow, MembershipRow, ReceiptRow, RoomRow};
pub use stats::{DAY_MS, DayCount, RoomSummary};
pub use tables::{FromValue, Migration, Row, Statement, Tables, Value};
pub use writer::{
    EventNotifications, EventWrite, NewRoom, Notification, PendingWrite, Redaction, WriteOp,
    WriterConfig, WriterStats,
};

use converge_core::StreamPos;
use db::Db;
use tokio::sync::watch;

/// Options for opening a store, beyond its URL.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Upper bound on pooled connections (PostgreSQL) or reader connections (SQLite).
    pub max_connections: u32,
    /// How the ordered writer batches appends.
    pub writer: WriterConfig,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            writer: WriterConfig::default(),
        }
    }
}

/// A handle to the store. Cheap to clone; all clones share one pool and one writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    writer: writer::WriterHandle,
}

impl Store {
    /// Opens the store named by `url` (`sqlite://PATH` or `postgres://...`), creating an
    /// SQLite file if needed, applies pending migrations and starts the ordered writer.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let db = Db::connect(url, options.max_connections).await?;
        migrate::run(&db).await?;
        let writer = writer::spawn(db.clone(), options.writer).await?;
        tracing::info!(backend = db.backend_name(), "store opened");
        Ok(Self {
            inner: Arc::new(Inner { db, writer }),
        })
    }

    /// The tables of the component `name`, after applying its pending `migrations`.
    pub async fn tables(
        &self,
        name: &'static str,
        migrations: &[Migration],
    ) -> Result<Tables, StoreError> {
        Tables::open(self.inner.db.clone(), name, migrations).await
    }

    /// The backend's name, `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.db.backend_name()
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.inner.db.ping().await
    }

    /// Appends a write through the ordered writer and waits until it is durably committed.
    ///
    /// Returns the stream position assigned to it. Concurrent callers are batched into one
    /// transaction; a write that fails (e.g. a duplicate event ID) fails alone.
    pub async fn append(&self, op: WriteOp) -> Result<StreamPos, StoreError> {
        self.inner.writer.append(op).await
    }

    /// Queues a write behind every write queued before it, without waiting for the commit.
    ///
    /// Callers that must order writes (all events of one room) enqueue under their own lock
    /// and wait for [`PendingWrite::committed`] after releasing it, so many writes share a
    /// commit.
    pub async fn enqueue(&self, op: WriteOp) -> Result<PendingWrite, StoreError> {
        self.inner.writer.enqueue(op).await
    }

    /// The highest committed stream position; the receiver wakes when it grows.
    pub fn stream_position(&self) -> watch::Receiver<StreamPos> {
        self.inner.writer.subscribe()
    }

    /// What the ordered writer has committed so far.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    /// Finishes every queued write, stops the writer and closes the pool.
    ///
    /// Appends after this fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        self.inner.writer.shutdown().await;
        self.inner.db.close().await;
    }
}

/// How often a write that lost a race for a unique key (another writer took it at the same
/// moment) is tried again before it gives up.
const CONFLICT_RETRIES: usize = 16;

/// How long a connection waits for a lock before giving up (SQLite busy timeout).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
