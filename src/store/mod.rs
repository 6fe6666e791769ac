//! The article store: one interface, embedded SQLite by default or PostgreSQL.
//!
//! Articles are stored whole, and each is filed in a feed index under its [`Bucket`]s (its
//! categories, its region and every region above it). Any category or region feed is then one
//! range scan of one bucket, newest first, and costs the same at ten articles or ten million; a
//! custom feed is a few such scans merged.
//!
//! What the store does with articles is written once, here, in plain async code over two small
//! traits (`backend`): a database runs `sql`'s statements on its pool or in a write
//! transaction, and that is all it does. Every SQL text is in `sql`; `sqlite` and `postgres`
//! only connect, migrate (from `migrations/<backend>/`, embedded in the binary) and add what
//! is theirs alone (SQLite's single writer, PostgreSQL's filing trigger and notifications).

mod backend;
mod health;
mod hub;
mod postgres;
mod queue;
mod sql;
mod sqlite;
mod stats;

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
#[cfg(feature = "testing")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::model::Catalog;
use crate::model::{Article, ArticleId, Bucket, CategorySlug, RegionCode};
use backend::{Backend, Reader, Transaction};
use postgres::PgStore;
use sqlite::SqliteStore;

pub use health::{Health, WRITE_PROBE_INTERVAL};
pub use hub::{
    END_GONE, RequestLimits, RequestRefused, StoredSubscription, SubscriptionRequest, Verified,
    subscription_id,
};
pub use queue::{Claimed, Outcome, Outgoing, Settled};
pub use stats::{
    ClosedDay, FeedTally, Flushed, MAX_REPORT_KEYS, MAX_STORED_PAIRS, MAX_UNKNOWN_AGGREGATORS,
    ReportedCount, StatsDay, StatsReport,
};

/// Change-log entries handled at once (a full page means there may be more).
pub const LOG_PAGE: usize = sql::LOG_PAGE;

/// Where the store lives, parsed from `--database` / `FEEDCAST_DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH`: a file, created with its schema on first start.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
}

impl Default for DatabaseUrl {
    fn default() -> Self {
        DatabaseUrl::Sqlite(PathBuf::from("data/feedcast.db"))
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://data/feedcast.db".into());
            }
            Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(s.to_owned()))
        } else {
            Err(format!(
                "unsupported database URL `{s}`: use sqlite://PATH or postgres://USER@HOST/DB"
            ))
        }
    }
}

// A PostgreSQL URL may hold a password: never print it.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => match url::Url::parse(u) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    write!(f, "{parsed}")
                }
                Err(_) => f.write_str("postgres://(unparsable URL)"),
            },
        }
    }
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Could not open or reach the database.
    #[error("cannot open the store at {url}: {source}")]
    Connect {
        /// Where (password hidden).
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// Could not create the SQLite file's folder.
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A schema migration failed.
    #[error("cannot migrate the store's schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("store query failed while {doing}: {source}")]
    Query {
        /// What feedcast was doing.
        doing: &'static str,
        /// Why.
        source: sqlx::Error,
    },
    /// An operation took longer than the configured bound.
    #[error("store timed out after {after:?} while {doing}")]
    Timeout {
        /// What feedcast was doing.
        doing: &'static str,
        /// The bound.
        after: Duration,
    },
}

/// An article's columns as the store holds them, read back and not yet trusted.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
#[allow(missing_docs)]
pub struct StoredArticle {
    pub id: String,
    pub title: String,
    pub summary: String,
    pub content_html: String,
    pub url: String,
    /// Microseconds since the epoch.
    pub published_at: i64,
    /// Microseconds since the epoch.
    pub updated_at: Option<i64>,
    pub author: Option<String>,
    pub source_name: Option<String>,
    pub source_url: Option<String>,
    pub source_author: Option<String>,
    pub source_title: Option<String>,
    /// Microseconds since the epoch.
    pub source_published_at: Option<i64>,
    pub editor: Option<String>,
    pub short_title: Option<String>,
    /// Category slugs separated by spaces.
    pub categories: String,
    pub region: Option<String>,
    pub image: Option<String>,
    pub language: String,
    /// Whether feedcast sanitized the text when it wrote the row (the CMS's rows are not).
    pub sanitized: bool,
}

/// An article row read by a build's first statement, which also reads the feed's change time
/// and the store's clock (`sql::stamped_articles_of`): the same two on every row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StampedArticle {
    #[sqlx(flatten)]
    article: StoredArticle,
    feed_changed_at: Option<i64>,
    store_clock: Option<i64>,
}

/// What is left of a taken-down article (RFC 6721), as the tombstone index holds it: never any
/// of its text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredTombstone {
    /// The article's id, not yet trusted.
    pub article_id: String,
    /// When the article was published, in microseconds since the epoch.
    pub published_at: i64,
    /// When it was taken down, in microseconds since the epoch.
    pub deleted_at: i64,
}

/// Which articles a feed holds, in terms of the feed index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Articles filed under any of these buckets …
    pub any_of: Vec<Bucket>,
    /// … and, unless empty, also under any of these.
    pub and_any_of: Vec<Bucket>,
}

/// Which of a selection's articles to read, by publication time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Published at or after this, if given.
    pub from: Option<DateTime<Utc>>,
    /// Published before this, if given.
    pub until: Option<DateTime<Utc>>,
    /// At most this many (the newest), if given.
    pub limit: Option<u32>,
}

impl Window {
    /// The newest `limit` articles.
    pub fn newest(limit: u32) -> Self {
        Window {
            from: None,
            until: None,
            limit: Some(limit),
        }
    }
}

