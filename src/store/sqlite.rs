//! The embedded default: one SQLite file in WAL mode, so feeds are read while articles are
//! written.

use std::path::Path;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::shared::{self, Embedded, store_queries};
use super::{Selection, StoreError};
use crate::config::Catalog;
use crate::model::{Article, Bucket};

const MIGRATIONS: Embedded = Embedded(&[(
    1,
    "articles",
    include_str!("../../migrations/sqlite/0001_articles.sql"),
)]);

/// How long a writer waits for another writer's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Readers in parallel; SQLite serializes writers anyway.
const MAX_CONNECTIONS: u32 = 8;

/// The article store on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the file and its folder, and migrates the schema.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                url: format!("sqlite://{}", path.display()),
                source,
            })?;
        Migrator::new(MIGRATIONS).await?.run(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

store_queries!(SqliteStore);
