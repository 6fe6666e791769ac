//! What a database must do for the store: run [`Statement`]s on its pool and in a write
//! transaction. [`Backend`] and [`Transaction`] are all the store knows of a database;
//! `sqlite` and `postgres` implement them, and everything the store does with articles is
//! written once, in plain functions over these two traits (`store::Store`, `store::Writer`).
//!
//! The futures are boxed, so that a store is one type whatever its database (`Arc<dyn
//! Backend>`): one allocation per statement, next to a round trip to the database.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};
use sqlx::{Arguments, Database, Encode, Type};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::sql::{Param, Statement};
use super::{
    Change, FilingRow, LogRow, StampedArticle, StatsDay, StatsReport, StoredArticle,
    StoredSubscription, StoredTombstone,
};
use crate::model::Catalog;

/// A database operation in flight.
pub(super) type Op<'a, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'a>>;

/// One database, as the store uses it.
pub(super) trait Backend: fmt::Debug + Send + Sync {
    /// Whether feedcast files articles in the feed index itself (SQLite), rather than the
    /// database in a trigger (PostgreSQL, so that rows other programs write are filed too).
    fn files_in_code(&self) -> bool;

    /// Starts a write transaction.
    fn begin_write(&self) -> Op<'_, Box<dyn Transaction>>;

    /// Whether several processes share this store (PostgreSQL): rows are then claimed with
    /// `FOR UPDATE SKIP LOCKED`, and what one replica drops another may still hold.
    fn shared(&self) -> bool {
        false
    }

    /// Starts a transaction that writes no articles (the change log's handling, the outbound
    /// queue): on SQLite the one writer's, on PostgreSQL one that waits for no writer.
    fn begin_bookkeeping(&self) -> Op<'_, Box<dyn Transaction>> {
        self.begin_write()
    }

    /// Runs statements that write no articles and hold each on its own (a crash between two
    /// leaves nothing inconsistent): on PostgreSQL each in its own implicit transaction, one
    /// round trip each; on SQLite in one transaction of the one writer.
    fn execute_each<'a>(&'a self, statements: &'a [Statement<'a>]) -> Op<'a, ()> {
        Box::pin(async move {
            let mut tx = self.begin_bookkeeping().await?;
            for statement in statements {
                tx.execute(statement).await?;
            }
            tx.commit().await
        })
    }

    /// Claims outbound rows with one statement (`sql::claim`), committed when it returns.
    fn claim_rows<'a>(
        &'a self,
        statement: &'a Statement<'a>,
    ) -> Op<'a, Vec<(String, i64, i64, i64)>> {
        Box::pin(async move {
            let mut tx = self.begin_bookkeeping().await?;
            let rows = tx.text_numbers(statement).await?;
            tx.commit().await?;
            Ok(rows)
        })
    }

    /// Reads two text columns of every row found.
    fn pairs<'a>(&'a self, statement: &'a Statement<'a>) -> Op<'a, Vec<(String, String)>>;

    /// Reads subscriptions of the WebSub hub.
    fn subscriptions<'a>(&'a self, statement: &'a Statement<'a>)
    -> Op<'a, Vec<StoredSubscription>>;

    /// Reads one number, if the query finds a row.
    fn number<'a>(&'a self, statement: &'a Statement<'a>) -> Op<'a, Option<i64>>;

    /// Reads days of subscriber statistics (the columns `StatsDay` names).
    fn stats_days<'a>(&'a self, statement: &'a Statement<'a>) -> Op<'a, Vec<StatsDay>>;

    /// Reads aggregator reports (the columns `StatsReport` names).
    fn stats_reports<'a>(&'a self, statement: &'a Statement<'a>) -> Op<'a, Vec<StatsReport>>;

    /// What a refile runs first, within its transaction: on PostgreSQL, waiting for any other
    /// replica's refile and storing the region tree and the former names its filing triggers
    /// read.
    fn before_refile<'a>(&self, _catalog: &'a Catalog) -> Vec<Statement<'a>> {
        Vec::new()
    }

    /// What makes a write transaction's later writes count as another program's (PostgreSQL,
    /// whose rows carry whether feedcast wrote them); `None` where only feedcast writes.
    fn unmark_writer(&self) -> Option<Statement<'static>> {
        None
    }

    /// What a refile runs last, within its transaction: on PostgreSQL, telling every replica.
    fn after_refile(&self) -> Vec<Statement<'static>> {
        Vec::new()
    }

    /// The SQL expression of the clock change times are stamped by, in microseconds since the
    /// epoch, if that is the database's (PostgreSQL's triggers stamp by it); `None` if it is
    /// this machine's. A feed's change time is read with it, in the same statement: the clock
    /// costs no round trip of its own.
    fn clock(&self) -> Option<&'static str> {
        None
    }

    /// Takes one connection of the pool for the reads of one feed's build, one after the other
    /// (see `store::Reading`).
    fn reader(&self) -> Op<'_, Box<dyn Reader>>;

    /// Runs after each committed write (SQLite gives its writer's page cache back).
    fn after_write(&self) -> Op<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    /// For a write that turns bulk (PostgreSQL): the statement that marks the rest of its
    /// transaction so, and the one that stamps everything changed before it commits. `None`
    /// where stamps are kept in memory until the commit anyway (SQLite).
    fn bulk_writing(&self) -> Option<[Statement<'static>; 2]> {
        None
    }

    /// Runs after a bulk write has committed (PostgreSQL tidies and re-measures its tables).
    fn after_bulk_write(&self) -> Op<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    /// The database's change notifications, if it has any (PostgreSQL).
    fn listen(&self) -> Option<(mpsc::UnboundedReceiver<Change>, JoinHandle<()>)> {
        None
    }

    /// Closes every connection, waiting for those in use.
    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// A write transaction: nothing of it is visible until [`Transaction::commit`], and dropping it
