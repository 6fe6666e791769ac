//! Every SQL text the store runs, on either backend, and the [`Statement`]s built from them.
//!
//! The texts use `$N` placeholders, which SQLite and PostgreSQL both accept, so most are shared;
//! the few that only one backend runs are named for it. The columns of an article are listed
//! once, in [`ARTICLE_COLUMNS`], and decoded by `StoredArticle`'s `sqlx::FromRow`: adding a
//! column means adding it there, to that struct, to [`article_values`] and to the migrations.

use std::borrow::Cow;

use super::{Edge, Selection, Window};
use crate::model::{Article, Bucket, Catalog, CategorySlug};

/// One value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Param<'a> {
    /// A text.
    Text(Cow<'a, str>),
    /// A text or NULL.
    MaybeText(Option<&'a str>),
    /// A 64-bit integer (times are microseconds since the epoch).
    Int(i64),
    /// An integer or NULL.
    MaybeInt(Option<i64>),
}

/// One SQL statement with the values of its placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Statement<'a> {
    /// The SQL text.
    pub(super) sql: Cow<'static, str>,
    /// `$1`, `$2`, … in order.
    pub(super) params: Vec<Param<'a>>,
}

impl<'a> Statement<'a> {
    /// A statement with no values bound yet.
    pub(super) fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Statement {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    /// Binds the next placeholder to a text.
    pub(super) fn text(mut self, value: impl Into<Cow<'a, str>>) -> Self {
        self.params.push(Param::Text(value.into()));
        self
    }

    /// Binds the next placeholder to a text or NULL.
    fn maybe_text(mut self, value: Option<&'a str>) -> Self {
        self.params.push(Param::MaybeText(value));
        self
    }

    /// Binds the next placeholder to an integer.
    pub(super) fn int(mut self, value: i64) -> Self {
        self.params.push(Param::Int(value));
        self
    }

    /// Binds the next placeholder to an integer or NULL.
    fn maybe_int(mut self, value: Option<i64>) -> Self {
        self.params.push(Param::MaybeInt(value));
        self
    }
}

/// Microseconds since the epoch, as stored.
pub(super) fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// `($n, $n+1, …), (…)`: `rows` groups of `columns` placeholders, numbered from `$1`.
fn placeholders(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 6);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(itoa::Buffer::new().format(row * columns + column + 1));
        }
        sql.push(')');
    }
    sql
}

/// `$1, $2, …, $n`.
fn list(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Articles

/// An article's columns, in the order [`article_values`] binds them and `StoredArticle` names
/// them (`sanitized` is set by the database, not written).
const ARTICLE_COLUMNS: &str = "id, title, summary, content_html, url, published_at, updated_at, \
     author, source_name, source_url, source_author, source_title, source_published_at, editor, \
     short_title, categories, region, image, language";

/// Placeholders per article in [`article_values`].
fn article_params() -> usize {
    ARTICLE_COLUMNS.split(", ").count()
}

/// Articles per multi-row statement: one parameter a column stays far below SQLite's 32,766.
pub(super) const WRITE_CHUNK: usize = 500;

/// Feed-index rows per multi-row statement (3 parameters each).
pub(super) const BUCKET_ROWS: usize = 5000;

/// An article's values, in [`ARTICLE_COLUMNS`] order.
fn article_values<'a>(mut statement: Statement<'a>, a: &'a Article) -> Statement<'a> {
    let categories: Vec<&str> = a.categories().iter().map(CategorySlug::as_str).collect();
    statement = statement
        .text(a.id().as_str())
        .text(a.title())
        .text(a.summary())
        .text(a.content_html())
        .text(a.url())
        .int(micros(a.published_at()))
        .maybe_int(a.updated_at().map(micros))
        .maybe_text(a.author())
        .maybe_text(a.source().map(|s| s.name.as_str()))
        .maybe_text(a.source().map(|s| s.url.as_str()))
        .maybe_text(a.source().and_then(|s| s.author.as_deref()))
        .maybe_text(a.source().and_then(|s| s.title.as_deref()))
        .maybe_int(a.source().and_then(|s| s.published_at).map(micros))
        .maybe_text(a.editor())
        .maybe_text(a.short_title())
        // Category slugs separated by spaces.
        .text(categories.join(" "))
        .maybe_text(a.region().map(|r| r.as_str()))
        .maybe_text(a.image())
        .text(a.language());
    statement
}

/// Inserts these articles, or replaces every column but the id of those that exist.
pub(super) fn upsert_articles<'a>(articles: &[&'a Article]) -> Statement<'a> {
    let replace: Vec<String> = ARTICLE_COLUMNS
        .split(", ")
        .filter(|&column| column != "id")
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    let mut statement = Statement::new(format!(
        "INSERT INTO articles ({ARTICLE_COLUMNS}) VALUES {} ON CONFLICT (id) DO UPDATE SET {}",
        placeholders(articles.len(), article_params()),
        replace.join(", ")
    ));
    statement.params.reserve(articles.len() * article_params());
    for a in articles {
        statement = article_values(statement, a);
    }
    statement
}

/// Takes an article down; answers its id if there was one.
pub(super) fn delete_article(id: &str) -> Statement<'_> {
    Statement::new("DELETE FROM articles WHERE id = $1 RETURNING id").text(id)
}

/// How many articles are stored.
pub(super) fn count_articles() -> Statement<'static> {
    Statement::new("SELECT COUNT(*) FROM articles")
}

/// Whether the database answers (a BIGINT, as every number the store reads).
pub(super) fn ping() -> Statement<'static> {
    Statement::new("SELECT CAST(1 AS BIGINT)")
}

// ---------------------------------------------------------------------------------------------
// The feed index

/// `head` followed by `IN ($1, …)` of these article ids.
fn of_articles<'a>(head: &str, ids: impl ExactSizeIterator<Item = &'a str>) -> Statement<'a> {
    let mut statement = Statement::new(format!("{head} IN ({})", list(ids.len())));
    statement
        .params
        .extend(ids.map(|id| Param::Text(id.into())));
    statement
}

/// Where the articles with these ids are filed: (bucket, published_at, article id) rows.
pub(super) fn filed<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> Statement<'a> {
    of_articles(
        "SELECT bucket, published_at, article_id FROM feed_index WHERE article_id",
        ids,
    )
}

/// Removes these articles from the feed index (SQLite, which files in code).
pub(super) fn unfile<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> Statement<'a> {
    of_articles("DELETE FROM feed_index WHERE article_id", ids)
}

/// Files articles: (bucket, publication time, article id) rows (SQLite, which files in code).
pub(super) fn file<'a>(rows: &'a [(Bucket, i64, &'a str)]) -> Statement<'a> {
    let mut statement = Statement::new(format!(
        "INSERT INTO feed_index (bucket, published_at, article_id) VALUES {}",
        placeholders(rows.len(), 3)
    ));
    for (bucket, published, id) in rows {
        statement = statement.text(bucket.key()).int(*published).text(*id);
    }
    statement
}

/// Every article's region, for refiling: (id, published_at, region).
pub(super) fn article_regions() -> Statement<'static> {
    Statement::new("SELECT id, published_at, region FROM articles WHERE region IS NOT NULL")
}

/// Articles that may carry one of these former category slugs or region codes, for refiling:
/// (id, categories, region, published_at). A slug is matched as a word of the space-separated
/// list with LIKE, where a `_` in it matches any character: the caller checks each row.
pub(super) fn carrying_names<'a>(categories: &[&str], regions: &[&'a str]) -> Statement<'a> {
    let mut conditions: Vec<String> = (1..=categories.len())
        .map(|i| format!("' ' || categories || ' ' LIKE ${i}"))
        .collect();
    if !regions.is_empty() {
        let first = categories.len() + 1;
        let list: Vec<String> = (first..first + regions.len())
            .map(|i| format!("${i}"))
            .collect();
        conditions.push(format!("region IN ({})", list.join(", ")));
    }
    let mut statement = Statement::new(format!(
        "SELECT id, categories, region, published_at FROM articles WHERE {}",
        conditions.join(" OR ")
    ));
    for slug in categories {
        statement = statement.text(format!("% {slug} %"));
    }
    for code in regions {
        statement = statement.text(*code);
    }
    statement
}

