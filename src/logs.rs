//! Where log lines go: standard error, written by a thread of its own behind a bounded queue,
//! so that no request ever waits on the log file, a pipe or a slow terminal. When the log
//! cannot keep up and the queue is full, a line is dropped rather than a request held, and
//! counted: `/metrics` shows [`crate::metrics::LOG_LINES_DROPPED`], so nothing is lost
//! silently.

use std::io::{BufWriter, IsTerminal};
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines queued for the writer thread by default: about 10 MB of request lines, some seconds
/// of a fleet's worth of traffic to one replica while its log stalls.
pub const DEFAULT_QUEUED_LINES: u32 = 65_536;

/// How many bytes the writer thread gathers before a write: every line queued while it wrote
/// the last batch goes out in one system call, not one each.
const WRITE_BUFFER: usize = 64 * 1024;

/// How log lines are formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Counts the lines the installed log dropped.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Installs the process's log: `format`, the levels of `RUST_LOG` (default `info`), at most
/// `queued_lines` (at least 1) waiting for the writer. Keep the guard until the process ends:
/// dropping it writes out what is queued.
pub fn install(format: LogFormat, queued_lines: u32) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(queued_lines.max(1) as usize)
        .thread_name("feedcast-log")
        .finish(BufWriter::with_capacity(WRITE_BUFFER, std::io::stderr()));
    let _ = DROPPED.set(writer.error_counter());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours for a person at a terminal, not escape codes in a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    // Installing twice (a second call in one process) keeps the first log.
    let _ = match format {
        LogFormat::Text => logs.try_init(),
        LogFormat::Json => logs.json().flatten_event(true).try_init(),
    };
    guard
}

/// Lines dropped since the log was installed (0 if it was not).
pub fn dropped() -> u64 {
    DROPPED
        .get()
        .map_or(0, |c| u64::try_from(c.dropped_lines()).unwrap_or(u64::MAX))
}
