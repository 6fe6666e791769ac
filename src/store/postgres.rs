//! PostgreSQL, for when one machine is not enough: many stateless replicas share one database.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::backend::{
    Backend, Conn, Embedded, Op, Reader, Transaction, Tx, arguments, execute_on, read_number,
    read_rows,
};
use super::sql::{self, Statement};
use super::{Change, LogRow, StatsDay, StatsReport, StoreError, StoredSubscription};
use crate::model::Catalog;
use crate::task::AbortOnDrop;

const MIGRATIONS: Embedded = Embedded(&[
    (
        1,
        "articles",
        include_str!("../../migrations/postgres/0001_articles.sql"),
    ),
    (
        2,
        "file in database",
        include_str!("../../migrations/postgres/0002_file_in_database.sql"),
    ),
    (
        3,
        "sanitized",
        include_str!("../../migrations/postgres/0003_sanitized.sql"),
    ),
    (
        4,
        "change times",
        include_str!("../../migrations/postgres/0004_change_times.sql"),
    ),
    (
        5,
        "change log",
        include_str!("../../migrations/postgres/0005_change_log.sql"),
    ),
    (
        6,
        "outbound",
        include_str!("../../migrations/postgres/0006_outbound.sql"),
    ),
    (
        7,
        "tombstones",
        include_str!("../../migrations/postgres/0007_tombstones.sql"),
    ),
    (
        8,
        "subscriptions",
        include_str!("../../migrations/postgres/0008_subscriptions.sql"),
    ),
    (
        9,
        "credits",
        include_str!("../../migrations/postgres/0009_credits.sql"),
    ),
    (
        10,
        "subscribers by feed",
        include_str!("../../migrations/postgres/0010_subscribers_by_feed.sql"),
    ),
    (
        11,
        "bulk stamps",
        include_str!("../../migrations/postgres/0011_bulk_stamps.sql"),
    ),
    (
        12,
        "stats",
        include_str!("../../migrations/postgres/0012_stats.sql"),
    ),
    (
        13,
        "former names",
        include_str!("../../migrations/postgres/0013_former_names.sql"),
    ),
]);

/// Wait before listening again after the listening connection failed.
const RELISTEN_DELAY: Duration = Duration::from_millis(500);

/// How long a request waits for a free connection before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per replica; many replicas share one server, so keep it modest.
const MAX_CONNECTIONS: u32 = 10;

/// The article store on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
}

impl PgStore {
    /// Connects and migrates the schema. `shown` is the URL with its password hidden.
    pub async fn open(url: &str, shown: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                url: shown.to_owned(),
                source,
            })?;
        Migrator::new(MIGRATIONS).await?.run(&pool).await?;
        Ok(PgStore { pool })
    }
}

impl Backend for PgStore {
    /// The database files articles, in a trigger, so that rows other programs write (the CMS,
    /// in SQL) are filed too.
    fn files_in_code(&self) -> bool {
        false
    }

