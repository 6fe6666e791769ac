//! Every request feedcast sends to others goes through one bounded queue: today the WebSub
//! publish pings, next the CDN purges and the hub's deliveries.
//!
//! A write only enqueues (target, topic) entries and returns; a dispatcher sends them in the
//! background, at most `max_in_flight` at once and `max_per_host` to one host, so a bulk import
//! that touches thousands of feeds never fires thousands of requests at once, and a slow host
//! holds up only its own entries. Entries are coalesced: a topic already pending for a target is
//! not queued twice, and a target's topics go out in the order they were first queued, so a
//! topic that changes all the time cannot keep the others waiting. Nothing is dropped: when a target has more than [`MAX_PENDING_PER_TARGET`]
//! topics pending, they collapse into one "everything changed" entry, which is sent as every
//! topic the [`Delivery`] knows when its turn comes. The pending entries are plain data (target,
//! topic) so that they can live in the store, shared by replicas and kept across a crash.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use url::Url;

use crate::config::Retry;

/// Topics one target may have pending before they collapse into "everything changed".
pub const MAX_PENDING_PER_TARGET: usize = 10_000;

/// A request in flight, as a [`Delivery`] sends it.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// How one kind of outgoing request is sent.
pub trait Delivery: Send + Sync + 'static {
    /// Sends one request about `topic` to `target`; an error says why it failed.
    fn send<'a>(&'a self, target: &'a Url, topic: &'a str) -> Sending<'a>;
    /// Every topic there is: what an "everything changed" entry is sent as.
    fn every_topic(&self) -> Vec<String>;
    /// The metric label of this kind of request.
    fn kind(&self) -> &'static str;
}

/// What a target has pending.
#[derive(Debug)]
enum Pending {
    /// These topics, each once, oldest first.
    Topics(Queue),
    /// Too many to hold: everything changed.
    Everything,
}

/// Topics in the order first queued, each once.
#[derive(Debug, Default)]
struct Queue {
    order: VecDeque<String>,
    queued: HashSet<String>,
}

impl Queue {
    fn push(&mut self, topic: &str) {
        if !self.queued.contains(topic) {
            self.queued.insert(topic.to_owned());
            self.order.push_back(topic.to_owned());
        }
    }

    fn pop(&mut self) -> Option<String> {
        let topic = self.order.pop_front()?;
        self.queued.remove(&topic);
        Some(topic)
    }

    fn len(&self) -> usize {
        self.order.len()
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[derive(Debug, Default)]
struct State {
    pending: BTreeMap<Url, Pending>,
    /// Requests in flight, in all and per host.
    in_flight: usize,
    per_host: HashMap<String, usize>,
    /// The target served last, so that targets take turns.
    last: Option<Url>,
    closed: bool,
}

/// Bounds on what the queue sends at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests in flight at once, in all.
    pub max_in_flight: usize,
    /// Requests in flight at once to one host.
    pub max_per_host: usize,
    /// How a failed request is retried.
    pub retry: Retry,
}

/// The queue of outgoing requests of one kind. Enqueuing is cheap and never blocks.
pub struct Outbound {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
}

fn host_of(target: &Url) -> String {
    format!(
        "{}:{}",
        target.host_str().unwrap_or_default(),
        target.port_or_known_default().unwrap_or(0)
    )
}

impl Outbound {
    /// Starts the dispatcher. Must be called within a Tokio runtime.
    pub fn start(delivery: Arc<dyn Delivery>, limits: Limits) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let wake = Arc::new(Notify::new());
        let dispatcher = tokio::spawn(dispatch(delivery, limits, state.clone(), wake.clone()));
        Outbound {
            state,
            wake,
            dispatcher: Mutex::new(Some(dispatcher)),
        }
    }

    /// Queues `topics` for every one of `targets`, each once however often it is queued.
    pub fn enqueue(&self, targets: &[Url], topics: &BTreeSet<String>) {
        if targets.is_empty() || topics.is_empty() {
            return;
        }
        {
            let mut state = lock(&self.state);
            if state.closed {
                tracing::warn!("outbound queue closed; entries not taken");
                return;
            }
            for target in targets {
                let pending = state
                    .pending
                    .entry(target.clone())
                    .or_insert_with(|| Pending::Topics(Queue::default()));
                if let Pending::Topics(queued) = pending {
                    topics.iter().for_each(|t| queued.push(t));
                    if queued.len() > MAX_PENDING_PER_TARGET {
                        tracing::warn!(%target, "outbound entries collapsed: everything changed");
                        *pending = Pending::Everything;
                    }
                }
            }
        }
        self.wake.notify_one();
    }

