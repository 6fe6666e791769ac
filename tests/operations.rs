//! Operating feedcast: metrics, request logs, limits and graceful shutdown, over real HTTP and
//! the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Backend, Proxy, Server, TestDb, settings_with};

const BIN: &str = env!("CARGO_BIN_EXE_feedcast");
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/feeds.toml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_cache_and_builds() {
    let server = Server::start(Backend::Sqlite).await.unwrap();
    server.app.load_demo_if_empty().await.unwrap();
    for _ in 0..3 {
        server.text("/feeds/category/hydrogen.rss").await;
    }
    assert_eq!(server.get("/feeds/nope.rss").await.status(), 404);
    let r = server.get("/metrics").await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    for needle in [
        "feedcast_http_requests_total{route=\"feed\",status=\"200\"}",
        "feedcast_http_requests_total{route=\"feed\",status=\"404\"}",
        "feedcast_http_response_bytes_total{route=\"feed\"}",
        "feedcast_http_request_duration_seconds_bucket{route=\"feed\",le=\"0.001\"}",
        "feedcast_cache_hits_total",
        "feedcast_cache_misses_total",
        "feedcast_cache_bytes",
        "feedcast_feed_build_duration_seconds_bucket",
        "feedcast_store_query_duration_seconds_bucket{operation=\"reading a feed\"",
    ] {
        assert!(text.contains(needle), "no {needle} in\n{text}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_query_strings_are_refused() {
    let server = Server::start(Backend::Sqlite).await.unwrap();
    let long = "x".repeat(2000);
    let r = server
        .get(&format!("/feeds/category/parks.rss?utm={long}"))
        .await;
    assert_eq!(r.status(), 414);
    assert_eq!(
        server
            .get("/feeds/category/parks.rss?utm=short")
            .await
            .status(),
        200
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_cannot_hold_a_connection() {
    let settings = settings_with(&[(
        "header_read_timeout_ms = 10000",
        "header_read_timeout_ms = 300",
    )]);
    let server = Server::start_with(Backend::Sqlite, settings).await.unwrap();
    let addr = server.base.trim_start_matches("http://").to_owned();
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap(); // never finishes
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = Vec::new();
        // The server closes the connection (perhaps after a 408); a hang would time out.
        stream
            .read_to_end(&mut buf)
            .map(|_| String::from_utf8_lossy(&buf).into_owned())
    })
    .await
    .unwrap();
    let answer = closed.expect("closed by the server, not left hanging");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_stuck_on_the_store_times_out() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let (proxy, proxied) = Proxy::in_front_of(&db).await;
    let settings = settings_with(&[
        ("request_timeout_ms = 15000", "request_timeout_ms = 300"),
        ("query_timeout_ms = 2000", "query_timeout_ms = 30000"),
    ]);
    let server = Server::start_at(&proxied, settings, None).await;
    proxy.stall();
    let r = server.get("/feeds/category/parks.rss").await;
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("took too long"));
    proxy.restore();
    drop(server);
    drop(db);
}

/// Starts the binary's `serve` on a temporary SQLite store; returns it and its address. Its
/// standard output is dropped after the first line, which the server must survive.
fn serve(
    dir: &std::path::Path,
    global: &[&str],
    args: &[&str],
    log: &str,
    stderr: Stdio,
) -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .args(["--config", CONFIG])
        .args(global)
        .arg("--database")
        .arg(format!("sqlite://{}", dir.join("x.db").display()))
        .arg("serve")
        .args(args)
        .env("RUST_LOG", log)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let first = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let addr = first
        .trim_start_matches("feedcast listening on http://")
        .trim_end_matches('/')
        .to_owned();
    (child, addr)
}

/// Runs `work` on a runtime of the test's own thread.
fn block_on<F: std::future::Future>(work: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(work)
}

/// Stops a server started with its standard error piped (SIGTERM, as an operator would) and
/// returns its log, read to the end; it must have exited cleanly.
fn stop(mut child: std::process::Child) -> String {
    let mut stderr = child.stderr.take().unwrap();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(child.wait().unwrap().success());
    log
}

#[test]
fn request_logs_are_json_lines_with_id_method_path_status_bytes_latency() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = serve(
        dir.path(),
        &["--log-format", "json"],
        &["--listen", "127.0.0.1:0"],
        "info",
        Stdio::piped(),
    );
    let bytes = block_on(async {
        let r = reqwest::Client::new()
            .get(format!("http://{addr}/feeds/category/parks.atom"))
            .header("x-request-id", "req-42")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "req-42");
        let bytes = r.bytes().await.unwrap().len();
        // A request hyper itself refuses (it is not HTTP) is logged like any other.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(b"NOT HTTP\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 400"), "{answer:?}");
        bytes
    });
    let stderr = stop(child);
    let line: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|l: &serde_json::Value| l["request_id"] == "req-42")
        .unwrap_or_else(|| panic!("no log line for the request in\n{stderr}"));
    assert_eq!(line["method"], "GET");
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["path"], "/feeds/category/parks.atom");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], bytes as u64);
    assert!(line["latency_us"].as_u64().is_some());
    assert_eq!(line["level"], "INFO");
    let refused = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "request" && l["status"] == 400)
        .unwrap_or_else(|| panic!("no log line for the refused request in\n{stderr}"));
    assert_eq!(
        (&refused["method"], &refused["path"]),
        (&"-".into(), &"-".into())
    );
    assert_eq!(refused["client"], "127.0.0.1");
}

