//! The two connection pools behind one enum, and the macro that runs a query on either.
//!
//! SQLite and PostgreSQL both accept `$1`-style placeholders, `ON CONFLICT` and `RETURNING`,
//! so most queries are written once; [`on_pool!`] expands the same code for each pool type.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{BUSY_TIMEOUT, StoreError};

#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool, whichever backend is in use.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Most values bound in one `IN (...)` list; longer lists are read in chunks of this size.
pub(crate) const IN_CHUNK: usize = 500;

/// `$1, $2, ..., $n`: the placeholders of an `IN (...)` list of `n` values (only these
/// are ever formatted into SQL; the values are bound).
pub(crate) fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads rows for many values at once: `$sql` holds `{in}` where the `IN` list goes; it runs
/// once per [`IN_CHUNK`] values, with the chunk bound, and `$map` turns each row into an
/// item of the returned `Vec` (it may use `?`).
macro_rules! fetch_in {
    ($db:expr, $sql:expr, $values:expr, |$row:ident| $map:expr) => {{
        let mut out = Vec::new();
        for chunk in $values.chunks($crate::db::IN_CHUNK) {
            let sql = $sql.replace("{in}", &$crate::db::placeholders(chunk.len()));
            $crate::db::on_pool!($db, pool => {
                // Only placeholders are formatted into the SQL; the values are bound.
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for value in chunk {
                    query = query.bind(value);
                }
                for $row in query.fetch_all(pool).await? {
                    out.push($map);
                }
            });
        }
        out
    }};
}
pub(crate) use fetch_in;

/// Starting a transaction that writes. On SQLite it takes the write lock at `BEGIN`
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes would fail with
/// "database is locked" when another connection wrote in between, without waiting, while
/// an immediate one waits for the lock (the busy timeout). PostgreSQL's row locks need
/// nothing special.
pub(crate) trait BeginWrite {
    type Database: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

impl Db {
    pub(crate) async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::BadUrl(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL makes every commit durable on power loss too, not just on a crash;
                // group commit in the writer pays for the extra fsync.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(BUSY_TIMEOUT);
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.max(2))
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options =
                PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(2))
                .connect_with(options)
                .await?;
            Ok(Db::Postgres(pool))
        } else {
            Err(StoreError::BadUrl(format!(
                "{url:?} must start with sqlite:// or postgres://"
            )))
        }
    }

    pub(crate) fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))?;
        Ok(())
    }

    pub(crate) async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}
