//! Subscriber statistics: how many people read each feed, as FeedBurner once told publishers.
//!
//! Three sources add up to a feed's subscribers:
//! - **aggregators** that fetch once for many users and say how many in their User-Agent
//!   (`agents`): the latest count each reported, per its own feed id;
//! - **direct** clients: every other poller is one subscriber per distinct (client address,
//!   User-Agent) pair in a day of the site's time zone;
//! - **push**: each active subscription of feedcast's WebSub hub, unless its callback belongs
//!   to an aggregator that already reports a count for the feed.
//!
//! A poll is a 200 or 304 of a feed's newest items in any format (the WeChat profile included),
//! whatever its `?limit`: a feed's formats and variants count as one feed, and a former name
//! answers 301 to the current one, whose poll counts. Pages for people (`.html`, or a browser
//! sent the page), archives and errors are not polls.
//!
//! The hot path only tallies ([`Stats::record`]): under its worker thread's own shard lock
//! (taken by nothing else but the flush, once an interval), three additions and, for a pair not
//! yet seen since the last flush, one map insert. A task flushes the tally to the store every `stats.flush_interval_ms` (and at midnight, so a batch
//! never spans two days): User-Agents are recognised, addresses hashed with HMAC-SHA256 under
//! the day's random salt (kept in the store only for that day, so every replica hashes alike),
//! and the sums added in one transaction. No address is ever stored. When a day is over its
//! pairs and its salt are deleted and only its count is kept (`stats.retention_days`).
//!
//! Past [`MAX_STORED_PAIRS`] pairs a feed's day is counted by HyperLogLog (`sketch`) instead,
//! so a feed polled by millions costs bounded memory and rows.

mod agents;
mod logline;
mod report;
mod sketch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::io::BufRead;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::config::Settings;
use crate::feed::{FeedId, FeedKey, Format, View};
use crate::shard::Padded;
use crate::store::{
    ClosedDay, FeedTally, MAX_STORED_PAIRS, ReportedCount, StatsDay, StatsReport, Store, StoreError,
};
pub use agents::{AGGREGATORS, Aggregator, Poller};
pub use logline::{LogLine, LogLineError};
pub use report::{
    AggregatorCount, DayStats, FeedStats, Report, Subscribers, content_security_policy, html,
    human_bytes, table,
};
use sketch::Sketch;

/// Shards of the tally: each worker thread keeps to one (more threads than shards share), so
/// requests on different cores never wait for one another nor share a cache line.
pub const SHARDS: usize = 16;

/// Pairs held in memory between two flushes, at most (a few hundred bytes each): past half of
/// it the flush is woken early; past all of it further new pairs are not counted until the
/// flush (their polls still are), and `feedcast_stats_pairs_dropped_total` says how many.
pub const MAX_PENDING_PAIRS: usize = 200_000;

/// User-Agent bytes kept of a pair: longer ones are told apart by their first bytes only.
const MAX_AGENT_BYTES: usize = 512;

/// How long after a day ends it is closed (its pairs deleted): longer than any flush interval,
/// so every replica has written that day's last batch.
const CLOSE_AFTER: TimeDelta = TimeDelta::minutes(5);

/// How often push subscriptions are counted into the day's row and ended days are closed.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// Days of batches kept for a store that does not take them (today's and yesterday's).
const UNSENT_DAYS: usize = 2;

/// Days of history a report shows.
pub const REPORT_DAYS: u32 = 30;

/// How long a report built for `/metrics` is reused: a scrape every few seconds must not read
/// the statistics each time.
const METRICS_REPORT_FOR: Duration = Duration::from_secs(30);

/// Feeds named in `feedcast_feed_subscribers`; the rest are summed as `feed="other"`.
const METRICS_TOP_FEEDS: usize = 20;

/// Where a flushed batch was, and what this replica keeps through the day.
#[derive(Default)]
struct Day {
    /// The day the pending tally belongs to (the site's).
    day: Option<NaiveDate>,
    /// Its salt, once read from the store.
    salt: Option<String>,
    /// This replica's sketch of every pair it saw that day, per feed.
    sketches: HashMap<u32, Sketch>,
    /// Feeds whose stored pairs reached the cap that day: their sketches are written.
    full: HashSet<u32>,
    /// Batches the store did not take, by day, tried again with the next flush.
    unsent: Vec<(NaiveDate, Vec<FeedTally>)>,
    /// When push counts were last recorded and days closed.
    housekept: Option<Instant>,
}

/// What the requests one worker thread answered since the last flush add up to.
#[derive(Default)]
struct Shard {
    /// (polls, 304s, bytes) per feed, by index.
    counts: Vec<(u64, u64, u64)>,
    /// Pairs not seen before in this shard since the last flush.
    pairs: HashMap<u64, Pair, foldhash::fast::RandomState>,
}

/// This thread's shard: each worker thread keeps to its own, so the lock a request takes is
/// one nobody else holds and its counts stay in its core's cache.
fn shard_of_this_thread() -> usize {
    crate::shard::of_this_thread(SHARDS)
}

/// A (client, User-Agent) pair seen since the last flush.
struct Pair {
    feed: u32,
    client: IpAddr,
    user_agent: Box<[u8]>,
}

/// Subscriber statistics of one replica: the tally of the hot path and its flushes.
pub struct Stats {
    settings: Arc<Settings>,
    store: Store,
    /// Each feed's index in `paths` and in the shards' counts.
    index: HashMap<FeedId, u32, foldhash::fast::RandomState>,
    paths: Vec<String>,
    shards: Box<[Padded<Mutex<Shard>>]>,
    /// Hashes a pair's key: random per process, so no client can aim at a shard or a hash.
    hasher: foldhash::fast::RandomState,
    pending: AtomicUsize,
    dropped: AtomicU64,
    wake: Notify,
    /// Ends [`Stats::run`] between two flushes, never inside one.
    stop: Notify,
    /// This replica's name in the sketches it writes.
    replica: String,
    day: tokio::sync::Mutex<Day>,
    for_metrics: tokio::sync::Mutex<Option<(Instant, Arc<Report>)>>,
}