    /// A transaction whose writes are marked as feedcast's own.
    fn begin_write(&self) -> Op<'_, Box<dyn Transaction>> {
        Box::pin(async move {
            let mut tx = Tx::<Postgres>::begin(&self.pool, sql::POSTGRES_BEGIN_WRITE).await?;
            tx.execute(&sql::postgres_lock_change_log()).await?;
            tx.execute(&sql::postgres_mark_writer()).await?;
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

    fn shared(&self) -> bool {
        true
    }

    fn execute_each<'a>(&'a self, statements: &'a [Statement<'a>]) -> Op<'a, ()> {
        Box::pin(async move {
            for statement in statements {
                let arguments = arguments::<Postgres>(&statement.params)?;
                sqlx::query_with(&statement.sql, arguments)
                    .execute(&self.pool)
                    .await?;
            }
            Ok(())
        })
    }

    /// One statement, its own transaction: `FOR UPDATE SKIP LOCKED` within it keeps two
    /// replicas from claiming the same row.
    fn claim_rows<'a>(
        &'a self,
        statement: &'a Statement<'a>,
    ) -> Op<'a, Vec<(String, i64, i64, i64)>> {
        read_rows(&self.pool, statement)
    }

    /// A plain transaction: it writes no articles, so it need not wait for the change log.
    fn begin_bookkeeping(&self) -> Op<'_, Box<dyn Transaction>> {
        Box::pin(async move {
            let tx = Tx::<Postgres>::begin(&self.pool, sql::POSTGRES_BEGIN_WRITE).await?;
            Ok(Box::new(tx) as Box<dyn Transaction>)
        })
    }

    fn stats_days<'a>(&'a self, statement: &'a Statement<'a>) -> Op<'a, Vec<StatsDay>> {
        read_rows(&self.pool, statement)
    }

    fn stats_reports<'a>(&'a self, statement: &'a Statement<'a>) -> Op<'a, Vec<StatsReport>> {
        read_rows(&self.pool, statement)
    }

    fn before_refile<'a>(&self, catalog: &'a Catalog) -> Vec<Statement<'a>> {
        // The change log's lock first, as every writer takes it: a refile rewrites feed-index
        // rows that a write's trigger may be filing.
        let mut statements = vec![
            sql::postgres_lock_change_log(),
            sql::postgres_lock_for_refile(),
        ];
        statements.extend(sql::postgres_store_region_tree(catalog));
        statements.extend(sql::postgres_store_former_names(catalog));
        statements
    }

    fn unmark_writer(&self) -> Option<Statement<'static>> {
        Some(sql::postgres_unmark_writer())
    }

    fn after_refile(&self) -> Vec<Statement<'static>> {
        vec![
            sql::postgres_stamp_everything(),
            sql::postgres_announce_refile(),
        ]
    }

    fn listen(&self) -> Option<(mpsc::UnboundedReceiver<Change>, JoinHandle<()>)> {
        Some(self.follow())
    }

    /// The trigger stamps change times by the database's clock.
    fn clock(&self) -> Option<&'static str> {
        Some(sql::POSTGRES_NOW)
    }

    fn reader(&self) -> Op<'_, Box<dyn Reader>> {
        Conn::take(&self.pool)
    }

    fn bulk_writing(&self) -> Option<[Statement<'static>; 2]> {
        Some([
            sql::postgres_mark_bulk(),
            sql::postgres_stamp_everything_now(),
        ])
    }

    fn after_bulk_write(&self) -> Op<'_, ()> {
        Box::pin(async move {
            for statement in sql::postgres_after_bulk_write() {
                execute_on(&self.pool, &statement).await?;
            }
            Ok(())
        })
    }

    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.pool.close())
    }
}

/// How often the change log is read while notifications cannot be heard.
const POLL_UNHEARD: Duration = Duration::from_millis(200);

/// How often it is read anyway while they can: a notification lost in between costs no more.
const POLL_HEARD: Duration = Duration::from_secs(5);

/// How long a replica may fall behind the log and still replay it: well within the hour for
/// which entries are kept. Further behind, it drops its whole cache instead.
const MAX_BEHIND: Duration = Duration::from_secs(30 * 60);

/// How often a replica prunes the log and vacuums the bookkeeping tables (any replica may;
/// they all do).
const UPKEEP_EVERY: Duration = Duration::from_secs(60);

