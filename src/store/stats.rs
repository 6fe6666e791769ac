//! The store's side of subscriber statistics: what every replica tallied, added up per day and
//! feed; the latest count each aggregator reported; the open day's distinct (client,
//! User-Agent) pairs, hashed under a salt kept only for that day; and the closing of a day,
//! which keeps its count and forgets its pairs and its salt.
//!
//! Every write here is a sum, a set insert or a "latest wins" upsert, so replicas that flush
//! the same day and feed at the same time never lose each other's figures.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::{Store, StoreError, failed, sql};

/// Distinct pairs stored per day and feed, at most: past this many the day's count is the
/// sketches' estimate, so a feed polled by millions costs bounded rows.
pub const MAX_STORED_PAIRS: u64 = 100_000;

/// Feed ids one aggregator may report for one feed in a day: reports past it are implausible (a
/// forged or broken User-Agent) and only counted as suspect.
pub const MAX_REPORT_KEYS: u64 = 100;

/// Aggregators not in feedcast's table one feed may have in a day. Anyone can name a new one in
/// a User-Agent; a few real ones a day are plausible, hundreds are a forgery. The known
/// aggregators are never refused for it, so forged names cannot crowd them out.
pub const MAX_UNKNOWN_AGGREGATORS: u64 = 10;

/// A count an aggregator reported, as a flush hands it to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedCount {
    /// The aggregator's name.
    pub aggregator: String,
    /// Its id of the feed, or "".
    pub feed_key: String,
    /// The count.
    pub subscribers: u64,
}

/// What one replica tallied for one feed in one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedTally {
    /// The feed's path below `/feeds/`, without extension.
    pub feed: String,
    /// 200s and 304s of its documents.
    pub polls: u64,
    /// Of which 304s.
    pub not_modified: u64,
    /// Body bytes sent.
    pub bytes: u64,
    /// Distinct (client, User-Agent) pairs, each an HMAC under the day's salt (hex).
    pub pairs: Vec<String>,
    /// Aggregator reports, at most one per (aggregator, feed id).
    pub reports: Vec<ReportedCount>,
    /// Reports already found implausible.
    pub suspect: u64,
    /// This replica's sketch of every pair it saw that day (base64), given once the day's
    /// stored pairs reached [`MAX_STORED_PAIRS`].
    pub sketch: Option<String>,
}

/// What a flush found: the feeds whose stored pairs have reached the cap (their sketches are
/// wanted from now on) and the reports it refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Feeds of the day whose pairs are at the cap.
    pub full: Vec<String>,
    /// Reports refused as implausible (too many feed ids or aggregators).
    pub suspect: u64,
}

/// One day's figures of one feed, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
#[allow(missing_docs)]
pub struct StatsDay {
    pub day: String,
    pub feed: String,
    pub polls: i64,
    pub not_modified: i64,
    pub bytes: i64,
    pub pairs: i64,
    pub direct: i64,
    pub push: i64,
    pub suspect: i64,
}

/// The latest count an aggregator reported for a feed on a day.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
#[allow(missing_docs)]
pub struct StatsReport {
    pub day: String,
    pub feed: String,
    pub aggregator: String,
    pub feed_key: String,
    pub subscribers: i64,
    pub seen_at: i64,
}

/// A day's pairs as they were when it was closed: per feed, how many were stored and the
/// replicas' sketches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClosedDay {
    /// (feed, pairs deleted).
    pub pairs: Vec<(String, u64)>,
    /// (feed, a replica's sketch, base64).
    pub sketches: Vec<(String, String)>,
}

impl Store {
    /// The salt of `day`, made from `fresh` if the day has none yet: whichever replica asks
    /// first sets it, and every replica then hashes alike.
    pub async fn stats_salt(&self, day: &str, fresh: &str) -> Result<String, StoreError> {
        const DOING: &str = "reading the day's salt";
        self.bookkeep(DOING, &[sql::stats_new_salt(day, fresh)])
            .await?;
        self.bounded(DOING, async {
            let rows = self
                .backend
                .pairs(&sql::stats_salt(day))
                .await
                .map_err(failed(DOING))?;
            rows.into_iter()
                .next()
                .map(|(_, salt)| salt)
                .ok_or(StoreError::Query {
                    doing: DOING,
                    source: sqlx::Error::RowNotFound,
                })
        })
        .await
    }

