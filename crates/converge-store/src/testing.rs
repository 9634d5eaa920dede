//! Helpers for tests that need a fresh store: a temporary SQLite file, or a private
//! schema in the PostgreSQL database named by `CONVERGE_TEST_POSTGRES_URL`.

use sqlx::Connection;

/// The environment variable that enables PostgreSQL tests.
pub const POSTGRES_URL_VAR: &str = "CONVERGE_TEST_POSTGRES_URL";

/// The PostgreSQL base URL for tests, if PostgreSQL tests are enabled.
pub fn postgres_base_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.is_empty())
}

/// Creates a fresh schema in the test database and returns a URL whose connections use it,
/// so concurrent test runs and tests never see each other's tables.
pub async fn fresh_postgres_url(base: &str) -> Result<String, sqlx::Error> {
    let schema = format!(
        "converge_test_{}_{}",
        std::process::id(),
        SCHEMA_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut conn = sqlx::PgConnection::connect(base).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    let separator = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{separator}options[search_path]={schema}"))
}

/// Makes schema names unique within one test process.
static SCHEMA_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
