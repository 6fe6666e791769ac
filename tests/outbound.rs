//! The outbound queue is durable: its requests are rows in the store, claimed with a lease that
//! is committed before the request is made, so a replica killed mid-request loses nothing:
//! another (or the same, restarted) sends the request once the lease has run out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, Server, TOKEN, TestDb};
use feedcast::config::Settings;
use tokio::sync::mpsc;

/// A stub WebSub hub (the remote party nobody can run here). While `holding`, it never answers:
/// the request stays in flight. Every topic it is sent is reported, with whether it was held.
struct Hub {
    url: String,
    holding: Arc<Mutex<bool>>,
    pings: mpsc::UnboundedReceiver<(String, bool)>,
}

async fn hub() -> Hub {
    let holding = Arc::new(Mutex::new(true));
    let (tx, pings) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hub",
        axum::routing::post({
            let holding = holding.clone();
            move |body: String| {
                let held = *holding.lock().unwrap();
                for (name, value) in url::form_urlencoded::parse(body.as_bytes()) {
                    if name == "hub.url" {
                        tx.send((value.into_owned(), held)).unwrap();
                    }
                }
                async move {
                    if held {
                        std::future::pending::<()>().await;
                    }
                    "ok"
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hub", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Hub {
        url,
        holding,
        pings,
    }
}

/// The tests' configuration pinging `hub`, with claims that hold for 2 s.
fn config(hub: &str) -> String {
    include_str!("fixtures/feeds.toml")
        .replace("hubs = []", &format!("hubs = [\"{hub}\"]"))
        .replace("lease_ms = 60000", "lease_ms = 2000")
}

async fn replica_killed_mid_request_loses_nothing(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let mut hub = hub().await;
    let text = config(&hub.url);
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("feeds.toml");
    std::fs::write(&config_path, &text).unwrap();

    // Replica A, a process of its own, takes a write; its pings reach the hub, which holds them.
    let (mut a, a_base) = common::spawn_replica(&config_path, &db.url);
    let article = serde_json::json!({
        "id": "k1", "title": "无锡稿件", "content_html": "<p>正文。</p>",
        "url": "https://www.kechuang.example.cn/news/k1.html",
        "published_at": "2024-05-18T09:30:00+08:00", "categories": ["hydrogen"], "region": "320281"
    });
    let written = reqwest::Client::new()
        .put(format!("{a_base}/api/articles/k1"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(article.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), 200);
    let (topic, held) = tokio::time::timeout(Duration::from_secs(10), hub.pings.recv())
        .await
        .expect("A pings the hub")
        .unwrap();
    assert!(held);
    let mut in_flight = BTreeSet::from([topic]);

    // Killed while its requests are in flight (claimed, not yet answered).
    a.kill().unwrap();
    a.wait().unwrap();
    while let Ok((topic, held)) = hub.pings.try_recv() {
        assert!(held);
        in_flight.insert(topic);
    }
    *hub.holding.lock().unwrap() = false;

    // Replica B, on the same store, sends them once A's claims have run out.
    let settings = Settings::parse(&text, &config_path).unwrap();
    let b = Server::start_at(&db.url, settings, None).await;
    let mut delivered = BTreeSet::new();
    while !in_flight.is_subset(&delivered) {
        let (topic, held) = tokio::time::timeout(Duration::from_secs(15), hub.pings.recv())
            .await
            .unwrap_or_else(|_| panic!("B resends {in_flight:?}; got {delivered:?}"))
            .unwrap();
        assert!(!held);
        delivered.insert(topic);
    }
    // What A held were the write's pings: topics of feedcast's own feeds.
    assert!(
        in_flight
            .iter()
            .all(|t| t.starts_with("http://127.0.0.1:8080/feeds/")),
        "{in_flight:?}"
    );
    b.stop().await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_request_on_sqlite_loses_nothing() {
    replica_killed_mid_request_loses_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_request_on_postgres_loses_nothing() {
    replica_killed_mid_request_loses_nothing(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_of_zero_is_refused_naming_its_line() {
    let text = config("http://127.0.0.1:9/hub").replace("lease_ms = 2000", "lease_ms = 0");
    let error = Settings::parse(&text, std::path::Path::new("feeds.toml"))
        .unwrap_err()
        .to_string();
    let line = text
        .lines()
        .position(|l| l.starts_with("lease_ms"))
        .unwrap()
        + 1;
    assert!(error.starts_with(&format!("feeds.toml:{line}:")), "{error}");
    assert!(error.contains("outbound.lease_ms"), "{error}");
}

/// Pages one poll of the queue reads: the first change-log entry nobody has handled, which
/// every replica asks for each second.
async fn buffers_of_the_poll(pool: &sqlx::PgPool) -> u64 {
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN (ANALYZE, BUFFERS) \
         SELECT seq FROM change_log WHERE NOT handled ORDER BY seq LIMIT 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    // The first "Buffers:" line is the top node's, which counts its children's too.
    let line = plan.iter().find(|l| l.contains("Buffers:")).unwrap();
    ["hit=", "read="]
        .iter()
        .filter_map(|kind| {
            let at = line.find(kind)? + kind.len();
            line[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Vacuums of the change log so far.
async fn vacuums_of_the_log(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT vacuum_count FROM pg_stat_user_tables \
         WHERE schemaname = current_schema() AND relname = 'change_log'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A burst of changes leaves dead row versions in the queue's tables, and every replica's
/// polls walk past them each second until a vacuum removes them (8-10 ms a poll after a
/// million-article import, beside every request). feedcast vacuums those tables itself, on
/// start and every minute, whether or not the database's autovacuum is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_does_not_slow_the_queue_polls_for_long() {
    let Some(server) = Server::start(Backend::Postgres).await else {
        return;
    };
    let db = server.stop().await.unwrap();
    let feedcast::store::DatabaseUrl::Postgres(url) = &db.url else {
        unreachable!("a PostgreSQL store")
    };
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    // 20,000 entries appended and gone in one transaction: nobody ever sees them, but each
    // leaves a dead version (and its index entry) behind.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO change_log (at) SELECT 0 FROM generate_series(1, 20000)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("DELETE FROM change_log WHERE at = 0")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let churned = buffers_of_the_poll(&pool).await;
    assert!(
        churned >= 50,
        "the churn should show: the poll read {churned} pages"
    );
    let vacuums = vacuums_of_the_log(&pool).await;

    let server = Server::start_on(db, common::settings()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while vacuums_of_the_log(&pool).await == vacuums {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change log was not vacuumed within 30 s of the start"
        );
        // PostgreSQL's statistics are the only signal of a vacuum; this paces the polling.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settled = buffers_of_the_poll(&pool).await;
    assert!(
        settled <= 10,
        "after the vacuum the poll should read a few pages, not {settled} (before: {churned})"
    );
    pool.close().await;
    server.stop().await;
}