/// rolls it back.
pub(super) trait Transaction: Send {
    /// Runs a statement.
    fn execute<'a>(&'a mut self, statement: &'a Statement<'a>) -> Op<'a, ()>;

    /// Reads one text column of every row found.
    fn texts<'a>(&'a mut self, statement: &'a Statement<'a>) -> Op<'a, Vec<String>>;

    /// Reads (id, published_at, region) rows.
    fn index_rows<'a>(
        &'a mut self,
        statement: &'a Statement<'a>,
    ) -> Op<'a, Vec<(String, i64, String)>>;

    /// Reads change-log entries.
    fn log_rows<'a>(&'a mut self, statement: &'a Statement<'a>) -> Op<'a, Vec<LogRow>>;

    /// Reads (id, categories, region, published_at) rows.
    fn filings<'a>(&'a mut self, statement: &'a Statement<'a>) -> Op<'a, Vec<FilingRow>>;

    /// Reads (text, number, number, number) rows.
    fn text_numbers<'a>(
        &'a mut self,
        statement: &'a Statement<'a>,
    ) -> Op<'a, Vec<(String, i64, i64, i64)>>;

    /// Reads subscriptions (the columns `StoredSubscription` names).
    fn subscription_rows<'a>(
        &'a mut self,
        statement: &'a Statement<'a>,
    ) -> Op<'a, Vec<StoredSubscription>>;

    /// Commits; on failure nothing was stored.
    fn commit(self: Box<Self>) -> Op<'static, ()>;
}

/// Reads on one connection of a pool, taken by [`Backend::reader`] and given back when dropped.
pub(super) trait Reader: Send {
    /// Reads articles (the columns `StoredArticle` names).
    fn articles<'a>(&'a mut self, statement: &'a Statement<'a>) -> Op<'a, Vec<StoredArticle>>;

    /// Reads articles with their feed's change time (the columns `StampedArticle` names).
    fn stamped_articles<'a>(
        &'a mut self,
        statement: &'a Statement<'a>,
    ) -> Op<'a, Vec<StampedArticle>>;

    /// Reads two numbers, either NULL, of the one row the query finds (an aggregate's).
    fn numbers<'a>(
        &'a mut self,
        statement: &'a Statement<'a>,
    ) -> Op<'a, (Option<i64>, Option<i64>)>;

    /// Reads tombstones (the columns `StoredTombstone` names).
    fn tombstones<'a>(&'a mut self, statement: &'a Statement<'a>) -> Op<'a, Vec<StoredTombstone>>;
}