/// A nearest publication time, for linking archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// The newest publication before this time.
    NewestBefore(DateTime<Utc>),
    /// The oldest publication at or after this time.
    OldestFrom(DateTime<Utc>),
}

/// Default bound on one store operation; past it the store counts as unavailable.
const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The article store, on whichever backend the URL chose.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    /// Read operations run against the backend (each is one SQL statement per bucket), for
    /// the tests.
    #[cfg(feature = "testing")]
    queries: Arc<AtomicU64>,
    query_timeout: Duration,
    health: Health,
    write_probe_interval: Duration,
    /// How long tombstones are kept: a takedown forgets those older. `None`: all are kept.
    tombstone_retention: Option<Duration>,
}

/// What a failed statement was doing, as a [`StoreError`].
fn failed(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { doing, source }
}

/// The reads of one feed's build, in order, on one connection of the store's pool: taken at
/// the first read, given back when this is dropped. Each read straight from the pool costs
/// PostgreSQL a round trip to check the connection on the way out and another on the way
/// back in (sqlx pings both ways), and the next read's check could not begin until the last
/// one's return had: a build of three reads made nine round trips where it needs three.
pub struct Reading<'s> {
    store: &'s Store,
    /// The connection, once a read took it; a read that fails drops it.
    conn: Option<Box<dyn Reader>>,
}

impl Reading<'_> {
    /// The connection, taking one from the pool on the first read (within that read's time
    /// bound). Put back with `self.conn = Some(…)` after a read that succeeded.
    async fn take(&mut self) -> Result<Box<dyn Reader>, sqlx::Error> {
        match self.conn.take() {
            Some(conn) => Ok(conn),
            None => self.store.backend.reader().await,
        }
    }

    /// When what a selection shows last changed (as [`Reading::changed_at`]), and its articles
    /// within a window, newest first (ties: greater id first), as stored: the intake (in
    /// `import`, above the store) turns them into articles. With a limit, each bucket gives at
    /// most that many, so the caller cuts the merged rows to it after the intake. The change
    /// time is read by the first bucket's statement, so from the rows' own snapshot, not by a
    /// statement (and on PostgreSQL a round trip) of its own; only if that bucket has no row
    /// to carry it is it read alone, and that bucket read again after it.
    pub async fn changed_and_articles(
        &mut self,
        selection: &Selection,
        shows: Shows,
        window: Window,
    ) -> Result<(Changed, Vec<StoredArticle>), StoreError> {
        #[cfg(feature = "testing")]
        self.store.queries.fetch_add(1, Ordering::Relaxed);
        let store = self.store;
        let Some((first, rest)) = selection.any_of.split_first() else {
            return Ok((self.changed_at(selection, shows).await?, Vec::new()));
        };
        let read = store
            .bounded("reading a feed", async {
                let doing = "reading a feed's articles";
                let statement = sql::stamped_articles_of(
                    first,
                    selection,
                    window,
                    self.change_time(selection, shows),
                );
                let mut conn = self.take().await.map_err(failed(doing))?;
                let rows = conn
                    .stamped_articles(&statement)
                    .await
                    .map_err(failed(doing))?;
                let answered = sql::micros(Utc::now());
                self.conn = Some(conn);
                let changed = rows
                    .first()
                    .map(|row| changed(row.feed_changed_at, row.store_clock, answered));
                Ok((changed, rows))
            })
            .await?;
        let (changed, mut found) = match read {
            (Some(changed), rows) => (changed, rows.into_iter().map(|r| r.article).collect()),
            (None, _) => {
                let changed = self.changed_at(selection, shows).await?;
                (
                    changed,
                    self.articles_of(selection, window, std::slice::from_ref(first))
                        .await?,
                )
            }
        };
        found.extend(self.articles_of(selection, window, rest).await?);
        Ok((changed, newest_first(found)))
    }

    /// The articles of a selection within a window, newest first, as
    /// [`Reading::changed_and_articles`] reads them, without the change time.
    pub async fn articles(
        &mut self,
        selection: &Selection,
        window: Window,
    ) -> Result<Vec<StoredArticle>, StoreError> {
        #[cfg(feature = "testing")]
        self.store.queries.fetch_add(1, Ordering::Relaxed);
        let found = self
            .articles_of(selection, window, &selection.any_of)
            .await?;
        Ok(newest_first(found))
    }

    /// The articles of some buckets of a selection within a window, as stored, in no order.
    async fn articles_of(
        &mut self,
        selection: &Selection,
        window: Window,
        buckets: &[Bucket],
    ) -> Result<Vec<StoredArticle>, StoreError> {
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let store = self.store;
        store
            .bounded("reading a feed", async {
                let doing = "reading a feed's articles";
                let mut conn = self.take().await.map_err(failed(doing))?;
                let mut found = Vec::new();
                for bucket in buckets {
                    let statement = sql::articles_of(bucket, selection, window);
                    found.extend(conn.articles(&statement).await.map_err(failed(doing))?);
                }
                self.conn = Some(conn);
                Ok(found)
            })
            .await
    }

    /// What the change time of what `selection` shows covers.
    fn change_time<'b>(&self, selection: &'b Selection, shows: Shows) -> sql::ChangeTime<'b> {
        let (first, last) = match shows {
            Shows::Newest => (sql::WHOLE_BUCKET, sql::WHOLE_BUCKET),
            Shows::Published { from, to } => (
                from.map_or(sql::FIRST_MONTH, |t| sql::utc_month(sql::micros(t))),
                to.map_or(sql::LAST_MONTH, |t| sql::utc_month(sql::micros(t))),
            ),
        };
        sql::ChangeTime {
            buckets: &selection.any_of,
            first,
            last,
            clock: self.store.backend.clock(),
        }
    }

    /// The newest tombstones of a selection, of takedowns at or after `since`, of articles
    /// published within the window: newest takedown first (ties: greater id first), each id
    /// once, at most the window's limit.
    pub async fn tombstones(
        &mut self,
        selection: &Selection,
        window: Window,
        since: DateTime<Utc>,
    ) -> Result<Vec<StoredTombstone>, StoreError> {
        // Not counted in `queries`: like the change time, it is a part of a feed's read.
        let store = self.store;
        store
            .bounded("reading a feed's tombstones", async {
                let doing = "reading a feed's tombstones";
                let mut conn = self.take().await.map_err(failed(doing))?;
                let mut found = Vec::new();
                for bucket in &selection.any_of {
                    let statement =
                        sql::tombstones_of(bucket, selection, window, sql::micros(since));
                    found.extend(conn.tombstones(&statement).await.map_err(failed(doing))?);
                }
                self.conn = Some(conn);
                found.sort_by(|a, b| {
                    b.deleted_at
                        .cmp(&a.deleted_at)
                        .then_with(|| b.article_id.cmp(&a.article_id))
                });
                found.dedup_by(|a, b| a.article_id == b.article_id);
                found.truncate(window.limit.map_or(usize::MAX, |n| n as usize));
                Ok(found)
            })
            .await
    }

    /// When what a selection shows last changed, by the store's clock, and how far that clock
    /// is ahead of this machine's. Read before the articles, so that a write in between makes
    /// the time older than what is shown, never newer.
    async fn changed_at(
        &mut self,
        selection: &Selection,
        shows: Shows,
    ) -> Result<Changed, StoreError> {
        let store = self.store;
        store
            .bounded("reading a feed's change time", async {
                let doing = "reading a feed's change time";
                let statement = sql::changed_at(self.change_time(selection, shows));
                let mut conn = self.take().await.map_err(failed(doing))?;
                let (at, theirs) = conn.numbers(&statement).await.map_err(failed(doing))?;
                let answered = sql::micros(Utc::now());
                self.conn = Some(conn);
                Ok(changed(at, theirs, answered))
            })
            .await
    }
}

