//! The store's side of the outbound queue: handling the change log once, whoever wrote it, and
//! the queued requests' rows, claimed with a lease so that several replicas share the work and
//! a replica that dies mid-request loses nothing.
//!
//! The queue itself (what is sent, how often, to whom at once) is `outbound`'s; here are only
//! the transactions, each short, each committed before any request is made.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;

use super::{Change, Store, StoreError, failed, sql};

/// A request to queue: of a kind, to a target, about a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Outgoing {
    /// The kind of request (`websub`, `purge`): which delivery sends it.
    pub kind: &'static str,
    /// Whom it goes to (a hub's URL, a purger's name).
    pub target: String,
    /// What it is about (a feed's URL, a cache tag).
    pub topic: String,
    /// How many times it is sent after each change (a purge twice: see `outbound`).
    pub rounds: u8,
}

/// A queued request claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// What it is about.
    pub topic: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// When the change it is for was queued.
    pub queued_at: chrono::DateTime<Utc>,
    /// How often it had been queued when claimed: queued again meanwhile, it is sent again.
    generation: i64,
    /// The claim: its `claimed_until`, which settling matches.
    claim: i64,
}

/// How one claimed request ended, to be recorded by [`Store::settle`].
#[derive(Debug, Clone)]
pub struct Settled {
    /// Its kind.
    pub kind: &'static str,
    /// Its target.
    pub target: String,
    /// The request as claimed.
    pub claimed: Claimed,
    /// How it ended.
    pub outcome: Outcome,
}

/// How a claimed request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sent; if it has rounds left, sent again after this long.
    Sent {
        /// The wait before its next round.
        again_after: Duration,
    },
    /// Failed; tried again after this long.
    Retry {
        /// The wait.
        after: Duration,
    },
    /// Failed for the last time.
    GivenUp,
}

/// Change-log entries older than this are pruned (SQLite; PostgreSQL's followers prune theirs).
const LOG_KEPT: Duration = Duration::from_secs(3600);

fn micros_after(now: i64, wait: Duration) -> i64 {
    now.saturating_add(i64::try_from(wait.as_micros()).unwrap_or(i64::MAX))
}

