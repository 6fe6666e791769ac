//! Where log lines go: standard error, so that no request ever waits on the log file, a
//! pipe or a slow terminal. When the log cannot keep up and its buffers are full, a line is
//! dropped rather than a request held, and counted: `/metrics` shows
//! [`crate::metrics::LOG_LINES_DROPPED`], so nothing is lost silently.
//!
//! The request line, one per request, is formatted here rather than by `tracing`'s generic
//! formatter, which cost a request more instructions than answering a 304 (callgrind; see
//! docs/BENCHMARKS.md), with the timestamp's date and time formatted once a second. It reads
//! as the other lines do, text or JSON, under the same `RUST_LOG` levels. It goes, as nginx's
//! buffered `access_log` does, into a buffer of the worker thread's own, which a writer thread
//! empties every [`FLUSH_EVERY`] or as soon as it holds [`WRITE_BUFFER`] bytes: handing each
//! line to a writer thread on its own cost a request a queue slot, an allocation and, as often
//! as not, waking that thread (a system call and a context switch). The other lines, a few,
//! go through `tracing`'s formatter and `tracing-appender`'s writer thread.

use std::cell::RefCell;
use std::io::{BufWriter, IsTerminal, Write as _};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

use crate::shard::Padded;
use tracing_subscriber::EnvFilter;

/// Log lines waiting to be written by default: about 10 MB of request lines, some seconds of
/// a fleet's worth of traffic to one replica while its log stalls.
pub const DEFAULT_QUEUED_LINES: u32 = 65_536;

/// How many bytes of lines a writer gathers before a write; also how full a worker thread's
/// buffer of request lines gets before its writer is woken early.
const WRITE_BUFFER: usize = 64 * 1024;

/// How long a request line waits in its thread's buffer at most, when requests are too few to
/// fill it.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Bytes a buffer of request lines holds at most, per line it may hold: a typical line is
/// 150 to 250 bytes, and a path as long as hyper lets in must not let the bound on lines
/// stand for gigabytes.
const BYTES_PER_LINE: usize = 256;

/// How long a stop waits for the request lines to be written: a log nobody reads must not
/// hold the process's exit (what is still unwritten is lost, as the other lines' writer's).
const STOP_WAIT: Duration = Duration::from_secs(1);

/// A writer's buffer larger than this is not kept for the next batch.
const KEPT_BUFFER: usize = 4 * WRITE_BUFFER;

/// How log lines are formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The installed log: its format, its buffers of request lines, and the counts of the lines
/// dropped.
static INSTALLED: OnceLock<Installed> = OnceLock::new();

struct Installed {
    format: LogFormat,
    /// Lines `tracing-appender`'s writer dropped.
    dropped: ErrorCounter,
    requests: Arc<RequestLines>,
}

/// The target request lines are logged under, as `RUST_LOG` directives name it.
pub const REQUEST_TARGET: &str = "feedcast::http::observe";

/// The installed log's writers. Keep it until the process ends: dropping it writes out what
/// waits to be written.
pub struct LogGuard {
    requests: Option<RequestWriter>,
    _others: WorkerGuard,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        // The request lines, then the other writer's: each waits a bounded time.
        drop(self.requests.take());
    }
}

/// Installs the process's log: `format`, the levels of `RUST_LOG` (default `info`), at most
/// `queued_lines` (at least 1) of each kind waiting for its writer.
pub fn install(format: LogFormat, queued_lines: u32) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(queued_lines.max(1) as usize)
        .thread_name("feedcast-log")
        .finish(BufWriter::with_capacity(WRITE_BUFFER, std::io::stderr()));
    let requests = Arc::new(RequestLines::new(queued_lines, cores()));
    let request_writer = match RequestWriter::start(requests.clone(), Box::new(std::io::stderr())) {
        Ok(w) => Some(w),
        Err(e) => {
            // Request lines then wait until their buffers are full, and are counted as dropped.
            eprintln!("feedcast: the request log's writer did not start: {e}");
            None
        }
    };
    let _ = INSTALLED.set(Installed {
        format,
        dropped: writer.error_counter(),
        requests,
    });
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
    LogGuard {
        requests: request_writer,
        _others: guard,
    }
}

/// A buffer of request lines for each thread that answers requests, as the HTTP edge starts
/// one a core (at most 64: more threads share).
fn cores() -> usize {
    crate::shard::cores().min(64)
}