/// An answered request, as the tally sees it.
#[derive(Debug, Clone, Copy)]
pub struct Poll<'a> {
    /// What was asked for.
    pub key: &'a FeedKey,
    /// Whether the method was `GET`.
    pub is_get: bool,
    /// The answer's status.
    pub status: u16,
    /// The answer's body bytes.
    pub bytes: u64,
    /// The client's address (see `http.trusted_proxies`).
    pub client: IpAddr,
    /// The `User-Agent` header, as sent (empty without one).
    pub user_agent: &'a [u8],
}

/// Why statistics could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The hashing work did not finish (a bug, or the runtime is shutting down).
    #[error("counting failed: {0}")]
    Counting(String),
}

impl Stats {
    /// A tally for the catalog's feeds, writing to `store`. Start its flushes with
    /// [`Stats::run`].
    pub fn new(settings: Arc<Settings>, store: Store) -> Self {
        let feeds = FeedId::all(&settings.catalog);
        let paths = feeds.iter().map(FeedId::path).collect();
        let index = feeds
            .into_iter()
            .zip(0u32..)
            .collect::<HashMap<_, _, foldhash::fast::RandomState>>();
        let shards = (0..SHARDS)
            .map(|_| {
                Padded(Mutex::new(Shard {
                    counts: vec![(0, 0, 0); index.len()],
                    pairs: HashMap::default(),
                }))
            })
            .collect();
        Stats {
            settings,
            store,
            index,
            paths,
            shards,
            hasher: foldhash::fast::RandomState::default(),
            pending: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            wake: Notify::new(),
            stop: Notify::new(),
            // Only tells replicas' sketches apart: the time will do without randomness.
            replica: random_hex(8).unwrap_or_else(|| {
                Utc::now()
                    .timestamp_nanos_opt()
                    .unwrap_or_default()
                    .to_string()
            }),
            day: tokio::sync::Mutex::default(),
            for_metrics: tokio::sync::Mutex::new(None),
        }
    }

    /// Tallies one answered request, if it is a poll (see the module doc; a `HEAD` is not:
    /// it fetches nothing). Never waits on anything but a shard's lock, held for one map
    /// insert.
    pub fn record(&self, poll: Poll<'_>) {
        let Poll {
            key,
            is_get,
            status,
            bytes,
            client,
            user_agent,
        } = poll;
        let is_poll = is_get
            && matches!(status, 200 | 304)
            && key.format != Format::Html
            && matches!(key.view, View::Latest { .. });
        if !is_poll {
            return;
        }
        let Some(&feed) = self.index.get(&key.feed) else {
            return;
        };
        let user_agent = &user_agent[..user_agent.len().min(MAX_AGENT_BYTES)];
        let key = self.hasher.hash_one((feed, client, user_agent));
        let Ok(mut shard) = self.shards[shard_of_this_thread()].0.lock() else {
            return;
        };
        let shard = &mut *shard;
        if let Some(c) = shard.counts.get_mut(feed as usize) {
            c.0 += 1;
            c.1 += u64::from(status == 304);
            c.2 = c.2.saturating_add(bytes);
        }
        if shard.pairs.contains_key(&key) {
            return;
        }
        let pending = self.pending.fetch_add(1, Ordering::Relaxed);
        if pending >= MAX_PENDING_PAIRS {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        shard.pairs.insert(
            key,
            Pair {
                feed,
                client,
                user_agent: user_agent.into(),
            },
        );
        if pending + 1 == MAX_PENDING_PAIRS / 2 {
            self.wake.notify_one();
        }
    }

    /// Flushes every `stats.flush_interval_ms`, at each midnight and when the tally fills up,
    /// until [`Stats::stop`]; failures are logged and the batch tried again next time.
    pub async fn run(self: Arc<Self>) {
        loop {
            let now = Utc::now();
            let until_midnight = self
                .next_midnight(now)
                .and_then(|m| (m - now).to_std().ok())
                .unwrap_or(self.settings.stats.flush_interval);
            let wait = self.settings.stats.flush_interval.min(until_midnight);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                () = self.stop.notified() => return,
            }
            if let Err(e) = self.flush().await {
                tracing::warn!(cause = %e, "subscriber statistics not written; tried again later");
            }
        }
    }

    /// Ends [`Stats::run`] once a flush in progress is done (the last flush is the caller's).
    pub fn stop(&self) {
        self.stop.notify_one();
    }