/// Rewrites the category slugs and region code of an article. Only feedcast's own rows, or
/// only the others (`sanitized`): PostgreSQL sets the flag from the writer's mark (migration
/// 3), so the two are rewritten apart, each as written, and a row the CMS wrote is never taken
/// for sanitized.
pub(super) fn rename_article<'a>(
    id: &'a str,
    categories: &'a str,
    region: Option<&'a str>,
    sanitized: bool,
) -> Statement<'a> {
    Statement::new(format!(
        "UPDATE articles SET categories = $1, region = $2 WHERE id = $3 AND {}sanitized",
        if sanitized { "" } else { "NOT " }
    ))
    .text(categories)
    .maybe_text(region)
    .text(id)
}

/// Which of these buckets tombstones are filed under.
pub(super) fn entombed_buckets(keys: &[String]) -> Statement<'_> {
    let mut statement = Statement::new(format!(
        "SELECT DISTINCT bucket FROM tombstone_index WHERE bucket IN ({})",
        list(keys.len())
    ));
    for key in keys {
        statement = statement.text(key.as_str());
    }
    statement
}

/// Refiles the tombstones of one bucket under another (a former name's under the current one).
pub(super) fn move_tombstones<'a>(from: &'a str, to: &'a str) -> [Statement<'a>; 2] {
    [
        Statement::new(
            "INSERT INTO tombstone_index (bucket, deleted_at, article_id, published_at) \
             SELECT CAST($2 AS TEXT), deleted_at, article_id, published_at FROM tombstone_index \
             WHERE bucket = $1 ON CONFLICT DO NOTHING",
        )
        .text(from)
        .text(to),
        Statement::new("DELETE FROM tombstone_index WHERE bucket = $1").text(from),
    ]
}

/// Removes every region bucket, before refiling.
pub(super) fn unfile_regions() -> Statement<'static> {
    Statement::new("DELETE FROM feed_index WHERE bucket LIKE 'r:%'")
}

/// The selection condition on `f`: filed under `bucket` and, unless `also_in` is empty, also
/// under any of those.
fn in_bucket<'a>(bucket: &Bucket, also_in: &[Bucket], head: &str) -> Statement<'a> {
    in_bucket_of("feed_index", bucket, also_in, head)
}

/// [`in_bucket`] over an index of that shape: `feed_index` or `tombstone_index`.
fn in_bucket_of<'a>(index: &str, bucket: &Bucket, also_in: &[Bucket], head: &str) -> Statement<'a> {
    let mut sql = format!("{head} WHERE f.bucket = $1");
    if !also_in.is_empty() {
        let list: Vec<String> = (0..also_in.len()).map(|i| format!("${}", i + 2)).collect();
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM {index} g WHERE g.article_id = f.article_id \
             AND g.bucket IN ({}))",
            list.join(", ")
        ));
    }
    let mut statement = Statement::new(sql).text(bucket.key());
    for also in also_in {
        statement = statement.text(also.key());
    }
    statement
}

/// The newest articles of one bucket of a selection within a window: one range of the index.
pub(super) fn articles_of<'a>(
    bucket: &Bucket,
    selection: &Selection,
    window: Window,
) -> Statement<'a> {
    articles_with(bucket, selection, window, None)
}

/// [`articles_of`], each row also carrying `feed_changed_at` and `store_clock` as
/// [`changed_at`] reads them for the `buckets` of the selection: read by the same statement,
/// so from the same snapshot as the rows, and without a round trip of its own.
pub(super) fn stamped_articles_of<'a>(
    bucket: &Bucket,
    selection: &Selection,
    window: Window,
    change: ChangeTime<'_>,
) -> Statement<'a> {
    articles_with(bucket, selection, window, Some(change))
}

/// What [`changed_at`] reads: the change times of these buckets in the months from `first` to
/// `last`, and the `clock` they are stamped by (an SQL expression), if any.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChangeTime<'b> {
    pub buckets: &'b [Bucket],
    pub first: i64,
    pub last: i64,
    pub clock: Option<&'static str>,
}

impl ChangeTime<'_> {
    /// The condition on `change_times`, its values numbered from `$from`.
    fn condition(&self, from: usize) -> String {
        format!(
            "bucket = ${from} OR (bucket IN ({}) AND month BETWEEN ${} AND ${})",
            (0..self.buckets.len())
                .map(|i| format!("${}", from + 1 + i))
                .collect::<Vec<_>>()
                .join(", "),
            from + 1 + self.buckets.len(),
            from + 2 + self.buckets.len(),
        )
    }

    /// Binds the condition's values, in its order.
    fn bind<'a>(&self, mut statement: Statement<'a>) -> Statement<'a> {
        statement = statement.text(EVERYTHING);
        for bucket in self.buckets {
            statement = statement.text(bucket.key());
        }
        statement.int(self.first).int(self.last)
    }
}

fn articles_with<'a>(
    bucket: &Bucket,
    selection: &Selection,
    window: Window,
    change: Option<ChangeTime<'_>>,
) -> Statement<'a> {
    let columns = ARTICLE_COLUMNS
        .split(", ")
        .map(|c| format!("a.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    // The change time's values are bound last: after the bucket and the selection's other
    // buckets (`in_bucket`), and the window's three.
    let bound_before = 1 + selection.and_any_of.len() + 3;
    let stamp = change.map_or(String::new(), |c| {
        format!(
            ", (SELECT MAX(changed_at) FROM change_times WHERE {}) AS feed_changed_at, \
             {} AS store_clock",
            c.condition(bound_before + 1),
            c.clock.unwrap_or("NULL")
        )
    });
    let head = format!(
        "SELECT {columns}, a.sanitized{stamp} FROM feed_index f \
         JOIN articles a ON a.id = f.article_id"
    );
    let mut statement = in_bucket(bucket, &selection.and_any_of, &head);
    let next = statement.params.len() + 1;
    statement.sql.to_mut().push_str(&format!(
        " AND f.published_at >= ${next} AND f.published_at < ${} \
         ORDER BY f.published_at DESC, f.article_id DESC LIMIT ${}",
        next + 1,
        next + 2
    ));
    let statement = statement
        .int(window.from.map_or(i64::MIN, micros))
        .int(window.until.map_or(i64::MAX, micros))
        .int(window.limit.map_or(i64::MAX, i64::from));
    match change {
        Some(change) => change.bind(statement),
        None => statement,
    }
}

/// The publication time nearest an edge in one bucket of a selection.
pub(super) fn edge_of<'a>(bucket: &Bucket, selection: &Selection, edge: Edge) -> Statement<'a> {
    let (op, order, at) = match edge {
        Edge::NewestBefore(at) => ("<", "DESC", at),
        Edge::OldestFrom(at) => (">=", "ASC", at),
    };
    let mut statement = in_bucket(
        bucket,
        &selection.and_any_of,
        "SELECT f.published_at FROM feed_index f",
    );
    let next = statement.params.len() + 1;
    statement.sql.to_mut().push_str(&format!(
        " AND f.published_at {op} ${next} ORDER BY f.published_at {order} LIMIT 1"
    ));
    statement.int(micros(at))
}

// ---------------------------------------------------------------------------------------------
// Tombstones

/// Leaves a tombstone for an article about to be taken down: its id, URL and publication time,
/// filed under the buckets it is filed under now, at `at` (SQLite, which files in code; on
/// PostgreSQL a trigger on `articles` does it, for the CMS's deletes too: migration 7).
pub(super) fn entomb(id: &str, at: i64) -> Vec<Statement<'_>> {
    vec![
        // One left by an earlier takedown is replaced, index and all; but only by a takedown
        // of an article there is (a second takedown of the id keeps the first's tombstone).
        Statement::new(
            "DELETE FROM tombstone_index WHERE article_id = $1 \
             AND EXISTS (SELECT 1 FROM articles WHERE id = $1)",
        )
        .text(id),
        Statement::new(
            "DELETE FROM tombstones WHERE article_id = $1 \
             AND EXISTS (SELECT 1 FROM articles WHERE id = $1)",
        )
        .text(id),
        Statement::new(
            "INSERT INTO tombstones (article_id, url, published_at, deleted_at) \
             SELECT id, url, published_at, $2 FROM articles WHERE id = $1",
        )
        .text(id)
        .int(at),
        Statement::new(
            "INSERT INTO tombstone_index (bucket, deleted_at, article_id, published_at) \
             SELECT bucket, $2, article_id, published_at FROM feed_index WHERE article_id = $1",
        )
        .text(id)
        .int(at),
    ]
}

