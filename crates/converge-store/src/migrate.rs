//! Versioned schema migrations, embedded in the binary and applied at start.
//!
//! Each backend has its own list; a migration runs in one transaction together with the
//! row that records it, so a failed migration leaves no trace. Components outside the core
//! (the gateways) bring their own lists, recorded per component in `component_migrations`
//! and applied by [`run_component`] the same way.

use sqlx::Row;

use crate::StoreError;
use crate::db::{BeginWrite, Db, on_pool};
use crate::tables::Migration;

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
    (7, include_str!("../migrations/sqlite/0007_e2ee_push.sql")),
    (8, include_str!("../migrations/sqlite/0008_element.sql")),
    (9, include_str!("../migrations/sqlite/0009_event_push.sql")),
    (
        10,
        include_str!("../migrations/sqlite/0010_admin_stats.sql"),
    ),
    (
        11,
        include_str!("../migrations/sqlite/0011_appservices.sql"),
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
    (7, include_str!("../migrations/postgres/0007_e2ee_push.sql")),
    (8, include_str!("../migrations/postgres/0008_element.sql")),
    (
        9,
        include_str!("../migrations/postgres/0009_event_push.sql"),
    ),
    (
        10,
        include_str!("../migrations/postgres/0010_admin_stats.sql"),
    ),
    (
        11,
        include_str!("../migrations/postgres/0011_appservices.sql"),
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
             (version BIGINT PRIMARY KEY NOT NULL, applied_ts BIGINT NOT NULL); \
             CREATE TABLE IF NOT EXISTS component_migrations (component TEXT NOT NULL, \
             version BIGINT NOT NULL, applied_ts BIGINT NOT NULL, PRIMARY KEY (component, version))",
        )
        .execute(pool)
        .await?;
    });
    for &(version, sql) in migrations {
        apply(db, None, version, sql).await?;
    }
    Ok(())
}

/// Applies a component's pending migrations, in order.
pub(crate) async fn run_component(
    db: &Db,
    component: &str,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    for migration in migrations {
        let sql = match db {
            Db::Sqlite(_) => migration.sqlite,
            Db::Postgres(_) => migration.postgres,
        };
        apply(db, Some(component), migration.version, sql).await?;
    }
    Ok(())
}

/// Applies one migration of the core (`component` `None`) or of a component, unless it
/// is recorded as applied; the migration and its record commit together.
async fn apply(
    db: &Db,
    component: Option<&str>,
    version: i64,
    sql: &str,
) -> Result<(), StoreError> {
    on_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        if matches!(db, Db::Postgres(_)) {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PG_MIGRATION_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let applied = match component {
            None => sqlx::query("SELECT COUNT(*) AS n FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_one(&mut *tx)
                .await?,
            Some(component) => sqlx::query(
                "SELECT COUNT(*) AS n FROM component_migrations WHERE component = $1 AND version = $2",
            )
            .bind(component)
            .bind(version)
            .fetch_one(&mut *tx)
            .await?,
        }
        .try_get::<i64, _>("n")?;
        if applied > 0 {
            return Ok(());
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .map_err(|source| StoreError::Migration {
                component: component.unwrap_or("core").to_owned(),
                version,
                source,
            })?;
        match component {
            None => sqlx::query("INSERT INTO schema_migrations (version, applied_ts) VALUES ($1, $2)")
                .bind(version)
                .bind(crate::accounts::now_ms())
                .execute(&mut *tx)
                .await?,
            Some(component) => sqlx::query(
                "INSERT INTO component_migrations (component, version, applied_ts) VALUES ($1, $2, $3)",
            )
            .bind(component)
            .bind(version)
            .bind(crate::accounts::now_ms())
            .execute(&mut *tx)
            .await?,
        };
        tx.commit().await?;
        tracing::info!(component = component.unwrap_or("core"), version, "applied migration");
        Ok(())
    })
}