    /// Entries pending (an "everything changed" entry counts as one).
    #[cfg(test)]
    fn pending(&self) -> usize {
        lock(&self.state)
            .pending
            .values()
            .map(|p| match p {
                Pending::Topics(q) => q.len(),
                Pending::Everything => 1,
            })
            .sum()
    }

    /// Takes no more entries and waits until those pending are sent or given up.
    pub async fn close(&self) {
        lock(&self.state).closed = true;
        self.wake.notify_one();
        let dispatcher = self
            .dispatcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(dispatcher) = dispatcher {
            let _ = dispatcher.await;
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The next entry that may be sent now, taken off the queue and counted in flight.
fn next(state: &mut State, limits: &Limits, delivery: &dyn Delivery) -> Option<(Url, String)> {
    if state.in_flight >= limits.max_in_flight {
        return None;
    }
    // Targets take turns: start after the one served last.
    let after = state.last.clone();
    let mut order: Vec<Url> = state.pending.keys().cloned().collect();
    if let Some(last) = after {
        let split = order.partition_point(|t| *t <= last);
        order.rotate_left(split);
    }
    for target in order {
        let host = host_of(&target);
        if state.per_host.get(&host).copied().unwrap_or(0) >= limits.max_per_host {
            continue;
        }
        let Some(pending) = state.pending.get_mut(&target) else {
            continue;
        };
        if let Pending::Everything = pending {
            let mut every = Queue::default();
            delivery.every_topic().iter().for_each(|t| every.push(t));
            *pending = Pending::Topics(every);
        }
        let Pending::Topics(topics) = pending else {
            continue;
        };
        let Some(topic) = topics.pop() else {
            state.pending.remove(&target);
            continue;
        };
        if topics.is_empty() {
            state.pending.remove(&target);
        }
        state.in_flight += 1;
        *state.per_host.entry(host).or_insert(0) += 1;
        state.last = Some(target.clone());
        return Some((target, topic));
    }
    None
}

async fn dispatch(
    delivery: Arc<dyn Delivery>,
    limits: Limits,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
) {
    loop {
        // A wake-up between the look and the wait is not lost: `notify_one` leaves a permit
        // for the next `notified()` to take.
        let woken = wake.notified();
        let taken = {
            let mut s = lock(&state);
            let taken = next(&mut s, &limits, delivery.as_ref());
            let done = taken.is_none() && s.closed && s.pending.is_empty() && s.in_flight == 0;
            if done {
                return;
            }
            taken
        };
        let Some((target, topic)) = taken else {
            woken.await;
            continue;
        };
        let slot = InFlight {
            state: state.clone(),
            wake: wake.clone(),
            host: host_of(&target),
        };
        let delivery = delivery.clone();
        tokio::spawn(async move {
            send_with_retry(delivery.as_ref(), &target, &topic, limits.retry).await;
            drop(slot);
        });
    }
}

/// A request counted in flight; uncounted when dropped, even if its task panicked.
struct InFlight {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    host: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        s.in_flight = s.in_flight.saturating_sub(1);
        if let Some(n) = s.per_host.get_mut(&self.host) {
            *n -= 1;
            if *n == 0 {
                s.per_host.remove(&self.host);
            }
        }
        drop(s);
        self.wake.notify_one();
    }
}

async fn send_with_retry(delivery: &dyn Delivery, target: &Url, topic: &str, retry: Retry) {
    let kind = delivery.kind();
    let mut delay = retry.first_delay;
    for attempt in 1..=retry.attempts {
        match delivery.send(target, topic).await {
            Ok(()) => {
                tracing::debug!(kind, %target, topic, attempt, "sent");
                metrics::counter!(crate::metrics::OUTBOUND, "kind" => kind, "outcome" => "delivered")
                    .increment(1);
                return;
            }
            Err(cause) => tracing::warn!(kind, %target, topic, attempt, %cause, "send failed"),
        }
        if attempt < retry.attempts {
            metrics::counter!(crate::metrics::OUTBOUND, "kind" => kind, "outcome" => "retried")
                .increment(1);
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
    }
    metrics::counter!(crate::metrics::OUTBOUND, "kind" => kind, "outcome" => "given_up")
        .increment(1);
    tracing::error!(
        kind,
        %target,
        topic,
        attempts = retry.attempts,
        "given up"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Records what it sends and how many requests were in flight at most, overall and per
    /// host; each request waits until the test lets requests go.
    struct Recorder {
        sent: Mutex<Vec<(String, String)>>,
        now: AtomicUsize,
        most: AtomicUsize,
        per_host_now: Mutex<HashMap<String, usize>>,
        per_host_most: AtomicUsize,
        gate: tokio::sync::Semaphore,
        every: Vec<String>,
    }

    impl Default for Recorder {
        fn default() -> Self {
            Recorder {
                sent: Mutex::default(),
                now: AtomicUsize::new(0),
                most: AtomicUsize::new(0),
                per_host_now: Mutex::default(),
                per_host_most: AtomicUsize::new(0),
                gate: tokio::sync::Semaphore::new(0),
                every: Vec::new(),
            }
        }
    }

    impl Delivery for Recorder {
        fn send<'a>(&'a self, target: &'a Url, topic: &'a str) -> Sending<'a> {
            Box::pin(async move {
                let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(now, Ordering::SeqCst);
                {
                    let mut hosts = self.per_host_now.lock().unwrap();
                    let n = hosts.entry(host_of(target)).or_insert(0);
                    *n += 1;
                    self.per_host_most.fetch_max(*n, Ordering::SeqCst);
                }
                let _go = self.gate.acquire().await.unwrap();
                *self
                    .per_host_now
                    .lock()
                    .unwrap()
                    .get_mut(&host_of(target))
                    .unwrap() -= 1;
                self.now.fetch_sub(1, Ordering::SeqCst);
                self.sent
                    .lock()
                    .unwrap()
                    .push((target.to_string(), topic.to_owned()));
                Ok(())
            })
        }
        fn every_topic(&self) -> Vec<String> {
            self.every.clone()
        }
        fn kind(&self) -> &'static str {
            "test"
        }
    }

    const LIMITS: Limits = Limits {
        max_in_flight: 16,
        max_per_host: 4,
        retry: Retry {
            attempts: 1,
            first_delay: Duration::ZERO,
        },
    };

    fn topics(range: std::ops::Range<usize>) -> BTreeSet<String> {
        range.map(|i| format!("t{i:05}")).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_sixteen_in_flight_and_four_per_host_and_pending_entries_coalesce() {
        let recorder = Arc::new(Recorder::default());
        let outbound = Outbound::start(recorder.clone(), LIMITS);
        let targets: Vec<Url> = (0..8)
            .map(|i| Url::parse(&format!("http://host{}.example/hub{i}", i % 5)).unwrap())
            .collect();
        outbound.enqueue(&targets, &topics(0..50));
        // Queued again while pending: coalesced, not queued twice. (An entry already in flight
        // is queued again: it changed again after it was taken.)
        outbound.enqueue(&targets, &topics(0..50));
        assert!(outbound.pending() <= 8 * 50, "{}", outbound.pending());
        recorder.gate.add_permits(1_000_000);
        outbound.close().await;
        let sent = recorder.sent.lock().unwrap();
        assert!(sent.len() <= 8 * 50 + 16, "{}", sent.len());
        let unique: BTreeSet<_> = sent.iter().collect();
        assert_eq!(unique.len(), 8 * 50);
        assert!(recorder.most.load(Ordering::SeqCst) <= 16);
        assert!(recorder.per_host_most.load(Ordering::SeqCst) <= 4);
    }

    #[test]
    fn a_topic_queued_again_after_it_was_taken_waits_behind_the_others() {
        let mut q = Queue::default();
        for t in ["a", "b", "a", "c"] {
            q.push(t);
        }
        assert_eq!(q.pop().as_deref(), Some("a"));
        q.push("a");
        let rest: Vec<String> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(rest, ["b", "c", "a"]);
    }

    #[tokio::test]
    async fn too_much_pending_collapses_into_everything_and_nothing_is_lost() {
        let recorder = Arc::new(Recorder {
            every: topics(0..MAX_PENDING_PER_TARGET + 5).into_iter().collect(),
            ..Recorder::default()
        });
        let outbound = Outbound::start(recorder.clone(), LIMITS);
        let target = [Url::parse("http://hub.example/").unwrap()];
        outbound.enqueue(&target, &topics(0..MAX_PENDING_PER_TARGET));
        outbound.enqueue(
            &target,
            &topics(MAX_PENDING_PER_TARGET..MAX_PENDING_PER_TARGET + 5),
        );
        assert!(outbound.pending() <= MAX_PENDING_PER_TARGET);
        recorder.gate.add_permits(1_000_000);
        outbound.close().await;
        let sent: BTreeSet<String> = recorder
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| t.clone())
            .collect();
        assert_eq!(sent, topics(0..MAX_PENDING_PER_TARGET + 5));
    }
}