/// Where the tombstones of these ids are filed: (bucket, published_at, article id) rows, as
/// [`filed`] answers for articles.
pub(super) fn entombed<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> Statement<'a> {
    of_articles(
        "SELECT bucket, published_at, article_id FROM tombstone_index WHERE article_id",
        ids,
    )
}

/// Removes the tombstones of these ids, stored again, index rows first (SQLite; PostgreSQL's
/// trigger does it).
pub(super) fn unentomb<'a>(
    ids: impl ExactSizeIterator<Item = &'a str> + Clone,
) -> [Statement<'a>; 2] {
    [
        of_articles("DELETE FROM tombstone_index WHERE article_id", ids.clone()),
        of_articles("DELETE FROM tombstones WHERE article_id", ids),
    ]
}

/// Forgets the tombstones of takedowns before `before`, which no document shows any more.
pub(super) fn prune_tombstones(before: i64) -> [Statement<'static>; 2] {
    [
        Statement::new("DELETE FROM tombstone_index WHERE deleted_at < $1").int(before),
        Statement::new("DELETE FROM tombstones WHERE deleted_at < $1").int(before),
    ]
}

/// The newest tombstones of one bucket of a selection, of takedowns at or after `since`, of
/// articles published within a window: one range of the tombstone index, newest takedown
/// first (ties: greater id first).
pub(super) fn tombstones_of<'a>(
    bucket: &Bucket,
    selection: &Selection,
    window: Window,
    since: i64,
) -> Statement<'a> {
    let mut statement = in_bucket_of(
        "tombstone_index",
        bucket,
        &selection.and_any_of,
        "SELECT f.article_id, f.published_at, f.deleted_at FROM tombstone_index f",
    );
    let next = statement.params.len() + 1;
    statement.sql.to_mut().push_str(&format!(
        " AND f.deleted_at >= ${next} AND f.published_at >= ${} AND f.published_at < ${} \
         ORDER BY f.deleted_at DESC, f.article_id DESC LIMIT ${}",
        next + 1,
        next + 2,
        next + 3
    ));
    statement
        .int(since)
        .int(window.from.map_or(i64::MIN, micros))
        .int(window.until.map_or(i64::MAX, micros))
        .int(window.limit.map_or(i64::MAX, i64::from))
}

// ---------------------------------------------------------------------------------------------
// Change times

/// The UTC month (yyyymm) of a stored time, as `change_times` keys it.
pub(super) fn utc_month(micros: i64) -> i64 {
    let t = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    i64::from(chrono::Datelike::year(&t)) * 100 + i64::from(chrono::Datelike::month(&t))
}

/// `change_times`' key for a bucket as a whole.
pub(super) const WHOLE_BUCKET: i64 = 0;

/// `change_times`' bucket for everything at once.
const EVERYTHING: &str = "*";

/// Moves these (bucket key, month) change times forward to `at`, or by a microsecond if they
/// are already there (a clock that stepped back must not hide a change from `If-Modified-Since`).
/// SQLite only, which files in code; PostgreSQL's filing trigger stamps with its own clock.
pub(super) fn stamp<'a>(keys: &'a [(String, i64)], at: i64) -> Statement<'a> {
    let mut statement = Statement::new(format!(
        "INSERT INTO change_times (bucket, month, changed_at) VALUES {} \
         ON CONFLICT (bucket, month) DO UPDATE SET changed_at = CASE \
         WHEN excluded.changed_at > change_times.changed_at THEN excluded.changed_at \
         ELSE change_times.changed_at + 1 END",
        placeholders(keys.len(), 3)
    ));
    for (bucket, month) in keys {
        statement = statement.text(bucket.as_str()).int(*month).int(at);
    }
    statement
}

/// Moves the change time of everything forward to `at` (SQLite, after a refile).
pub(super) fn stamp_everything(at: i64) -> Statement<'static> {
    Statement::new(
        "UPDATE change_times SET changed_at = CASE WHEN changed_at < $2 THEN $2 \
         ELSE changed_at + 1 END WHERE bucket = $1",
    )
    .text(EVERYTHING)
    .int(at)
}

/// The first and last months `change_times` holds for publications (not [`WHOLE_BUCKET`]).
pub(super) const FIRST_MONTH: i64 = 1;
/// See [`FIRST_MONTH`].
pub(super) const LAST_MONTH: i64 = 999_999;

/// When what these buckets show last changed, in the months from `first` to `last` (both
/// [`WHOLE_BUCKET`] for the buckets' newest items), or everything did; and, read at the same
/// time, the `clock` change times are stamped by (an SQL expression), or NULL without one.
pub(super) fn changed_at<'a>(change: ChangeTime<'_>) -> Statement<'a> {
    let statement = Statement::new(format!(
        "SELECT MAX(changed_at), {} FROM change_times WHERE {}",
        change.clock.unwrap_or("NULL"),
        change.condition(1)
    ));
    change.bind(statement)
}

// ---------------------------------------------------------------------------------------------
// The change log and the outbound queue

/// A change-log entry's columns, as `LogRow` decodes them.
const LOG_COLUMNS: &str = "seq, article_id, before_categories, before_region, before_published, \
                           after_categories, after_region, after_published";

/// How these articles are filed now, if they exist: (id, categories, region, published_at).
pub(super) fn filings<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> Statement<'a> {
    of_articles(
        "SELECT id, categories, region, published_at FROM articles WHERE id",
        ids,
    )
}

/// One article's filing, as the change log holds it: (categories, region, published_at).
pub(super) type LoggedFiling<'a> = (Cow<'a, str>, Option<&'a str>, i64);

/// Appends entries (an article id, or `None` for everything; its filing before and after) to
/// the change log at `at` (SQLite, which appends in code; PostgreSQL's trigger appends there).
pub(super) fn append_log<'a>(
    entries: &'a [(
        Option<&'a str>,
        Option<LoggedFiling<'a>>,
        Option<LoggedFiling<'a>>,
    )],
    at: i64,
) -> Statement<'a> {
    let mut statement = Statement::new(format!(
        "INSERT INTO change_log (at, article_id, before_categories, before_region, \
         before_published, after_categories, after_region, after_published) VALUES {}",
        placeholders(entries.len(), 8)
    ));
    for (id, before, after) in entries {
        statement = statement.int(at).maybe_text(*id);
        for filing in [before, after] {
            statement = match filing {
                Some((categories, region, published)) => statement
                    .text(categories.as_ref())
                    .maybe_text(*region)
                    .int(*published),
                None => statement.maybe_text(None).maybe_text(None).maybe_int(None),
            };
        }
    }
    statement
}

/// Appends an entry for everything at once to the change log at `at` (SQLite).
pub(super) fn log_everything(at: i64) -> Statement<'static> {
    Statement::new("INSERT INTO change_log (at) VALUES ($1)").int(at)
}

/// Change-log entries no one has handled, oldest first, at most [`LOG_PAGE`]; on a store that
/// several processes share, locked for this transaction and skipping those another holds.
pub(super) fn unhandled_log(shared: bool) -> Statement<'static> {
    Statement::new(format!(
        "SELECT {LOG_COLUMNS} FROM change_log WHERE NOT handled ORDER BY seq LIMIT {LOG_PAGE}{}",
        if shared {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        }
    ))
}

/// The first change-log entry no one has handled, if any (a read that takes no lock).
pub(super) fn first_unhandled() -> Statement<'static> {
    Statement::new("SELECT seq FROM change_log WHERE NOT handled ORDER BY seq LIMIT 1")
}

/// Marks change-log entries handled.
pub(super) fn mark_handled<'a>(seqs: &[i64]) -> Statement<'a> {
    let mut statement = Statement::new(format!(
        "UPDATE change_log SET handled = TRUE WHERE seq IN ({})",
        list(seqs.len())
    ));
    for seq in seqs {
        statement = statement.int(*seq);
    }
    statement
}

