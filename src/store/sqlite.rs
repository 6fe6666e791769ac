//! The embedded default: one SQLite file in WAL mode, so feeds are read while articles are
//! written.

use std::path::Path;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::shared::{self, Embedded, store_queries};
use chrono::{DateTime, Utc};

use super::{Edge, Selection, StoreError, Window};
use crate::model::Catalog;
use crate::model::{Article, Bucket};

const MIGRATIONS: Embedded = Embedded(&[
    (
        1,
        "articles",
        include_str!("../../migrations/sqlite/0001_articles.sql"),
    ),
    (
        2,
        "sanitized",
        include_str!("../../migrations/sqlite/0002_sanitized.sql"),
    ),
]);

/// How long a writer waits for another writer's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Readers in parallel. A feed read is about a millisecond of CPU; four keep a few cores busy,
/// and each holds its own page cache.
const MAX_READERS: u32 = 4;

/// A reader's page cache, in KiB: a build reads a few hundred kilobytes, and what is hot is
/// in the service's own cache and the OS's page cache anyway.
const READER_CACHE_KIB: u32 = 1024;

/// Pages of 16 KiB rather than SQLite's 4 KiB: an article (2–8 KB of HTML) then mostly fits in
/// one page instead of a chain of overflow pages, and a bulk import writes a quarter as many
/// WAL frames. Takes effect only when the file is created.
const PAGE_SIZE: u32 = 16 * 1024;

/// The writer's page cache, in KiB (SQLite's default is 2 MiB): an import appends to each of
/// thousands of feed-index ranges at once, and with their pages cached it does not re-read
/// them for every batch. Given back after each write ([`SqliteStore::after_write`]).
const WRITER_CACHE_KIB: u32 = 64 * 1024;

/// The article store on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    /// SQLite serializes writers anyway: one connection writes, so writes queue here in
    /// order rather than contending for the file lock.
    writer: SqlitePool,
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
            .page_size(PAGE_SIZE)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let connect = |options: SqliteConnectOptions, connections: u32| async move {
            SqlitePoolOptions::new()
                .max_connections(connections)
                // Waiting for the one writer connection is bounded like waiting for another
                // process's lock.
                .acquire_timeout(BUSY_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(|source| StoreError::Connect {
                    url: format!("sqlite://{}", path.display()),
                    source,
                })
        };
        // The writer first: it creates the file, with the page size set before anything else.
        let writer = connect(
            options
                .clone()
                .pragma("cache_size", format!("-{WRITER_CACHE_KIB}")),
            1,
        )
        .await?;
        Migrator::new(MIGRATIONS).await?.run(&writer).await?;
        let pool = connect(
            options.pragma("cache_size", format!("-{READER_CACHE_KIB}")),
            MAX_READERS,
        )
        .await?;
        Ok(SqliteStore { pool, writer })
    }

    /// Where writes go. One connection: a task that holds a [`Writer`](super::Writer) and
    /// starts another write waits for itself (until the acquire timeout).
    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Takes the write lock at once: a transaction that read first and then wrote would fail
    /// at once (`SQLITE_BUSY_SNAPSHOT`, no busy wait) if another process wrote in between.
    const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

    /// Hands the writer's page cache back after a write: it is large for imports, and a
    /// long-running server would otherwise keep it filled with pages of old writes.
    pub(super) async fn after_write(&self) {
        if let Err(cause) = sqlx::query("PRAGMA shrink_memory")
            .execute(&self.writer)
            .await
        {
            tracing::debug!(%cause, "could not shrink the writer's page cache");
        }
    }

    /// Closes both pools.
    pub(super) async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

impl SqliteStore {
    /// Only feedcast writes SQLite: its rows are always sanitized.
    async fn mark_writer(_tx: &mut shared::Tx<Sqlite>) -> Result<(), StoreError> {
        Ok(())
    }

    /// One process, no one to tell.
    async fn announce_refile(_tx: &mut shared::Tx<Sqlite>) -> Result<(), StoreError> {
        Ok(())
    }

    /// SQLite serializes writers already.
    async fn lock_for_refile(_tx: &mut shared::Tx<Sqlite>) -> Result<(), StoreError> {
        Ok(())
    }

    /// Feedcast files SQLite articles itself, from the catalog: nothing to store.
    async fn store_region_tree(
        _tx: &mut shared::Tx<Sqlite>,
        _catalog: &Catalog,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

store_queries!(SqliteStore, Sqlite, files_in_code: true);

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan SQLite chooses for a feed query, one line per step.
    async fn plan(store: &SqliteStore, sql: &str, texts: usize, numbers: usize) -> String {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
        for i in 0..texts {
            query = query.bind(format!("c:x{i}"));
        }
        for _ in 0..numbers {
            query = query.bind(20_i64);
        }
        let rows = query.fetch_all(&store.pool).await.unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    #[tokio::test]
    async fn feed_queries_read_an_index_range_never_the_whole_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        for also_in in [0, 2] {
            let queries = [
                (shared::articles_sql(also_in), 3),
                (shared::edge_sql(also_in, true), 1),
                (shared::edge_sql(also_in, false), 1),
            ];
            for (sql, numbers) in queries {
                let plan = plan(&store, &sql, 1 + also_in, numbers).await;
                assert!(
                    plan.contains("SEARCH f USING PRIMARY KEY (bucket=? AND published_at"),
                    "{plan}"
                );
                assert!(!plan.contains("SCAN"), "no full scan: {plan}");
                assert!(
                    !plan.contains("TEMP B-TREE"),
                    "no sort of the matches: {plan}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_new_file_has_large_pages_and_readers_see_committed_writes_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let (page,): (i64,) = sqlx::query_as("PRAGMA page_size")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(page, i64::from(PAGE_SIZE));
        // The writer holds an open transaction: readers still answer, from before it.
        let mut tx = store
            .writer()
            .begin_with(SqliteStore::BEGIN_WRITE)
            .await
            .unwrap();
        sqlx::query("INSERT INTO meta (key, value) VALUES ('k', 'v')")
            .execute(&mut *tx)
            .await
            .unwrap();
        let count = |store: SqliteStore| async move {
            let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM meta WHERE key = 'k'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            n
        };
        assert_eq!(count(store.clone()).await, 0);
        tx.commit().await.unwrap();
        assert_eq!(count(store.clone()).await, 1);
    }
}