    /// Adds what one replica tallied for `day`, all in one transaction: the sums, the pairs
    /// (until the day's cap), the latest reports (within their bounds: `known_aggregators` are
    /// never refused for the number of names) and the sketches.
    pub async fn stats_flush(
        &self,
        day: &str,
        replica: &str,
        feeds: &[FeedTally],
        known_aggregators: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Flushed, StoreError> {
        const DOING: &str = "writing subscriber statistics";
        let now = sql::micros(now);
        self.bounded(DOING, async {
            let mut tx = self
                .backend
                .begin_bookkeeping()
                .await
                .map_err(failed(DOING))?;
            let stored: std::collections::HashMap<String, i64> = tx
                .text_numbers(&sql::stats_pairs_stored(day))
                .await
                .map_err(failed(DOING))?
                .into_iter()
                .map(|(feed, n, _, _)| (feed, n))
                .collect();
            let mut flushed = Flushed::default();
            for tally in feeds {
                let before = stored.get(&tally.feed).copied().unwrap_or(0);
                let mut added = 0u64;
                if u64::try_from(before).unwrap_or(0) < MAX_STORED_PAIRS {
                    for chunk in tally.pairs.chunks(sql::STATS_PAIRS_PER_STATEMENT) {
                        let inserted = tx
                            .texts(&sql::stats_add_pairs(day, &tally.feed, chunk))
                            .await
                            .map_err(failed(DOING))?;
                        added += inserted.len() as u64;
                    }
                }
                if u64::try_from(before).unwrap_or(0) + added >= MAX_STORED_PAIRS {
                    flushed.full.push(tally.feed.clone());
                }
                let mut suspect = tally.suspect;
                if !tally.reports.is_empty() {
                    let stored = tx
                        .texts(&sql::stats_report_keys(day, &tally.feed))
                        .await
                        .map_err(failed(DOING))?;
                    let mut held: HashSet<(String, String)> = stored
                        .into_iter()
                        .filter_map(|row| {
                            row.split_once(' ')
                                .map(|(key, name)| (name.to_owned(), key.to_owned()))
                        })
                        .collect();
                    let mut admitted = Vec::new();
                    for report in &tally.reports {
                        let id = (report.aggregator.clone(), report.feed_key.clone());
                        if !held.contains(&id) {
                            let ids = held.iter().filter(|(a, _)| *a == report.aggregator).count();
                            let unknown: HashSet<&str> = held
                                .iter()
                                .map(|(a, _)| a.as_str())
                                .filter(|a| !known_aggregators.contains(a))
                                .collect();
                            let new_unknown = ids == 0
                                && !known_aggregators.contains(&report.aggregator.as_str());
                            if ids as u64 >= MAX_REPORT_KEYS
                                || (new_unknown && unknown.len() as u64 >= MAX_UNKNOWN_AGGREGATORS)
                            {
                                suspect += 1;
                                continue;
                            }
                            held.insert(id);
                        }
                        admitted.push(report);
                    }
                    for chunk in admitted.chunks(sql::STATS_REPORTS_PER_STATEMENT) {
                        tx.execute(&sql::stats_reports_upsert(day, &tally.feed, chunk, now))
                            .await
                            .map_err(failed(DOING))?;
                    }
                }
                flushed.suspect += suspect - tally.suspect;
                let sums = sql::StatsSums {
                    polls: as_i64(tally.polls),
                    not_modified: as_i64(tally.not_modified),
                    bytes: as_i64(tally.bytes),
                    pairs: as_i64(added),
                    suspect: as_i64(suspect),
                };
                tx.execute(&sql::stats_add_day(day, &tally.feed, sums))
                    .await
                    .map_err(failed(DOING))?;
                if let Some(sketch) = &tally.sketch {
                    tx.execute(&sql::stats_sketch(day, &tally.feed, replica, sketch))
                        .await
                        .map_err(failed(DOING))?;
                }
            }
            tx.commit().await.map_err(failed(DOING))?;
            Ok(flushed)
        })
        .await
    }

    /// Records, for `day`, how many push subscriptions each feed counts (set, not added: the
    /// last measure of the day stands).
    pub async fn stats_record_push(
        &self,
        day: &str,
        counts: &[(String, u64)],
    ) -> Result<(), StoreError> {
        let statements: Vec<_> = counts
            .iter()
            .map(|(feed, n)| sql::stats_set_push(day, feed, as_i64(*n)))
            .collect();
        self.bookkeep("recording push subscriptions", &statements)
            .await
    }

    /// The days before `before` whose pairs, sketches or salt are still stored.
    pub async fn stats_open_days(&self, before: &str) -> Result<Vec<String>, StoreError> {
        const DOING: &str = "finding days to close";
        self.bounded(DOING, async {
            let rows = self
                .backend
                .pairs(&sql::stats_open_days(before))
                .await
                .map_err(failed(DOING))?;
            Ok(rows.into_iter().map(|(day, _)| day).collect())
        })
        .await
    }

    /// Closes `day`: deletes its pairs, its sketches and its salt, and hands back what was
    /// deleted, counted in `count`, whose answer per feed is added to the day's direct
    /// clients, in the same transaction. What this transaction deletes no other can: two
    /// replicas closing the same day count each pair once.
    pub async fn stats_close_day(
        &self,
        day: &str,
        count: impl FnOnce(ClosedDay) -> Vec<(String, u64)> + Send,
    ) -> Result<(), StoreError> {
        const DOING: &str = "closing a day of statistics";
        self.bounded(DOING, async {
            let mut tx = self
                .backend
                .begin_bookkeeping()
                .await
                .map_err(failed(DOING))?;
            let deleted = tx
                .texts(&sql::stats_delete_pairs(day))
                .await
                .map_err(failed(DOING))?;
            let mut pairs = std::collections::BTreeMap::<String, u64>::new();
            for feed in deleted {
                *pairs.entry(feed).or_default() += 1;
            }
            let sketches = tx
                .texts(&sql::stats_delete_sketches(day))
                .await
                .map_err(failed(DOING))?
                .into_iter()
                .filter_map(|row| {
                    row.split_once(' ')
                        .map(|(f, s)| (f.to_owned(), s.to_owned()))
                })
                .collect();
            tx.execute(&sql::stats_delete_salt(day))
                .await
                .map_err(failed(DOING))?;
            tx.execute(&sql::stats_no_pairs(day))
                .await
                .map_err(failed(DOING))?;
            let counted = count(ClosedDay {
                pairs: pairs.into_iter().collect(),
                sketches,
            });
            for (feed, direct) in &counted {
                tx.execute(&sql::stats_add_direct(day, feed, as_i64(*direct)))
                    .await
                    .map_err(failed(DOING))?;
            }
            tx.commit().await.map_err(failed(DOING))
        })
        .await
    }

    /// Forgets the figures of days before `before`.
    pub async fn stats_prune(&self, before: &str) -> Result<(), StoreError> {
        self.bookkeep("pruning statistics", &sql::stats_prune(before))
            .await
    }

    /// The figures of every feed from `from` on.
    pub async fn stats_days(&self, from: &str) -> Result<Vec<StatsDay>, StoreError> {
        let statement = sql::stats_days(from);
        self.read("reading statistics", self.backend.stats_days(&statement))
            .await
    }

    /// The aggregators' reports from `from` on.
    pub async fn stats_reports(&self, from: &str) -> Result<Vec<StatsReport>, StoreError> {
        let statement = sql::stats_reports(from);
        self.read(
            "reading aggregator reports",
            self.backend.stats_reports(&statement),
        )
        .await
    }

    /// The sketches of `day`: (feed, a replica's sketch, base64).
    pub async fn stats_sketches(&self, day: &str) -> Result<Vec<(String, String)>, StoreError> {
        let statement = sql::stats_sketches(day);
        self.read(
            "reading statistics sketches",
            self.backend.pairs(&statement),
        )
        .await
    }

    /// The hub's active subscriptions as (feed path, callback host), for the push counts.
    pub async fn stats_push_subscriptions(&self) -> Result<Vec<(String, String)>, StoreError> {
        let statement = sql::stats_push_subscriptions(sql::micros(Utc::now()));
        self.read("reading push subscriptions", self.backend.pairs(&statement))
            .await
    }

    /// One read, within the query timeout, its failure saying what it was `doing`.
    async fn read<T>(
        &self,
        doing: &'static str,
        read: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        self.bounded(doing, async { read.await.map_err(failed(doing)) })
            .await
    }
}

/// The largest figure one flush adds to a sum (a pebibyte, a quadrillion polls): far above any
/// real one, and low enough that no number of flushes in the life of a row overflows it.
const MAX_ADDED: u64 = 1 << 50;

fn as_i64(n: u64) -> i64 {
    i64::try_from(n.min(MAX_ADDED)).unwrap_or(i64::MAX)
}