/// Prunes handled change-log entries from before `before` (SQLite; PostgreSQL's replicas prune
/// by the database's clock).
pub(super) fn prune_log(before: i64) -> Statement<'static> {
    Statement::new("DELETE FROM change_log WHERE at < $1 AND handled").int(before)
}

/// What queuing a request already queued does (see [`enqueue`]): counted as queued again (so a
/// send in flight is made again), and due at once, so that a takedown's purge never waits out
/// the backoff of an earlier change's.
///
/// `queued_at` becomes the newest change's: a hub delivery carries a document built after it.
/// The attempts are not counted afresh: a target that keeps failing is given up however often
/// its topic changes (a dead subscriber of a busy feed).
const QUEUED_AGAIN: &str = "ON CONFLICT (kind, target, topic) DO UPDATE SET \
     generation = outbound.generation + 1, rounds = excluded.rounds, \
     queued_at = excluded.queued_at, \
     due = CASE WHEN excluded.due < outbound.due THEN excluded.due ELSE outbound.due END";

/// Queues (kind, target, topic, rounds) requests due at `due`. One already queued stays one
/// row ([`QUEUED_AGAIN`]).
pub(super) fn enqueue<'a>(rows: &'a [(&'a str, &'a str, &'a str, i64)], due: i64) -> Statement<'a> {
    let mut statement = Statement::new(format!(
        "INSERT INTO outbound (kind, target, topic, rounds, due, queued_at) VALUES {} \
         {QUEUED_AGAIN}",
        placeholders(rows.len(), 6)
    ));
    for (kind, target, topic, rounds) in rows {
        statement = statement
            .text(*kind)
            .text(*target)
            .text(*topic)
            .int(*rounds)
            .int(due)
            .int(due);
    }
    statement
}

/// Queued rows per multi-row statement (6 parameters each).
pub(super) const ENQUEUE_ROWS: usize = 500;

/// How many requests are queued.
#[cfg(feature = "testing")]
pub(super) fn count_queued() -> Statement<'static> {
    Statement::new("SELECT COUNT(*) FROM outbound")
}

/// How many requests are queued, by kind: (kind, count as text).
pub(super) fn queued_by_kind() -> Statement<'static> {
    Statement::new("SELECT kind, CAST(COUNT(*) AS TEXT) FROM outbound GROUP BY kind")
}

/// How many subscriptions are active at `now`, by feed kind: (kind, count as text).
pub(super) fn subscriptions_by_kind(now: i64) -> Statement<'static> {
    Statement::new(
        "SELECT CASE WHEN feed LIKE 'category/%' THEN 'category' \
         WHEN feed LIKE 'region/%' THEN 'region' ELSE 'custom' END, \
         CAST(COUNT(*) AS TEXT) FROM subscriptions WHERE expires_at > $1 GROUP BY 1",
    )
    .int(now)
}

/// The (kind, target) pairs with requests due and unclaimed at `now`.
pub(super) fn due_targets(now: i64) -> Statement<'static> {
    // The longest waiting first: past the limit, no target waits for ever.
    Statement::new(
        "SELECT kind, target FROM outbound WHERE due <= $1 \
         AND (claimed_until IS NULL OR claimed_until <= $1) \
         GROUP BY kind, target ORDER BY MIN(due) LIMIT 10000",
    )
    .int(now)
}

/// Claims up to `limit` of a target's requests due and unclaimed at `now`, oldest first, until
/// `until`, counting an attempt; returns (topic, generation, attempts) of each. On a store that
/// several processes share, rows another transaction is claiming are skipped.
pub(super) fn claim<'a>(
    kind: &'a str,
    target: &'a str,
    limit: i64,
    now: i64,
    until: i64,
    shared: bool,
) -> Statement<'a> {
    Statement::new(format!(
        "UPDATE outbound SET claimed_until = $5, attempts = attempts + 1 \
         WHERE (kind, target, topic) IN (SELECT kind, target, topic FROM outbound \
         WHERE kind = $1 AND target = $2 AND due <= $3 \
         AND (claimed_until IS NULL OR claimed_until <= $3) ORDER BY due LIMIT $4{}) \
         RETURNING topic, generation, attempts, queued_at",
        if shared {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        }
    ))
    .text(kind)
    .text(target)
    .int(now)
    .int(limit)
    .int(until)
}

/// A claimed request: (kind, target, topic) and the claim (its `claimed_until`, which only this
/// claim set). Settling matches the claim, so that a claim whose lease ran out and was taken
/// over by another replica can no longer settle what the other is sending.
pub(super) type ClaimKey<'a> = (&'a str, &'a str, &'a str, i64);

/// `WHERE` of a claimed row: `$1`..`$4` the key and the claim.
const CLAIMED_ROW: &str = "kind = $1 AND target = $2 AND topic = $3 AND claimed_until = $4";

fn claimed<'a>(sql: String, key: ClaimKey<'a>) -> Statement<'a> {
    let (kind, target, topic, claim) = key;
    Statement::new(sql)
        .text(kind)
        .text(target)
        .text(topic)
        .int(claim)
}

/// Rows one batched settle statement carries at most (6 values each): far below either
/// backend's limit on placeholders.
pub(super) const SETTLE_BATCH: usize = 128;

/// A batch padded to the next power of two by repeating its last row, so that a batch of any
/// size runs one of a few SQL texts (each prepared once) rather than one text per size. A
/// repeated row changes nothing: it matches the row it repeats, with the same values.
fn padded<T: Copy>(rows: &[T]) -> Vec<T> {
    let mut rows = rows.to_vec();
    if let Some(&last) = rows.last() {
        rows.resize(rows.len().next_power_of_two(), last);
    }
    rows
}

/// Binds claimed rows as `VALUES` rows of (kind, target, topic, claim, generation[, extra]).
fn claimed_values<'a>(
    mut statement: Statement<'a>,
    rows: &[(ClaimKey<'a>, i64, Option<i64>)],
) -> Statement<'a> {
    for &((kind, target, topic, claim), generation, extra) in rows {
        statement = statement
            .text(kind)
            .text(target)
            .text(topic)
            .int(claim)
            .int(generation);
        if let Some(extra) = extra {
            statement = statement.int(extra);
        }
    }
    statement
}

/// Ends claimed requests that were sent, (key, generation) each, at most [`SETTLE_BATCH`]: gone
/// if one was to be sent once and was not queued again meanwhile; otherwise due again (at
/// `again` for its next round, at `now` if queued again), unclaimed. Two statements for the
/// whole batch, not two per request.
pub(super) fn sent<'a>(rows: &[(ClaimKey<'a>, i64)], now: i64, again: i64) -> [Statement<'a>; 2] {
    let rows: Vec<_> = padded(rows)
        .into_iter()
        .map(|(k, g)| (k, g, None))
        .collect();
    let n = rows.len();
    let values = placeholders(n, 5);
    let (now_at, again_at) = (n * 5 + 1, n * 5 + 2);
    [
        claimed_values(
            Statement::new(format!(
                "DELETE FROM outbound WHERE rounds <= 1 AND \
                 (kind, target, topic, claimed_until, generation) IN (VALUES {values})"
            )),
            &rows,
        ),
        claimed_values(
            Statement::new(format!(
                "UPDATE outbound SET claimed_until = NULL, attempts = 0, \
                 due = CASE WHEN generation = v.column5 THEN ${again_at} ELSE ${now_at} END, \
                 queued_at = CASE WHEN generation = v.column5 THEN queued_at ELSE ${now_at} END, \
                 rounds = CASE WHEN generation = v.column5 THEN rounds - 1 ELSE rounds END \
                 FROM (VALUES {values}) AS v WHERE outbound.kind = v.column1 \
                 AND outbound.target = v.column2 AND outbound.topic = v.column3 \
                 AND outbound.claimed_until = v.column4"
            )),
            &rows,
        )
        .int(now)
        .int(again),
    ]
}