    /// The site's day at `now`.
    fn day_of(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.settings.site.time_zone)
            .date_naive()
    }

    /// When the site's next day begins, after `now`.
    fn next_midnight(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let tomorrow = self.day_of(now).succ_opt()?;
        tomorrow
            .and_hms_opt(0, 0, 0)?
            .and_local_timezone(self.settings.site.time_zone)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Writes what was tallied since the last flush to the store, now; then, once a minute,
    /// records push counts and closes ended days. Flushes run one at a time.
    ///
    /// Nothing is lost to a store that fails: without the day's salt the pairs go back into
    /// the tally (unhashed, bounded as ever); a batch the store did not take waits for the next
    /// flush, merged with the batches after it (one per day, for two days, its pairs bounded).
    pub async fn flush(&self) -> Result<(), StatsError> {
        let mut day = self.day.lock().await;
        let now = Utc::now();
        let today = self.day_of(now);
        // The batch belongs to the day it was tallied in: the last flush's (at most a flush
        // interval late at midnight, since a flush is due then).
        let batch_day = *day.day.get_or_insert(today);
        let (counts, pairs) = self.take();
        metrics::counter!(crate::metrics::STATS_PAIRS_DROPPED)
            .increment(self.dropped.swap(0, Ordering::Relaxed));
        let mut outcome = Ok(());
        if !pairs.is_empty() && day.salt.is_none() {
            // A salt anyone could guess would make the hashes reversible for IPv4: without the
            // system's randomness, nothing is hashed (the pairs wait).
            let Some(fresh) = random_hex(32) else {
                self.put_back(counts, pairs);
                return Err(StatsError::Counting(
                    "no randomness for the day's salt".to_owned(),
                ));
            };
            match self.store.stats_salt(&batch_day.to_string(), &fresh).await {
                Ok(salt) => day.salt = Some(salt),
                Err(e) => {
                    self.put_back(counts, pairs);
                    return Err(e.into());
                }
            }
        }
        if !pairs.is_empty() || counts.iter().any(|c| c.0 > 0) {
            let salt = day.salt.clone().unwrap_or_default();
            let mut sketches = std::mem::take(&mut day.sketches);
            let full = day.full.clone();
            let paths = self.paths.clone();
            let (tallies, sketches) = tokio::task::spawn_blocking(move || {
                let tallies = tally(&paths, &counts, pairs, &salt, &mut sketches, &full);
                (tallies, sketches)
            })
            .await
            .map_err(|e| StatsError::Counting(e.to_string()))?;
            day.sketches = sketches;
            self.hold(&mut day, batch_day, tallies);
        }
        for (on, tallies) in std::mem::take(&mut day.unsent) {
            if let Err(e) = self.write(&mut day, on, &tallies, now).await {
                self.hold(&mut day, on, tallies);
                outcome = Err(e);
            }
        }
        if day.day != Some(today) {
            // A new day: a new salt, new sketches.
            *day = Day {
                day: Some(today),
                unsent: std::mem::take(&mut day.unsent),
                housekept: day.housekept,
                ..Day::default()
            };
        }
        if outcome.is_ok()
            && day
                .housekept
                .is_none_or(|t| t.elapsed() >= HOUSEKEEPING_EVERY)
        {
            day.housekept = Some(Instant::now());
            drop(day);
            self.housekeep(now).await?;
        }
        outcome
    }

    /// Keeps a batch to be written: merged with one of the same day, else beside it; past
    /// [`UNSENT_DAYS`] days the oldest is given up (and said so).
    fn hold(&self, day: &mut Day, on: NaiveDate, tallies: Vec<FeedTally>) {
        match day.unsent.iter_mut().find(|(d, _)| *d == on) {
            Some((_, held)) => {
                let dropped = merge(held, tallies);
                metrics::counter!(crate::metrics::STATS_PAIRS_DROPPED).increment(dropped);
            }
            None => day.unsent.push((on, tallies)),
        }
        day.unsent.sort_by_key(|(d, _)| *d);
        while day.unsent.len() > UNSENT_DAYS {
            let (lost, tallies) = day.unsent.remove(0);
            tracing::warn!(day = %lost, feeds = tallies.len(), "a day of statistics the store did not take is given up");
        }
    }

    /// Puts a batch that could not be hashed back into the tally, for the next flush.
    fn put_back(&self, counts: Vec<(u64, u64, u64)>, pairs: Vec<Pair>) {
        let Ok(mut shard) = self.shards[shard_of_this_thread()].0.lock() else {
            return;
        };
        for (c, (polls, not_modified, bytes)) in shard.counts.iter_mut().zip(counts) {
            c.0 += polls;
            c.1 += not_modified;
            c.2 = c.2.saturating_add(bytes);
        }
        for pair in pairs {
            let key = self
                .hasher
                .hash_one((pair.feed, pair.client, &pair.user_agent[..]));
            if shard.pairs.contains_key(&key) {
                continue;
            }
            if self.pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_PAIRS {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            shard.pairs.insert(key, pair);
        }
    }

    /// Adds tallies to the store.
    async fn write(
        &self,
        day: &mut Day,
        on: NaiveDate,
        tallies: &[FeedTally],
        now: DateTime<Utc>,
    ) -> Result<(), StatsError> {
        let flushed = self
            .store
            .stats_flush(&on.to_string(), &self.replica, tallies, &known(), now)
            .await?;
        metrics::counter!(crate::metrics::STATS_SUSPECT_REPORTS)
            .increment(flushed.suspect + tallies.iter().map(|t| t.suspect).sum::<u64>());
        if day.day.is_none_or(|d| d == on) {
            for feed in flushed.full {
                if let Some(i) = self.paths.iter().position(|p| *p == feed) {
                    day.full.insert(i as u32);
                }
            }
        }
        Ok(())
    }

    /// Takes the tally since the last flush: each feed's (polls, 304s, bytes), and the pairs.
    fn take(&self) -> (Vec<(u64, u64, u64)>, Vec<Pair>) {
        let mut counts = vec![(0u64, 0u64, 0u64); self.paths.len()];
        let mut pairs: HashMap<u64, Pair> = HashMap::new();
        for shard in &self.shards {
            let mut shard = match shard.0.lock() {
                Ok(shard) => shard,
                Err(poisoned) => poisoned.into_inner(),
            };
            for (total, c) in counts.iter_mut().zip(shard.counts.iter_mut()) {
                total.0 += c.0;
                total.1 += c.1;
                total.2 = total.2.saturating_add(c.2);
                *c = (0, 0, 0);
            }
            let taken = std::mem::take(&mut shard.pairs);
            drop(shard);
            self.pending.fetch_sub(taken.len(), Ordering::Relaxed);
            // A client whose polls reached two threads is one pair.
            pairs.extend(taken);
        }
        (counts, pairs.into_values().collect())
    }

    /// Records today's push counts and closes the days that ended, then forgets the days past
    /// retention.
    async fn housekeep(&self, now: DateTime<Utc>) -> Result<(), StatsError> {
        let today = self.day_of(now);
        let report = report_of_days(&self.settings, &self.store, now, 2).await?;
        let push: Vec<(String, u64)> = report
            .feeds
            .iter()
            .filter(|f| f.subscribers.push > 0)
            .map(|f| (f.feed.clone(), f.subscribers.push))
            .collect();
        self.store
            .stats_record_push(&today.to_string(), &push)
            .await?;
        let closable = self.day_of(now - CLOSE_AFTER);
        for ended in self.store.stats_open_days(&closable.to_string()).await? {
            self.store.stats_close_day(&ended, count_closed).await?;
        }
        let kept_from = today - TimeDelta::days(i64::from(self.settings.stats.retention_days));
        self.store.stats_prune(&kept_from.to_string()).await?;
        Ok(())
    }

    /// Sets the subscriber gauges of `/metrics` from a report at most [`METRICS_REPORT_FOR`]
    /// old; a store that does not answer leaves them as they were.
    pub async fn measure(&self) {
        let mut cached = self.for_metrics.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < METRICS_REPORT_FOR);
        if !fresh {
            match report_of_days(&self.settings, &self.store, Utc::now(), 2).await {
                Ok(report) => *cached = Some((Instant::now(), Arc::new(report))),
                Err(e) => {
                    tracing::warn!(cause = %e, "subscriber gauges not updated");
                    return;
                }
            }
        }
        let Some((_, report)) = cached.as_ref() else {
            return;
        };
        set_gauges(&self.settings, report);
    }

    /// Reads an access log in the combined format (as a CDN or proxy writes it) into the same
    /// counts, as if its polls had reached this replica; see [`import_log`].
    pub async fn import_log<R: std::io::BufRead + Send + 'static>(
        &self,
        reader: R,
    ) -> Result<LogImport, StatsError> {
        import_log(self, reader).await
    }
}

