//! Subscriber statistics, as an editor reads them: polls replayed over HTTP with the
//! User-Agents real aggregators and readers send, read back from `/api/stats`, `feedcast
//! stats`, `/metrics` and the editors' page in a real browser; two replicas on one PostgreSQL;
//! a CDN's access log; and a day closed, keeping its count and forgetting who polled.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{Backend, Server, TOKEN, TestDb, available, call, chromium_dom, settings_with};
use feedcast::store::{ClosedDay, FeedTally, MAX_STORED_PAIRS, Store};
use serde_json::Value;

/// The tests' configuration behind a trusted proxy on loopback, so that a test can poll as
/// many clients (`X-Forwarded-For`) from one socket.
fn behind_proxy() -> feedcast::config::Settings {
    settings_with(&[(
        "trusted_proxies = []",
        "trusted_proxies = [\"127.0.0.1/32\"]",
    )])
}

/// Polls `path` as `client` with `agent`; returns the status.
async fn poll(server: &Server, path: &str, client: &str, agent: &str) -> u16 {
    server
        .client
        .get(format!("{}{path}", server.base))
        .header("user-agent", agent)
        .header("x-forwarded-for", client)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `text` in standard base64, as HTTP Basic carries credentials.
fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Writes this replica's tally to the store now.
async fn flush(server: &Server) {
    let (status, body) = call(server, "POST", "/api/stats/flush", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
}

/// The report `/api/stats` answers.
async fn report(server: &Server) -> Value {
    let (status, body) = call(server, "GET", "/api/stats", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// One feed of a report.
fn feed<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feed"] == path)
        .unwrap_or_else(|| panic!("{path} in {report}"))
}

/// Today's row of a feed.
fn today<'a>(report: &'a Value, path: &str) -> &'a Value {
    let days = feed(report, path)["days"].as_array().unwrap();
    assert_eq!(days.len(), 30, "thirty days, today last");
    assert_eq!(days[29]["day"], report["today"]);
    &days[29]
}

/// An aggregator's count in a feed's subscribers.
fn aggregator(report: &Value, path: &str, name: &str) -> Option<u64> {
    feed(report, path)["subscribers"]["aggregators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .map(|a| a["subscribers"].as_u64().unwrap())
}

const FEEDLY: &str =
    "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 57 subscribers; feed-id=1234)";
const INOREADER: &str =
    "Mozilla/5.0 (compatible; Inoreader; 12 subscribers; +http://www.inoreader.com)";
const NEWSBLUR: &str = "NewsBlur Feed Fetcher - 5 subscribers - https://www.newsblur.com/site/1234/hydrogen (Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0.1 Safari/605.1.15)";
const FEEDBIN: &str = "Feedbin feed-id:1 - 3 subscribers";
const OLD_READER: &str = "The Old Reader - 2 readers";
const NEWSBOAT: &str = "newsboat/2.21.0 (Linux x86_64)";
const FEEDPARSER: &str = "feedparser/6.0.11 +https://github.com/kurtmckee/feedparser/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_count_aggregators_by_their_report_and_every_other_client_once_a_day() {
    let server = common::admin_server(Backend::Sqlite, behind_proxy())
        .await
        .unwrap();
    server.app.load_demo_if_empty().await.unwrap();
    let hydrogen = "category/hydrogen";

    // Aggregators, each once, in whatever format they chose.
    for (path, agent) in [
        ("/feeds/category/hydrogen.rss", FEEDLY),
        ("/feeds/category/hydrogen.atom", INOREADER),
        ("/feeds/category/hydrogen.json", NEWSBLUR),
        ("/feeds/category/hydrogen.rss?limit=5", FEEDBIN),
        ("/feeds/category/hydrogen.atom", OLD_READER),
    ] {
        assert_eq!(poll(&server, path, "198.51.100.1", agent).await, 200);
    }
    // Direct clients: newsboat at one address in three formats and a ?limit variant is one
    // subscriber; the same program at another address is another; feedparser is a third.
    for path in [
        "/feeds/category/hydrogen.rss",
        "/feeds/category/hydrogen.atom",
        "/feeds/category/hydrogen.json?limit=3",
        "/feeds/category/hydrogen.wechat.json",
    ] {
        assert_eq!(poll(&server, path, "203.0.113.7", NEWSBOAT).await, 200);
    }
    assert_eq!(
        poll(
            &server,
            "/feeds/category/hydrogen.rss",
            "203.0.113.8",
            NEWSBOAT
        )
        .await,
        200
    );
    assert_eq!(
        poll(
            &server,
            "/feeds/category/hydrogen.rss",
            "203.0.113.9",
            FEEDPARSER
        )
        .await,
        200
    );
    // A conditional poll is a poll too, counted as a 304.
    let etag = server
        .client
        .get(format!("{}/feeds/category/hydrogen.rss", server.base))
        .header("user-agent", FEEDPARSER)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap()
        .headers()
        .get("etag")
        .unwrap()
        .clone();
    let revalidated = server
        .client
        .get(format!("{}/feeds/category/hydrogen.rss", server.base))
        .header("if-none-match", etag)
        .header("user-agent", FEEDPARSER)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    // Not polls: the page for people, at .html or sent to a browser; an archive; an error.
    assert_eq!(
        poll(
            &server,
            "/feeds/category/hydrogen.html",
            "203.0.113.10",
            "curl/8"
        )
        .await,
        200
    );
    let browser = server
        .client
        .get(format!("{}/feeds/category/hydrogen.rss", server.base))
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .header("x-forwarded-for", "203.0.113.11")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 200);
    assert!(
        browser.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let archive = poll(
        &server,
        "/feeds/category/hydrogen/archive/2024-05.rss",
        "203.0.113.12",
        "curl/8",
    )
    .await;
    assert!(archive == 200 || archive == 404, "{archive}");
    assert_eq!(
        poll(
            &server,
            "/feeds/category/nothing.rss",
            "203.0.113.13",
            "curl/8"
        )
        .await,
        404
    );

    flush(&server).await;
    let r = report(&server).await;
    let subscribers = &feed(&r, hydrogen)["subscribers"];
    assert_eq!(aggregator(&r, hydrogen, "Feedly"), Some(57));
    assert_eq!(aggregator(&r, hydrogen, "Inoreader"), Some(12));
    assert_eq!(aggregator(&r, hydrogen, "NewsBlur"), Some(5));
    assert_eq!(aggregator(&r, hydrogen, "Feedbin"), Some(3));
    assert_eq!(aggregator(&r, hydrogen, "The Old Reader"), Some(2));
    assert_eq!(subscribers["direct"], 3, "{subscribers}");
    assert_eq!(subscribers["push"], 0);
    assert_eq!(subscribers["total"], 57 + 12 + 5 + 3 + 2 + 3);
    let day = today(&r, hydrogen);
    // Five aggregator polls, five of newsboat, three of feedparser (one a 304).
    assert_eq!(day["polls"], 5 + 5 + 3, "{day}");
    assert_eq!(day["not_modified"], 1);
    assert!(day["bytes"].as_u64().unwrap() > 0);
    assert_eq!(day["subscribers"], subscribers["total"]);

    // The latest report wins: Feedly now says 50.
    let fewer = FEEDLY.replace("57 subscribers", "50 subscribers");
    assert_eq!(
        poll(
            &server,
            "/feeds/category/hydrogen.atom",
            "198.51.100.1",
            &fewer
        )
        .await,
        200
    );
    flush(&server).await;
    let r = report(&server).await;
    assert_eq!(aggregator(&r, hydrogen, "Feedly"), Some(50));
    // Other feeds saw nothing.
    assert_eq!(feed(&r, "category/parks")["subscribers"]["total"], 0);
    assert_eq!(r["feeds"][0]["feed"], hydrogen, "most subscribers first");

    // /metrics names the feed and the sources.
    let metrics = server.text("/metrics").await;
    let total = 50 + 12 + 5 + 3 + 2 + 3;
    assert!(
        metrics.contains(&format!(
            "feedcast_feed_subscribers{{feed=\"category/hydrogen\"}} {total}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("feedcast_subscribers{kind=\"category\",source=\"Feedly\"} 50"),
        "{metrics}"
    );
    assert!(metrics.contains("feedcast_subscribers{kind=\"category\",source=\"direct\"} 3"));

    // No address and no User-Agent is stored: only hashes under the day's salt.
    let db = server.stop().await.unwrap();
    let feedcast::store::DatabaseUrl::Sqlite(path) = &db.url else {
        unreachable!()
    };
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    // Every byte of the store, log included: no address or reader's User-Agent anywhere.
    let mut bytes = std::fs::read(path).unwrap();
    let wal = path.with_extension("db-wal");
    bytes.extend(std::fs::read(&wal).unwrap_or_default());
    let text = String::from_utf8_lossy(&bytes);
    for secret in ["203.0.113", "198.51.100", "newsboat", "feedparser"] {
        assert!(!text.contains(secret), "the store holds {secret}");
    }
    let pairs: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM stats_pairs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(pairs.0, 3, "one hashed pair per direct client and day");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_add_up_and_count_a_client_seen_by_both_once() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let a = Server::start_at(&db.url, behind_proxy(), Some(TOKEN)).await;
    let b = Server::start_at(&db.url, behind_proxy(), Some(TOKEN)).await;
    a.app.load_demo_if_empty().await.unwrap();
    let feed_path = "/feeds/region/320000.atom";
    // The same reader reaches both replicas behind the load balancer; each replica also has
    // a reader of its own.
    for server in [&a, &b] {
        assert_eq!(poll(server, feed_path, "203.0.113.20", NEWSBOAT).await, 200);
    }
    assert_eq!(poll(&a, feed_path, "203.0.113.21", NEWSBOAT).await, 200);
    assert_eq!(poll(&b, feed_path, "203.0.113.22", FEEDPARSER).await, 200);
    // Feedly reports through A first, then fewer through B.
    assert_eq!(poll(&a, feed_path, "198.51.100.2", FEEDLY).await, 200);
    flush(&a).await;
    let fewer = FEEDLY.replace("57 subscribers", "41 subscribers");
    assert_eq!(poll(&b, feed_path, "198.51.100.3", &fewer).await, 200);
    flush(&b).await;

    for server in [&a, &b] {
        let r = report(server).await;
        let region = "region/320000";
        assert_eq!(
            aggregator(&r, region, "Feedly"),
            Some(41),
            "the latest report"
        );
        assert_eq!(feed(&r, region)["subscribers"]["direct"], 3);
        assert_eq!(feed(&r, region)["subscribers"]["total"], 41 + 3);
        assert_eq!(today(&r, region)["polls"], 6);
    }

    // Flushed by its stop: a replica that stops loses nothing it tallied.
    assert_eq!(poll(&b, feed_path, "203.0.113.23", NEWSBOAT).await, 200);
    b.stop().await;
    let r = report(&a).await;
    assert_eq!(feed(&r, "region/320000")["subscribers"]["direct"], 4);

    // The editors' page and the command line read the same figures from the shared store.
    let page = a
        .client
        .get(format!("{}/admin/stats", a.base))
        .basic_auth("editor", Some(TOKEN))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row_start = page.find("<tr data-feed=\"region/320000\"").unwrap();
    let row = &page[row_start..row_start + page[row_start..].find("</tr>").unwrap()];
    assert!(
        row.contains("data-field=\"total\" data-value=\"45\""),
        "{row}"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("feeds.toml");
    std::fs::write(
        &config,
        include_str!("fixtures/feeds.toml").replace(
            "trusted_proxies = []",
            "trusted_proxies = [\"127.0.0.1/32\"]",
        ),
    )
    .unwrap();
    let out = feedcast(&config, &db.url.to_string(), &["stats", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(feed(&r, "region/320000")["subscribers"]["total"], 41 + 4);
    a.stop().await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implausible_reports_are_ignored_and_counted_as_suspect() {
    let server = common::admin_server(Backend::Sqlite, behind_proxy())
        .await
        .unwrap();
    server.app.load_demo_if_empty().await.unwrap();
    let path = "/feeds/category/materials.rss";
    let huge = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 2000000 subscribers; feed-id=1)";
    assert_eq!(poll(&server, path, "198.51.100.4", huge).await, 200);
    // One aggregator claiming 101 ids of one feed: the first 100 are believed.
    for id in 0..101 {
        let agent = format!(
            "Feedfetcher-Google; (+http://www.google.com/feedfetcher.html; 1 subscribers; feed-id={id})"
        );
        assert_eq!(poll(&server, path, "198.51.100.5", &agent).await, 200);
        if id == 99 {
            // The first hundred stored before the last one comes.
            flush(&server).await;
        }
    }
    flush(&server).await;
    // Aggregators nobody knows, named in a User-Agent: ten a day are believed, no more; the
    // known ones are never crowded out by them.
    for n in 0..12 {
        let agent = format!("Forged{n}/1.0 (7 subscribers)");
        assert_eq!(poll(&server, path, "198.51.100.5", &agent).await, 200);
    }
    flush(&server).await;
    assert_eq!(poll(&server, path, "198.51.100.6", INOREADER).await, 200);
    flush(&server).await;
    let r = report(&server).await;
    assert_eq!(
        aggregator(&r, "category/materials", "Google Feedfetcher"),
        Some(100)
    );
    assert_eq!(aggregator(&r, "category/materials", "Feedly"), None);
    assert_eq!(aggregator(&r, "category/materials", "Inoreader"), Some(12));
    let forged = (0..12)
        .filter(|n| aggregator(&r, "category/materials", &format!("Forged{n}")).is_some())
        .count();
    assert_eq!(forged, 10);
    assert_eq!(r["suspect_reports"], 4, "{}", r["suspect_reports"]);
    let metrics = server.text("/metrics").await;
    assert!(
        metrics.contains("feedcast_stats_suspect_reports_total 4"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_subscriptions_count_unless_their_aggregator_reports_the_feed() {
    let server = common::admin_server(Backend::Sqlite, behind_proxy())
        .await
        .unwrap();
    server.app.load_demo_if_empty().await.unwrap();
    let feedcast::store::DatabaseUrl::Sqlite(path) = &server.db.as_ref().unwrap().url else {
        unreachable!()
    };
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let future = chrono::Utc::now().timestamp_micros() + 3_600_000_000;
    let past = chrono::Utc::now().timestamp_micros() - 1;
    for (id, document, host, expires) in [
        ("s1", "category/parks.atom", "push.example.org", future),
        ("s2", "category/parks.rss", "cloud.feedly.com", future),
        ("s3", "category/parks.json", "hooks.example.net", future),
        // Lapsed: no longer a subscriber.
        ("s4", "category/parks.atom", "old.example.org", past),
    ] {
        sqlx::query(
            "INSERT INTO subscriptions (id, topic, feed, callback, callback_host, topic_as_sent, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $2, $6)",
        )
        .bind(id)
        .bind(format!("http://127.0.0.1:8080/feeds/{document}"))
        .bind(document)
        .bind(format!("https://{host}/callback"))
        .bind(host)
        .bind(expires)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    // Without a Feedly report, its push subscription counts like any other.
    let r = report(&server).await;
    assert_eq!(feed(&r, "category/parks")["subscribers"]["push"], 3);
    // Once Feedly reports its count for the feed, its push subscription is in that count.
    assert_eq!(
        poll(&server, "/feeds/category/parks.rss", "198.51.100.6", FEEDLY).await,
        200
    );
    flush(&server).await;
    let r = report(&server).await;
    let parks = &feed(&r, "category/parks")["subscribers"];
    assert_eq!(parks["push"], 2, "{parks}");
    assert_eq!(parks["total"], 57 + 2);
    server.stop().await;
}

/// Runs the real binary with the tests' configuration file on `database`.
fn feedcast(config: &std::path::Path, database: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_feedcast"))
        .arg("--config")
        .arg(config)
        .arg("--database")
        .arg(database)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cdn_access_log_is_read_into_the_same_counts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("feeds.toml");
    std::fs::write(&config, include_str!("fixtures/feeds.toml")).unwrap();
    let database = format!("sqlite://{}", dir.path().join("feedcast.db").display());
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let when = now.format("%d/%b/%Y:%H:%M:%S %z").to_string();
    let log = [
        format!(
            "198.51.100.9 - - [{when}] \"GET /feeds/category/hydrogen.rss HTTP/1.1\" 200 5123 \"-\" \"{FEEDLY}\""
        ),
        format!(
            "203.0.113.30 - - [{when}] \"GET /feeds/category/hydrogen.atom?limit=5 HTTP/1.1\" 200 812 \"-\" \"{NEWSBOAT}\""
        ),
        format!(
            "203.0.113.30 - - [{when}] \"GET /feeds/category/hydrogen.rss HTTP/1.1\" 304 0 \"-\" \"{NEWSBOAT}\""
        ),
        format!(
            "2001:db8::5 - - [{when}] \"GET /feeds/category/hydrogen.json HTTP/2.0\" 200 900 \"-\" \"{NEWSBOAT}\""
        ),
        // Not polls: a page, an error, another path.
        format!(
            "203.0.113.31 - - [{when}] \"GET /feeds/category/hydrogen.html HTTP/1.1\" 200 100 \"-\" \"curl/8\""
        ),
        format!(
            "203.0.113.32 - - [{when}] \"GET /feeds/category/hydrogen.rss HTTP/1.1\" 503 0 \"-\" \"curl/8\""
        ),
        format!("203.0.113.33 - - [{when}] \"GET / HTTP/1.1\" 200 100 \"-\" \"curl/8\""),
        // Byte counts no answer has: added without overflowing, the report still readable.
        format!(
            "203.0.113.36 - - [{when}] \"GET /feeds/category/parks.rss HTTP/1.1\" 200 18446744073709551615 \"-\" \"{NEWSBOAT}\""
        ),
        format!(
            "203.0.113.36 - - [{when}] \"GET /feeds/category/parks.rss HTTP/1.1\" 200 9223372036854775807 \"-\" \"{NEWSBOAT}\""
        ),
        // Unreadable, and dated where no figure is kept.
        "this is not a log line".to_owned(),
        format!(
            "203.0.113.34 - - [01/Jan/1970:00:00:00 +0000] \"GET /feeds/category/hydrogen.rss HTTP/1.1\" 200 5 \"-\" \"{NEWSBOAT}\""
        ),
        format!(
            "203.0.113.35 - - [31/Dec/9999:23:59:59 +0800] \"GET /feeds/category/hydrogen.rss HTTP/1.1\" 200 5 \"-\" \"{NEWSBOAT}\""
        ),
    ]
    .join("\n");
    let file = dir.path().join("access.log");
    std::fs::write(&file, log + "\n").unwrap();

    let out = feedcast(
        &config,
        &database,
        &["stats", "import-log", file.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("12 lines, 6 polls counted, 3 other requests, 3 unreadable"),
        "{stdout}"
    );
    assert!(
        stderr.contains("access.log:10: "),
        "names the line: {stderr}"
    );

    let out = feedcast(&config, &database, &["stats", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(aggregator(&r, "category/hydrogen", "Feedly"), Some(57));
    assert_eq!(feed(&r, "category/hydrogen")["subscribers"]["direct"], 2);
    let day = today(&r, "category/hydrogen");
    assert_eq!(day["polls"], 4);
    assert_eq!(day["not_modified"], 1);
    assert_eq!(day["bytes"], 5123 + 812 + 900);
    let parks = today(&r, "category/parks");
    assert_eq!(parks["polls"], 2);
    let bytes = parks["bytes"].as_u64().unwrap();
    assert!(bytes > 0 && bytes <= i64::MAX as u64, "{bytes}");

    // The same, as a table for a terminal.
    let out = feedcast(&config, &database, &["stats"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with("category/hydrogen "))
        .unwrap_or_else(|| panic!("{table}"));
    let numbers: Vec<&str> = line.split_whitespace().take(4).collect();
    assert_eq!(numbers, ["category/hydrogen", "59", "57", "2"], "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_editors_page_reads_right_in_a_browser() {
    if !available("chromium", &["--version"]) {
        return;
    }
    let server = common::admin_server(Backend::Sqlite, behind_proxy())
        .await
        .unwrap();
    server.app.load_demo_if_empty().await.unwrap();
    for (client, agent) in [
        ("198.51.100.7", INOREADER),
        ("203.0.113.40", NEWSBOAT),
        ("203.0.113.41", NEWSBOAT),
    ] {
        assert_eq!(
            poll(&server, "/feeds/region/320281.rss", client, agent).await,
            200
        );
    }
    flush(&server).await;
    // Without the token, a browser is asked for it.
    let refused = server.get("/admin/stats").await;
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    // Broken or wrong credentials are refused the same way, never taken for the token.
    for authorization in [
        "Basic !!!not-base64!!!".to_owned(),
        "Basic ".to_owned(),
        format!("Basic {}", base64_of(&format!("editor{TOKEN}"))), // no colon
        format!("Basic {}", base64_of("editor:wrong-token")),
        format!("Basic {}", base64_of(&format!("{TOKEN}:"))), // the token as the user name
        format!("Bearer {TOKEN}"),
    ] {
        let refused = server
            .client
            .get(format!("{}/admin/stats", server.base))
            .header("authorization", &authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{authorization}");
    }
    let page = server
        .client
        .get(format!("{}/admin/stats", server.base))
        .basic_auth("editor", Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "private, no-store");
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script"), "no script");

    // Chromium opens it with the credentials in the URL and shows the numbers.
    let url = format!(
        "{}/admin/stats",
        server
            .base
            .replace("http://", &format!("http://editor:{TOKEN}@"))
    );
    let dom = chromium_dom(url).await;
    let row_start = dom
        .find("<tr data-feed=\"region/320281\"")
        .unwrap_or_else(|| panic!("the county's row: {dom}"));
    let row = &dom[row_start..row_start + dom[row_start..].find("</tr>").unwrap()];
    for (field, value) in [("total", 14), ("direct", 2), ("push", 0), ("polls", 3)] {
        assert!(
            row.contains(&format!("data-field=\"{field}\" data-value=\"{value}\"")),
            "{field} = {value} in {row}"
        );
    }
    assert!(row.contains("Inoreader 12"), "{row}");
    assert!(dom.contains("<svg"), "a chart");
    assert!(
        dom.contains("data-feed=\"region/320281\" data-max=\"14\""),
        "the county's chart peaks at its 14 subscribers"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_day_keeps_its_count_and_forgets_its_pairs_and_salt() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = TestDb::new(backend).await else {
            continue;
        };
        let settings = common::settings();
        let store = Store::open(&db.url, &settings.catalog).await.unwrap();
        let now = chrono::Utc::now();
        let three_days_ago = (now.with_timezone(&chrono_tz::Asia::Shanghai)
            - chrono::TimeDelta::days(3))
        .date_naive();
        let (day, next) = (
            three_days_ago.to_string(),
            three_days_ago.succ_opt().unwrap().to_string(),
        );
        let day = day.as_str();
        let salt = store.stats_salt(day, "aa").await.unwrap();
        assert_eq!(store.stats_salt(day, "bb").await.unwrap(), salt, "set once");
        let tally = |pairs: &[&str]| FeedTally {
            feed: "category/parks".to_owned(),
            polls: pairs.len() as u64,
            pairs: pairs.iter().map(|p| (*p).to_owned()).collect(),
            ..FeedTally::default()
        };
        store
            .stats_flush(day, "r1", &[tally(&["p1", "p2"])], &[], now)
            .await
            .unwrap();
        // Another replica saw one of the same clients, and one more.
        store
            .stats_flush(day, "r2", &[tally(&["p2", "p3"])], &[], now)
            .await
            .unwrap();
        assert_eq!(
            store.stats_open_days(&next).await.unwrap(),
            [day.to_owned()]
        );
        store
            .stats_close_day(day, |closed: ClosedDay| closed.pairs)
            .await
            .unwrap();
        // Closing again (another replica, a retry) adds nothing.
        store
            .stats_close_day(day, |closed: ClosedDay| closed.pairs)
            .await
            .unwrap();
        assert!(
            store
                .stats_open_days("2026-01-16")
                .await
                .unwrap()
                .is_empty()
        );
        let days = store.stats_days(day).await.unwrap();
        assert_eq!(days.len(), 1);
        assert_eq!(
            (days[0].direct, days[0].pairs, days[0].polls),
            (3, 0, 4),
            "counted as direct clients, no pair left"
        );
        // The report counts them once.
        let report = feedcast::stats::report(&settings, &store, now)
            .await
            .unwrap();
        let parks = report
            .feeds
            .iter()
            .find(|f| f.feed == "category/parks")
            .unwrap();
        let shown = parks.days.iter().find(|d| d.day == three_days_ago).unwrap();
        assert_eq!((shown.direct, shown.polls), (3, 4));
        // A new salt for the day, not the old one: the old hashes cannot be matched again.
        assert_ne!(store.stats_salt(day, "cc").await.unwrap(), salt);
        store.stats_prune(&next).await.unwrap();
        assert!(store.stats_days(day).await.unwrap().is_empty(), "pruned");
        store.close().await;
        drop(db);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_a_feeds_pairs_stop_being_stored() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let settings = common::settings();
    let store = Store::open(&db.url, &settings.catalog).await.unwrap();
    let day = "2026-02-01";
    let pairs: Vec<String> = (0..MAX_STORED_PAIRS + 10)
        .map(|i| format!("{i:032x}"))
        .collect();
    let tally = FeedTally {
        feed: "category/parks".to_owned(),
        polls: 1,
        pairs,
        ..FeedTally::default()
    };
    let flushed = store
        .stats_flush(
            day,
            "r1",
            std::slice::from_ref(&tally),
            &[],
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        flushed.full,
        ["category/parks"],
        "the replica is told to send its sketch"
    );
    let more = FeedTally {
        pairs: vec!["ffff".to_owned()],
        sketch: Some("c2tldGNo".to_owned()),
        ..tally
    };
    store
        .stats_flush(day, "r1", &[more], &[], chrono::Utc::now())
        .await
        .unwrap();
    let days = store.stats_days(day).await.unwrap();
    assert_eq!(
        days[0].pairs as u64,
        MAX_STORED_PAIRS + 10,
        "no pair stored past the cap"
    );
    assert_eq!(store.stats_sketches(day).await.unwrap().len(), 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_tallied_while_the_store_is_down_are_written_once_it_is_back() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let (proxy, proxied) = common::Proxy::in_front_of(&db).await;
    let server = Server::start_at(&proxied, behind_proxy(), Some(TOKEN)).await;
    server.app.load_demo_if_empty().await.unwrap();
    let path = "/feeds/category/parks.json";
    // Flushes until one is taken: the pool reconnects at its own pace once the store is back.
    let flushed = || async {
        tokio::time::timeout(std::time::Duration::from_secs(30), async {
            loop {
                let (status, _) = call(&server, "POST", "/api/stats/flush", Some(TOKEN), "").await;
                if status == 200 {
                    break;
                }
            }
        })
        .await
        .expect("a flush taken once the store is back");
    };

    // The store fails before the day's salt was read: the pairs wait, unhashed.
    assert_eq!(poll(&server, path, "203.0.113.50", NEWSBOAT).await, 200);
    proxy.break_();
    assert_eq!(
        poll(&server, path, "203.0.113.51", NEWSBOAT).await,
        200,
        "served from the cache"
    );
    let (status, _) = call(&server, "POST", "/api/stats/flush", Some(TOKEN), "").await;
    assert_eq!(status, 500, "the flush fails while the store is down");
    proxy.restore();
    flushed().await;
    let r = report(&server).await;
    assert_eq!(feed(&r, "category/parks")["subscribers"]["direct"], 2);
    assert_eq!(today(&r, "category/parks")["polls"], 2);

    // The store fails after the salt was read: the hashed batch waits, and is written once.
    assert_eq!(poll(&server, path, "203.0.113.52", NEWSBOAT).await, 200);
    proxy.break_();
    let (status, _) = call(&server, "POST", "/api/stats/flush", Some(TOKEN), "").await;
    assert_eq!(status, 500);
    proxy.restore();
    flushed().await;
    flush(&server).await;
    let r = report(&server).await;
    assert_eq!(feed(&r, "category/parks")["subscribers"]["direct"], 3);
    assert_eq!(
        today(&r, "category/parks")["polls"],
        3,
        "written once, not twice"
    );
    server.stop().await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_of_more_clients_than_are_stored_is_estimated() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("feeds.toml");
    std::fs::write(&config, include_str!("fixtures/feeds.toml")).unwrap();
    let database = format!("sqlite://{}", dir.path().join("feedcast.db").display());
    let when = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%d/%b/%Y:%H:%M:%S %z")
        .to_string();
    // 150,000 distinct clients: half again the pairs a day stores.
    let clients = 150_000u32;
    let mut log = String::with_capacity(clients as usize * 120);
    for i in 0..clients {
        let address =
            std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0)) + i / 2);
        log.push_str(&format!(
            "{address} - - [{when}] \"GET /feeds/category/parks.rss HTTP/1.1\" 200 100 \"-\" \"reader/{}\"\n",
            i % 2
        ));
    }
    let file = dir.path().join("access.log");
    std::fs::write(&file, log).unwrap();
    let out = feedcast(
        &config,
        &database,
        &["stats", "import-log", file.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = feedcast(&config, &database, &["stats", "--json"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let direct = feed(&r, "category/parks")["subscribers"]["direct"]
        .as_u64()
        .unwrap();
    let error = (direct as f64 - f64::from(clients)).abs() / f64::from(clients);
    assert!(
        error < 0.05,
        "{direct} direct clients estimated for {clients}"
    );
    assert_eq!(today(&r, "category/parks")["polls"], u64::from(clients));
}