/// Ends claimed requests that failed, (key, generation, retry_at) each, at most
/// [`SETTLE_BATCH`]: due again at its `retry_at` (at `now` if it was queued again meanwhile),
/// unclaimed; its attempts still count.
pub(super) fn failed<'a>(rows: &[(ClaimKey<'a>, i64, i64)], now: i64) -> Statement<'a> {
    let rows: Vec<_> = padded(rows)
        .into_iter()
        .map(|(k, g, at)| (k, g, Some(at)))
        .collect();
    let n = rows.len();
    let values = placeholders(n, 6);
    let now_at = n * 6 + 1;
    claimed_values(
        Statement::new(format!(
            "UPDATE outbound SET claimed_until = NULL, \
             due = CASE WHEN generation = v.column5 THEN v.column6 ELSE ${now_at} END \
             FROM (VALUES {values}) AS v WHERE outbound.kind = v.column1 \
             AND outbound.target = v.column2 AND outbound.topic = v.column3 \
             AND outbound.claimed_until = v.column4"
        )),
        &rows,
    )
    .int(now)
}

/// Ends a claimed request given up: gone, unless it was queued again meanwhile (then it is due
/// at `now`, its attempts counted afresh).
pub(super) fn given_up(key: ClaimKey<'_>, generation: i64, now: i64) -> [Statement<'_>; 2] {
    [
        claimed(
            format!("DELETE FROM outbound WHERE {CLAIMED_ROW} AND generation = $5"),
            key,
        )
        .int(generation),
        claimed(
            format!(
                "UPDATE outbound SET claimed_until = NULL, attempts = 0, due = $5 \
                 WHERE {CLAIMED_ROW}"
            ),
            key,
        )
        .int(now),
    ]
}

// ---------------------------------------------------------------------------------------------
// The WebSub hub's subscriptions

/// A subscription's columns, as `StoredSubscription` decodes them.
const SUBSCRIPTION_COLUMNS: &str = "id, topic, feed, callback, callback_host, topic_as_sent, \
    secret, expires_at, pending_mode, pending_lease, pending_secret, pending_as_sent, pending_since";

/// How many subscriptions a callback host holds at `now`: active or awaiting verification
/// (a lapsed one does not count).
pub(super) fn count_host_subscriptions(host: &str, now: i64) -> Statement<'_> {
    Statement::new(
        "SELECT COUNT(*) FROM subscriptions WHERE callback_host = $1 \
         AND (expires_at > $2 OR pending_mode IS NOT NULL)",
    )
    .text(host)
    .int(now)
}

/// How many requests of a callback host await verification.
pub(super) fn count_host_pending(host: &str) -> Statement<'_> {
    Statement::new(
        "SELECT COUNT(*) FROM subscriptions WHERE callback_host = $1 AND pending_mode IS NOT NULL",
    )
    .text(host)
}

/// How many subscriptions there are, active or not.
pub(super) fn count_all_subscriptions() -> Statement<'static> {
    Statement::new("SELECT COUNT(*) FROM subscriptions")
}

/// How many subscription requests await verification.
pub(super) fn count_pending_subscriptions() -> Statement<'static> {
    Statement::new("SELECT COUNT(*) FROM subscriptions WHERE pending_mode IS NOT NULL")
}

/// One subscription by id.
pub(super) fn subscription(id: &str) -> Statement<'_> {
    Statement::new(format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1"
    ))
    .text(id)
}

/// The active subscriptions at `now`, by topic.
pub(super) fn active_subscriptions(now: i64) -> Statement<'static> {
    Statement::new(format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE expires_at > $1 ORDER BY topic, id"
    ))
    .int(now)
}

/// A subscription request awaiting verification (see `store::hub`).
pub(super) struct Requested<'a> {
    pub id: &'a str,
    pub topic: &'a str,
    pub feed: &'a str,
    pub callback: &'a str,
    pub callback_host: &'a str,
    pub mode: &'a str,
    pub lease_seconds: i64,
    pub secret: Option<&'a str>,
    pub topic_as_sent: &'a str,
    pub since: i64,
}

/// Records a subscription request awaiting verification: a new row, or the newest request of
/// an existing one (an active subscription stays active meanwhile).
pub(super) fn request_subscription<'a>(r: &Requested<'a>) -> Statement<'a> {
    Statement::new(
        "INSERT INTO subscriptions (id, topic, feed, callback, callback_host, topic_as_sent, \
         pending_mode, pending_lease, pending_secret, pending_as_sent, pending_since) \
         VALUES ($1, $2, $3, $4, $5, $9, $6, $7, $8, $9, $10) \
         ON CONFLICT (id) DO UPDATE SET pending_mode = excluded.pending_mode, \
         pending_lease = excluded.pending_lease, pending_secret = excluded.pending_secret, \
         pending_as_sent = excluded.pending_as_sent, pending_since = excluded.pending_since",
    )
    .text(r.id)
    .text(r.topic)
    .text(r.feed)
    .text(r.callback)
    .text(r.callback_host)
    .text(r.mode)
    .int(r.lease_seconds)
    .maybe_text(r.secret)
    .text(r.topic_as_sent)
    .int(r.since)
}

/// Makes the request awaiting verification since `since` the subscription, active until
/// `expires_at`; nothing if a newer request came meanwhile.
pub(super) fn activate_subscription(id: &str, since: i64, expires_at: i64) -> Statement<'_> {
    Statement::new(
        "UPDATE subscriptions SET expires_at = $3, secret = pending_secret, \
         topic_as_sent = pending_as_sent, pending_mode = NULL, pending_lease = NULL, \
         pending_secret = NULL, pending_as_sent = NULL, pending_since = NULL \
         WHERE id = $1 AND pending_since = $2",
    )
    .text(id)
    .int(since)
    .int(expires_at)
}

/// Removes a subscription whose unsubscribe request (since `since`) was verified.
pub(super) fn remove_subscription_verified(id: &str, since: i64) -> Statement<'_> {
    Statement::new("DELETE FROM subscriptions WHERE id = $1 AND pending_since = $2")
        .text(id)
        .int(since)
}

/// Drops a request (since `since`) that failed verification: the row too if it was never active.
pub(super) fn drop_subscription_request(id: &str, since: i64) -> [Statement<'_>; 2] {
    [
        Statement::new(
            "DELETE FROM subscriptions WHERE id = $1 AND pending_since = $2 \
             AND expires_at IS NULL",
        )
        .text(id)
        .int(since),
        Statement::new(
            "UPDATE subscriptions SET pending_mode = NULL, pending_lease = NULL, \
             pending_secret = NULL, pending_as_sent = NULL, pending_since = NULL \
             WHERE id = $1 AND pending_since = $2",
        )
        .text(id)
        .int(since),
    ]
}

/// Ends a subscription (its subscriber answered 410 Gone): gone, unless a newer request awaits
/// verification (then only that is left).
pub(super) fn end_subscription(id: &str) -> [Statement<'_>; 2] {
    [
        Statement::new("DELETE FROM subscriptions WHERE id = $1 AND pending_mode IS NULL").text(id),
        Statement::new("UPDATE subscriptions SET expires_at = NULL WHERE id = $1").text(id),
    ]
}

/// Removes subscriptions whose lease ended before `now` and requests never verified that have
/// waited since before `stale`.
pub(super) fn purge_expired_subscriptions(now: i64, stale: i64) -> Statement<'static> {
    Statement::new(
        "DELETE FROM subscriptions WHERE (expires_at <= $1 AND pending_mode IS NULL) \
         OR (expires_at IS NULL AND pending_since < $2)",
    )
    .int(now)
    .int(stale)
}

/// The subscriptions of any document of these feeds (paths below `/feeds/` without extension;
/// the `feed` column is `<path>.<ext>`). LIKE matches more than that (`_` is any character, and
/// SQLite ignores ASCII case): the caller checks each row.
pub(super) fn subscriptions_of_feeds(paths: &[&str]) -> Statement<'static> {
    let conditions: Vec<String> = (1..=paths.len())
        .map(|i| format!("feed LIKE ${i}"))
        .collect();
    let mut statement = Statement::new(format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE {}",
        conditions.join(" OR ")
    ));
    for path in paths {
        statement = statement.text(format!("{path}.%"));
    }
    statement
}