/// The sums and pairs of one batch turned into what the store takes: each User-Agent
/// recognised, each direct pair hashed under `salt` (and added to the feed's sketch), each
/// aggregator's report kept once (the largest of a batch: they are seconds apart).
fn tally(
    paths: &[String],
    counts: &[(u64, u64, u64)],
    pairs: Vec<Pair>,
    salt: &str,
    sketches: &mut HashMap<u32, Sketch>,
    full: &HashSet<u32>,
) -> Vec<FeedTally> {
    let mut by_feed: BTreeMap<u32, FeedTally> = BTreeMap::new();
    for (i, &(polls, not_modified, bytes)) in counts.iter().enumerate() {
        if polls > 0 {
            by_feed.insert(
                i as u32,
                FeedTally {
                    feed: paths[i].clone(),
                    polls,
                    not_modified,
                    bytes,
                    ..FeedTally::default()
                },
            );
        }
    }
    // Any key length is accepted, so this cannot fail.
    let Ok(keyed) = Hmac::<Sha256>::new_from_slice(salt.as_bytes()) else {
        return Vec::new();
    };
    let mut reports: BTreeMap<(u32, String, String), u64> = BTreeMap::new();
    for pair in pairs {
        let Some(path) = paths.get(pair.feed as usize) else {
            continue;
        };
        let entry = by_feed.entry(pair.feed).or_insert_with(|| FeedTally {
            feed: path.clone(),
            ..FeedTally::default()
        });
        let user_agent = String::from_utf8_lossy(&pair.user_agent);
        match agents::recognise(&user_agent) {
            Poller::Aggregator(report) => {
                let key = (
                    pair.feed,
                    report.aggregator,
                    report.feed_id.unwrap_or_default(),
                );
                let n = reports.entry(key).or_default();
                *n = (*n).max(report.subscribers);
            }
            Poller::Suspect(_) => entry.suspect += 1,
            Poller::Client => {
                let digest = pair_digest(&keyed, pair.client, &pair.user_agent);
                let mut first = [0u8; 8];
                first.copy_from_slice(&digest[..8]);
                sketches
                    .entry(pair.feed)
                    .or_default()
                    .insert(u64::from_le_bytes(first));
                entry.pairs.push(hex(&digest[..16]));
            }
        }
    }
    for ((feed, aggregator, key), n) in reports {
        if let Some(entry) = by_feed.get_mut(&feed) {
            entry.reports.push(ReportedCount {
                aggregator,
                feed_key: key,
                subscribers: n,
            });
        }
    }
    for (feed, entry) in &mut by_feed {
        // Every replica writes its pairs in the same order: two flushes of overlapping pairs on
        // PostgreSQL then wait for one another instead of deadlocking.
        entry.pairs.sort_unstable();
        if full.contains(feed) {
            entry.sketch = sketches
                .get(feed)
                .map(|s| base64::engine::general_purpose::STANDARD.encode(s.as_bytes()));
        }
    }
    by_feed.into_values().collect()
}

/// Merges `from` into `into` (the same day's): sums added, pairs and reports appended (a
/// report of the same key replaced: the later is the latest), pairs bounded by
/// [`MAX_PENDING_PAIRS`] in all; returns the pairs left out.
fn merge(into: &mut Vec<FeedTally>, from: Vec<FeedTally>) -> u64 {
    let mut held: usize = into.iter().map(|t| t.pairs.len()).sum();
    let mut dropped = 0;
    for mut t in from {
        let room = MAX_PENDING_PAIRS.saturating_sub(held);
        if t.pairs.len() > room {
            dropped += (t.pairs.len() - room) as u64;
            t.pairs.truncate(room);
        }
        held += t.pairs.len();
        match into.iter_mut().find(|x| x.feed == t.feed) {
            Some(x) => {
                x.polls = x.polls.saturating_add(t.polls);
                x.not_modified = x.not_modified.saturating_add(t.not_modified);
                x.bytes = x.bytes.saturating_add(t.bytes);
                x.suspect = x.suspect.saturating_add(t.suspect);
                x.pairs.append(&mut t.pairs);
                for report in t.reports {
                    x.reports.retain(|r| {
                        (&r.aggregator, &r.feed_key) != (&report.aggregator, &report.feed_key)
                    });
                    x.reports.push(report);
                }
                if t.sketch.is_some() {
                    x.sketch = t.sketch;
                }
            }
            None => into.push(t),
        }
    }
    dropped
}