/// A change time as read, with the store's clock (if change times go by it) read in the same
/// statement, compared with this machine's clock at `answered`, when the answer had come: the
/// store's clock may have been read any time before, so taking it to be as far ahead as it
/// seems then never takes it to be further ahead than it is. Further would shorten how long
/// `Last-Modified` is held back, and the articles statement that carries the reading can
/// take a while (the whole round trip counts as error, a millisecond or two).
fn changed(at: Option<i64>, store_clock: Option<i64>, answered: i64) -> Changed {
    Changed {
        at: at
            .and_then(DateTime::from_timestamp_micros)
            .unwrap_or(DateTime::UNIX_EPOCH),
        clock_ahead: chrono::TimeDelta::microseconds(store_clock.map_or(0, |t| t - answered)),
    }
}

/// A write in progress (one transaction): nothing of it is visible until [`Writer::commit`],
/// and dropping it stores nothing.
pub struct Writer {
    tx: Box<dyn Transaction>,
    /// The buckets whose feeds the write changes so far.
    touched: BTreeSet<Bucket>,
    /// The change times it moves (SQLite), stamped at commit: as late as can be, so that a
    /// reader holds a date after the stamp only once the write is visible.
    stamps: Stamps,
    /// What it appends to the change log (SQLite), at commit.
    log: Log,
    /// Whether it has turned bulk ([`Writer::go_bulk`]).
    bulk: bool,
    backend: Arc<dyn Backend>,
    health: Health,
}

impl Writer {
    /// Inserts or replaces these articles by id (the last of an id given twice wins).
    pub async fn write(
        &mut self,
        articles: &[Article],
        catalog: &Catalog,
    ) -> Result<(), StoreError> {
        let written = self.write_unrecorded(articles, catalog).await;
        written.map_err(|e| self.health.write_failed(e))
    }

    async fn write_unrecorded(
        &mut self,
        articles: &[Article],
        catalog: &Catalog,
    ) -> Result<(), StoreError> {
        let files_in_code = self.backend.files_in_code();
        let articles = last_of_each_id(articles);
        // A few multi-row statements per chunk rather than several per article: the
        // per-statement cost, not the data, is what bounds an import.
        for chunk in articles.chunks(sql::WRITE_CHUNK) {
            let ids = || chunk.iter().map(|a| a.id().as_str());
            let before = self
                .tx
                .index_rows(&sql::filed(ids()))
                .await
                .map_err(failed("reading articles' buckets"))?;
            self.touched
                .extend(before.iter().filter_map(|(k, _, _)| Bucket::from_key(k)));
            // Storing an id again removes its tombstone, from the feeds that showed it.
            let entombed = self
                .tx
                .index_rows(&sql::entombed(ids()))
                .await
                .map_err(failed("reading tombstones' buckets"))?;
            self.touched
                .extend(entombed.iter().filter_map(|(k, _, _)| Bucket::from_key(k)));
            if files_in_code {
                self.stamps.add_filed(&before);
                let filed_before = self
                    .tx
                    .filings(&sql::filings(ids()))
                    .await
                    .map_err(failed("reading articles' filings"))?;
                self.log.add_written(chunk, filed_before);
                self.tx
                    .execute(&sql::unfile(ids()))
                    .await
                    .map_err(failed("unfiling articles"))?;
                if !entombed.is_empty() {
                    self.stamps.add_filed(&entombed);
                    for statement in sql::unentomb(ids()) {
                        self.tx
                            .execute(&statement)
                            .await
                            .map_err(failed("removing tombstones"))?;
                    }
                }
            }
            self.tx
                .execute(&sql::upsert_articles(chunk))
                .await
                .map_err(failed("writing articles"))?;
            let mut rows = Vec::new();
            for a in chunk {
                for bucket in catalog.buckets(a) {
                    if files_in_code {
                        self.stamps
                            .add(&bucket.key(), sql::micros(a.published_at()));
                    }
                    self.touched.insert(bucket.clone());
                    rows.push((bucket, sql::micros(a.published_at()), a.id().as_str()));
                }
            }
            if files_in_code {
                for part in rows.chunks(sql::BUCKET_ROWS) {
                    self.tx
                        .execute(&sql::file(part))
                        .await
                        .map_err(failed("filing articles"))?;
                }
            }
        }
        Ok(())
    }

