//! What both backends share: the SQL, the embedded migrations and the mapping between rows and
//! [`Article`]s. The queries use `$N` placeholders, which SQLite and PostgreSQL both accept.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};

use super::Window;

use super::StoredArticle;
use crate::model::{Article, Bucket, CategorySlug};

/// Migrations compiled into the binary: (version, description, SQL).
#[derive(Debug)]
pub(super) struct Embedded(pub &'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        let migrations = self
            .0
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into(),
                    false,
                )
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

/// A write transaction on one pooled connection, begun and ended with plain statements rather
/// than through sqlx's `Transaction`.
///
/// Why: when a COMMIT fails (SQLite on a full disk), SQLite has already rolled the transaction
/// back, so sqlx's own rollback fails too and its connection goes on counting a transaction that
/// no longer exists: every later write on it failed with "attempted to call begin_with at
/// non-zero transaction depth" until the process restarted. Here a connection whose transaction
/// did not end with a successful COMMIT (a failed statement, a failed COMMIT, a writer dropped
/// part-way) is closed, never reused, which also rolls back whatever it held; the next write
/// gets a fresh connection.
pub(crate) struct Tx<DB: sqlx::Database> {
    conn: sqlx::pool::PoolConnection<DB>,
    committed: bool,
}

// Per backend rather than generic over `Database`: the generic version's futures could not be
// shown to be `Send` (sqlx's executor bounds are higher-ranked), which axum handlers need.
macro_rules! tx_statements {
    ($db:ty) => {
        impl Tx<$db> {
            /// Takes a connection from `pool` and starts a transaction on it with `begin`.
            pub(super) async fn begin(
                pool: &sqlx::Pool<$db>,
                begin: &str,
            ) -> Result<Self, sqlx::Error> {
                let mut tx = Tx {
                    conn: pool.acquire().await?,
                    committed: false,
                };
                sqlx::Executor::execute(&mut *tx.conn, begin).await?;
                Ok(tx)
            }

            /// Commits; on failure the connection is closed rather than returned to the pool.
            pub(super) async fn commit(mut self) -> Result<(), sqlx::Error> {
                sqlx::Executor::execute(&mut *self.conn, "COMMIT").await?;
                self.committed = true;
                Ok(())
            }
        }
    };
}
tx_statements!(sqlx::Sqlite);
tx_statements!(sqlx::Postgres);

impl<DB: sqlx::Database> std::ops::Deref for Tx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for Tx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: sqlx::Database> Drop for Tx<DB> {
    fn drop(&mut self) {
        if !self.committed {
            self.conn.close_on_drop();
        }
    }
}

/// Key of the `meta` row that write probes write.
pub(super) const META_WRITE_PROBE: &str = "write_probe";

/// Key of the `meta` row holding the region tree the feed index was built for.
pub(super) const META_REGION_TREE: &str = "region_tree";

pub(super) const SELECT_META: &str = "SELECT value FROM meta WHERE key = $1";
pub(super) const UPSERT_META: &str = "INSERT INTO meta (key, value) VALUES ($1, $2) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

pub(super) const SELECT_BUCKETS_OF: &str = "SELECT bucket FROM feed_index WHERE article_id = $1";
pub(super) const INSERT_BUCKET: &str =
    "INSERT INTO feed_index (bucket, published_at, article_id) VALUES ($1, $2, $3)";
pub(super) const DELETE_REGION_BUCKETS: &str = "DELETE FROM feed_index WHERE bucket LIKE 'r:%'";
pub(super) const SELECT_REGIONS: &str =
    "SELECT id, published_at, region FROM articles WHERE region IS NOT NULL";
pub(super) const COUNT_ARTICLES: &str = "SELECT COUNT(*) FROM articles";

/// Articles per multi-row statement: 14 parameters each stays far below SQLite's 32,766.
pub(super) const WRITE_CHUNK: usize = 500;
/// Feed-index rows per multi-row statement (3 parameters each).
pub(super) const BUCKET_ROWS: usize = 5000;

/// The head of a multi-row article insert; the rows follow, then [`ON_CONFLICT_UPDATE`].
pub(super) const INSERT_ARTICLES: &str = "INSERT INTO articles \
     (id, title, summary, content_html, url, published_at, updated_at, author, \
      source_name, source_url, categories, region, image, language) ";

/// An upsert replaces every column but the id.
pub(super) const ON_CONFLICT_UPDATE: &str = " ON CONFLICT (id) DO UPDATE SET \
     title = excluded.title, summary = excluded.summary, content_html = excluded.content_html, \
     url = excluded.url, published_at = excluded.published_at, updated_at = excluded.updated_at, \
     author = excluded.author, source_name = excluded.source_name, \
     source_url = excluded.source_url, categories = excluded.categories, \
     region = excluded.region, image = excluded.image, language = excluded.language";