impl PgStore {
    /// Follows the change log forever, reporting each entry in commit order. Notifications
    /// only wake it: it reads the log when one arrives, every 5 s anyway, and every 200 ms while
    /// its listening connection is down, so a replica that cannot listen still hears every
    /// change within a fraction of a second, and one that could not read the store at all
    /// replays from where it was ([`Change::Resumed`]), or, if that is more than half an hour
    /// ago, starts afresh ([`Change::Missed`]).
    fn follow(&self) -> (mpsc::UnboundedReceiver<Change>, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pool = self.pool.clone();
        let task = tokio::spawn(async move {
            let wake = Arc::new(Notify::new());
            let heard = Arc::new(AtomicBool::new(false));
            let _listener = AbortOnDrop(tokio::spawn(listen(
                pool.clone(),
                wake.clone(),
                heard.clone(),
            )));
            let _upkeep = AbortOnDrop(tokio::spawn(upkeep(pool.clone())));
            let mut position: Option<i64> = None;
            let mut read_at = Instant::now();
            let mut following = false;
            loop {
                let read = match position {
                    None => read_number(&pool, &sql::postgres_log_position())
                        .await
                        .map(|p| (p.unwrap_or(0), Vec::new())),
                    Some(p) => read_log(&pool, p).await.map(|entries| (p, entries)),
                };
                let mut full_page = false;
                match read {
                    Ok((at, entries)) => {
                        let first = position.is_none();
                        position = Some(at);
                        let behind = !following && read_at.elapsed() > MAX_BEHIND;
                        if first || behind {
                            // Whatever was built before may be older than the log now holds.
                            if tx.send(Change::Missed).is_err() {
                                return;
                            }
                        }
                        full_page = entries.len() == sql::LOG_PAGE;
                        for entry in entries {
                            position = Some(entry.seq);
                            if tx.send(entry.change()).is_err() {
                                return;
                            }
                        }
                        // After the replay: until its feeds are dropped, none may count as fresh.
                        if !following && !first && !behind && tx.send(Change::Resumed).is_err() {
                            return;
                        }
                        following = true;
                        read_at = Instant::now();
                    }
                    Err(e) => {
                        if following {
                            tracing::warn!(cause = %e, "cannot read the store's change log");
                            if tx.send(Change::Lost).is_err() {
                                return;
                            }
                        }
                        following = false;
                    }
                }
                if full_page {
                    continue;
                }
                let wait = if heard.load(Ordering::SeqCst) {
                    POLL_HEARD
                } else {
                    POLL_UNHEARD
                };
                let _ = tokio::time::timeout(wait, wake.notified()).await;
            }
        });
        (rx, task)
    }
}

/// Prunes the change log and vacuums the bookkeeping tables now and every [`UPKEEP_EVERY`],
/// forever: beside the follower, which a prune of a million entries (0.6 s) or a vacuum after
/// them (1.3 s) would otherwise hold back from the changes it has to pass on.
async fn upkeep(pool: PgPool) {
    loop {
        let prune = sql::postgres_prune_log();
        if let Err(e) = execute_on(&pool, &prune).await {
            tracing::debug!(cause = %e, "pruning the change log failed");
        }
        let vacuum = sql::postgres_vacuum_bookkeeping();
        if let Err(e) = execute_on(&pool, &vacuum).await {
            tracing::debug!(cause = %e, "vacuuming the bookkeeping tables failed");
        }
        tokio::time::sleep(UPKEEP_EVERY).await;
    }
}

/// Change-log entries after `position`.
async fn read_log(pool: &PgPool, position: i64) -> Result<Vec<LogRow>, sqlx::Error> {
    let statement = sql::postgres_log_since(position);
    let arguments = arguments::<Postgres>(&statement.params)?;
    sqlx::query_as_with(&statement.sql, arguments)
        .fetch_all(pool)
        .await
}

/// Listens for the log's notifications on a connection of its own, forever, waking the
/// follower on each, and once more whenever listening starts or stops (`heard` says which).
async fn listen(pool: PgPool, wake: Arc<Notify>, heard: Arc<AtomicBool>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(sql::POSTGRES_CHANNEL).await {
                Ok(()) => {
                    heard.store(true, Ordering::SeqCst);
                    wake.notify_one();
                    // A dropped connection ends this listener (sqlx would reconnect within
                    // `try_recv`, unheard of, however long that takes): a new one is made.
                    while let Ok(Some(_)) = listener.try_recv().await {
                        wake.notify_one();
                    }
                    tracing::warn!("the store change listener lost its connection; polling");
                    heard.store(false, Ordering::SeqCst);
                    wake.notify_one();
                }
                Err(e) => tracing::warn!(cause = %e, "cannot listen for store changes; retrying"),
            },
            Err(e) => tracing::warn!(cause = %e, "cannot listen for store changes; retrying"),
        }
        tokio::time::sleep(RELISTEN_DELAY).await;
    }
}
