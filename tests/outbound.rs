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
