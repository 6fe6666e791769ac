//! Every request feedcast sends to others goes through one durable queue: the WebSub publish
//! pings and the CDN purges, next the hub's deliveries.
//!
//! A write never sends anything. What it changed is in the store's change log, appended in the
//! write's own transaction (by feedcast on SQLite, by the filing trigger on PostgreSQL, also for
//! the CMS's writes in SQL). This queue's dispatcher, in every replica, claims log entries no
//! one has handled, turns them into rows of the store's `outbound` table (kind, target, topic)
//! and marks them handled, in one transaction: each change is handled once, by whichever replica
//! claims it. Rows are coalesced by key (a topic pending for a target is one row however often
//! it changes), claimed with a lease committed before the request is made (so a replica that
//! dies mid-request loses nothing: another claims the row when the lease runs out, and the
//! request is made at least once), sent at most `max_in_flight` at once and `max_per_host` to
//! one host, retried with a doubling wait of at most [`MAX_BACKOFF`], and counted as given up
//! after the configured attempts.
//!
//! A request may be sent in several rounds ([`Outgoing::rounds`], [`ROUND_GAP`] apart): a purge
//! is sent twice, since a CDN may fetch the old document again while the first is on its way.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::Retry;
use crate::store::{Change, Claimed, Outcome, Outgoing, Settled, Store};

/// The longest wait between two attempts of one request.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// The wait between a purge's two rounds: longer than a replica takes to hear of a change
/// (within milliseconds when notified; at most 5 s when a notification is lost, as a replica
/// reads the change log every 5 s anyway; 200 ms while it cannot listen), then read the store
/// (at most the 2 s query timeout) and rebuild.
pub const ROUND_GAP: Duration = Duration::from_secs(10);

/// How often the dispatcher looks at the queue when nothing wakes it: retries that came due,
/// other replicas' rows whose lease ran out.
const POLL: Duration = Duration::from_secs(1);

/// A request in flight, as a [`Delivery`] sends it.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// How one kind of outgoing request is sent.
pub trait Delivery: Send + Sync + 'static {
    /// The kind of request, as queued and as labelled in `/metrics`.
    fn kind(&self) -> &'static str;
    /// Sends one request about `topics` (at most [`Delivery::per_request`]) to `target`; an
    /// error says why it failed.
    fn send<'a>(&'a self, target: &'a str, topics: &'a [String]) -> Sending<'a>;
    /// Sends one request for these claimed rows: by default [`Delivery::send`] with their
    /// topics; a delivery that needs to know when each change was queued overrides it.
    fn send_claimed<'a>(&'a self, target: &'a str, claimed: &'a [Claimed]) -> Sending<'a> {
        Box::pin(async move {
            let topics: Vec<String> = claimed.iter().map(|c| c.topic.clone()).collect();
            self.send(target, &topics).await
        })
    }
    /// Topics one request to `target` may carry.
    fn per_request(&self, target: &str) -> usize {
        let _ = target;
        1
    }
    /// The host `target`'s requests go to, for the per-host bound.
    fn host(&self, target: &str) -> String;
    /// How a failed request is retried.
    fn retry(&self) -> Retry;
    /// Requests of this kind in flight at once, in all and to one host, if not the queue's.
    fn bounds(&self) -> Option<(usize, usize)> {
        None
    }
}

/// Turns change-log entries into the requests they call for.
pub type Plan = Arc<dyn Fn(Vec<Change>) -> Vec<Outgoing> + Send + Sync>;

/// Bounds on what the queue sends at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests in flight at once, in all.
    pub max_in_flight: usize,
    /// Requests in flight at once to one host.
    pub max_per_host: usize,
    /// How long a claim holds before another replica may take the request over.
    pub lease: Duration,
}