/// Lines dropped since the log was installed (0 if it was not).
pub fn dropped() -> u64 {
    INSTALLED.get().map_or(0, |i| {
        let others = u64::try_from(i.dropped.dropped_lines()).unwrap_or(u64::MAX);
        others.saturating_add(i.requests.dropped.load(Ordering::Relaxed))
    })
}

/// Request lines waiting to be written, in one buffer per worker thread (a thread's lines stay
/// in their order; between threads, in the order the buffers are written).
struct RequestLines {
    /// A buffer per worker thread.
    shards: Box<[Padded<Mutex<Batch>>]>,
    /// Lines a buffer holds at most; past it lines are dropped.
    lines_per_shard: usize,
    /// Bytes a buffer holds at most; past it lines are dropped.
    bytes_per_shard: usize,
    /// Lines dropped: a buffer was full, the output refused them, or they came after the stop.
    dropped: AtomicU64,
    /// Set when the writer is to write what waits and end.
    stop: AtomicBool,
    /// The writer thread, to wake when a buffer is full.
    writer: OnceLock<std::thread::Thread>,
}

/// One thread's lines.
#[derive(Default)]
struct Batch {
    /// The lines, each ended by a newline.
    bytes: Vec<u8>,
    /// How many.
    lines: usize,
}

impl RequestLines {
    /// Buffers for `threads` worker threads, sharing `queued_lines` between them (at least one
    /// line each).
    fn new(queued_lines: u32, threads: usize) -> Self {
        let threads = threads.max(1);
        let lines_per_shard = (queued_lines as usize).div_ceil(threads).max(1);
        RequestLines {
            shards: (0..threads).map(|_| Padded::default()).collect(),
            lines_per_shard,
            bytes_per_shard: lines_per_shard.saturating_mul(BYTES_PER_LINE),
            dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            writer: OnceLock::new(),
        }
    }

    /// Adds a line, formatted by `write`, to this thread's buffer, or counts it as dropped when
    /// the buffer is full.
    fn push(&self, write: impl FnOnce(&mut Vec<u8>)) {
        // Nobody writes out a line that comes after the stop (a connection that outlived the
        // shutdown's bound): it is dropped, and counted.
        if self.stop.load(Ordering::Relaxed) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let shard = &self.shards[crate::shard::of_this_thread(self.shards.len())].0;
        let mut batch = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if batch.lines >= self.lines_per_shard || batch.bytes.len() >= self.bytes_per_shard {
            drop(batch);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let before = batch.bytes.len();
        write(&mut batch.bytes);
        batch.lines += 1;
        let filled = before < WRITE_BUFFER && batch.bytes.len() >= WRITE_BUFFER;
        drop(batch);
        if filled {
            if let Some(writer) = self.writer.get() {
                writer.unpark();
            }
        }
    }

    /// Writes every buffer's lines to `out`, one write a buffer; `spare` is the empty buffer
    /// swapped in. Lines `out` refused are counted as dropped.
    fn write_out(&self, out: &mut dyn std::io::Write, spare: &mut Vec<u8>) {
        for shard in &self.shards {
            let (bytes, lines) = {
                let mut batch = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
                if batch.lines == 0 {
                    continue;
                }
                let lines = std::mem::take(&mut batch.lines);
                (
                    std::mem::replace(&mut batch.bytes, std::mem::take(spare)),
                    lines,
                )
            };
            if out.write_all(&bytes).and_then(|()| out.flush()).is_err() {
                self.dropped.fetch_add(lines as u64, Ordering::Relaxed);
            }
            *spare = bytes;
            spare.clear();
            if spare.capacity() > KEPT_BUFFER {
                *spare = Vec::new();
            }
        }
    }
}

/// The thread that writes the request lines; dropping it writes what waits and ends it,
/// waiting [`STOP_WAIT`] at most.
struct RequestWriter {
    /// The buffers it writes out.
    lines: Arc<RequestLines>,
    /// The thread, to wake for the stop.
    thread: std::thread::Thread,
    /// Closed by the thread when it ends.
    ended: std::sync::mpsc::Receiver<()>,
}

impl RequestWriter {
    fn start(
        lines: Arc<RequestLines>,
        mut out: Box<dyn std::io::Write + Send>,
    ) -> std::io::Result<Self> {
        let shared = lines.clone();
        let (ending, ended) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("feedcast-request-log".into())
            .spawn(move || {
                // Dropped when the thread ends, however it ends: the stop's signal.
                let _ending = ending;
                let mut spare = Vec::new();
                loop {
                    // Read before writing out: a stop asked for during the round still gets
                    // one more, for what was logged while this one wrote.
                    let stopping = shared.stop.load(Ordering::Acquire);
                    shared.write_out(&mut *out, &mut spare);
                    if stopping {
                        break;
                    }
                    std::thread::park_timeout(FLUSH_EVERY);
                }
            })?;
        let _ = lines.writer.set(thread.thread().clone());
        Ok(RequestWriter {
            lines,
            thread: thread.thread().clone(),
            ended,
        })
    }
}

impl Drop for RequestWriter {
    fn drop(&mut self) {
        self.lines.stop.store(true, Ordering::Release);
        self.thread.unpark();
        // Ended (the channel closed) or still writing to a log nobody reads: either way, on.
        let _ = self.ended.recv_timeout(STOP_WAIT);
    }
}

/// One answered request, as its log line names it.
#[derive(Debug, Clone, Copy)]
pub struct RequestLine<'a> {
    /// The request id (the client's `X-Request-Id`, or one of feedcast's).
    pub request_id: &'a str,
    /// The client's address.
    pub client: IpAddr,
    /// The method, `-` when the request could not be parsed.
    pub method: &'a str,
    /// The path, `-` when the request could not be parsed.
    pub path: &'a str,
    /// The status answered.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// Time to the answer, in microseconds.
    pub latency_us: u64,
}

