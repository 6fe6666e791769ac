//! The embedded default: one SQLite file in WAL mode, so feeds are read while articles are
//! written.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::backend::{
    Backend, Conn, Embedded, Op, Reader, Transaction, Tx, execute_on, read_number, read_rows,
};
use super::sql::{self, Statement};
use super::{StatsDay, StatsReport, StoreError, StoredSubscription};
use crate::task::AbortOnDrop;

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
    (
        3,
        "change times",
        include_str!("../../migrations/sqlite/0003_change_times.sql"),
    ),
    (
        4,
        "outbound",
        include_str!("../../migrations/sqlite/0004_outbound.sql"),
    ),
    (
        5,
        "tombstones",
        include_str!("../../migrations/sqlite/0005_tombstones.sql"),
    ),
    (
        6,
        "subscriptions",
        include_str!("../../migrations/sqlite/0006_subscriptions.sql"),
    ),
    (
        7,
        "credits",
        include_str!("../../migrations/sqlite/0007_credits.sql"),
    ),
    (
        8,
        "subscribers by feed",
        include_str!("../../migrations/sqlite/0008_subscribers_by_feed.sql"),
    ),
    (
        9,
        "stats",
        include_str!("../../migrations/sqlite/0009_stats.sql"),
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

/// How often the write-ahead log is checkpointed into the database file (see
/// [`checkpoints`]).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The article store on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    /// SQLite serializes writers anyway: one connection writes, so writes queue here in
    /// order rather than contending for the file lock.
    writer: SqlitePool,
    /// One bookkeeping transaction at a time waits for the writer (see `begin_bookkeeping`).
    bookkeeping: Arc<tokio::sync::Semaphore>,
    /// The checkpointer, stopped when the last clone of the store goes.
    _checkpoints: Arc<AbortOnDrop<()>>,
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
                .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
                // Checkpoints are made off the writer (see `checkpoints`).
                .pragma("wal_autocheckpoint", "0"),
            1,
        )
        .await?;
        Migrator::new(MIGRATIONS).await?.run(&writer).await?;
        let pool = connect(
            options.pragma("cache_size", format!("-{READER_CACHE_KIB}")),
            MAX_READERS,
        )
        .await?;
        let checkpointer = AbortOnDrop(tokio::spawn(checkpoints(pool.clone())));
        Ok(SqliteStore {
            pool,
            writer,
            bookkeeping: Arc::new(tokio::sync::Semaphore::new(1)),
            _checkpoints: Arc::new(checkpointer),
        })
    }
}

/// Copies the write-ahead log into the database file every [`CHECKPOINT_EVERY`], on a reader
/// connection, never blocking the writer. SQLite's own checkpoint runs inside the commit that
/// fills the log past 1,000 pages, so that one write waited for it: under the hub's delivery
/// bookkeeping, tens of milliseconds (bench/run's hub figures). A passive checkpoint copies
/// what no reader still needs; the log starts over once all of it was copied.
async fn checkpoints(pool: SqlitePool) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let checkpoint = sql::sqlite_checkpoint();
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        match execute_on(&pool, &checkpoint).await {
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => tracing::warn!(cause = %e, "checkpointing the SQLite log failed"),
            Ok(()) => {}
        }
    }
}

impl Backend for SqliteStore {
    /// Only feedcast writes SQLite, so it files articles itself, from the catalog.
    fn files_in_code(&self) -> bool {
        true
    }

