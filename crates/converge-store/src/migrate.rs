//! Versioned schema migrations, embedded in the binary and applied at start.
//!
//! Each backend has its own list; a migration runs in one transaction together with the
//! row that records it, so a failed migration leaves no trace.

use sqlx::Row;

use crate::StoreError;
use crate::db::{Db, on_pool};

const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_accounts.sql")),
    (2, include_str!("../migrations/sqlite/0002_events.sql")),
    (3, include_str!("../migrations/sqlite/0003_rooms.sql")),
    (4, include_str!("../migrations/sqlite/0004_media.sql")),
    (5, include_str!("../migrations/sqlite/0005_gateways.sql")),
    (
        6,
        include_str!("../migrations/sqlite/0006_device_secrets.sql"),
    ),
];

const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_accounts.sql")),
    (2, include_str!("../migrations/postgres/0002_events.sql")),
    (3, include_str!("../migrations/postgres/0003_rooms.sql")),
    (4, include_str!("../migrations/postgres/0004_media.sql")),
    (5, include_str!("../migrations/postgres/0005_gateways.sql")),
    (
        6,
        include_str!("../migrations/postgres/0006_device_secrets.sql"),
    ),
];

/// An arbitrary constant key for the advisory lock that serialises migrations between
/// several Converge nodes starting at once against one PostgreSQL database.
const PG_MIGRATION_LOCK: i64 = 0x636f_6e76_6572_6765;

pub(crate) async fn run(db: &Db) -> Result<(), StoreError> {
    let migrations = match db {
        Db::Sqlite(_) => SQLITE,
        Db::Postgres(_) => POSTGRES,
    };
    on_pool!(db, pool => {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version BIGINT PRIMARY KEY NOT NULL, applied_ts BIGINT NOT NULL)",
        )
        .execute(pool)
        .await?;
        for &(version, sql) in migrations {
            let mut tx = pool.begin().await?;
            if matches!(db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_MIGRATION_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let applied = sqlx::query("SELECT COUNT(*) AS n FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_one(&mut *tx)
                .await?
                .try_get::<i64, _>("n")?;
            if applied > 0 {
                continue;
            }
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(|source| StoreError::Migration { version, source })?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_ts) VALUES ($1, $2)")
                .bind(version)
                .bind(crate::accounts::now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, "applied migration");
        }
        Ok(())
    })
}
