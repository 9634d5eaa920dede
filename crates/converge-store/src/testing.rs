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

/// A store opened for one test on one backend, with what keeps it alive (the SQLite
/// file's directory) and its URL, so a test can open it again as a restart would.
pub struct TestStore {
    pub store: crate::Store,
    pub url: String,
    _dir: Option<tempfile_dir::TempDir>,
}

/// The backends a test can run on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl TestStore {
    /// A fresh store on `backend`, or `None` for PostgreSQL when its tests are not enabled.
    pub async fn open(backend: Backend) -> Option<Self> {
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile_dir::TempDir::new().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("converge.db").display());
                (url, Some(dir))
            }
            Backend::Postgres => {
                let base = postgres_base_url()?;
                let url = fresh_postgres_url(&base).await.expect("create test schema");
                (url, None)
            }
        };
        let store = crate::Store::open(&url, crate::StoreOptions::default())
            .await
            .expect("open the test store");
        Some(Self {
            store,
            url,
            _dir: dir,
        })
    }

    /// The same database opened again, as after a restart.
    pub async fn reopen(&self) -> crate::Store {
        crate::Store::open(&self.url, crate::StoreOptions::default())
            .await
            .expect("reopen the test store")
    }
}

/// A temporary directory removed on drop, without a dependency for one type.
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> std::io::Result<Self> {
            let path = std::env::temp_dir().join(format!(
                "converge-test-{}-{}",
                std::process::id(),
                super::SCHEMA_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path)?;
            Ok(Self(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Generates one `#[tokio::test]` per backend for each listed `async fn test(&TestStore)`:
/// SQLite always runs, PostgreSQL when `CONVERGE_TEST_POSTGRES_URL` is set.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let store = $crate::testing::TestStore::open($crate::testing::Backend::Sqlite)
                        .await
                        .expect("sqlite always runs");
                    super::$test(&store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(store) = $crate::testing::TestStore::open($crate::testing::Backend::Postgres).await else {
                        eprintln!("skipped: set {} to run PostgreSQL tests", $crate::testing::POSTGRES_URL_VAR);
                        return;
                    };
                    super::$test(&store).await;
                }
            )*
        }
    };
}