    /// On the one writer connection: a task that holds a [`Writer`](super::Writer) and starts
    /// another write waits for itself (until the acquire timeout).
    fn begin_write(&self) -> Op<'_, Box<dyn Transaction>> {
        Box::pin(async move {
            let tx = Tx::<Sqlite>::begin(&self.writer, sql::SQLITE_BEGIN_WRITE).await?;
            Ok(Box::new(tx) as Box<dyn Transaction>)
        })
    }

    /// On the one writer connection too, but only one at a time waits for it: the outbound
    /// queue's claims, settles and fan-out pages come by the dozen while deliveries go out,
    /// and an article write queued behind all of them waited for all of them (bench/run's
    /// hub write p99). Now it waits for one at most; they run one at a time anyway.
    fn begin_bookkeeping(&self) -> Op<'_, Box<dyn Transaction>> {
        Box::pin(async move {
            let turn = self
                .bookkeeping
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| sqlx::Error::PoolClosed)?;
            let mut tx = Tx::<Sqlite>::begin(&self.writer, sql::SQLITE_BEGIN_WRITE).await?;
            tx._turn = Some(turn);
            Ok(Box::new(tx) as Box<dyn Transaction>)
        })
    }

    fn number<'a>(&'a self, statement: &'a Statement<'a>) -> Op<'a, Option<i64>> {
        read_number(&self.pool, statement)
    }

    fn pairs<'a>(&'a self, statement: &'a Statement<'a>) -> Op<'a, Vec<(String, String)>> {
        read_rows(&self.pool, statement)
    }

    fn subscriptions<'a>(
        &'a self,
        statement: &'a Statement<'a>,
    ) -> Op<'a, Vec<StoredSubscription>> {
        read_rows(&self.pool, statement)
    }

    fn stats_days<'a>(&'a self, statement: &'a Statement<'a>) -> Op<'a, Vec<StatsDay>> {
        read_rows(&self.pool, statement)
    }

    fn stats_reports<'a>(&'a self, statement: &'a Statement<'a>) -> Op<'a, Vec<StatsReport>> {
        read_rows(&self.pool, statement)
    }

    fn reader(&self) -> Op<'_, Box<dyn Reader>> {
        Conn::take(&self.pool)
    }

    /// Every feed changed when the feed index was rebuilt.
    fn after_refile(&self) -> Vec<Statement<'static>> {
        let now = sql::micros(chrono::Utc::now());
        vec![sql::stamp_everything(now), sql::log_everything(now)]
    }

    /// Hands the writer's page cache back after a write: it is large for imports, and a
    /// long-running server would otherwise keep it filled with pages of old writes.
    fn after_write(&self) -> Op<'_, ()> {
        Box::pin(async move { execute_on(&self.writer, &sql::sqlite_shrink_memory()).await })
    }

    /// Folds the log into the database file and empties it. A bulk import is one transaction,
    /// so none of its log can be checkpointed before it commits: a million articles left a
    /// 7 GB log beside a database file of half a megabyte, which the next process to open the
    /// store had to read whole before its first query (longer than the pool waits: bench/run's
    /// cold builds failed to open the store). Done on the writer, which waits for readers.
    fn after_bulk_write(&self) -> Op<'_, ()> {
        Box::pin(async move { execute_on(&self.writer, &sql::sqlite_truncate_log()).await })
    }

    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.writer.close().await;
            self.pool.close().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::backend::arguments;
    use super::*;
    use crate::model::Bucket;
    use crate::store::{Edge, Selection, Window};

    /// The plan SQLite chooses for a statement, one line per step.
    async fn plan(store: &SqliteStore, statement: &Statement<'_>) -> String {
        let explain = format!("EXPLAIN QUERY PLAN {}", statement.sql);
        let arguments = arguments::<Sqlite>(&statement.params).unwrap();
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as_with(&explain, arguments)
            .fetch_all(&store.pool)
            .await
            .unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    #[tokio::test]
    async fn feed_queries_read_an_index_range_never_the_whole_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let bucket = |key: &str| Bucket::from_key(key).unwrap();
        let at = chrono::DateTime::from_timestamp_micros(20).unwrap();
        for and_any_of in [vec![], vec![bucket("c:x1"), bucket("r:320000")]] {
            let selection = Selection {
                any_of: vec![bucket("c:x0")],
                and_any_of,
            };
            let queries = [
                sql::articles_of(&selection.any_of[0], &selection, Window::newest(20)),
                sql::edge_of(&selection.any_of[0], &selection, Edge::NewestBefore(at)),
                sql::edge_of(&selection.any_of[0], &selection, Edge::OldestFrom(at)),
            ];
            for statement in &queries {
                let plan = plan(&store, statement).await;
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
            // Tombstones the same way, newest takedown first.
            let window = Window::newest(100);
            let statement = sql::tombstones_of(&selection.any_of[0], &selection, window, 20);
            let plan = plan(&store, &statement).await;
            assert!(
                plan.contains("SEARCH f USING PRIMARY KEY (bucket=? AND deleted_at>?)"),
                "{plan}"
            );
            assert!(
                !plan.contains("SCAN") && !plan.contains("TEMP B-TREE"),
                "{plan}"
            );
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
            .writer
            .begin_with(sql::SQLITE_BEGIN_WRITE)
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