impl Store {
    /// Runs `statements` in one transaction that writes no articles (see
    /// `Backend::begin_bookkeeping`), all or none, within the query timeout.
    pub(super) async fn bookkeep(
        &self,
        doing: &'static str,
        statements: &[sql::Statement<'_>],
    ) -> Result<(), StoreError> {
        self.bounded(doing, async {
            let mut tx = self
                .backend
                .begin_bookkeeping()
                .await
                .map_err(failed(doing))?;
            for statement in statements {
                tx.execute(statement).await.map_err(failed(doing))?;
            }
            tx.commit().await.map_err(failed(doing))
        })
        .await
    }

    /// Claims change-log entries nobody has handled (on PostgreSQL, skipping those another
    /// replica is handling), queues the requests `plan` makes of them, and marks them handled,
    /// all in one transaction: each entry is handled once, by whichever replica claims it,
    /// whether feedcast or the CMS wrote it. Returns how many entries were handled.
    pub async fn handle_changes(
        &self,
        plan: impl FnOnce(Vec<Change>) -> Vec<Outgoing> + Send,
    ) -> Result<usize, StoreError> {
        self.bounded("handling the change log", async {
            // Most of the time there is nothing: found without taking SQLite's write lock.
            let first = self
                .backend
                .number(&sql::first_unhandled())
                .await
                .map_err(failed("reading the change log"))?;
            if first.is_none() {
                return Ok(0);
            }
            let mut tx = self
                .backend
                .begin_bookkeeping()
                .await
                .map_err(failed("starting to handle the change log"))?;
            let rows = tx
                .log_rows(&sql::unhandled_log(self.backend.shared()))
                .await
                .map_err(failed("reading the change log"))?;
            let now = sql::micros(Utc::now());
            if !self.backend.shared() {
                tx.execute(&sql::prune_log(now - micros_after(0, LOG_KEPT)))
                    .await
                    .map_err(failed("pruning the change log"))?;
            }
            if rows.is_empty() {
                return tx.commit().await.map(|()| 0).map_err(failed("committing"));
            }
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            let outgoing: BTreeSet<Outgoing> = plan(rows.into_iter().map(|r| r.change()).collect())
                .into_iter()
                .collect();
            // One row per key: a statement may not update the same row twice.
            let mut keys = BTreeSet::new();
            let rows: Vec<(&str, &str, &str, i64)> = outgoing
                .iter()
                .filter(|o| keys.insert((o.kind, o.target.as_str(), o.topic.as_str())))
                .map(|o| {
                    (
                        o.kind,
                        o.target.as_str(),
                        o.topic.as_str(),
                        i64::from(o.rounds),
                    )
                })
                .collect();
            for part in rows.chunks(sql::ENQUEUE_ROWS) {
                tx.execute(&sql::enqueue(part, now))
                    .await
                    .map_err(failed("queuing outbound requests"))?;
            }
            for part in seqs.chunks(sql::BUCKET_ROWS) {
                tx.execute(&sql::mark_handled(part))
                    .await
                    .map_err(failed("marking the change log handled"))?;
            }
            tx.commit()
                .await
                .map_err(failed("committing the change log's handling"))?;
            Ok(seqs.len())
        })
        .await
    }

    /// Requests queued (due or not, claimed or not), and change-log entries not yet handled:
    /// zero when the queue is idle (for the tests).
    #[cfg(feature = "testing")]
    pub async fn queued(&self) -> Result<i64, StoreError> {
        // The log first: an entry handled after this read has its rows queued by the time of
        // the next (handling commits both at once), so nothing falls between the two reads.
        let unhandled = self
            .backend
            .number(&sql::first_unhandled())
            .await
            .map_err(failed("reading the change log"))?;
        let rows = self
            .backend
            .number(&sql::count_queued())
            .await
            .map_err(failed("counting queued requests"))?;
        Ok(rows.unwrap_or(0) + i64::from(unhandled.is_some()))
    }

    /// How many requests are queued, by kind, and how many subscriptions of the hub are
    /// active, by feed kind (for `/metrics`).
    pub async fn queue_depths(
        &self,
    ) -> Result<(Vec<(String, u64)>, Vec<(String, u64)>), StoreError> {
        self.bounded("measuring the outbound queue", async {
            let parse = |rows: Vec<(String, String)>| {
                rows.into_iter()
                    .map(|(k, n)| (k, n.parse().unwrap_or(0)))
                    .collect::<Vec<_>>()
            };
            let queued = self
                .backend
                .pairs(&sql::queued_by_kind())
                .await
                .map_err(failed("measuring the outbound queue"))?;
            let subscriptions = self
                .backend
                .pairs(&sql::subscriptions_by_kind(sql::micros(Utc::now())))
                .await
                .map_err(failed("counting subscriptions"))?;
            Ok((parse(queued), parse(subscriptions)))
        })
        .await
    }

    /// The (kind, target) pairs with requests due and unclaimed now.
    pub async fn due_targets(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.bounded("reading the outbound queue", async {
            let now = sql::micros(Utc::now());
            self.backend
                .pairs(&sql::due_targets(now))
                .await
                .map_err(failed("reading the outbound queue"))
        })
        .await
    }

    /// Claims up to `limit` of a target's due requests for `lease`, committed before any is
    /// sent: if this process dies, another claims them once the lease has run out.
    pub async fn claim(
        &self,
        kind: &str,
        target: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.bounded("claiming outbound requests", async {
            let now = sql::micros(Utc::now());
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let until = micros_after(now, lease);
            let claim = sql::claim(kind, target, limit, now, until, self.backend.shared());
            let rows = self
                .backend
                .claim_rows(&claim)
                .await
                .map_err(failed("claiming outbound requests"))?;
            Ok(rows
                .into_iter()
                .map(|(topic, generation, attempts, queued_at)| Claimed {
                    topic,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    queued_at: chrono::DateTime::from_timestamp_micros(queued_at)
                        .unwrap_or_default(),
                    generation,
                    claim: until,
                })
                .collect())
        })
        .await
    }

    /// Records how claimed requests ended, many at once: gone when sent for the last time or
    /// given up (unless queued again meanwhile), otherwise due again, unclaimed. The sent and
    /// the failed are each settled by a statement per [`sql::SETTLE_BATCH`] requests, whatever
    /// their targets, so that the queue's bookkeeping does not grow with each delivery.
    pub async fn settle(&self, settled: &[Settled]) -> Result<(), StoreError> {
        fn key(s: &Settled) -> sql::ClaimKey<'_> {
            (
                s.kind,
                s.target.as_str(),
                s.claimed.topic.as_str(),
                s.claimed.claim,
            )
        }
        let now = sql::micros(Utc::now());
        let mut sent: std::collections::BTreeMap<i64, Vec<_>> = Default::default();
        let mut retried = Vec::new();
        let mut statements = Vec::new();
        for s in settled {
            let generation = s.claimed.generation;
            match s.outcome {
                Outcome::Sent { again_after } => sent
                    .entry(micros_after(now, again_after))
                    .or_default()
                    .push((key(s), generation)),
                Outcome::Retry { after } => {
                    retried.push((key(s), generation, micros_after(now, after)));
                }
                Outcome::GivenUp => statements.extend(sql::given_up(key(s), generation, now)),
            }
        }
        for (again, rows) in &sent {
            for chunk in rows.chunks(sql::SETTLE_BATCH) {
                statements.extend(sql::sent(chunk, now, *again));
            }
        }
        for chunk in retried.chunks(sql::SETTLE_BATCH) {
            statements.push(sql::failed(chunk, now));
        }
        // Each statement holds on its own: a settle cut short leaves rows claimed, which are
        // sent again when their lease runs out.
        self.bounded("settling outbound requests", async {
            self.backend
                .execute_each(&statements)
                .await
                .map_err(failed("settling outbound requests"))
        })
        .await
    }
}