    /// Turns the rest of this write into a bulk write: on PostgreSQL its statements no longer
    /// move feeds' change times one by one (thousands of statements restamping the same rows
    /// left millions of row versions behind); the commit moves every feed's instead, so that
    /// no client holding a date is wrongly told a feed has not changed. An import does this
    /// once it is large; a write of a few articles never should, since every feed's
    /// Last-Modified moves.
    pub async fn go_bulk(&mut self) -> Result<(), StoreError> {
        if self.bulk {
            return Ok(());
        }
        if let Some([mark, _]) = self.backend.bulk_writing() {
            let marked = self.tx.execute(&mark).await;
            marked
                .map_err(failed("marking a bulk write"))
                .map_err(|e| self.health.write_failed(e))?;
        }
        self.bulk = true;
        Ok(())
    }

    /// Stores everything written, and returns every bucket whose feeds changed: those the
    /// articles were filed under before the write and those they are now.
    pub async fn commit(mut self) -> Result<Vec<Bucket>, StoreError> {
        if self.bulk {
            if let Some([_, stamp]) = self.backend.bulk_writing() {
                let stamped = self.tx.execute(&stamp).await;
                self.health
                    .record_write(stamped.map_err(failed("stamping change times")))?;
            }
        }
        if self.backend.files_in_code() {
            let logged = std::mem::take(&mut self.log).write(self.tx.as_mut()).await;
            self.health.record_write(logged)?;
            let stamps = std::mem::take(&mut self.stamps);
            let stamped = stamps.write(self.tx.as_mut()).await;
            self.health.record_write(stamped)?;
        }
        let committed = self.tx.commit().await;
        self.health
            .record_write(committed.map_err(failed("committing a write")))?;
        if let Err(e) = self.backend.after_write().await {
            tracing::debug!(cause = %e, "tidying up after a write failed");
        }
        Ok(self.touched.into_iter().collect())
    }
}

/// Articles one write may name in the change log (SQLite); a write of more appends one entry
/// for everything instead, so a bulk import does not double its size in log entries.
const LOG_ARTICLES_MAX: usize = 1000;

/// An article's filing as the change log holds it: (categories, region, published_at).
type OwnedFiling = (String, Option<String>, i64);

/// An article's filing as `sql::filings` reads it: (id, categories, region, published_at).
type FilingRow = (String, String, Option<String>, i64);

/// What a write appends to the change log (SQLite, which appends in code).
enum Log {
    /// These articles: (id, filing before, filing after).
    Articles(Vec<(String, Option<OwnedFiling>, Option<OwnedFiling>)>),
    /// Too many to name.
    Everything,
}

impl Default for Log {
    fn default() -> Self {
        Log::Articles(Vec::new())
    }
}

impl Log {
    /// These articles are written; `before` holds (id, categories, region, published_at) of
    /// those that existed.
    fn add_written(&mut self, articles: &[&Article], before: Vec<FilingRow>) {
        let Log::Articles(entries) = self else {
            return;
        };
        if entries.len() + articles.len() > LOG_ARTICLES_MAX {
            *self = Log::Everything;
            return;
        }
        let mut before: std::collections::HashMap<String, OwnedFiling> = before
            .into_iter()
            .map(|(id, categories, region, published)| (id, (categories, region, published)))
            .collect();
        for a in articles {
            let categories: Vec<&str> = a.categories().iter().map(CategorySlug::as_str).collect();
            let after = (
                categories.join(" "),
                a.region().map(|r| r.as_str().to_owned()),
                sql::micros(a.published_at()),
            );
            let id = a.id().as_str();
            entries.push((id.to_owned(), before.remove(id), Some(after)));
        }
    }

    /// An article is taken down; `before` as in [`Log::add_written`].
    fn add_removed(&mut self, before: Vec<FilingRow>) {
        if let Log::Articles(entries) = self {
            for (id, categories, region, published) in before {
                entries.push((id, Some((categories, region, published)), None));
            }
        }
    }