/// Requests in flight, by kind and by (kind, host): each kind has bounds of its own, so that a
/// burst of one (deliveries to thousands of subscribers) never holds up another (a purge).
#[derive(Debug, Default)]
struct Slots {
    in_flight: HashMap<&'static str, usize>,
    per_host: HashMap<(&'static str, String), usize>,
    /// Requests in flight to slow hosts, by kind: a lane of their own.
    slow_in_flight: HashMap<&'static str, usize>,
    /// Hosts whose last request of a kind could not reach them (a timeout, a refused
    /// connection), until when they count as slow.
    slow_hosts: HashMap<(&'static str, String), std::time::Instant>,
}

impl Slots {
    fn total(&self) -> usize {
        self.in_flight.values().sum::<usize>() + self.slow_in_flight.values().sum::<usize>()
    }

    fn is_slow(&self, kind: &'static str, host: &str) -> bool {
        self.slow_hosts
            .get(&(kind, host.to_owned()))
            .is_some_and(|until| *until > std::time::Instant::now())
    }
}

/// How long a host that could not be reached counts as slow (unless it answers sooner).
const SLOW_FOR: Duration = Duration::from_secs(600);

/// The share of a kind's slots that slow hosts may hold at once: one eighth, at least one.
/// Hosts that do not answer (dead, or an attacker's) then hold up only each other; every other
/// host keeps the rest.
fn slow_lane(max_in_flight: usize) -> usize {
    (max_in_flight / 8).max(1)
}

/// The queue's dispatcher, running in the background. Waking it is cheap and never blocks.
pub struct Outbound {
    wake: Arc<Notify>,
    closing: Arc<std::sync::atomic::AtomicBool>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
}

struct Dispatcher {
    store: Store,
    settler: Settler,
    deliveries: HashMap<&'static str, Arc<dyn Delivery>>,
    plan: Plan,
    limits: Limits,
    slots: Arc<Mutex<Slots>>,
    wake: Arc<Notify>,
    /// Targets whose requests are being claimed or sent by this replica.
    busy: Arc<Mutex<HashSet<(String, String)>>>,
    /// The (kind, target) pairs with requests due, as last read from the store, and when.
    /// Reading them groups the whole queue (10 ms for 10,000 rows on PostgreSQL), so it is read
    /// again only when something was queued, every [`POLL`], or when every target known is
    /// done; a slot freed by a finished request only claims from the targets known.
    targets: Vec<(String, String)>,
    targets_read: Option<std::time::Instant>,
    /// The target served first last time, so that targets take turns.
    turn: usize,
    /// Whether the store failed the last time it was asked (said once, not every second).
    failing: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Outbound {
    /// Starts the dispatcher. Must be called within a Tokio runtime.
    pub fn start(
        store: Store,
        deliveries: Vec<Arc<dyn Delivery>>,
        plan: Plan,
        limits: Limits,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let dispatcher = Dispatcher {
            settler: Settler::start(store.clone()),
            store,
            deliveries: deliveries.into_iter().map(|d| (d.kind(), d)).collect(),
            plan,
            limits,
            slots: Arc::default(),
            wake: wake.clone(),
            busy: Arc::default(),
            targets: Vec::new(),
            targets_read: None,
            turn: 0,
            failing: false,
        };
        let task = tokio::spawn(dispatcher.run(closing.clone()));
        Outbound {
            wake,
            closing,
            dispatcher: Mutex::new(Some(task)),
        }
    }

    /// Tells the dispatcher the change log or the queue may hold something new.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Handles what the change log holds, sends what is due, waits for the requests in flight,
    /// and stops. Whatever is left stays queued in the store for the next start.
    pub async fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
        let task = lock(&self.dispatcher).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Dispatcher {
    async fn run(mut self, closing: Arc<std::sync::atomic::AtomicBool>) {
        let wake = self.wake.clone();
        loop {
            let woken = wake.notified();
            let last = closing.load(std::sync::atomic::Ordering::SeqCst);
            // A bug in one round (a plan, a delivery's bookkeeping) must not stop every later
            // ping, purge and delivery: the round is dropped, said, and the next one runs.
            let round = std::panic::AssertUnwindSafe(async {
                self.handle_changes().await;
                self.dispatch().await;
            });
            if futures_util::FutureExt::catch_unwind(round).await.is_err() {
                tracing::error!("outbound queue: a round failed (a bug); going on");
                metrics::counter!(crate::metrics::OUTBOUND_ROUND_PANICS).increment(1);
            }
            if last {
                loop {
                    let freed = wake.notified();
                    if lock(&self.slots).total() == 0 {
                        return;
                    }
                    freed.await;
                }
            }
            let _ = tokio::time::timeout(POLL, woken).await;
        }
    }

    /// Says that the store failed, once until it works again (a long import holds SQLite's
    /// writer, and the dispatcher asks every second).
    fn store_failed(&mut self, doing: &str, e: &crate::store::StoreError) {
        if !self.failing {
            tracing::warn!(cause = %e, "outbound queue: cannot {doing}; retrying");
        }
        self.failing = true;
    }

    fn store_worked(&mut self) {
        if self.failing {
            tracing::info!("outbound queue: the store answers again");
        }
        self.failing = false;
    }

    /// Turns every unhandled change-log entry into queued requests.
    async fn handle_changes(&mut self) {
        loop {
            let plan = self.plan.clone();
            match self
                .store
                .handle_changes(move |changes| plan(changes))
                .await
            {
                Ok(handled) => {
                    self.store_worked();
                    if handled > 0 {
                        // What was queued may be for targets not known yet.
                        self.targets_read = None;
                    }
                    if handled < crate::store::LOG_PAGE {
                        return;
                    }
                }
                Err(e) => return self.store_failed("handle the change log", &e),
            }
        }
    }

    /// Claims and sends what is due, as far as the bounds allow.
    async fn dispatch(&mut self) {
        let fresh = self
            .targets_read
            .is_some_and(|read| read.elapsed() < POLL && !self.targets.is_empty());
        if !fresh {
            match self.store.due_targets().await {
                Ok(targets) => {
                    self.targets = targets;
                    self.targets_read = Some(std::time::Instant::now());
                }
                Err(e) => return self.store_failed("read the queue", &e),
            }
        }
        if self.targets.is_empty() {
            return;
        }
        self.turn = (self.turn + 1) % self.targets.len();
        let targets = self.targets.clone();
        let mut done = HashSet::new();
        for (kind, target) in targets.iter().cycle().skip(self.turn).take(targets.len()) {
            let Some(delivery) = self.deliveries.get(kind.as_str()).cloned() else {
                // Queued by a replica configured otherwise: it sends them.
                continue;
            };
            let key = (kind.clone(), target.clone());
            if lock(&self.busy).contains(&key) {
                continue;
            }
            let host = delivery.host(target);
            let kind = delivery.kind();
            let (max_in_flight, max_per_host) = delivery
                .bounds()
                .unwrap_or((self.limits.max_in_flight, self.limits.max_per_host));
            let (free, slow) = {
                let slots = lock(&self.slots);
                let slow = slots.is_slow(kind, &host);
                let on_host = slots
                    .per_host
                    .get(&(kind, host.clone()))
                    .copied()
                    .unwrap_or(0);
                let lane = slow_lane(max_in_flight);
                let free = if slow {
                    // One at a time to a slow host, within the slow lane.
                    let in_lane = slots.slow_in_flight.get(kind).copied().unwrap_or(0);
                    lane.saturating_sub(in_lane)
                        .min(1usize.saturating_sub(on_host))
                } else {
                    let in_flight = slots.in_flight.get(kind).copied().unwrap_or(0);
                    max_in_flight
                        .saturating_sub(lane)
                        .max(1)
                        .saturating_sub(in_flight)
                        .min(max_per_host.saturating_sub(on_host))
                };
                (free, slow)
            };
            if free == 0 {
                continue;
            }
            let per_request = delivery.per_request(target).max(1);
            let wanted = free * per_request;
            let claimed = match self
                .store
                .claim(kind, target, wanted, self.limits.lease)
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    self.store_failed("claim requests", &e);
                    continue;
                }
            };
            if claimed.len() < wanted {
                // Nothing more is due there now: what comes due later is found by the next read.
                done.insert(key.clone());
            }
            if claimed.is_empty() {
                continue;
            }
            lock(&self.busy).insert(key.clone());
            let requests: Vec<Vec<Claimed>> = claimed
                .chunks(per_request)
                .map(<[Claimed]>::to_vec)
                .collect();
            let pending = Arc::new(Mutex::new(requests.len()));
            for request in requests {
                let slot = InFlight::take(&self.slots, &self.wake, kind, &host, slow);
                let (settler, delivery) = (self.settler.clone(), delivery.clone());
                let (key, busy, pending) = (key.clone(), self.busy.clone(), pending.clone());
                tokio::spawn(async move {
                    let unreachable = send(&settler, delivery.as_ref(), &key.1, request).await;
                    slot.mark(unreachable);
                    let mut left = lock(&pending);
                    *left -= 1;
                    if *left == 0 {
                        lock(&busy).remove(&key);
                    }
                    drop(left);
                    drop(slot);
                });
            }
        }
        self.targets.retain(|t| !done.contains(t));
    }
}

/// The host of a URL, the unit of the per-host bounds: lowercased, without a trailing dot and
/// without the port, so that `example.com.:81` is the same host as `example.com` (the text
/// itself if it is no URL).
pub fn host_of(target: &str) -> String {
    match url::Url::parse(target) {
        Ok(url) => url
            .host_str()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_ascii_lowercase(),
        Err(_) => target.to_owned(),
    }
}

/// A request counted in flight; uncounted when dropped, even if its task panicked.
struct InFlight {
    slots: Arc<Mutex<Slots>>,
    wake: Arc<Notify>,
    kind: &'static str,
    host: String,
    /// Counted in the slow lane.
    slow: bool,
}

impl InFlight {
    fn take(
        slots: &Arc<Mutex<Slots>>,
        wake: &Arc<Notify>,
        kind: &'static str,
        host: &str,
        slow: bool,
    ) -> Self {
        let mut s = lock(slots);
        let lane = if slow {
            &mut s.slow_in_flight
        } else {
            &mut s.in_flight
        };
        *lane.entry(kind).or_insert(0) += 1;
        *s.per_host.entry((kind, host.to_owned())).or_insert(0) += 1;
        InFlight {
            slots: slots.clone(),
            wake: wake.clone(),
            kind,
            host: host.to_owned(),
            slow,
        }
    }

    /// Records whether the host could be reached: one that could not goes to the slow lane for
    /// [`SLOW_FOR`], one that answered (even with an error) leaves it.
    fn mark(&self, unreachable: bool) {
        let mut s = lock(&self.slots);
        let key = (self.kind, self.host.clone());
        if unreachable {
            s.slow_hosts
                .insert(key, std::time::Instant::now() + SLOW_FOR);
        } else {
            s.slow_hosts.remove(&key);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = lock(&self.slots);
        let lane = if self.slow {
            &mut s.slow_in_flight
        } else {
            &mut s.in_flight
        };
        if let Some(n) = lane.get_mut(self.kind) {
            *n = n.saturating_sub(1);
        }
        let key = (self.kind, std::mem::take(&mut self.host));
        if let Some(n) = s.per_host.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.per_host.remove(&key);
            }
        }
        // Forgotten once expired, so that hosts seen once do not pile up.
        let now = std::time::Instant::now();
        s.slow_hosts.retain(|_, until| *until > now);
        drop(s);
        self.wake.notify_one();
    }
}

/// The wait before attempt `attempts + 1`: the first delay, doubled for each attempt after the
/// first, at most the retry's longest.
fn backoff(retry: Retry, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    retry
        .first_delay
        .saturating_mul(1 << doublings)
        .min(retry.max_delay)
}

/// Sends one request and records how it ended, for each of its rows by its own attempts: a
/// row on its first attempt is never given up because another in the same request is on its
/// last. If the record fails, the claim's lease runs out and the request is made again: at least
/// once.
/// Returns whether the target could not be reached (see [`UNREACHABLE`]).
async fn send(
    settler: &Settler,
    delivery: &dyn Delivery,
    target: &str,
    request: Vec<Claimed>,
) -> bool {
    let kind = delivery.kind();
    let topics: Vec<String> = request.iter().map(|c| c.topic.clone()).collect();
    let sent = delivery.send_claimed(target, &request).await;
    let retry = delivery.retry();
    let now = chrono::Utc::now();
    let mut settled = Vec::with_capacity(request.len());
    for claimed in request {
        let outcome = match &sent {
            Ok(()) => {
                metrics::counter!(crate::metrics::OUTBOUND, "kind" => kind, "outcome" => "delivered")
                    .increment(1);
                let waited = (now - claimed.queued_at).to_std().unwrap_or_default();
                metrics::histogram!(crate::metrics::OUTBOUND_LATENCY, "kind" => kind)
                    .record(waited.as_secs_f64());
                Outcome::Sent {
                    again_after: ROUND_GAP,
                }
            }
            Err(cause) if claimed.attempts >= retry.attempts => {
                metrics::counter!(crate::metrics::OUTBOUND, "kind" => kind, "outcome" => "given_up")
                    .increment(1);
                tracing::error!(kind, target, topic = claimed.topic, attempts = claimed.attempts, %cause, "given up");
                Outcome::GivenUp
            }
            Err(_) => {
                metrics::counter!(crate::metrics::OUTBOUND, "kind" => kind, "outcome" => "retried")
                    .increment(1);
                Outcome::Retry {
                    after: backoff(retry, claimed.attempts),
                }
            }
        };
        settled.push(Settled {
            kind,
            target: target.to_owned(),
            claimed,
            outcome,
        });
    }
    match &sent {
        Ok(()) => tracing::debug!(kind, target, topics = topics.len(), "sent"),
        Err(cause) => tracing::warn!(kind, target, topics = topics.len(), %cause, "send failed"),
    }
    settler.settle(settled).await;
    matches!(&sent, Err(cause) if cause.starts_with(UNREACHABLE))
}

/// Records how requests ended, many at once: requests that end while one record is being made
/// are recorded together by the next (a group commit), so that 10,000 deliveries are not
/// 20,000 statements. Each request waits for its own record, so that its slot (and a close)
/// is freed only once it is recorded.
#[derive(Clone)]
struct Settler {
    /// Unbounded, but never long: each request in flight sends one record and waits for it.
    records: tokio::sync::mpsc::UnboundedSender<(Vec<Settled>, tokio::sync::oneshot::Sender<()>)>,
}

/// Records one settle statement batch takes at most, so that one record stays short.
const SETTLE_AT_ONCE: usize = 1024;

impl Settler {
    fn start(store: Store) -> Self {
        let (records, mut queue) = tokio::sync::mpsc::unbounded_channel::<(
            Vec<Settled>,
            tokio::sync::oneshot::Sender<()>,
        )>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while batch.len() < SETTLE_AT_ONCE {
                    match queue.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                let settled: Vec<Settled> =
                    batch.iter().flat_map(|(s, _)| s.iter().cloned()).collect();
                let record = std::panic::AssertUnwindSafe(store.settle(&settled));
                match futures_util::FutureExt::catch_unwind(record).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(
                        cause = %e,
                        requests = settled.len(),
                        "cannot record how requests ended; they will be made again"
                    ),
                    Err(_) => {
                        tracing::error!(
                            "outbound queue: recording outcomes failed (a bug); going on"
                        );
                        metrics::counter!(crate::metrics::OUTBOUND_ROUND_PANICS).increment(1);
                    }
                }
                for (_, done) in batch {
                    let _ = done.send(());
                }
            }
        });
        Settler { records }
    }

    /// Records how these requests ended, with whatever else ends meanwhile. If the record fails,
    /// their claims' leases run out and they are made again: at least once.
    async fn settle(&self, settled: Vec<Settled>) {
        let (done, recorded) = tokio::sync::oneshot::channel();
        if self.records.send((settled, done)).is_ok() {
            let _ = recorded.await;
        }
    }
}

/// How a [`Delivery`]'s error begins when the target could not be reached at all (no
/// connection, no answer in time), as opposed to an answer it did not like.
pub const UNREACHABLE: &str = "unreachable";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_the_first_and_stop_growing_at_ten_minutes() {
        let retry = Retry {
            attempts: 20,
            first_delay: Duration::from_secs(1),
            max_delay: MAX_BACKOFF,
        };
        let waits: Vec<u64> = (1..=12).map(|a| backoff(retry, a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(backoff(retry, u32::MAX), MAX_BACKOFF);
    }
}