/// Logs a request's line at level INFO, if `RUST_LOG` lets [`REQUEST_TARGET`] log at INFO.
pub fn request(line: &RequestLine<'_>) {
    if !tracing::enabled!(target: REQUEST_TARGET, tracing::Level::INFO) {
        return;
    }
    let Some(installed) = INSTALLED.get() else {
        // Not installed (the service inside a test or another program): its subscriber decides.
        tracing::info!(
            target: REQUEST_TARGET,
            request_id = line.request_id,
            client = %line.client,
            method = line.method,
            path = line.path,
            status = line.status,
            bytes = line.bytes,
            latency_us = line.latency_us,
            "request"
        );
        return;
    };
    installed.requests.push(|out| match installed.format {
        LogFormat::Text => text_line(out, line),
        LogFormat::Json => json_line(out, line),
    });
}

thread_local! {
    /// The current second, formatted (`2026-12-04T18:50:17`), and which second it is.
    static SECOND: RefCell<(i64, Vec<u8>)> = const { RefCell::new((i64::MIN, Vec::new())) };
}

/// Now, as the other lines write it: RFC 3339 in UTC with microseconds.
fn timestamp(out: &mut Vec<u8>) {
    let now = chrono::Utc::now();
    SECOND.with_borrow_mut(|(second, formatted)| {
        if *second != now.timestamp() {
            *second = now.timestamp();
            formatted.clear();
            let _ = write!(formatted, "{}", now.format("%Y-%m-%dT%H:%M:%S"));
        }
        out.extend_from_slice(formatted);
    });
    let micros = now.timestamp_subsec_micros().min(999_999);
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(micros).as_bytes();
    out.push(b'.');
    out.extend_from_slice(&b"000000"[digits.len()..]);
    out.extend_from_slice(digits);
    out.push(b'Z');
}

// The request line is written piece by piece rather than by `write!`: `fmt`'s machinery (the
// `Debug` escaping of each string, `Display` of each number and of the address) was 4,300 of
// the 39,000 instructions a 304 took (callgrind), the largest part of the whole request line.