/// HMAC-SHA256 of a (client, User-Agent) pair under a day's salt.
fn pair_digest(keyed: &Hmac<Sha256>, client: IpAddr, user_agent: &[u8]) -> [u8; 32] {
    // Keyed once per batch and cloned: keying is half of an HMAC's work.
    let mut mac = keyed.clone();
    match client {
        IpAddr::V4(a) => mac.update(&a.octets()),
        IpAddr::V6(a) => mac.update(&a.octets()),
    }
    // Apart from the address by a byte no address ends with ambiguously: lengths differ.
    mac.update(&[0]);
    mac.update(user_agent);
    mac.finalize().into_bytes().into()
}

/// A closed day's direct clients per feed: the pairs it stored, or past the cap the larger of
/// that and the replicas' merged sketches' estimate.
fn count_closed(closed: ClosedDay) -> Vec<(String, u64)> {
    let mut merged: HashMap<String, Sketch> = HashMap::new();
    for (feed, registers) in closed.sketches {
        let Some(sketch) = base64::engine::general_purpose::STANDARD
            .decode(registers)
            .ok()
            .and_then(|b| Sketch::from_bytes(&b))
        else {
            continue;
        };
        merged.entry(feed).or_default().merge(&sketch);
    }
    let mut counts: BTreeMap<String, u64> = closed.pairs.into_iter().collect();
    for (feed, sketch) in merged {
        let stored = counts.entry(feed).or_default();
        if *stored >= MAX_STORED_PAIRS {
            *stored = (*stored).max(sketch.estimate());
        }
    }
    counts.into_iter().filter(|(_, n)| *n > 0).collect()
}

/// The subscriber statistics of every feed the catalog declares, as of `now`: today's
/// subscribers by source, and the last [`REPORT_DAYS`] days.
///
/// Today's figure takes each aggregator's latest report of today or yesterday, the larger of
/// today's direct clients so far and yesterday's (so it does not drop to nothing at midnight),
/// and the push subscriptions active now.
pub async fn report(
    settings: &Settings,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    report_of_days(settings, store, now, REPORT_DAYS).await
}

/// The report with only its last `days` days (at least the two today's figure needs): what
/// the gauges and the push counts read, often, without reading a month of every feed.
async fn report_of_days(
    settings: &Settings,
    store: &Store,
    now: DateTime<Utc>,
    days: u32,
) -> Result<Report, StoreError> {
    let days = days.max(2);
    let tz = settings.site.time_zone;
    let today = now.with_timezone(&tz).date_naive();
    let first = today - TimeDelta::days(i64::from(days) - 1);
    let days = store.stats_days(&first.to_string()).await?;
    let reports = store.stats_reports(&first.to_string()).await?;
    let sketches = store.stats_sketches(&today.to_string()).await?;
    let subscriptions = store.stats_push_subscriptions().await?;
    Ok(assemble(
        settings,
        now,
        (first, today),
        Stored {
            days,
            reports,
            sketches,
            subscriptions,
        },
    ))
}

/// What a report is made of, as read from the store.
struct Stored {
    days: Vec<StatsDay>,
    reports: Vec<StatsReport>,
    sketches: Vec<(String, String)>,
    subscriptions: Vec<(String, String)>,
}

/// Each aggregator's latest (seen at, count) per its feed id, by aggregator name.
type Latest<'a> = BTreeMap<&'a str, BTreeMap<&'a str, (i64, i64)>>;

/// One day's (polls, 304s, bytes) per feed and its distinct pairs, as read from a log.
type DayTally = (Vec<(u64, u64, u64)>, HashMap<u64, Pair>);