    async fn write(self, tx: &mut dyn Transaction) -> Result<(), StoreError> {
        let now = sql::micros(Utc::now());
        let entries = match self {
            Log::Everything => {
                return tx
                    .execute(&sql::log_everything(now))
                    .await
                    .map_err(failed("appending to the change log"));
            }
            Log::Articles(entries) => entries,
        };
        fn borrowed(f: &Option<OwnedFiling>) -> Option<sql::LoggedFiling<'_>> {
            f.as_ref()
                .map(|(c, r, p)| (std::borrow::Cow::Borrowed(c.as_str()), r.as_deref(), *p))
        }
        let rows: Vec<_> = entries
            .iter()
            .map(|(id, before, after)| (Some(id.as_str()), borrowed(before), borrowed(after)))
            .collect();
        for part in rows.chunks(sql::WRITE_CHUNK) {
            tx.execute(&sql::append_log(part, now))
                .await
                .map_err(failed("appending to the change log"))?;
        }
        Ok(())
    }
}

/// The change times a write moves (SQLite, which files in code): each bucket it files or unfiles
/// an article in, as a whole and for the article's month.
#[derive(Default)]
struct Stamps(BTreeSet<(String, i64)>);

impl Stamps {
    fn add(&mut self, bucket_key: &str, published_at: i64) {
        self.0.insert((bucket_key.to_owned(), sql::WHOLE_BUCKET));
        self.0
            .insert((bucket_key.to_owned(), sql::utc_month(published_at)));
    }

    /// Every bucket these (bucket, published_at, article id) feed-index rows file an article in.
    fn add_filed(&mut self, rows: &[(String, i64, String)]) {
        for (bucket_key, published_at, _) in rows {
            self.add(bucket_key, *published_at);
        }
    }

    async fn write(self, tx: &mut dyn Transaction) -> Result<(), StoreError> {
        let keys: Vec<(String, i64)> = self.0.into_iter().collect();
        let now = sql::micros(Utc::now());
        for part in keys.chunks(sql::BUCKET_ROWS) {
            tx.execute(&sql::stamp(part, now))
                .await
                .map_err(failed("stamping change times"))?;
        }
        Ok(())
    }
}

/// The articles to write, each id once (the last given wins, as separate upserts would), in
/// their order: one statement may not update the same row twice.
fn last_of_each_id(articles: &[Article]) -> Vec<&Article> {
    let mut last = std::collections::HashMap::new();
    for (i, a) in articles.iter().enumerate() {
        last.insert(a.id().as_str(), i);
    }
    articles
        .iter()
        .enumerate()
        .filter(|(i, a)| last.get(a.id().as_str()) == Some(i))
        .map(|(_, a)| a)
        .collect()
}

/// Merges the per-bucket results of a selection: newest first, ties by id, each article once.
/// Not cut to the window's limit: the intake may yet skip a row it cannot fix, and the next
/// row (of another bucket) should then take its place.
fn newest_first(mut rows: Vec<StoredArticle>) -> Vec<StoredArticle> {
    rows.sort_by(|a, b| {
        b.published_at
            .cmp(&a.published_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    rows.dedup_by(|a, b| a.id == b.id);
    rows
}

/// Which of a selection's change times a document depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shows {
    /// Its newest items: every change to its buckets.
    Newest,
    /// Articles published from `from` to `to` (either open): an archive month, from its
    /// previous archive's newest article to its next one's oldest, since its links to them
    /// change too when an article between them comes or goes.
    Published {
        /// The earliest publication that matters, if any.
        from: Option<DateTime<Utc>>,
        /// The latest, if any.
        to: Option<DateTime<Utc>>,
    },
}

/// When what a document shows last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    /// By the store's clock.
    pub at: DateTime<Utc>,
    /// How far the store's clock was ahead of this machine's when it was read.
    pub clock_ahead: chrono::TimeDelta,
}

/// A change the database announced (PostgreSQL only): an article written or removed by any
/// replica or by any other program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An article row changed; how it was filed before and after (`None`: it did not exist).
    Article {
        /// The article's id.
        id: String,
        /// Its categories and region before the change.
        before: Option<Filing>,
        /// Its categories and region after the change.
        after: Option<Filing>,
    },
    /// The store's changes cannot be read: until they can, they go unheard.
    Lost,
    /// They can be read again, and every change since they could not has been or will be
    /// reported: nothing was missed.
    Resumed,
    /// Changes may have been missed (the first reading, one too long after the last, or a
    /// rebuilt feed index): whatever was built before is outdated.
    Missed,
}

/// Where an article is filed: what decides which feeds and archive months it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filing {
    /// Its categories (names that are not valid slugs are left out).
    pub categories: Vec<CategorySlug>,
    /// Its region, if valid.
    pub region: Option<RegionCode>,
    /// When it was published (unknown for entries logged before migration 6 on PostgreSQL).
    pub published_at: Option<DateTime<Utc>>,
}

/// A change-log entry, as both stores keep it (SQLite migration 4, PostgreSQL 5 and 6).
#[derive(Debug, Clone, sqlx::FromRow)]
struct LogRow {
    seq: i64,
    /// `None`: everything changed (a refile, a write of many articles).
    article_id: Option<String>,
    before_categories: Option<String>,
    before_region: Option<String>,
    before_published: Option<i64>,
    after_categories: Option<String>,
    after_region: Option<String>,
    after_published: Option<i64>,
}

impl LogRow {
    /// What the entry tells a cache or the outbound queue.
    fn change(self) -> Change {
        let filing =
            |categories: Option<String>, region: Option<String>, published: Option<i64>| {
                categories.map(|categories| Filing {
                    categories: categories
                        .split_whitespace()
                        .filter_map(|c| CategorySlug::parse(c).ok())
                        .collect(),
                    region: region.as_deref().and_then(|r| RegionCode::parse(r).ok()),
                    published_at: published.and_then(DateTime::from_timestamp_micros),
                })
            };
        match self.article_id {
            None => Change::Missed,
            Some(id) => Change::Article {
                id,
                before: filing(
                    self.before_categories,
                    self.before_region,
                    self.before_published,
                ),
                after: filing(
                    self.after_categories,
                    self.after_region,
                    self.after_published,
                ),
            },
        }
    }
}