/// Moves a subscription to the key, canonical topic and document its feed has now (the feed
/// was renamed): dropped instead if its subscriber holds that one already (it subscribed again
/// under the new name). Requests queued for it (a verification, deliveries) follow it, unless
/// the same is queued for the new key already. With its key unchanged (a topic not in canonical
/// form keeps its text), only its document changes.
pub(super) fn move_subscription<'a>(
    id: &'a str,
    new_id: &'a str,
    topic: &'a str,
    feed: &'a str,
) -> Vec<Statement<'a>> {
    let update =
        Statement::new("UPDATE subscriptions SET id = $2, topic = $3, feed = $4 WHERE id = $1")
            .text(id)
            .text(new_id)
            .text(topic)
            .text(feed);
    if id == new_id {
        return vec![update];
    }
    vec![
        Statement::new(
            "DELETE FROM subscriptions WHERE id = $1 \
             AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.id = $2)",
        )
        .text(id)
        .text(new_id),
        update,
        Statement::new(
            "UPDATE outbound SET topic = $2 WHERE topic = $1 AND NOT EXISTS \
             (SELECT 1 FROM outbound o \
              WHERE o.kind = outbound.kind AND o.target = outbound.target AND o.topic = $2)",
        )
        .text(id)
        .text(new_id),
        Statement::new("DELETE FROM outbound WHERE topic = $1").text(id),
    ]
}

/// Ends a subscription of a feed removed for good: removes it and what is queued for it, and
/// queues `denial` (kind, callback host, request), which tells its subscriber.
pub(super) fn end_gone_subscription<'a>(
    id: &'a str,
    denial: &'a [(&'a str, &'a str, &'a str, i64)],
    now: i64,
) -> [Statement<'a>; 3] {
    [
        Statement::new("DELETE FROM outbound WHERE topic = $1").text(id),
        Statement::new("DELETE FROM subscriptions WHERE id = $1").text(id),
        enqueue(denial, now),
    ]
}

/// Subscriptions a fan-out queues in one transaction. On SQLite a write waits for whatever
/// holds the one writer: queuing 10,000 deliveries at once held it for tens of milliseconds.
pub(super) const FAN_OUT_ROWS: usize = 500;

/// The next page of active subscriptions, in id order after `after`: (callback host, id). Of
/// one document's (`<path>.<ext>`) subscribers when `feed` is given, else of every document's.
pub(super) fn subscribers_after<'a>(
    feed: Option<&'a str>,
    after: &'a str,
    now: i64,
) -> Statement<'a> {
    let of_feed = if feed.is_some() { "feed = $3 AND " } else { "" };
    let statement = Statement::new(format!(
        "SELECT callback_host, id FROM subscriptions \
         WHERE {of_feed}id > $1 AND expires_at > $2 ORDER BY id LIMIT {FAN_OUT_ROWS}"
    ))
    .text(after)
    .int(now);
    match feed {
        Some(feed) => statement.text(feed),
        None => statement,
    }
}

// ---------------------------------------------------------------------------------------------
// Meta

/// Key of the `meta` row that write probes write.
const META_WRITE_PROBE: &str = "write_probe";

/// Key of the `meta` row holding the region tree the feed index was built for.
const META_REGION_TREE: &str = "region_tree";

fn upsert_meta<'a>(key: &'static str, value: impl Into<Cow<'a, str>>) -> Statement<'a> {
    Statement::new(
        "INSERT INTO meta (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .text(key)
    .text(value)
}

/// A write probe's row: the time it was written.
pub(super) fn write_probe() -> Statement<'static> {
    upsert_meta(META_WRITE_PROBE, chrono::Utc::now().to_rfc3339())
}

/// The region tree the feed index was built for.
pub(super) fn stored_region_tree() -> Statement<'static> {
    Statement::new("SELECT value FROM meta WHERE key = $1").text(META_REGION_TREE)
}

/// Records the region tree the feed index is now built for.
pub(super) fn store_region_tree_fingerprint(fingerprint: &str) -> Statement<'_> {
    upsert_meta(META_REGION_TREE, fingerprint)
}

// ---------------------------------------------------------------------------------------------
// SQLite only

/// Takes SQLite's write lock at once: a transaction that read first and then wrote would fail
/// at once (`SQLITE_BUSY_SNAPSHOT`, no busy wait) if another process wrote in between.
pub(super) const SQLITE_BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Copies what it can of SQLite's write-ahead log into the database file, waiting for nobody.
pub(super) fn sqlite_checkpoint() -> Statement<'static> {
    Statement::new("PRAGMA wal_checkpoint(PASSIVE)")
}

/// SQLite: checkpoint the whole log, waiting for readers, and truncate it to nothing.
pub(super) fn sqlite_truncate_log() -> Statement<'static> {
    Statement::new("PRAGMA wal_checkpoint(TRUNCATE)")
}

/// What PostgreSQL is told after a bulk write, one statement each (VACUUM runs outside a
/// transaction). An import is one transaction, and each of its statements restamps the feeds
/// it files into, so a million articles leave three million dead versions of a few thousand
/// `change_times` rows; no pruning can remove them before the commit, and every cold build's
/// change-time lookup then visited about 2,000 heap pages for its 2 rows (`EXPLAIN (ANALYZE,
/// BUFFERS)`: 1,962 buffers, 2-3 ms) until a vacuum ran. The planner had no statistics for
/// tables filled in that one transaction either.
pub(super) fn postgres_after_bulk_write() -> [Statement<'static>; 2] {
    [
        Statement::new("VACUUM (ANALYZE) change_times, feed_index"),
        Statement::new("ANALYZE articles"),
    ]
}

/// Hands SQLite's writer page cache back after a write.
pub(super) fn sqlite_shrink_memory() -> Statement<'static> {
    Statement::new("PRAGMA shrink_memory")
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only

/// A plain transaction: row locks order concurrent writers.
pub(super) const POSTGRES_BEGIN_WRITE: &str = "BEGIN";

/// The channel the filing trigger notifies (see the migrations).
pub(super) const POSTGRES_CHANNEL: &str = "feedcast_articles";

/// Advisory lock key that serializes refiling when several replicas start at once.
const REFILE_LOCK: i64 = 0x6665_6564_6361_7374; // "feedcast"

/// Marks the transaction's writes as feedcast's own, hence sanitized (see migration 3).
pub(super) fn postgres_mark_writer() -> Statement<'static> {
    Statement::new("SELECT set_config('feedcast.writer', 'feedcast', true)")
}

/// Marks the transaction's later writes as a bulk write: they move no change times one by one
/// (migration 11), since [`postgres_stamp_everything_now`] moves all of them at commit.
pub(super) fn postgres_mark_bulk() -> Statement<'static> {
    Statement::new("SELECT set_config('feedcast.bulk', 'on', true)")
}

/// Moves the change time of everything to now by the database's clock, as the triggers stamp
/// (a bulk write, just before it commits).
pub(super) fn postgres_stamp_everything_now() -> Statement<'static> {
    Statement::new(
        "UPDATE change_times SET changed_at = GREATEST(changed_at + 1, feedcast_now()) \
         WHERE bucket = $1",
    )
    .text(EVERYTHING)
}

/// Takes the mark off again: the transaction's later writes count as another program's.
pub(super) fn postgres_unmark_writer() -> Statement<'static> {
    Statement::new("SELECT set_config('feedcast.writer', '', true)")
}

/// Waits for any other replica's refile to end.
pub(super) fn postgres_lock_for_refile() -> Statement<'static> {
    Statement::new("SELECT pg_advisory_xact_lock($1)").int(REFILE_LOCK)
}

/// Replaces the region tree the filing trigger reads with the catalog's.
pub(super) fn postgres_store_region_tree(catalog: &Catalog) -> Vec<Statement<'_>> {
    let mut statements = vec![Statement::new("DELETE FROM regions")];
    // Two parameters a region; PostgreSQL takes up to 65,535 in one statement.
    for part in catalog.regions().chunks(BUCKET_ROWS) {
        let mut insert = Statement::new(format!(
            "INSERT INTO regions (code, parent) VALUES {}",
            placeholders(part.len(), 2)
        ));
        for region in part {
            insert = insert
                .text(region.code.as_str())
                .maybe_text(region.parent.as_ref().map(|p| p.as_str()));
        }
        statements.push(insert);
    }
    statements
}