/// A [`Reader`] on either database: the same sqlx calls on either.
pub(super) struct Conn<DB: Database>(pub(super) sqlx::pool::PoolConnection<DB>);

impl<DB> Conn<DB>
where
    DB: Database,
{
    /// Takes a connection of `pool` as a [`Reader`].
    pub(super) fn take(pool: &sqlx::Pool<DB>) -> Op<'_, Box<dyn Reader>>
    where
        Conn<DB>: Reader,
    {
        Box::pin(async move { Ok(Box::new(Conn(pool.acquire().await?)) as Box<dyn Reader>) })
    }
}

impl<DB> Reader for Conn<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'r> (Option<i64>, Option<i64>): sqlx::FromRow<'r, DB::Row>,
    for<'r> StoredArticle: sqlx::FromRow<'r, DB::Row>,
    for<'r> StampedArticle: sqlx::FromRow<'r, DB::Row>,
    for<'r> StoredTombstone: sqlx::FromRow<'r, DB::Row>,
{
    fn articles<'a>(&'a mut self, statement: &'a Statement<'a>) -> Op<'a, Vec<StoredArticle>> {
        fetch_rows(&mut self.0, statement)
    }

    fn stamped_articles<'a>(
        &'a mut self,
        statement: &'a Statement<'a>,
    ) -> Op<'a, Vec<StampedArticle>> {
        fetch_rows(&mut self.0, statement)
    }

    fn numbers<'a>(
        &'a mut self,
        statement: &'a Statement<'a>,
    ) -> Op<'a, (Option<i64>, Option<i64>)> {
        Box::pin(async move {
            let sql = sql_text::<DB>(statement);
            let arguments = arguments::<DB>(&statement.params)?;
            sqlx::query_as_with(&sql, arguments)
                .fetch_one(&mut *self.0)
                .await
        })
    }

    fn tombstones<'a>(&'a mut self, statement: &'a Statement<'a>) -> Op<'a, Vec<StoredTombstone>> {
        fetch_rows(&mut self.0, statement)
    }
}

