//! The store's error type: the few failures callers act on, and everything else.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// A user with this localpart already exists (or existed: localparts are never reused).
    #[error("user already exists")]
    UserExists,
    /// The registration token is unknown, used up or expired.
    #[error("registration token not usable")]
    TokenNotUsable,
    /// A row the operation needs is missing.
    #[error("not found")]
    NotFound,
    /// An event with this ID is already stored.
    #[error("duplicate event")]
    DuplicateEvent,
    /// The URL does not name a supported backend, or is malformed.
    #[error("bad database URL: {0}")]
    BadUrl(String),
    /// A write lost the race for a key to other writers too many times in a row.
    #[error("too much contention for {0}")]
    Contended(&'static str),
    /// The store was closed; nothing more can be written.
    #[error("store closed")]
    Closed,
    #[error("migration {version} of {component} failed: {source}")]
    Migration {
        component: String,
        version: i64,
        source: sqlx::Error,
    },
    /// A component read a column that is missing or has another type.
    #[error("{0}")]
    Column(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether this is a unique-constraint violation reported by the database.
    pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
        err.as_database_error()
            .is_some_and(|e| e.is_unique_violation())
    }
}
