//! What is known of the store's health, in one type that the store, the cache and readiness
//! share: whether reads fail (set by a failed build, cleared by a good one or a good check),
//! whether writes fail (from a failed write until the next one, or a probe, succeeds), and
//! whether the database's change notifications are heard.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::StoreError;

/// While writes fail, how often [`super::Store::probe_write`] may try one of its own, by
/// default. Without a probe, an instance taken out of rotation for failing a write would never
/// see the next write that clears it (its load balancer sends it none, and other replicas'
/// writes do not count here).
pub const WRITE_PROBE_INTERVAL: Duration = Duration::from_secs(10);

/// The store's health; clones share it.
#[derive(Debug, Clone)]
pub struct Health(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    started: Instant,
    /// When a read last failed, in milliseconds since `started` (0: not failing).
    read_failed_at: AtomicU64,
    listening: AtomicBool,
    write_failure: Mutex<Option<WriteFailure>>,
}

/// The last failed write: why, and when it (or the last probe) happened.
#[derive(Debug, Clone)]
struct WriteFailure {
    reason: String,
    at: Instant,
}

impl Default for Health {
    fn default() -> Self {
        Health(Arc::new(Inner {
            started: Instant::now(),
            read_failed_at: AtomicU64::new(0),
            listening: AtomicBool::new(true),
            write_failure: Mutex::new(None),
        }))
    }
}

impl Health {
    fn millis(&self) -> u64 {
        // Never 0, which means "not failing".
        (self.0.started.elapsed().as_millis() as u64).max(1)
    }

    /// Records that reading failed (a build or a check).
    pub fn read_failed(&self) {
        self.0.read_failed_at.store(self.millis(), Ordering::SeqCst);
    }

    /// Records that reading worked.
    pub fn read_worked(&self) {
        self.0.read_failed_at.store(0, Ordering::SeqCst);
    }

    /// Whether reads are failing.
    pub fn reads_failing(&self) -> bool {
        self.0.read_failed_at.load(Ordering::SeqCst) != 0
    }

    /// Whether a read failed less than `within` ago.
    pub fn read_failed_within(&self, within: Duration) -> bool {
        let at = self.0.read_failed_at.load(Ordering::SeqCst);
        at != 0 && self.millis() - at < within.as_millis() as u64
    }

    /// Whether the database's change notifications are heard (always on SQLite).
    pub fn is_listening(&self) -> bool {
        self.0.listening.load(Ordering::SeqCst)
    }

    /// Records whether the database's change notifications are heard.
    pub fn set_listening(&self, listening: bool) {
        self.0.listening.store(listening, Ordering::SeqCst);
    }

    /// Why the last write failed, if it did and none has worked since.
    pub fn write_failure(&self) -> Option<String> {
        self.writes().as_ref().map(|f| f.reason.clone())
    }

    /// Whether writes are failing and the last attempt is at least `interval` ago.
    pub(super) fn due_for_probe(&self, interval: Duration) -> bool {
        self.writes()
            .as_ref()
            .is_some_and(|f| f.at.elapsed() >= interval)
    }

    /// Notes a whole write's outcome (a commit, a takedown, a probe) and passes it on.
    pub(super) fn record_write<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        match outcome {
            Ok(done) => {
                *self.writes() = None;
                Ok(done)
            }
            Err(e) => Err(self.write_failed(e)),
        }
    }

    /// Notes a failed step of a write (which is not known to work until it commits), counting
    /// it, and passes the error on.
    pub(super) fn write_failed(&self, e: StoreError) -> StoreError {
        metrics::counter!(crate::metrics::STORE_WRITE_FAILURES).increment(1);
        *self.writes() = Some(WriteFailure {
            reason: e.to_string(),
            at: Instant::now(),
        });
        e
    }

    fn writes(&self) -> MutexGuard<'_, Option<WriteFailure>> {
        // A panic while holding this lock cannot leave the text half-written.
        self.0
            .write_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