/// A request never waits on its log line: with standard error a pipe nobody reads (a stalled
/// log shipper, a terminal scrolled back), every request is still answered; the lines the
/// queue had no room for are counted in `/metrics`, and every line is either written or
/// counted, none lost silently.
#[test]
fn a_log_nobody_reads_holds_no_request_and_loses_no_line_silently() {
    const REQUESTS: usize = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = serve(
        dir.path(),
        &["--log-queue-lines", "16"],
        &["--listen", "127.0.0.1:0"],
        "info",
        Stdio::piped(),
    );
    let metrics = block_on(async {
        let client = reqwest::Client::new();
        // Some 200 bytes a line: far more than a pipe's buffer holds.
        for _ in 0..REQUESTS {
            let answer = tokio::time::timeout(
                Duration::from_secs(30),
                client.get(format!("http://{addr}/healthz")).send(),
            )
            .await
            .expect("a request waited on the log")
            .unwrap();
            assert_eq!(answer.status(), 200);
        }
        client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let dropped: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("feedcast_log_lines_dropped_total "))
        .unwrap_or_else(|| panic!("no dropped-lines counter in\n{metrics}"))
        .parse()
        .unwrap();
    assert!(dropped > 0, "the queue of 16 lines never filled");
    // Now the log is read: what was queued is written out, through shutdown.
    let log = stop(child);
    let written = log.lines().filter(|l| l.contains("/healthz")).count();
    // Each request's line was either dropped (counted before its answer was sent) or written.
    assert_eq!(
        written + dropped,
        REQUESTS,
        "written {written}, dropped {dropped}"
    );
}

#[test]
fn sigterm_during_a_burst_answers_every_accepted_request() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(
        dir.path(),
        &[],
        &["--demo", "--listen", "127.0.0.1:0"],
        "warn",
        Stdio::null(),
    );
    let pid = child.id().to_string();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (answered, failed) = rt.block_on(async move {
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (signal_tx, signal_rx) = tokio::sync::oneshot::channel::<()>();
        let signal_tx = std::sync::Mutex::new(Some(signal_tx));
        let signal_tx = std::sync::Arc::new(signal_tx);
        let mut workers = tokio::task::JoinSet::new();
        for w in 0..16 {
            let (addr, answered, signal_tx) = (addr.clone(), answered.clone(), signal_tx.clone());
            workers.spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                let mut errors = Vec::new();
                for i in 0..200 {
                    let path = [
                        "/feeds/region/320000.rss",
                        "/feeds/category/hydrogen.atom",
                        "/",
                    ][(w + i) % 3];
                    match client.get(format!("http://{addr}{path}")).send().await {
                        Ok(r) => {
                            // Accepted: the whole answer must arrive.
                            assert_eq!(r.status(), 200);
                            r.bytes()
                                .await
                                .expect("an accepted request is answered completely");
                            if answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 100 {
                                if let Some(tx) = signal_tx.lock().unwrap().take() {
                                    let _ = tx.send(());
                                }
                            }
                        }
                        // Not accepted: the listener had closed.
                        Err(e) => {
                            assert!(e.is_connect() || e.is_request(), "{e:?}");
                            errors.push(e);
                            break;
                        }
                    }
                }
                errors.len()
            });
        }
        signal_rx.await.unwrap();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let mut failed = 0;
        while let Some(n) = workers.join_next().await {
            failed += n.unwrap();
        }
        (answered.load(std::sync::atomic::Ordering::SeqCst), failed)
    });
    assert!(answered > 100, "{answered}");
    let status = child.wait().unwrap();
    assert!(status.success(), "exits cleanly: {status}");
    println!("{answered} answered, {failed} clients saw the listener closed");
}

#[test]
fn a_burst_of_connections_from_one_client_is_spread_over_the_edges() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = serve(
        dir.path(),
        &[],
        &["--listen", "127.0.0.1:0"],
        "warn",
        Stdio::piped(),
    );
    // Opened all at once, as a proxy opens its pool: the edge the kernel wakes first would
    // take them all, each edge accepting on its own descriptor of the one socket. And from
    // one client on one CPU: the edge near it would take them all.
    let mut held: Vec<std::net::TcpStream> = (0..32)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    // Each one served a request: by then every connection has an edge.
    for stream in &mut held {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
    }
    let mut metrics = std::net::TcpStream::connect(&addr).unwrap();
    metrics
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    metrics.read_to_string(&mut text).unwrap();
    let open: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("feedcast_http_edge_connections{edge="))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    let edges = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    assert_eq!(open.len(), edges, "one series per edge: {open:?}");
    // The 32 held and the one asking.
    assert_eq!(open.iter().sum::<u64>(), 33, "{open:?}");
    // All from this one thread, so all arriving on one CPU: that CPU's edge takes one while
    // it holds at most a quarter and one more than the least loaded (so up to two more, and
    // one more placed by another edge deciding at the same moment).
    let (least, most) = (*open.iter().min().unwrap(), *open.iter().max().unwrap());
    assert!(most <= least + least / 4 + 3, "spread: {open:?}");
    drop(held);
    stop(child);
}