/// `s` quoted as `Debug` quotes a string: as it is when it is printable ASCII without quotes
/// or backslashes (every path and id feedcast makes), else escaped by `Debug` itself.
fn quoted(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

/// An address as `Display` writes it.
fn address(out: &mut Vec<u8>, client: IpAddr) {
    match client {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(digits.format(octet).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// `name=value` for a number, after a space.
fn number(out: &mut Vec<u8>, name: &str, value: u64) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// The line as `tracing`'s text format writes an event: strings quoted and escaped, so a
/// hostile request id cannot forge a line.
fn text_line(out: &mut Vec<u8>, line: &RequestLine<'_>) {
    timestamp(out);
    out.extend_from_slice(b"  INFO ");
    out.extend_from_slice(REQUEST_TARGET.as_bytes());
    out.extend_from_slice(b": request request_id=");
    quoted(out, line.request_id);
    out.extend_from_slice(b" client=");
    address(out, line.client);
    out.extend_from_slice(b" method=");
    // A method is a token (RFC 9110; hyper refuses anything else): nothing to quote.
    out.extend_from_slice(line.method.as_bytes());
    out.extend_from_slice(b" path=");
    quoted(out, line.path);
    number(out, "status", u64::from(line.status));
    number(out, "bytes", line.bytes);
    number(out, "latency_us", line.latency_us);
    out.push(b'\n');
}

/// The line as `tracing`'s JSON format writes an event, its fields flattened.
fn json_line(out: &mut Vec<u8>, line: &RequestLine<'_>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\",\"request_id\":");
    json_string(out, line.request_id);
    out.extend_from_slice(b",\"client\":\"");
    address(out, line.client);
    out.extend_from_slice(b"\",\"method\":");
    json_string(out, line.method);
    out.extend_from_slice(b",\"path\":");
    json_string(out, line.path);
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(b",\"status\":");
    out.extend_from_slice(digits.format(line.status).as_bytes());
    out.extend_from_slice(b",\"bytes\":");
    out.extend_from_slice(digits.format(line.bytes).as_bytes());
    out.extend_from_slice(b",\"latency_us\":");
    out.extend_from_slice(digits.format(line.latency_us).as_bytes());
    out.extend_from_slice(b",\"target\":\"");
    out.extend_from_slice(REQUEST_TARGET.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// A JSON string of `s`, escaped as JSON requires.
fn json_string(out: &mut Vec<u8>, s: &str) {
    // Writing into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(request_id: &str) -> RequestLine<'_> {
        RequestLine {
            request_id,
            client: IpAddr::from([127, 0, 0, 1]),
            method: "GET",
            path: "/feeds/region/320000.atom",
            status: 304,
            bytes: 0,
            latency_us: 41,
        }
    }

    /// A sink that holds every write until `release` says go, as a pipe nobody reads does.
    struct Stalled {
        release: std::sync::mpsc::Receiver<()>,
        released: bool,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl std::io::Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if !self.released {
                let _ = self.release.recv();
                self.released = true;
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A writer of `lines` into a [`Stalled`] sink: what it wrote, and the sender that lets
    /// it write (sent or dropped).
    fn stalled_writer(
        lines: &Arc<RequestLines>,
    ) -> (
        RequestWriter,
        std::sync::mpsc::Sender<()>,
        Arc<Mutex<Vec<u8>>>,
    ) {
        let (go, release) = std::sync::mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let writer = RequestWriter::start(
            lines.clone(),
            Box::new(Stalled {
                release,
                released: false,
                written: written.clone(),
            }),
        )
        .unwrap();
        (writer, go, written)
    }

    #[test]
    fn can_count_the_request_lines_a_stalled_log_has_no_room_for_and_write_the_rest_at_stop() {
        const LINES: usize = 1_000;
        let lines = Arc::new(RequestLines::new(8, 1));
        let (writer, go, written) = stalled_writer(&lines);
        for i in 0..LINES {
            lines.push(|out| {
                out.extend_from_slice(format!("line {i}\n").as_bytes());
            });
        }
        let dropped = lines.dropped.load(Ordering::Relaxed) as usize;
        // At most the buffer's 8 and a batch of 8 being written wait; every other was dropped.
        assert!(dropped >= LINES - 16, "dropped {dropped}");
        go.send(()).unwrap();
        drop(writer);
        let written = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let numbers: Vec<usize> = written
            .lines()
            .map(|l| l.strip_prefix("line ").unwrap().parse().unwrap())
            .collect();
        assert_eq!(numbers.len() + dropped, LINES, "{written}");
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "in order: {numbers:?}"
        );
    }

    #[test]
    fn can_write_request_lines_whole_without_a_stop_once_a_buffer_fills_or_time_passes() {
        let lines = Arc::new(RequestLines::new(1_000_000, 2));
        let (_writer, go, written) = stalled_writer(&lines);
        go.send(()).unwrap();
        let line = format!("{}\n", "x".repeat(99));
        for _ in 0..2 * WRITE_BUFFER / line.len() {
            lines.push(|out| out.extend_from_slice(line.as_bytes()));
        }
        // The writer is woken by the full buffer, or else by its timer: whichever, the lines
        // arrive while the writer runs on.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while written.lock().unwrap().len() < WRITE_BUFFER {
            assert!(std::time::Instant::now() < deadline, "nothing written");
            std::thread::park_timeout(FLUSH_EVERY);
        }
        let written = written.lock().unwrap().clone();
        assert!(written.ends_with(b"\n"));
        assert!(
            written
                .split(|&b| b == b'\n')
                .all(|l| l.is_empty() || l.len() == 99)
        );
        assert_eq!(lines.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn can_stop_within_its_bound_while_the_log_is_never_read() {
        let lines = Arc::new(RequestLines::new(8, 1));
        let (writer, go, _) = stalled_writer(&lines);
        lines.push(|out| out.extend_from_slice(b"never read\n"));
        // Wait for the writer to be stuck on the line, then stop it: the stop returns.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while lines.shards[0].0.lock().unwrap().lines > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was never taken"
            );
            std::thread::park_timeout(Duration::from_millis(10));
        }
        drop(writer);
        // A line after the stop is counted, not kept.
        lines.push(|out| out.extend_from_slice(b"too late\n"));
        assert_eq!(lines.dropped.load(Ordering::Relaxed), 1);
        drop(go);
    }

    #[test]
    fn can_bound_the_bytes_a_buffer_of_request_lines_holds() {
        let lines = RequestLines::new(4, 1);
        let long = vec![b'x'; 4 * BYTES_PER_LINE];
        lines.push(|out| out.extend_from_slice(&long));
        lines.push(|out| out.extend_from_slice(b"short\n"));
        assert_eq!(lines.shards[0].0.lock().unwrap().lines, 1);
        assert_eq!(lines.dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_json_request_line_is_one_json_object_with_every_field() {
        let mut out = Vec::new();
        json_line(&mut out, &line("a\"b\n{}"));
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.ends_with('\n') && out.matches('\n').count() == 1,
            "{out}"
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["request_id"], "a\"b\n{}");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "request");
        assert_eq!(v["client"], "127.0.0.1");
        assert_eq!(v["path"], "/feeds/region/320000.atom");
        assert_eq!(
            (v["status"].as_u64(), v["latency_us"].as_u64()),
            (Some(304), Some(41))
        );
        let at = v["timestamp"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    }

    #[test]
    fn a_text_request_line_is_one_line_whatever_the_request_id() {
        let mut out = Vec::new();
        text_line(&mut out, &line("x\n2026-01-01T00:00:00Z  INFO forged"));
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.matches('\n').count(), 1, "{out}");
        assert!(
            out.contains(" INFO feedcast::http::observe: request request_id=\"x\\n2026"),
            "{out}"
        );
        assert!(out.contains(" status=304 bytes=0 latency_us=41\n"), "{out}");
    }

    /// What `tracing`'s text format writes after the timestamp, by `fmt` (the shape the
    /// piecewise writer must keep).
    fn by_fmt(line: &RequestLine<'_>) -> String {
        format!(
            "  INFO {REQUEST_TARGET}: request request_id={:?} client={} method={} path={:?} \
             status={} bytes={} latency_us={}\n",
            line.request_id,
            line.client,
            line.method,
            line.path,
            line.status,
            line.bytes,
            line.latency_us
        )
    }

    #[test]
    fn a_text_request_line_reads_as_fmt_writes_it_for_any_id_path_and_address() {
        let cases = [
            ("42", "127.0.0.1", "/feeds/region/320000.atom"),
            ("a \"quoted\" \\ id\t", "::1", "/feeds/category/新材料.rss"),
            ("", "2001:db8::8:800:200c:417a", "-"),
            ("\u{7f}\u{1b}[31m", "255.255.255.0", "/a%20b?x=\"y\""),
        ];
        for (id, client, path) in cases {
            let line = RequestLine {
                request_id: id,
                client: client.parse().unwrap(),
                method: "GET",
                path,
                status: 200,
                bytes: u64::MAX,
                latency_us: 0,
            };
            let mut out = Vec::new();
            text_line(&mut out, &line);
            let out = String::from_utf8(out).unwrap();
            // 2026-12-06T21:40:48.000123Z: the fraction always six digits.
            let (stamp, rest) = out.split_at(27);
            assert!(
                chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.ends_with('Z'),
                "{out}"
            );
            assert_eq!(rest, by_fmt(&line));
        }
    }
}