/// A statement's values as a database's arguments.
pub(super) fn arguments<'q, DB>(params: &'q [Param<'_>]) -> Result<DB::Arguments<'q>, sqlx::Error>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
{
    let mut arguments = DB::Arguments::default();
    for param in params {
        let added = match param {
            Param::Text(text) => arguments.add(text.as_ref()),
            Param::MaybeText(text) => arguments.add(*text),
            Param::Int(n) => arguments.add(*n),
            Param::MaybeInt(n) => arguments.add(*n),
        };
        added.map_err(sqlx::Error::Encode)?;
    }
    Ok(arguments)
}

/// Statements with at least this many values are sent to SQLite with anonymous placeholders
/// (see [`sql_text`]); smaller ones as written.
const MANY_PARAMS: usize = 64;

/// The SQL text sent to `DB` for `statement`. Statements are written with numbered
/// placeholders (`$1`, `$2`, …), which both databases take; but for each value of a statement,
/// sqlx-sqlite asks SQLite the name of its placeholder, and SQLite finds it by a linear search
/// of the statement's names: binding a statement of n values costs n², and an import's
/// statement of 500 articles has some 10,000. That was three quarters of the SQLite writer's
/// time (perf) and held an import to 2,200-2,900 articles/s. A statement with many values whose
/// placeholders are `$1` to `$n` once each, in order, is sent with `?` for each instead: the
/// same binding, by position, in linear time.
fn sql_text<'s, DB: Database>(statement: &'s Statement<'_>) -> Cow<'s, str> {
    if DB::NAME == "SQLite" && statement.params.len() >= MANY_PARAMS {
        if let Some(sql) = anonymous_placeholders(&statement.sql, statement.params.len()) {
            return Cow::Owned(sql);
        }
    }
    Cow::Borrowed(&statement.sql)
}

/// `sql` with `?` for each of its placeholders, if they are `$1` to `$count`, each once and in
/// order (outside quoted literals and names); `None` otherwise.
fn anonymous_placeholders(sql: &str, count: usize) -> Option<String> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let (mut next, mut copied, mut i) = (1usize, 0, 0);
    let mut quote = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'$' => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|d| d.is_ascii_digit())
                    .count();
                let number: usize = sql[i + 1..i + 1 + digits].parse().ok()?;
                if number != next {
                    return None;
                }
                out.push_str(&sql[copied..i]);
                out.push('?');
                next += 1;
                i += 1 + digits;
                copied = i;
                continue;
            }
            None => {}
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
    (next == count + 1).then_some(out)
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
pub(super) struct Tx<DB: Database> {
    /// The connection the transaction runs on.
    pub(super) conn: sqlx::pool::PoolConnection<DB>,
    /// Set once COMMIT succeeded.
    pub(super) committed: bool,
    /// The turn a transaction of its kind waited for, if it had to (see SQLite's
    /// `begin_bookkeeping`): given back with the transaction.
    pub(super) _turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<DB: Database> Drop for Tx<DB> {
    fn drop(&mut self) {
        if !self.committed {
            self.conn.close_on_drop();
        }
    }
}

/// Migrations compiled into the binary: (version, description, SQL).
#[derive(Debug)]
pub(super) struct Embedded(pub(super) &'static [(i64, &'static str, &'static str)]);

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

/// How both databases' transactions run statements: the same sqlx calls on either.
impl<DB> Transaction for Tx<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'r> (String,): sqlx::FromRow<'r, DB::Row>,
    for<'r> (String, i64, String): sqlx::FromRow<'r, DB::Row>,
    for<'r> (String, i64, i64, i64): sqlx::FromRow<'r, DB::Row>,
    for<'r> FilingRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> LogRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> StoredSubscription: sqlx::FromRow<'r, DB::Row>,
{
    fn execute<'a>(&'a mut self, statement: &'a Statement<'a>) -> Op<'a, ()> {
        Box::pin(async move {
            let sql = sql_text::<DB>(statement);
            let arguments = arguments::<DB>(&statement.params)?;
            sqlx::query_with(&sql, arguments)
                .execute(&mut *self.conn)
                .await
                .map(|_| ())
        })
    }

    fn texts<'a>(&'a mut self, statement: &'a Statement<'a>) -> Op<'a, Vec<String>> {
        Box::pin(async move {
            let sql = sql_text::<DB>(statement);
            let arguments = arguments::<DB>(&statement.params)?;
            sqlx::query_scalar_with(&sql, arguments)
                .fetch_all(&mut *self.conn)
                .await
        })
    }

    fn index_rows<'a>(
        &'a mut self,
        statement: &'a Statement<'a>,
    ) -> Op<'a, Vec<(String, i64, String)>> {
        fetch_rows(&mut self.conn, statement)
    }

    fn log_rows<'a>(&'a mut self, statement: &'a Statement<'a>) -> Op<'a, Vec<LogRow>> {
        fetch_rows(&mut self.conn, statement)
    }

    fn filings<'a>(&'a mut self, statement: &'a Statement<'a>) -> Op<'a, Vec<FilingRow>> {
        fetch_rows(&mut self.conn, statement)
    }

    fn text_numbers<'a>(
        &'a mut self,
        statement: &'a Statement<'a>,
    ) -> Op<'a, Vec<(String, i64, i64, i64)>> {
        fetch_rows(&mut self.conn, statement)
    }

    fn subscription_rows<'a>(
        &'a mut self,
        statement: &'a Statement<'a>,
    ) -> Op<'a, Vec<StoredSubscription>> {
        fetch_rows(&mut self.conn, statement)
    }

    fn commit(mut self: Box<Self>) -> Op<'static, ()> {
        Box::pin(async move {
            sqlx::Executor::execute(&mut *self.conn, "COMMIT").await?;
            self.committed = true;
            Ok(())
        })
    }
}

