//! Spawned tasks that live no longer than what spawned them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::{JoinError, JoinHandle};

/// A task's handle that aborts the task when dropped: a background task lives as long as what
/// spawned it (the change-log follower's listener, the SQLite store's checkpointer), and a
/// handler run as a task of its own stops when its request goes (a client gone, a timeout),
/// as it did when it ran in the request's own future. Awaited, it is the task's outcome.
#[derive(Debug)]
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