impl Store {
    /// Opens the store, creating or upgrading its schema, and refiles the articles that still
    /// carry a former name, and all of them if the region tree changed since the last start.
    pub async fn open(url: &DatabaseUrl, catalog: &Catalog) -> Result<Self, StoreError> {
        let backend: Arc<dyn Backend> = match url {
            DatabaseUrl::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
            DatabaseUrl::Postgres(u) => Arc::new(PgStore::open(u, &url.to_string()).await?),
        };
        let store = Store {
            backend,
            #[cfg(feature = "testing")]
            queries: Arc::new(AtomicU64::new(0)),
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            health: Health::default(),
            write_probe_interval: WRITE_PROBE_INTERVAL,
            tombstone_retention: None,
        };
        store.refile(catalog).await?;
        Ok(store)
    }

    /// Probes writes every `interval` while they fail (default [`WRITE_PROBE_INTERVAL`]).
    pub fn with_write_probe_interval(mut self, interval: Duration) -> Self {
        self.write_probe_interval = interval;
        self
    }

    /// Forgets, at each takedown, the tombstones of takedowns longer ago than `retention`.
    pub fn with_tombstone_retention(mut self, retention: Duration) -> Self {
        self.tombstone_retention = Some(retention);
        self
    }

    /// Bounds every later operation to `timeout`.
    pub fn with_query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    async fn bounded<T>(
        &self,
        doing: &'static str,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(self.query_timeout, operation)
            .await
            .map_err(|_| StoreError::Timeout {
                doing,
                after: self.query_timeout,
            });
        metrics::histogram!(crate::metrics::STORE_SECONDS, "operation" => doing)
            .record(started.elapsed().as_secs_f64());
        outcome?
    }

    /// Inserts or replaces articles by id, all or none, and returns every bucket whose feeds
    /// changed: those the articles were filed under before the write and those they are now.
    pub async fn upsert(
        &self,
        articles: &[Article],
        catalog: &Catalog,
    ) -> Result<Vec<Bucket>, StoreError> {
        let mut writer = self.begin_write().await?;
        writer.write(articles, catalog).await?;
        writer.commit().await
    }

    /// Tidies up after a bulk write (an import of many articles) has committed, so that reads
    /// are as fast right after it as in steady state. A failure is logged, not returned: the
    /// write itself is done.
    pub async fn after_bulk_write(&self) {
        if let Err(e) = self.backend.after_bulk_write().await {
            tracing::warn!(cause = %e, "tidying up after a bulk write failed");
        }
    }

    /// Starts a write that can take articles in several parts (an import streamed from a file)
    /// and stores them all at [`Writer::commit`], or none if the writer is dropped. On SQLite
    /// there is one writer: other writes wait while a `Writer` is held (so a task holding one
    /// must not start another).
    pub async fn begin_write(&self) -> Result<Writer, StoreError> {
        // Not bounded by the query timeout: a batch of thousands of articles takes longer than
        // any read should. An HTTP write is bounded by the request timeout instead, and since an
        // upsert is idempotent, a client cut off can safely retry.
        let tx = self
            .backend
            .begin_write()
            .await
            .map_err(failed("starting a write"));
        Ok(Writer {
            tx: tx.map_err(|e| self.health.write_failed(e))?,
            touched: BTreeSet::new(),
            stamps: Stamps::default(),
            bulk: false,
            log: Log::default(),
            backend: self.backend.clone(),
            health: self.health.clone(),
        })
    }

    /// Takes an article down; returns the buckets it was filed under, or `None` if there was
    /// no such article.
    pub async fn delete(&self, id: &ArticleId) -> Result<Option<Vec<Bucket>>, StoreError> {
        let deleted = self
            .bounded("taking an article down", async {
                let mut tx = self
                    .backend
                    .begin_write()
                    .await
                    .map_err(failed("starting a takedown"))?;
                let before = tx
                    .index_rows(&sql::filed(std::iter::once(id.as_str())))
                    .await
                    .map_err(failed("reading an article's buckets"))?;
                let filed_before = if self.backend.files_in_code() {
                    tx.filings(&sql::filings(std::iter::once(id.as_str())))
                        .await
                        .map_err(failed("reading an article's filing"))?
                } else {
                    Vec::new()
                };
                let now = Utc::now();
                if self.backend.files_in_code() {
                    for statement in sql::entomb(id.as_str(), sql::micros(now)) {
                        tx.execute(&statement)
                            .await
                            .map_err(failed("leaving a tombstone"))?;
                    }
                }
                if let Some(retention) = self.tombstone_retention {
                    let before = now - chrono::TimeDelta::from_std(retention).unwrap_or_default();
                    for statement in sql::prune_tombstones(sql::micros(before)) {
                        tx.execute(&statement)
                            .await
                            .map_err(failed("forgetting old tombstones"))?;
                    }
                }
                let deleted = tx
                    .texts(&sql::delete_article(id.as_str()))
                    .await
                    .map_err(failed("taking an article down"))?;
                if self.backend.files_in_code() {
                    let mut log = Log::default();
                    log.add_removed(filed_before);
                    log.write(tx.as_mut()).await?;
                    let mut stamps = Stamps::default();
                    stamps.add_filed(&before);
                    stamps.write(tx.as_mut()).await?;
                }
                tx.commit().await.map_err(failed("committing a takedown"))?;
                Ok((!deleted.is_empty()).then(|| {
                    before
                        .iter()
                        .filter_map(|(k, _, _)| Bucket::from_key(k))
                        .collect()
                }))
            })
            .await;
        self.health.record_write(deleted)
    }