/// Replaces the former names the filing trigger maps (migration 13) with the catalog's: each
/// former category slug and region code with the current one.
pub(super) fn postgres_store_former_names(catalog: &Catalog) -> Vec<Statement<'_>> {
    let names: Vec<(&str, &str, &str)> = catalog
        .former_categories()
        .map(|(old, new)| ("c", old.as_str(), new.as_str()))
        .chain(
            catalog
                .former_regions()
                .map(|(old, new)| ("r", old.as_str(), new.as_str())),
        )
        .collect();
    let mut statements = vec![Statement::new("DELETE FROM former_names")];
    // Three parameters a name; PostgreSQL takes up to 65,535 in one statement.
    for part in names.chunks(BUCKET_ROWS) {
        let mut insert = Statement::new(format!(
            "INSERT INTO former_names (kind, former, current) VALUES {}",
            placeholders(part.len(), 3)
        ));
        for (kind, old, new) in part {
            insert = insert.text(*kind).text(*old).text(*new);
        }
        statements.push(insert);
    }
    statements
}

/// Moves the change time of everything forward, by the database's clock (after a refile).
pub(super) fn postgres_stamp_everything() -> Statement<'static> {
    Statement::new("UPDATE change_times SET changed_at = GREATEST(changed_at + 1, feedcast_now()) WHERE bucket = $1")
        .text(EVERYTHING)
}

/// The database's clock, in microseconds since the epoch.
pub(super) const POSTGRES_NOW: &str = "feedcast_now()";

/// Tells every replica that the feed index was rebuilt, so they drop their caches: a change-log
/// entry for no article in particular (see migration 5).
pub(super) fn postgres_announce_refile() -> Statement<'static> {
    Statement::new("SELECT feedcast_log(NULL, NULL, NULL, NULL, NULL, NULL, NULL)")
}

/// Waits for the writer before to commit, as appending to the change log does (migration 5),
/// before this write takes any row lock: two feedcast writers then never deadlock, one holding
/// the log's lock and the other a row the first is about to write.
pub(super) fn postgres_lock_change_log() -> Statement<'static> {
    Statement::new("SELECT pg_advisory_xact_lock($1)").int(CHANGE_LOG_LOCK)
}

/// The change log's advisory lock (migration 5).
const CHANGE_LOG_LOCK: i64 = 7_378_415_046_506_800_934; // "feedlog&"

/// The position of the newest change-log entry (0 for none).
pub(super) fn postgres_log_position() -> Statement<'static> {
    Statement::new("SELECT COALESCE(MAX(seq), 0) FROM change_log")
}

/// Change-log entries after a position, oldest first, at most [`LOG_PAGE`].
pub(super) fn postgres_log_since(position: i64) -> Statement<'static> {
    Statement::new(format!(
        "SELECT {LOG_COLUMNS} FROM change_log WHERE seq > $1 ORDER BY seq LIMIT {LOG_PAGE}"
    ))
    .int(position)
}

/// Change-log entries read at once.
pub(super) const LOG_PAGE: usize = 1000;

/// Prunes change-log entries older than an hour that a replica has handled (one not handled
/// still owes its pings, purges and deliveries).
pub(super) fn postgres_prune_log() -> Statement<'static> {
    Statement::new("DELETE FROM change_log WHERE at < feedcast_now() - 3600000000 AND handled")
}

/// Vacuums the tables feedcast's own bookkeeping churns: every change is appended to the log,
/// marked handled, pruned an hour later; every ping, purge and delivery is queued and deleted;
/// every write restamps its feeds' change times. Each leaves a dead row version behind, and the
/// polls of every replica (the first unhandled entry, the due targets: each second) and every
/// cold build (the change time) walk past them until a vacuum removes them. On a 1M store
/// right after its import, with autovacuum off, those two polls took 8 and 10 ms (`EXPLAIN
/// (ANALYZE, BUFFERS)`: 2,735 and 1,966 buffers for no row) once a second, beside every build;
/// and autovacuum, where it is on, waits for a fifth of a table to be dead. Vacuuming
/// tables this small with few dead rows costs little (pages all visible are skipped); another
/// replica's vacuum in progress is skipped, not waited for; and emptied pages at a table's end
/// are kept rather than cut off, which would take a lock that stops every writer's append to
/// the log meanwhile.
pub(super) fn postgres_vacuum_bookkeeping() -> Statement<'static> {
    Statement::new("VACUUM (SKIP_LOCKED, TRUNCATE false) change_log, outbound, change_times")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_times_are_keyed_by_utc_month() {
        let at = |s: &str| micros(chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc());
        assert_eq!(utc_month(at("2026-03-01T02:00:00+08:00")), 202602);
        assert_eq!(utc_month(at("2026-12-31T23:59:59Z")), 202612);
        assert_eq!(utc_month(at("1900-01-01T00:00:00Z")), 190001);
    }

    #[test]
    fn settle_batches_run_one_text_per_power_of_two() {
        assert_eq!(padded::<u8>(&[]), Vec::<u8>::new());
        assert_eq!(padded(&[1]), [1]);
        assert_eq!(padded(&[1, 2, 3]), [1, 2, 3, 3]);
        assert_eq!(padded(&[1, 2, 3, 4, 5]).len(), 8);
        let key = ("hub-deliver", "a.example", "s1", 7);
        let texts: std::collections::HashSet<_> = (1..=SETTLE_BATCH)
            .map(|n| sent(&vec![(key, 1); n], 0, 1)[1].sql.clone())
            .collect();
        assert_eq!(texts.len(), 8, "1, 2, 4, … 128 rows");
    }

    #[test]
    fn a_stamped_articles_statement_binds_each_of_its_placeholders_once() {
        use crate::model::{CategorySlug, RegionCode};
        let category = |s| Bucket::Category(CategorySlug::parse(s).unwrap());
        let region = |s| Bucket::Region(RegionCode::parse(s).unwrap());
        for and_any_of in [vec![], vec![region("320000"), region("110000")]] {
            let selection = Selection {
                any_of: vec![
                    category("hydrogen"),
                    category("materials"),
                    category("reform"),
                ],
                and_any_of,
            };
            let change = ChangeTime {
                buckets: &selection.any_of,
                first: WHOLE_BUCKET,
                last: WHOLE_BUCKET,
                clock: Some(POSTGRES_NOW),
            };
            let window = Window::newest(50);
            let statement = stamped_articles_of(&selection.any_of[0], &selection, window, change);
            let plain = articles_of(&selection.any_of[0], &selection, window);
            let count = statement.params.len();
            assert_eq!(count, plain.params.len() + 1 + 3 + 2, "{}", statement.sql);
            for n in 1..=count {
                let found = statement
                    .sql
                    .match_indices(&format!("${n}"))
                    .filter(|(at, m)| {
                        !statement.sql[at + m.len()..].starts_with(|c: char| c.is_ascii_digit())
                    })
                    .count();
                assert_eq!(found, 1, "${n} in {}", statement.sql);
            }
            assert!(!statement.sql.contains(&format!("${}", count + 1)));
        }
    }

    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(list(3), "$1, $2, $3");
    }

    #[test]
    fn an_upsert_binds_every_listed_column_of_every_article() {
        let article = Article {
            id: crate::model::ArticleId::parse("a-1").unwrap(),
            title: "标题".into(),
            summary: String::new(),
            content_html: "<p>正文</p>".into(),
            url: "https://example.com/a-1".into(),
            published_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            updated_at: None,
            author: None,
            source: None,
            editor: None,
            short_title: None,
            categories: Vec::new(),
            region: None,
            image: None,
            language: "zh-CN".into(),
        };
        let upsert = upsert_articles(&[&article, &article]);
        assert_eq!(upsert.params.len(), 2 * article_params());
        assert!(upsert.sql.contains(&format!("${}", 2 * article_params())));
        assert!(
            !upsert
                .sql
                .contains(&format!("${}", 2 * article_params() + 1))
        );
        assert!(upsert.sql.contains("language = excluded.language"));
        assert!(!upsert.sql.contains("id = excluded.id"));
    }
}

// ---------------------------------------------------------------------------------------------
// Subscriber statistics

/// Pairs added per statement: 3 values each, well under either database's bound on values.
pub(super) const STATS_PAIRS_PER_STATEMENT: usize = 500;

/// Sets `day`'s salt to `salt` unless it has one.
pub(super) fn stats_new_salt<'a>(day: &'a str, salt: &'a str) -> Statement<'a> {
    Statement::new(
        "INSERT INTO stats_salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING",
    )
    .text(day)
    .text(salt)
}