impl<DB> Tx<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    /// Takes a connection from `pool` and starts a transaction on it with `begin`.
    pub(super) async fn begin(
        pool: &sqlx::Pool<DB>,
        begin: &'static str,
    ) -> Result<Self, sqlx::Error> {
        let mut tx = Tx {
            conn: pool.acquire().await?,
            committed: false,
            _turn: None,
        };
        sqlx::Executor::execute(&mut *tx.conn, begin).await?;
        Ok(tx)
    }
}

/// Reads rows of any shape `T` decodes on a connection taken from the pool (a transaction's
/// or a [`Reader`]'s).
fn fetch_rows<'a, DB, T>(
    conn: &'a mut sqlx::pool::PoolConnection<DB>,
    statement: &'a Statement<'a>,
) -> Op<'a, Vec<T>>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'r> T: sqlx::FromRow<'r, DB::Row> + Send + Unpin + 'a,
{
    Box::pin(async move {
        let sql = sql_text::<DB>(statement);
        let arguments = arguments::<DB>(&statement.params)?;
        sqlx::query_as_with(&sql, arguments)
            .fetch_all(&mut **conn)
            .await
    })
}

/// Reads rows of any shape `T` decodes from `pool`: the same sqlx calls on either database.
pub(super) fn read_rows<'a, DB, T>(
    pool: &'a sqlx::Pool<DB>,
    statement: &'a Statement<'a>,
) -> Op<'a, Vec<T>>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'r> T: sqlx::FromRow<'r, DB::Row> + Send + Unpin + 'a,
{
    Box::pin(async move {
        let sql = sql_text::<DB>(statement);
        let arguments = arguments::<DB>(&statement.params)?;
        sqlx::query_as_with(&sql, arguments).fetch_all(pool).await
    })
}

/// Runs one statement on `pool`, outside any transaction (its own implicit one), for the
/// maintenance a store does beside its work: checkpoints, cache shrinking, pruning.
pub(super) fn execute_on<'a, DB>(
    pool: &'a sqlx::Pool<DB>,
    statement: &'a Statement<'a>,
) -> Op<'a, ()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
{
    Box::pin(async move {
        let sql = sql_text::<DB>(statement);
        let arguments = arguments::<DB>(&statement.params)?;
        sqlx::query_with(&sql, arguments)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

/// Reads one number from `pool`, if the query finds a row.
pub(super) fn read_number<'a, DB>(
    pool: &'a sqlx::Pool<DB>,
    statement: &'a Statement<'a>,
) -> Op<'a, Option<i64>>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): sqlx::FromRow<'r, DB::Row>,
{
    Box::pin(async move {
        let sql = sql_text::<DB>(statement);
        let arguments = arguments::<DB>(&statement.params)?;
        sqlx::query_scalar_with(&sql, arguments)
            .fetch_optional(pool)
            .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_placeholders_in_order_become_anonymous_and_nothing_else_does() {
        assert_eq!(
            anonymous_placeholders("INSERT INTO t VALUES ($1, $2), ($3, '$4', \"$5\", $4)", 4)
                .as_deref(),
            Some("INSERT INTO t VALUES (?, ?), (?, '$4', \"$5\", ?)")
        );
        // Reused, out of order, missing or extra: as written.
        for (sql, count) in [
            ("SELECT $1 WHERE a = $1", 2),
            ("SELECT $2, $1", 2),
            ("SELECT $1, $3", 3),
            ("SELECT $1, $2", 3),
            ("SELECT $1, $", 2),
        ] {
            assert_eq!(anonymous_placeholders(sql, count), None, "{sql}");
        }
        let many = Statement::new(
            (1..=MANY_PARAMS)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let many = (0..MANY_PARAMS).fold(many, |s, i| s.int(i64::try_from(i).unwrap()));
        assert!(!sql_text::<sqlx::Sqlite>(&many).contains('$'));
        assert_eq!(sql_text::<sqlx::Postgres>(&many), many.sql);
    }
}