    /// What is known of the store's health: shared with the cache and readiness.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// While writes fail, and at most every [`WRITE_PROBE_INTERVAL`], tries a small write of its
    /// own (a row of `meta`); one that commits clears the failure.
    pub async fn probe_write(&self) {
        if !self.health.due_for_probe(self.write_probe_interval) {
            return;
        }
        let probed = self
            .bounded("probing a write", async {
                let mut tx = self
                    .backend
                    .begin_write()
                    .await
                    .map_err(failed("starting a write probe"))?;
                tx.execute(&sql::write_probe())
                    .await
                    .map_err(failed("writing a probe"))?;
                tx.commit()
                    .await
                    .map_err(failed("committing a write probe"))
            })
            .await;
        let _ = self.health.record_write(probed);
    }

    /// A feed's reads, on one connection (see [`Reading`]).
    pub fn reading(&self) -> Reading<'_> {
        Reading {
            store: self,
            conn: None,
        }
    }

    /// The articles of a selection within a window: [`Reading::articles`] on a connection
    /// of its own.
    pub async fn articles(
        &self,
        selection: &Selection,
        window: Window,
    ) -> Result<Vec<StoredArticle>, StoreError> {
        self.reading().articles(selection, window).await
    }

    /// The publication time nearest an edge among a selection's articles, if any.
    pub async fn edge(
        &self,
        selection: &Selection,
        edge: Edge,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        #[cfg(feature = "testing")]
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.bounded("finding an archive", async {
            let mut nearest: Option<i64> = None;
            for bucket in &selection.any_of {
                let statement = sql::edge_of(bucket, selection, edge);
                let found = self
                    .backend
                    .number(&statement)
                    .await
                    .map_err(failed("finding a neighbouring archive"))?;
                nearest = match (nearest, found, edge) {
                    (Some(a), Some(b), Edge::NewestBefore(_)) => Some(a.max(b)),
                    (Some(a), Some(b), Edge::OldestFrom(_)) => Some(a.min(b)),
                    (a, b, _) => a.or(b),
                };
            }
            Ok(nearest.and_then(DateTime::from_timestamp_micros))
        })
        .await
    }

    /// How many read operations (feed and archive queries) have been run.
    #[cfg(feature = "testing")]
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// How many articles are stored.
    pub async fn count(&self) -> Result<i64, StoreError> {
        self.bounded("counting articles", async {
            let counted = self.backend.number(&sql::count_articles()).await;
            Ok(counted.map_err(failed("counting articles"))?.unwrap_or(0))
        })
        .await
    }

    /// Checks that the store answers, within the query timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded("checking the store", async {
            let answered = self.backend.number(&sql::ping()).await;
            answered.map(|_| ()).map_err(failed("checking the store"))
        })
        .await
    }

    /// Brings the feed index in line with the catalog: rows that still carry a former category
    /// slug or region code are rewritten under the current one and refiled, and the region part
    /// is rebuilt when the region tree is not the one it was built for (a region moved, appeared
    /// or went away). Idempotent: once done, a start finds nothing to do. When anything was
    /// done, every replica and cached copy hears of it as of a change of everything.
    async fn refile(&self, catalog: &Catalog) -> Result<(), StoreError> {
        let tree = catalog.region_tree_fingerprint();
        let mut tx = self
            .backend
            .begin_write()
            .await
            .map_err(failed("starting a refile"))?;
        for statement in self.backend.before_refile(catalog) {
            tx.execute(&statement)
                .await
                .map_err(failed("storing the region tree and former names"))?;
        }
        // Before the region part is rebuilt: that reads the articles' region codes.
        let renamed = self.rename(tx.as_mut(), catalog).await?;
        self.refile_subscriptions(tx.as_mut(), catalog).await?;
        let stored = tx
            .texts(&sql::stored_region_tree())
            .await
            .map_err(failed("reading the stored region tree"))?;
        let tree_changed = stored.first().map(String::as_str) != Some(tree.as_str());
        if tree_changed {
            self.refile_regions(tx.as_mut(), catalog, &tree).await?;
        }
        if tree_changed || renamed {
            for statement in self.backend.after_refile() {
                tx.execute(&statement)
                    .await
                    .map_err(failed("announcing a refile"))?;
            }
        }
        tx.commit().await.map_err(failed("committing a refile"))
    }

    /// Rewrites the articles that still carry a former category slug or region code under the
    /// current one, refiles them (on PostgreSQL its trigger does, and logs each), and moves the
    /// tombstones filed under a former name; whether anything changed.
    async fn rename(
        &self,
        tx: &mut dyn Transaction,
        catalog: &Catalog,
    ) -> Result<bool, StoreError> {
        let categories: std::collections::HashMap<&str, &str> = catalog
            .former_categories()
            .map(|(old, new)| (old.as_str(), new.as_str()))
            .collect();
        let regions: std::collections::HashMap<&str, &str> = catalog
            .former_regions()
            .map(|(old, new)| (old.as_str(), new.as_str()))
            .collect();
        if categories.is_empty() && regions.is_empty() {
            return Ok(false);
        }
        let former: Vec<&str> = categories.keys().copied().collect();
        let former_regions: Vec<&str> = regions.keys().copied().collect();
        let rows = tx
            .filings(&sql::carrying_names(&former, &former_regions))
            .await
            .map_err(failed("finding articles under former names"))?;
        // (id, categories, region, published_at) of each article rewritten.
        let mut renamed: Vec<FilingRow> = Vec::new();
        for (id, listed, region, published_at) in rows {
            let mut changed = false;
            let mut names: Vec<&str> = Vec::new();
            for name in listed.split_whitespace() {
                let current = categories.get(name).copied();
                changed |= current.is_some();
                let name = current.unwrap_or(name);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            let current_region = region.as_deref().and_then(|r| regions.get(r).copied());
            changed |= current_region.is_some();
            if changed {
                let region = current_region.map(str::to_owned).or(region);
                renamed.push((id, names.join(" "), region, published_at));
            }
        }

        let moving: Vec<(String, String)> = catalog
            .former_categories()
            .map(|(old, new)| {
                (
                    Bucket::Category(old.clone()).key(),
                    Bucket::Category(new.clone()).key(),
                )
            })
            .chain(catalog.former_regions().map(|(old, new)| {
                (
                    Bucket::Region(old.clone()).key(),
                    Bucket::Region(new.clone()).key(),
                )
            }))
            .collect();
        let keys: Vec<String> = moving.iter().map(|(old, _)| old.clone()).collect();
        let entombed = tx
            .texts(&sql::entombed_buckets(&keys))
            .await
            .map_err(failed("finding tombstones under former names"))?;
        for (old, new) in moving.iter().filter(|(old, _)| entombed.contains(old)) {
            for statement in sql::move_tombstones(old, new) {
                tx.execute(&statement)
                    .await
                    .map_err(failed("refiling tombstones"))?;
            }
        }
        if renamed.is_empty() {
            return Ok(!entombed.is_empty());
        }

        if self.backend.files_in_code() {
            for chunk in renamed.chunks(sql::WRITE_CHUNK) {
                tx.execute(&sql::unfile(chunk.iter().map(|r| r.0.as_str())))
                    .await
                    .map_err(failed("unfiling renamed articles"))?;
                let mut rows = Vec::new();
                for (id, listed, region, published_at) in chunk {
                    let slugs: Vec<CategorySlug> = listed
                        .split_whitespace()
                        .filter_map(|c| CategorySlug::parse(c).ok())
                        .collect();
                    let region = region.as_deref().and_then(|r| RegionCode::parse(r).ok());
                    for bucket in catalog.buckets_of(&slugs, region.as_ref()) {
                        rows.push((bucket, *published_at, id.as_str()));
                    }
                }
                for part in rows.chunks(sql::BUCKET_ROWS) {
                    tx.execute(&sql::file(part))
                        .await
                        .map_err(failed("refiling renamed articles"))?;
                }
            }
        }
        for sanitized in [true, false] {
            if !sanitized {
                // Where only feedcast writes, every row was rewritten in the first pass.
                let Some(unmark) = self.backend.unmark_writer() else {
                    break;
                };
                tx.execute(&unmark)
                    .await
                    .map_err(failed("renaming articles"))?;
            }
            for (id, listed, region, _) in &renamed {
                tx.execute(&sql::rename_article(
                    id,
                    listed,
                    region.as_deref(),
                    sanitized,
                ))
                .await
                .map_err(failed("renaming articles"))?;
            }
        }
        tracing::info!(
            articles = renamed.len(),
            "articles under former names rewritten under the current ones"
        );
        Ok(true)
    }

    /// Rebuilds the region part of the feed index for the region tree `tree`.
    async fn refile_regions(
        &self,
        tx: &mut dyn Transaction,
        catalog: &Catalog,
        tree: &str,
    ) -> Result<(), StoreError> {
        tx.execute(&sql::unfile_regions())
            .await
            .map_err(failed("clearing region buckets"))?;
        let regions = tx
            .index_rows(&sql::article_regions())
            .await
            .map_err(failed("reading article regions"))?;
        let mut rows = Vec::new();
        for (id, published_at, region) in &regions {
            let Some(region) = catalog.region(region) else {
                continue;
            };
            for code in &region.lineage {
                rows.push((Bucket::Region(code.clone()), *published_at, id.as_str()));
            }
        }
        for part in rows.chunks(sql::BUCKET_ROWS) {
            tx.execute(&sql::file(part))
                .await
                .map_err(failed("refiling articles"))?;
        }
        tx.execute(&sql::store_region_tree_fingerprint(tree))
            .await
            .map_err(failed("storing the region tree"))
    }

    /// The database's change notifications, for keeping several replicas' caches coherent;
    /// `None` on SQLite, which has one process only. Must be called within a Tokio runtime.
    pub fn changes(&self) -> Option<(mpsc::UnboundedReceiver<Change>, JoinHandle<()>)> {
        self.backend.listen()
    }

    /// Closes every connection, waiting for those in use.
    pub async fn close(&self) {
        self.backend.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_parse_database_urls() {
        assert_eq!(
            "sqlite://data/x.db".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("data/x.db"))
        );
        assert!(matches!(
            "postgres://u@h/db".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        assert!("mysql://h/db".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn database_url_hides_the_password() {
        let url: DatabaseUrl = "postgres://u:secret@h/db".parse().unwrap();
        assert!(!url.to_string().contains("secret"));
        assert!(!format!("{url:?}").contains("secret"));
    }
}
