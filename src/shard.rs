//! Which shard of a per-thread structure the current thread uses. The hot path keeps its
//! tallies and its request log lines in shards, one per worker thread where there are enough,
//! so that requests on different cores never wait for one another nor share a cache line.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The cores this process may use (as its CPU affinity and a container's quota allow): the
/// HTTP edges start a thread for each, the blocking pool runs as many CPU tasks at once, and
/// the per-thread structures have a shard for each.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The slot the next thread to ask is given.
static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's slot, once given one.
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's shard of `shards` (at least 1): threads are given slots in the order they
/// first ask, and keep theirs, so that the first `shards` threads each have one to themselves.
pub fn of_this_thread(shards: usize) -> usize {
    SLOT.with(|slot| {
        if slot.get() == usize::MAX {
            slot.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        slot.get() % shards.max(1)
    })
}

/// A shard on cache lines of its own: two threads' shards side by side would have each
/// thread's writes take the line from the other's core.
#[repr(align(128))]
#[derive(Default)]
pub struct Padded<T>(pub T);