/// Builds the report from what the store holds.
fn assemble(
    settings: &Settings,
    now: DateTime<Utc>,
    (first, today): (NaiveDate, NaiveDate),
    stored: Stored,
) -> Report {
    let yesterday = today.pred_opt().unwrap_or(today);
    let as_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut today_sketches: HashMap<&str, Sketch> = HashMap::new();
    for (feed, registers) in &stored.sketches {
        if let Some(s) = base64::engine::general_purpose::STANDARD
            .decode(registers)
            .ok()
            .and_then(|b| Sketch::from_bytes(&b))
        {
            today_sketches.entry(feed).or_default().merge(&s);
        }
    }
    let rows: HashMap<(&str, &str), &StatsDay> = stored
        .days
        .iter()
        .map(|d| ((d.feed.as_str(), d.day.as_str()), d))
        .collect();
    // Direct clients of a day: those counted when it closed, plus its pairs while it is open.
    let direct = |feed: &str, day: NaiveDate| -> u64 {
        let Some(row) = rows.get(&(feed, day.to_string().as_str())).copied() else {
            return 0;
        };
        let open = as_u64(row.pairs);
        let open = match today_sketches.get(feed) {
            Some(s) if day == today && open >= MAX_STORED_PAIRS => open.max(s.estimate()),
            _ => open,
        };
        as_u64(row.direct) + open
    };
    // Aggregators reporting each feed lately, by name, for the push counts.
    let mut fresh: HashMap<&str, Latest<'_>> = HashMap::new();
    let mut per_day: HashMap<(&str, &str), u64> = HashMap::new();
    for r in &stored.reports {
        *per_day.entry((&r.feed, &r.day)).or_default() += as_u64(r.subscribers);
        if r.day == today.to_string() || r.day == yesterday.to_string() {
            let latest = fresh
                .entry(&r.feed)
                .or_default()
                .entry(&r.aggregator)
                .or_default()
                .entry(&r.feed_key)
                .or_insert((r.seen_at, r.subscribers));
            if r.seen_at > latest.0 {
                *latest = (r.seen_at, r.subscribers);
            }
        }
    }
    let mut push: HashMap<String, u64> = HashMap::new();
    for (document, host) in &stored.subscriptions {
        let feed = document
            .rsplit_once('.')
            .map_or(document.as_str(), |(f, _)| f);
        let counted = agents::aggregator_of_host(host)
            .is_some_and(|a| fresh.get(feed).is_some_and(|names| names.contains_key(a)));
        if !counted {
            *push.entry(feed.to_owned()).or_default() += 1;
        }
    }
    let mut suspect = 0;
    let mut feeds: Vec<FeedStats> = FeedId::all(&settings.catalog)
        .into_iter()
        .map(|id| {
            let path = id.path();
            let mut aggregators: Vec<AggregatorCount> = fresh
                .get(path.as_str())
                .map(|names| {
                    names
                        .iter()
                        .map(|(name, keys)| AggregatorCount {
                            name: (*name).to_owned(),
                            subscribers: keys.values().map(|(_, n)| as_u64(*n)).sum(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            aggregators.sort_by(|a, b| b.subscribers.cmp(&a.subscribers).then(a.name.cmp(&b.name)));
            let push_now = push.get(&path).copied().unwrap_or(0);
            let direct_now = direct(&path, today).max(direct(&path, yesterday));
            let total =
                aggregators.iter().map(|a| a.subscribers).sum::<u64>() + direct_now + push_now;
            let days = first
                .iter_days()
                .take_while(|d| *d <= today)
                .map(|day| {
                    let key = day.to_string();
                    let row = rows.get(&(path.as_str(), key.as_str()));
                    suspect += row.map_or(0, |r| as_u64(r.suspect));
                    let aggregators = per_day
                        .get(&(path.as_str(), key.as_str()))
                        .copied()
                        .unwrap_or(0);
                    let direct = direct(&path, day);
                    let push = if day == today {
                        push_now
                    } else {
                        row.map_or(0, |r| as_u64(r.push))
                    };
                    DayStats {
                        day,
                        subscribers: aggregators + direct + push,
                        aggregators,
                        direct,
                        push,
                        polls: row.map_or(0, |r| as_u64(r.polls)),
                        not_modified: row.map_or(0, |r| as_u64(r.not_modified)),
                        bytes: row.map_or(0, |r| as_u64(r.bytes)),
                    }
                })
                .collect();
            FeedStats {
                title: id.name(&settings.catalog),
                feed: path,
                subscribers: Subscribers {
                    total,
                    aggregators,
                    direct: direct_now,
                    push: push_now,
                },
                days,
            }
        })
        .collect();
    feeds.sort_by(|a, b| {
        b.subscribers
            .total
            .cmp(&a.subscribers.total)
            .then(a.feed.cmp(&b.feed))
    });
    Report {
        generated_at: now,
        time_zone: settings.site.time_zone.name().to_owned(),
        today,
        suspect_reports: suspect,
        feeds,
    }
}

/// Sets `feedcast_subscribers{kind,source}` and `feedcast_feed_subscribers{feed}` (the top
/// feeds, the rest as `feed="other"`).
fn set_gauges(settings: &Settings, report: &Report) {
    let known: HashSet<&str> = AGGREGATORS.iter().map(|a| a.name).collect();
    let mut by_source: BTreeMap<(&'static str, String), u64> = BTreeMap::new();
    for kind in ["category", "region", "custom"] {
        for source in ["direct", "push", "other-aggregator"] {
            by_source.insert((kind, source.to_owned()), 0);
        }
        for a in AGGREGATORS {
            by_source.insert((kind, a.name.to_owned()), 0);
        }
    }
    let kinds: HashMap<String, &'static str> = FeedId::all(&settings.catalog)
        .iter()
        .map(|f| (f.path(), f.kind()))
        .collect();
    for feed in &report.feeds {
        let kind = kinds.get(&feed.feed).copied().unwrap_or("custom");
        let s = &feed.subscribers;
        *by_source.entry((kind, "direct".to_owned())).or_default() += s.direct;
        *by_source.entry((kind, "push".to_owned())).or_default() += s.push;
        for a in &s.aggregators {
            // Unknown names come from User-Agents: they do not become labels.
            let source = if known.contains(a.name.as_str()) {
                a.name.clone()
            } else {
                "other-aggregator".to_owned()
            };
            *by_source.entry((kind, source)).or_default() += a.subscribers;
        }
    }
    for ((kind, source), n) in by_source {
        metrics::gauge!(crate::metrics::SUBSCRIBERS, "kind" => kind, "source" => source)
            .set(n as f64);
    }
    let mut other = 0;
    for (i, feed) in report.feeds.iter().enumerate() {
        if i < METRICS_TOP_FEEDS {
            metrics::gauge!(crate::metrics::FEED_SUBSCRIBERS, "feed" => feed.feed.clone())
                .set(feed.subscribers.total as f64);
        } else {
            // Once named, a feed's series stays: one that left the top is zeroed, not stale.
            metrics::gauge!(crate::metrics::FEED_SUBSCRIBERS, "feed" => feed.feed.clone()).set(0.0);
            other += feed.subscribers.total;
        }
    }
    metrics::gauge!(crate::metrics::FEED_SUBSCRIBERS, "feed" => "other").set(other as f64);
}

/// What reading an access log did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogImport {
    /// Lines read.
    pub lines: u64,
    /// Of which polls of a feed, counted.
    pub polls: u64,
    /// Lines that are requests but not polls (pages, archives, other paths, errors).
    pub other: u64,
    /// Lines that could not be read, counted in full.
    pub unreadable: u64,
    /// The first of those, as (line number, why).
    pub problems: Vec<(u64, String)>,
}

/// Problems listed in a [`LogImport`], at most; the rest are counted.
const MAX_LISTED_PROBLEMS: usize = 100;

/// Longest log line read; longer ones are unreadable (and skipped whole).
const MAX_LOG_LINE: usize = 64 * 1024;

/// Distinct pairs an import holds before writing them.
const IMPORT_BATCH_PAIRS: usize = 100_000;

/// Reads an access log into `stats`' counts: each line of a poll is tallied under the site's
/// day of its time, batched and written as a flush would.
async fn import_log<R: std::io::BufRead + Send + 'static>(
    stats: &Stats,
    reader: R,
) -> Result<LogImport, StatsError> {
    let settings = stats.settings.clone();
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Batch>(2);
    let index = stats.index.clone();
    let hasher = stats.hasher.clone();
    let feeds = stats.paths.len();
    let reading = tokio::task::spawn_blocking(move || {
        read_log(reader, &settings, &index, &hasher, feeds, |batch| {
            sender.blocking_send(batch).is_ok()
        })
    });
    let (mut sketches, mut full) = (HashMap::new(), HashSet::new());
    while let Some(batch) = receiver.recv().await {
        stats.write_batch(batch, &mut sketches, &mut full).await?;
    }
    reading
        .await
        .map_err(|e| StatsError::Counting(e.to_string()))?
}

/// One day's polls read from a log.
struct Batch {
    day: NaiveDate,
    counts: Vec<(u64, u64, u64)>,
    pairs: Vec<Pair>,
}

impl Stats {
    /// Writes a batch read from a log, under its day's salt (one is made for a day that has
    /// none: a closed day is closed again with what was added). `sketches` holds the import's
    /// sketch of each (day, feed) across its batches, written once the day's pairs are at the
    /// cap, so that an import of more clients than are stored is estimated like live polls.
    async fn write_batch(
        &self,
        batch: Batch,
        sketches: &mut HashMap<(NaiveDate, u32), Sketch>,
        full: &mut HashSet<(NaiveDate, u32)>,
    ) -> Result<(), StatsError> {
        let on = batch.day;
        let day = on.to_string();
        let fresh = random_hex(32)
            .ok_or_else(|| StatsError::Counting("no randomness for the day's salt".to_owned()))?;
        let salt = self.store.stats_salt(&day, &fresh).await?;
        let paths = self.paths.clone();
        let of_day: Vec<(NaiveDate, u32)> =
            sketches.keys().filter(|(d, _)| *d == on).copied().collect();
        let mut days_sketches: HashMap<u32, Sketch> = of_day
            .into_iter()
            .filter_map(|key| sketches.remove(&key).map(|sketch| (key.1, sketch)))
            .collect();
        let days_full: HashSet<u32> = full
            .iter()
            .filter(|(d, _)| *d == on)
            .map(|(_, f)| *f)
            .collect();
        let full_before = days_full.clone();
        let (tallies, days_sketches) = tokio::task::spawn_blocking(move || {
            let tallies = tally(
                &paths,
                &batch.counts,
                batch.pairs,
                &salt,
                &mut days_sketches,
                &full_before,
            );
            (tallies, days_sketches)
        })
        .await
        .map_err(|e| StatsError::Counting(e.to_string()))?;
        let flushed = self
            .store
            .stats_flush(&day, &self.replica, &tallies, &known(), Utc::now())
            .await?;
        // A feed whose pairs reached the cap in this batch: its sketch now, not at a next
        // batch that may never come.
        let late: Vec<FeedTally> = flushed
            .full
            .iter()
            .filter_map(|path| {
                let feed = self.paths.iter().position(|p| p == path)? as u32;
                full.insert((on, feed));
                if days_full.contains(&feed) {
                    return None;
                }
                let sketch = days_sketches.get(&feed)?;
                Some(FeedTally {
                    feed: path.clone(),
                    sketch: Some(
                        base64::engine::general_purpose::STANDARD.encode(sketch.as_bytes()),
                    ),
                    ..FeedTally::default()
                })
            })
            .collect();
        if !late.is_empty() {
            self.store
                .stats_flush(&day, &self.replica, &late, &known(), Utc::now())
                .await?;
        }
        sketches.extend(days_sketches.into_iter().map(|(feed, s)| ((on, feed), s)));
        Ok(())
    }
}

/// Reads log lines, handing each day's polls to `emit` whenever a day changes or a batch
/// fills; stops early if `emit` says so.
fn read_log<R: std::io::BufRead>(
    mut reader: R,
    settings: &Settings,
    index: &HashMap<FeedId, u32, foldhash::fast::RandomState>,
    hasher: &foldhash::fast::RandomState,
    feeds: usize,
    mut emit: impl FnMut(Batch) -> bool,
) -> Result<LogImport, StatsError> {
    let mut done = LogImport::default();
    // Only days whose figures are kept, and none ahead: a line dated 9999 would keep a salt
    // and its pairs in the store until then.
    let today = Utc::now()
        .with_timezone(&settings.site.time_zone)
        .date_naive();
    let oldest = today - TimeDelta::days(i64::from(settings.stats.retention_days) - 1);
    let mut batches: BTreeMap<NaiveDate, DayTally> = BTreeMap::new();
    let mut held = 0usize;
    let mut buf = Vec::new();
    let flush_all = |batches: &mut BTreeMap<NaiveDate, DayTally>,
                     emit: &mut dyn FnMut(Batch) -> bool| {
        for (day, (counts, pairs)) in std::mem::take(batches) {
            let batch = Batch {
                day,
                counts,
                pairs: pairs.into_values().collect(),
            };
            if !emit(batch) {
                return false;
            }
        }
        true
    };
    loop {
        buf.clear();
        let n = std::io::Read::take(&mut reader, (MAX_LOG_LINE + 1) as u64)
            .read_until(b'\n', &mut buf)
            .map_err(|e| StatsError::Counting(format!("reading the log: {e}")))?;
        if n == 0 {
            break;
        }
        done.lines += 1;
        let line_no = done.lines;
        let problem = |why: String, done: &mut LogImport| {
            done.unreadable += 1;
            if done.problems.len() < MAX_LISTED_PROBLEMS {
                done.problems.push((line_no, why));
            }
        };
        if buf.len() > MAX_LOG_LINE {
            problem(format!("longer than {MAX_LOG_LINE} bytes"), &mut done);
            // Skip the rest of the line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let m = std::io::Read::take(&mut reader, MAX_LOG_LINE as u64)
                    .read_until(b'\n', &mut rest)
                    .map_err(|e| StatsError::Counting(format!("reading the log: {e}")))?;
                if m == 0 || rest.last() == Some(&b'\n') {
                    break;
                }
            }
            continue;
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        let parsed = match logline::parse(line) {
            Ok(parsed) => parsed,
            Err(e) => {
                problem(e.to_string(), &mut done);
                continue;
            }
        };
        let (path, query) = parsed
            .target
            .split_once('?')
            .map_or((parsed.target, None), |(p, q)| (p, Some(q)));
        let key = path
            .strip_prefix("/feeds/")
            .and_then(|p| FeedKey::parse(p, query, settings).ok());
        let Some(key) = key else {
            done.other += 1;
            continue;
        };
        let is_poll = parsed.method == "GET"
            && matches!(parsed.status, 200 | 304)
            && key.format != Format::Html
            && matches!(key.view, View::Latest { .. });
        let Some(&feed) = index.get(&key.feed).filter(|_| is_poll) else {
            done.other += 1;
            continue;
        };
        let day = parsed
            .time
            .with_timezone(&settings.site.time_zone)
            .date_naive();
        if day > today || day < oldest {
            problem(
                format!("dated {day}, outside the days kept ({oldest} to {today})"),
                &mut done,
            );
            continue;
        }
        done.polls += 1;
        let (counts, pairs) = batches
            .entry(day)
            .or_insert_with(|| (vec![(0, 0, 0); feeds], HashMap::new()));
        let c = &mut counts[feed as usize];
        c.0 += 1;
        c.1 += u64::from(parsed.status == 304);
        c.2 = c.2.saturating_add(parsed.bytes);
        let client = parsed.client.to_canonical();
        let agent = parsed.user_agent.as_bytes();
        let agent = &agent[..agent.len().min(MAX_AGENT_BYTES)];
        let key = hasher.hash_one((feed, client, agent));
        if let std::collections::hash_map::Entry::Vacant(slot) = pairs.entry(key) {
            slot.insert(Pair {
                feed,
                client,
                user_agent: agent.into(),
            });
            held += 1;
        }
        if held >= IMPORT_BATCH_PAIRS {
            held = 0;
            if !flush_all(&mut batches, &mut emit) {
                return Ok(done);
            }
        }
    }
    flush_all(&mut batches, &mut emit);
    Ok(done)
}

/// The names of the aggregators feedcast knows.
fn known() -> Vec<&'static str> {
    AGGREGATORS.iter().map(|a| a.name).collect()
}

/// `n` random bytes as hex; `None` without the system's randomness.
fn random_hex(n: usize) -> Option<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_write_bytes_as_lowercase_hex() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn a_pair_is_the_hmac_of_its_address_a_zero_and_its_user_agent_under_the_salt() {
        let salt = "a1b2";
        let keyed = Hmac::<Sha256>::new_from_slice(salt.as_bytes()).unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let mut fresh = Hmac::<Sha256>::new_from_slice(salt.as_bytes()).unwrap();
        fresh.update(&[203, 0, 113, 7, 0]);
        fresh.update(b"newsboat");
        let expected: [u8; 32] = fresh.finalize().into_bytes().into();
        assert_eq!(pair_digest(&keyed, client, b"newsboat"), expected);
        // The keyed state is cloned, never consumed: the next pair hashes alike.
        assert_eq!(pair_digest(&keyed, client, b"newsboat"), expected);
        assert_ne!(pair_digest(&keyed, client, b"newsboat2"), expected);
    }

    #[test]
    fn merging_held_batches_adds_sums_and_keeps_the_latest_report() {
        let report = |n| ReportedCount {
            aggregator: "Feedly".to_owned(),
            feed_key: "1".to_owned(),
            subscribers: n,
        };
        let mut held = vec![FeedTally {
            feed: "category/parks".to_owned(),
            polls: 2,
            pairs: vec!["a".to_owned()],
            reports: vec![report(57)],
            ..FeedTally::default()
        }];
        let dropped = merge(
            &mut held,
            vec![
                FeedTally {
                    feed: "category/parks".to_owned(),
                    polls: 3,
                    pairs: vec!["b".to_owned()],
                    reports: vec![report(50)],
                    ..FeedTally::default()
                },
                FeedTally {
                    feed: "region/320000".to_owned(),
                    polls: 1,
                    ..FeedTally::default()
                },
            ],
        );
        assert_eq!(dropped, 0);
        assert_eq!(held.len(), 2);
        assert_eq!(held[0].polls, 5);
        assert_eq!(held[0].pairs, ["a", "b"]);
        assert_eq!(held[0].reports, [report(50)]);
    }
}