/// `day`'s salt, as (day, salt).
pub(super) fn stats_salt(day: &str) -> Statement<'_> {
    Statement::new("SELECT day, salt FROM stats_salts WHERE day = $1").text(day)
}

/// How many pairs each feed has stored for `day`, as (feed, pairs, 0, 0).
pub(super) fn stats_pairs_stored(day: &str) -> Statement<'_> {
    Statement::new(
        "SELECT feed, pairs, CAST(0 AS BIGINT), CAST(0 AS BIGINT) FROM stats_days WHERE day = $1",
    )
    .text(day)
}

/// Adds pairs of one feed and day; returns one row for each pair that was new.
pub(super) fn stats_add_pairs<'a>(
    day: &'a str,
    feed: &'a str,
    pairs: &'a [String],
) -> Statement<'a> {
    let mut statement = Statement::new(format!(
        "INSERT INTO stats_pairs (day, feed, pair) VALUES {} ON CONFLICT DO NOTHING RETURNING pair",
        placeholders(pairs.len(), 3)
    ));
    for pair in pairs {
        statement = statement.text(day).text(feed).text(pair.as_str());
    }
    statement
}

/// The reports already stored for a feed and day, as `feed_key aggregator` (an id holds no
/// space; a name may).
pub(super) fn stats_report_keys<'a>(day: &'a str, feed: &'a str) -> Statement<'a> {
    Statement::new(
        "SELECT feed_key || ' ' || aggregator FROM stats_reports WHERE day = $1 AND feed = $2",
    )
    .text(day)
    .text(feed)
}

/// Reports upserted per statement: 6 values each.
pub(super) const STATS_REPORTS_PER_STATEMENT: usize = 200;

/// Stores aggregators' reports (each (aggregator, feed id) once); the latest wins, whichever
/// replica writes last.
pub(super) fn stats_reports_upsert<'a>(
    day: &'a str,
    feed: &'a str,
    reports: &[&'a super::ReportedCount],
    seen_at: i64,
) -> Statement<'a> {
    let mut statement = Statement::new(format!(
        "INSERT INTO stats_reports (day, feed, aggregator, feed_key, subscribers, seen_at) \
         VALUES {} ON CONFLICT (day, feed, aggregator, feed_key) \
         DO UPDATE SET subscribers = excluded.subscribers, seen_at = excluded.seen_at \
         WHERE excluded.seen_at >= stats_reports.seen_at",
        placeholders(reports.len(), 6)
    ));
    for r in reports {
        statement = statement
            .text(day)
            .text(feed)
            .text(r.aggregator.as_str())
            .text(r.feed_key.as_str())
            .int(i64::try_from(r.subscribers).unwrap_or(i64::MAX))
            .int(seen_at);
    }
    statement
}

/// What a flush adds to a day's row.
#[derive(Debug, Clone, Copy)]
pub(super) struct StatsSums {
    pub(super) polls: i64,
    pub(super) not_modified: i64,
    pub(super) bytes: i64,
    pub(super) pairs: i64,
    pub(super) suspect: i64,
}

/// Adds `sums` to a feed's row of `day`.
pub(super) fn stats_add_day<'a>(day: &'a str, feed: &'a str, sums: StatsSums) -> Statement<'a> {
    Statement::new(
        "INSERT INTO stats_days (day, feed, polls, not_modified, bytes, pairs, suspect) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (day, feed) DO UPDATE SET \
         polls = stats_days.polls + excluded.polls, \
         not_modified = stats_days.not_modified + excluded.not_modified, \
         bytes = stats_days.bytes + excluded.bytes, \
         pairs = stats_days.pairs + excluded.pairs, \
         suspect = stats_days.suspect + excluded.suspect",
    )
    .text(day)
    .text(feed)
    .int(sums.polls)
    .int(sums.not_modified)
    .int(sums.bytes)
    .int(sums.pairs)
    .int(sums.suspect)
}

/// Stores a replica's sketch of a feed's pairs of `day`, replacing its earlier one.
pub(super) fn stats_sketch<'a>(
    day: &'a str,
    feed: &'a str,
    replica: &'a str,
    registers: &'a str,
) -> Statement<'a> {
    Statement::new(
        "INSERT INTO stats_sketches (day, feed, replica, registers) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (day, feed, replica) DO UPDATE SET registers = excluded.registers",
    )
    .text(day)
    .text(feed)
    .text(replica)
    .text(registers)
}

/// Sets a feed's push subscriptions for `day`.
pub(super) fn stats_set_push<'a>(day: &'a str, feed: &'a str, push: i64) -> Statement<'a> {
    Statement::new(
        "INSERT INTO stats_days (day, feed, push) VALUES ($1, $2, $3) \
         ON CONFLICT (day, feed) DO UPDATE SET push = excluded.push",
    )
    .text(day)
    .text(feed)
    .int(push)
}

/// Days before `before` that still hold pairs, sketches or a salt, as (day, day).
pub(super) fn stats_open_days(before: &str) -> Statement<'_> {
    Statement::new(
        "SELECT day, day FROM stats_salts WHERE day < $1 \
         UNION SELECT DISTINCT day, day FROM stats_pairs WHERE day < $1 \
         UNION SELECT DISTINCT day, day FROM stats_sketches WHERE day < $1",
    )
    .text(before)
}

/// Deletes `day`'s pairs; one row (the feed) per pair deleted.
pub(super) fn stats_delete_pairs(day: &str) -> Statement<'_> {
    Statement::new("DELETE FROM stats_pairs WHERE day = $1 RETURNING feed").text(day)
}

/// Deletes `day`'s sketches; one row (`feed registers`) per sketch deleted.
pub(super) fn stats_delete_sketches(day: &str) -> Statement<'_> {
    Statement::new("DELETE FROM stats_sketches WHERE day = $1 RETURNING feed || ' ' || registers")
        .text(day)
}

/// Deletes `day`'s salt.
pub(super) fn stats_delete_salt(day: &str) -> Statement<'_> {
    Statement::new("DELETE FROM stats_salts WHERE day = $1").text(day)
}

/// Marks `day`'s pairs as none stored: they are counted in `direct` now.
pub(super) fn stats_no_pairs(day: &str) -> Statement<'_> {
    Statement::new("UPDATE stats_days SET pairs = 0 WHERE day = $1").text(day)
}

/// Adds `direct` distinct clients to a feed's row of `day`.
pub(super) fn stats_add_direct<'a>(day: &'a str, feed: &'a str, direct: i64) -> Statement<'a> {
    Statement::new(
        "INSERT INTO stats_days (day, feed, direct) VALUES ($1, $2, $3) \
         ON CONFLICT (day, feed) DO UPDATE SET direct = stats_days.direct + excluded.direct",
    )
    .text(day)
    .text(feed)
    .int(direct)
}

/// Forgets the figures of days before `before`.
pub(super) fn stats_prune(before: &str) -> [Statement<'_>; 2] {
    [
        Statement::new("DELETE FROM stats_days WHERE day < $1").text(before),
        Statement::new("DELETE FROM stats_reports WHERE day < $1").text(before),
    ]
}

/// Every feed's rows from `from` on.
pub(super) fn stats_days(from: &str) -> Statement<'_> {
    Statement::new(
        "SELECT day, feed, polls, not_modified, bytes, pairs, direct, push, suspect \
         FROM stats_days WHERE day >= $1",
    )
    .text(from)
}

/// Every report from `from` on.
pub(super) fn stats_reports(from: &str) -> Statement<'_> {
    Statement::new(
        "SELECT day, feed, aggregator, feed_key, subscribers, seen_at \
         FROM stats_reports WHERE day >= $1",
    )
    .text(from)
}

/// `day`'s sketches, as (feed, registers).
pub(super) fn stats_sketches(day: &str) -> Statement<'_> {
    Statement::new("SELECT feed, registers FROM stats_sketches WHERE day = $1").text(day)
}

/// Active subscriptions as (feed document, callback host).
pub(super) fn stats_push_subscriptions(now: i64) -> Statement<'static> {
    Statement::new("SELECT feed, callback_host FROM subscriptions WHERE expires_at > $1").int(now)
}