/// The selection condition on `f`: filed under bucket `$1` and, with `also_in > 0`, also under
/// any of the next `also_in` parameters. Returns the condition and the next free parameter.
fn bucket_condition(also_in: usize) -> (String, usize) {
    let mut sql = String::from("f.bucket = $1");
    if also_in > 0 {
        let list: Vec<String> = (0..also_in).map(|i| format!("${}", i + 2)).collect();
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM feed_index g WHERE g.article_id = f.article_id \
             AND g.bucket IN ({}))",
            list.join(", ")
        ));
    }
    (sql, also_in + 2)
}

/// The newest articles of one bucket within a time window. Placeholders, numbered in the
/// order they appear: the bucket, the other buckets, the window's start and end, the limit.
pub(super) fn articles_sql(also_in: usize) -> String {
    let (condition, next) = bucket_condition(also_in);
    format!(
        "SELECT a.id, a.title, a.summary, a.content_html, a.url, a.published_at, a.updated_at, \
         a.author, a.source_name, a.source_url, a.categories, a.region, a.image, a.language, \
         CAST(CASE WHEN a.sanitized THEN 1 ELSE 0 END AS BIGINT) AS sanitized \
         FROM feed_index f JOIN articles a ON a.id = f.article_id WHERE {condition} \
         AND f.published_at >= ${next} AND f.published_at < ${} \
         ORDER BY f.published_at DESC, f.article_id DESC LIMIT ${}",
        next + 1,
        next + 2
    )
}

/// The nearest publication time of one bucket before (`newest_before`) or from a time.
pub(super) fn edge_sql(also_in: usize, newest_before: bool) -> String {
    let (condition, next) = bucket_condition(also_in);
    let (op, order) = if newest_before {
        ("<", "DESC")
    } else {
        (">=", "ASC")
    };
    format!(
        "SELECT f.published_at FROM feed_index f WHERE {condition} AND f.published_at {op} ${next} \
         ORDER BY f.published_at {order} LIMIT 1"
    )
}

/// A window's bounds and limit as bound parameters.
pub(super) fn window_params(window: Window) -> (i64, i64, i64) {
    (
        window.from.map_or(i64::MIN, micros),
        window.until.map_or(i64::MAX, micros),
        window.limit.map_or(i64::MAX, i64::from),
    )
}

/// Reads a [`StoredArticle`] from any backend's row.
pub(super) fn read_row<R>(row: &R) -> Result<StoredArticle, sqlx::Error>
where
    R: sqlx::Row,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    Ok(StoredArticle {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        summary: row.try_get("summary")?,
        content_html: row.try_get("content_html")?,
        url: row.try_get("url")?,
        published_at: row.try_get("published_at")?,
        updated_at: row.try_get("updated_at")?,
        author: row.try_get("author")?,
        source_name: row.try_get("source_name")?,
        source_url: row.try_get("source_url")?,
        categories: row.try_get("categories")?,
        region: row.try_get("region")?,
        image: row.try_get("image")?,
        language: row.try_get("language")?,
        sanitized: row.try_get::<i64, _>("sanitized")? != 0,
    })
}

/// Microseconds since the epoch, as stored.
pub(super) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The stored form of an article's categories.
pub(super) fn categories_column(article: &Article) -> String {
    let slugs: Vec<&str> = article
        .categories()
        .iter()
        .map(CategorySlug::as_str)
        .collect();
    slugs.join(" ")
}

/// Merges the per-bucket results of a selection: newest first, ties by id, each article once.
/// Not cut to the window's limit: the intake may yet skip a row it cannot fix, and the next
/// row (of another bucket) should then take its place.
pub(super) fn newest_first(mut rows: Vec<StoredArticle>) -> Vec<StoredArticle> {
    rows.sort_by(|a, b| {
        b.published_at
            .cmp(&a.published_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    rows.dedup_by(|a, b| a.id == b.id);
    rows
}

/// The articles to write, each id once (the last given wins, as separate upserts would), in
/// their order: one statement may not update the same row twice.
pub(super) fn last_of_each_id(articles: &[Article]) -> Vec<&Article> {
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

/// Collects the buckets a write touched.
pub(super) type Touched = BTreeSet<Bucket>;

pub(super) const DELETE_ARTICLE: &str = "DELETE FROM articles WHERE id = $1";
pub(super) const PING: &str = "SELECT 1";

/// The shared body of both backends: the same queries on a different pool type.
/// `$files_in_code`: whether feedcast files articles in the feed index itself (SQLite) or the
/// database does it in a trigger (PostgreSQL, so that writes by other programs are filed too).
macro_rules! store_queries {
    ($store:ty, $db:ty, files_in_code: $files_in_code:expr) => {
        impl $store {
            pub(super) async fn delete(&self, id: &str) -> Result<Option<Vec<Bucket>>, StoreError> {
                let q = |doing: &'static str| move |source| StoreError::Query { doing, source };
                let mut tx = shared::Tx::<$db>::begin(self.writer(), Self::BEGIN_WRITE)
                    .await
                    .map_err(q("starting a takedown"))?;
                let before: Vec<String> = sqlx::query_scalar(shared::SELECT_BUCKETS_OF)
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(q("reading an article's buckets"))?;
                let deleted = sqlx::query(shared::DELETE_ARTICLE)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("taking an article down"))?;
                tx.commit().await.map_err(q("committing a takedown"))?;
                Ok((deleted.rows_affected() > 0)
                    .then(|| before.iter().filter_map(|k| Bucket::from_key(k)).collect()))
            }

            /// Writes and commits one row of `meta`: whether the store takes writes again.
            pub(super) async fn probe_write(&self) -> Result<(), StoreError> {
                let q = |doing: &'static str| move |source| StoreError::Query { doing, source };
                let mut tx = shared::Tx::<$db>::begin(self.writer(), Self::BEGIN_WRITE)
                    .await
                    .map_err(q("starting a write probe"))?;
                sqlx::query(shared::UPSERT_META)
                    .bind(shared::META_WRITE_PROBE)
                    .bind(chrono::Utc::now().to_rfc3339())
                    .execute(&mut *tx)
                    .await
                    .map_err(q("writing a probe"))?;
                tx.commit().await.map_err(q("committing a write probe"))
            }

            pub(super) async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query(shared::PING)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err(|source| StoreError::Query {
                        doing: "checking the store",
                        source,
                    })
            }

            pub(super) async fn begin_write(&self) -> Result<shared::Tx<$db>, StoreError> {
                let mut tx = shared::Tx::<$db>::begin(self.writer(), Self::BEGIN_WRITE)
                    .await
                    .map_err(|source| StoreError::Query {
                        doing: "starting a write",
                        source,
                    })?;
                Self::mark_writer(&mut tx).await?;
                Ok(tx)
            }

            /// Writes within `tx`, adding the buckets whose feeds change to `touched`.
            pub(super) async fn write_in(
                tx: &mut shared::Tx<$db>,
                articles: &[Article],
                catalog: &Catalog,
                touched: &mut shared::Touched,
            ) -> Result<(), StoreError> {
                let q = |doing: &'static str| move |source| StoreError::Query { doing, source };
                let articles = shared::last_of_each_id(articles);
                // A few multi-row statements per chunk rather than several per article: the
                // per-statement cost, not the data, is what bounds an import.
                for chunk in articles.chunks(shared::WRITE_CHUNK) {
                    // `sql` followed by the chunk's ids as an IN list.
                    let of_ids = |sql: &'static str| {
                        let mut query = sqlx::QueryBuilder::<$db>::new(sql);
                        let mut ids = query.separated(", ");
                        for a in chunk {
                            ids.push_bind(a.id().as_str());
                        }
                        query.push(")");
                        query
                    };
                    let before: Vec<String> =
                        of_ids("SELECT bucket FROM feed_index WHERE article_id IN (")
                            .build_query_scalar()
                            .fetch_all(&mut **tx)
                            .await
                            .map_err(q("reading articles' buckets"))?;
                    touched.extend(before.iter().filter_map(|k| Bucket::from_key(k)));
                    if $files_in_code {
                        of_ids("DELETE FROM feed_index WHERE article_id IN (")
                            .build()
                            .execute(&mut **tx)
                            .await
                            .map_err(q("unfiling articles"))?;
                    }
                    let mut upsert = sqlx::QueryBuilder::<$db>::new(shared::INSERT_ARTICLES);
                    upsert.push_values(chunk, |mut row, a| {
                        row.push_bind(a.id().as_str())
                            .push_bind(a.title())
                            .push_bind(a.summary())
                            .push_bind(a.content_html())
                            .push_bind(a.url())
                            .push_bind(shared::micros(a.published_at()))
                            .push_bind(a.updated_at().map(shared::micros))
                            .push_bind(a.author())
                            .push_bind(a.source().map(|s| s.name.as_str()))
                            .push_bind(a.source().map(|s| s.url.as_str()))
                            .push_bind(shared::categories_column(a))
                            .push_bind(a.region().map(|r| r.as_str()))
                            .push_bind(a.image())
                            .push_bind(a.language());
                    });
                    upsert.push(shared::ON_CONFLICT_UPDATE);
                    upsert
                        .build()
                        .execute(&mut **tx)
                        .await
                        .map_err(q("writing articles"))?;
                    let mut rows: Vec<(String, i64, &str)> = Vec::new();
                    for a in chunk {
                        for bucket in catalog.buckets(a) {
                            rows.push((
                                bucket.key(),
                                shared::micros(a.published_at()),
                                a.id().as_str(),
                            ));
                            touched.insert(bucket);
                        }
                    }
                    if $files_in_code {
                        for part in rows.chunks(shared::BUCKET_ROWS) {
                            let mut insert = sqlx::QueryBuilder::<$db>::new(
                                "INSERT INTO feed_index (bucket, published_at, article_id) ",
                            );
                            insert.push_values(part, |mut row, (key, published, id)| {
                                row.push_bind(key.as_str())
                                    .push_bind(*published)
                                    .push_bind(*id);
                            });
                            insert
                                .build()
                                .execute(&mut **tx)
                                .await
                                .map_err(q("filing articles"))?;
                        }
                    }
                }
                Ok(())
            }

            pub(super) async fn articles(
                &self,
                selection: &Selection,
                window: Window,
            ) -> Result<Vec<super::StoredArticle>, StoreError> {
                let sql = shared::articles_sql(selection.and_any_of.len());
                let (from, until, limit) = shared::window_params(window);
                let mut found = Vec::new();
                for bucket in &selection.any_of {
                    let mut query = sqlx::query(&sql).bind(bucket.key());
                    for also in &selection.and_any_of {
                        query = query.bind(also.key());
                    }
                    let rows = query
                        .bind(from)
                        .bind(until)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|source| StoreError::Query {
                            doing: "reading a feed's articles",
                            source,
                        })?;
                    for row in &rows {
                        found.push(shared::read_row(row).map_err(|source| StoreError::Query {
                            doing: "decoding an article",
                            source,
                        })?);
                    }
                }
                Ok(shared::newest_first(found))
            }

            pub(super) async fn edge(
                &self,
                selection: &Selection,
                edge: Edge,
            ) -> Result<Option<DateTime<Utc>>, StoreError> {
                let (newest_before, at) = match edge {
                    Edge::NewestBefore(t) => (true, t),
                    Edge::OldestFrom(t) => (false, t),
                };
                let sql = shared::edge_sql(selection.and_any_of.len(), newest_before);
                let mut nearest: Option<i64> = None;
                for bucket in &selection.any_of {
                    let mut query = sqlx::query_scalar::<_, i64>(&sql).bind(bucket.key());
                    for also in &selection.and_any_of {
                        query = query.bind(also.key());
                    }
                    let found = query
                        .bind(shared::micros(at))
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(|source| StoreError::Query {
                            doing: "finding a neighbouring archive",
                            source,
                        })?;
                    nearest = match (nearest, found) {
                        (Some(a), Some(b)) if newest_before => Some(a.max(b)),
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                Ok(nearest.and_then(DateTime::from_timestamp_micros))
            }

            pub(super) async fn count(&self) -> Result<i64, StoreError> {
                sqlx::query_scalar(shared::COUNT_ARTICLES)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|source| StoreError::Query {
                        doing: "counting articles",
                        source,
                    })
            }

            /// Rebuilds the region part of the feed index when the region tree is not the one
            /// it was built for (a region moved, appeared or went away).
            pub(super) async fn refile_if_tree_changed(
                &self,
                catalog: &Catalog,
            ) -> Result<(), StoreError> {
                let q = |doing: &'static str| move |source| StoreError::Query { doing, source };
                let tree = catalog.region_tree_fingerprint();
                let mut tx = shared::Tx::<$db>::begin(self.writer(), Self::BEGIN_WRITE)
                    .await
                    .map_err(q("starting a refile"))?;
                Self::lock_for_refile(&mut tx).await?;
                Self::store_region_tree(&mut tx, catalog).await?;
                let stored: Option<String> = sqlx::query_scalar(shared::SELECT_META)
                    .bind(shared::META_REGION_TREE)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(q("reading the stored region tree"))?;
                if stored.as_deref() == Some(tree.as_str()) {
                    return tx.commit().await.map_err(q("committing the region tree"));
                }
                sqlx::query(shared::DELETE_REGION_BUCKETS)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("clearing region buckets"))?;
                let rows: Vec<(String, i64, String)> = sqlx::query_as(shared::SELECT_REGIONS)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(q("reading article regions"))?;
                for (id, published_at, region) in rows {
                    let Some(region) = catalog.region(&region) else {
                        continue;
                    };
                    for code in &region.lineage {
                        sqlx::query(shared::INSERT_BUCKET)
                            .bind(Bucket::Region(code.clone()).key())
                            .bind(published_at)
                            .bind(&id)
                            .execute(&mut *tx)
                            .await
                            .map_err(q("refiling an article"))?;
                    }
                }
                sqlx::query(shared::UPSERT_META)
                    .bind(shared::META_REGION_TREE)
                    .bind(&tree)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("storing the region tree"))?;
                Self::announce_refile(&mut tx).await?;
                tx.commit().await.map_err(q("committing a refile"))
            }
        }
    };
}

pub(super) use store_queries;
