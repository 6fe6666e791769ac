//! feedcast as its own WebSub hub, over real HTTP, with a subscriber the test runs: subscribe,
//! verification with a challenge, signed deliveries of the document as it is when delivered
//! (so a takedown, and a retry after one, never carry the item), unsubscribe, leases that
//! lapse, subscribers that fail, never answer well or are gone, and callbacks on private
//! addresses refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, Server, TOKEN, admin_server, call, settings_with};
use feedcast::config::Settings;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::mpsc;

/// What the subscriber saw.
#[derive(Debug)]
enum Seen {
    /// A GET to a callback: a verification or a denial.
    Get { query: HashMap<String, String> },
    /// A POST to a callback: a delivery.
    Post {
        path: String,
        headers: axum::http::HeaderMap,
        body: String,
    },
}

/// A subscriber server: echoes challenges, takes deliveries, and answers each callback path's
/// deliveries with the statuses the test queued for it (then 200).
struct Subscriber {
    base: String,
    seen: mpsc::UnboundedReceiver<Seen>,
    answers: Arc<Mutex<HashMap<String, VecDeque<u16>>>>,
}

impl Subscriber {
    async fn start() -> Subscriber {
        Subscriber::start_on("127.0.0.1").await
    }

    /// A subscriber on another loopback address: another host, for the bounds per host.
    async fn start_on(ip: &str) -> Subscriber {
        let (tx, seen) = mpsc::unbounded_channel();
        let answers: Arc<Mutex<HashMap<String, VecDeque<u16>>>> = Arc::default();
        let (get_tx, post_answers) = (tx.clone(), answers.clone());
        let app = axum::Router::new().route(
            "/{*path}",
            axum::routing::get(move |uri: axum::http::Uri| {
                let query: HashMap<String, String> =
                    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                        .into_owned()
                        .collect();
                let challenge = query.get("hub.challenge").cloned().unwrap_or_default();
                get_tx.send(Seen::Get { query }).unwrap();
                async move { challenge }
            })
            .post(
                move |axum::extract::Path(path): axum::extract::Path<String>,
                      headers: axum::http::HeaderMap,
                      body: String| {
                    let status = post_answers
                        .lock()
                        .unwrap()
                        .get_mut(&path)
                        .and_then(VecDeque::pop_front)
                        .unwrap_or(200);
                    // 0: never answer, so the delivery stays in flight.
                    let hold = status == 0;
                    tx.send(Seen::Post {
                        path,
                        headers,
                        body,
                    })
                    .unwrap();
                    async move {
                        if hold {
                            std::future::pending::<()>().await;
                        }
                        axum::http::StatusCode::from_u16(status).unwrap()
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Subscriber {
            base,
            seen,
            answers,
        }
    }

    fn callback(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// The next thing seen, within 30 s (a bound for a hub that never calls, not a timing).
    async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(30), self.seen.recv())
            .await
            .expect("the hub calls the subscriber")
            .unwrap()
    }

    /// The next delivery, within 30 s: its callback path, headers and body.
    async fn delivery(&mut self) -> (String, axum::http::HeaderMap, String) {
        loop {
            if let Seen::Post {
                path,
                headers,
                body,
            } = self.next().await
            {
                return (path, headers, body);
            }
        }
    }

    fn answer(&self, path: &str, statuses: &[u16]) {
        self.answers
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default()
            .extend(statuses);
    }
}

const TOPIC: &str = "http://127.0.0.1:8080/feeds/region/320000.atom";

/// The tests' configuration with the hub allowed to call the test's own subscriber on
/// 127.0.0.1, retrying fast, with these texts replaced too.
fn hub_settings(hub: &str) -> Settings {
    settings_with(&[("[outbound]\n", &format!("[hub]\n{hub}\n\n[outbound]\n"))])
}

const FAST: &str = "allow_private_callbacks = true\nfirst_retry_ms = 200\nmax_retry_ms = 400\n\
                    attempts = 3\nmin_lease_seconds = 1";

async fn post_websub(server: &Server, form: &[(&str, &str)]) -> (u16, String) {
    let r = server
        .client
        .post(format!("{}/websub", server.base))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn subscribe(
    server: &Server,
    subscriber: &mut Subscriber,
    path: &str,
    extra: &[(&str, &str)],
) {
    subscribe_to(server, subscriber, TOPIC, path, extra).await;
}

/// Subscribes `path`'s callback to `topic`, and waits until it is verified and active.
async fn subscribe_to(
    server: &Server,
    subscriber: &mut Subscriber,
    topic: &str,
    path: &str,
    extra: &[(&str, &str)],
) {
    let callback = subscriber.callback(path);
    let mut form = vec![
        ("hub.mode", "subscribe"),
        ("hub.topic", topic),
        ("hub.callback", callback.as_str()),
    ];
    form.extend_from_slice(extra);
    let (status, body) = post_websub(server, &form).await;
    assert_eq!(status, 202, "{body}");
    match subscriber.next().await {
        Seen::Get { query, .. } => assert_eq!(query["hub.mode"], "subscribe"),
        other => panic!("expected a verification, got {other:?}"),
    }
    active(server, &callback, true).await;
}

/// Waits until the outbound queue is idle: what the server's start queued (every feed changed:
/// a fresh store's first filing) is done, so that it cannot reach a subscription made after.
async fn idle(server: &Server) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.app.store.queued().await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbound queue drains"
        );
        // The store has no signal for this: look again shortly.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the subscription of `callback` is active (or gone), as the store holds it.
async fn active(server: &Server, callback: &str, wanted: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let subs = server.app.store.active_subscriptions().await.unwrap();
        if subs.iter().any(|s| s.callback == callback) == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscription of {callback} active: {wanted}"
        );
        // The store has no signal for this: look again shortly.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn article(id: &str) -> String {
    json!({
        "id": id, "title": format!("推送稿件{id}"), "content_html": "<p>正文。</p>",
        "url": format!("https://www.kechuang.example.cn/news/{id}.html"),
        "published_at": "2024-05-18T09:30:00+08:00", "categories": ["hydrogen"],
        "region": "320281"
    })
    .to_string()
}

async fn put(server: &Server, id: &str) {
    let (status, answer) = call(
        server,
        "PUT",
        &format!("/api/articles/{id}"),
        Some(TOKEN),
        &article(id),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

async fn delete(server: &Server, id: &str) {
    let (status, answer) = call(
        server,
        "DELETE",
        &format!("/api/articles/{id}"),
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

fn signature(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_is_verified_and_gets_each_change_signed_takedowns_included() {
    let server = admin_server(Backend::Sqlite, hub_settings(FAST))
        .await
        .unwrap();
    let mut subscriber = Subscriber::start().await;
    idle(&server).await;
    let callback = subscriber.callback("cb");
    // Other query parameters are dropped from the topic, but it is echoed as sent.
    let sent_topic = format!("{TOPIC}?utm_source=x");
    let (status, body) = post_websub(
        &server,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", &sent_topic),
            ("hub.callback", &callback),
            ("hub.secret", "s3cret"),
            ("hub.lease_seconds", "7200"),
        ],
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let Seen::Get { query, .. } = subscriber.next().await else {
        panic!("a verification first");
    };
    assert_eq!(query["hub.mode"], "subscribe");
    assert_eq!(query["hub.topic"], sent_topic);
    assert_eq!(query["hub.lease_seconds"], "7200");
    assert!(query["hub.challenge"].len() >= 32);
    active(&server, &callback, true).await;

    // A write: the document, signed, with its hub and self links.
    put(&server, "h1").await;
    let (path, headers, body) = subscriber.delivery().await;
    assert_eq!(path, "cb");
    assert_eq!(
        headers["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    assert_eq!(
        headers["link"],
        format!("<http://127.0.0.1:8080/websub>; rel=\"hub\", <{sent_topic}>; rel=\"self\"")
    );
    assert_eq!(
        headers["x-hub-signature"],
        signature("s3cret", &body).as_str()
    );
    assert!(body.contains("news/h1.html"), "{body}");

    // A takedown is delivered the same way, and carries no trace of the item's text.
    delete(&server, "h1").await;
    let (_, headers, body) = subscriber.delivery().await;
    assert_eq!(
        headers["x-hub-signature"],
        signature("s3cret", &body).as_str()
    );
    assert!(!body.contains("news/h1.html"), "{body}");
    assert!(!body.contains("推送稿件h1"), "{body}");

    // A delivery that fails is retried with the document as it is then: an item taken down
    // meanwhile is not in it.
    subscriber.answer("cb", &[500]);
    put(&server, "h2").await;
    let (_, _, failed) = subscriber.delivery().await;
    assert!(failed.contains("news/h2.html"));
    delete(&server, "h2").await;
    let (_, _, retried) = subscriber.delivery().await;
    assert!(!retried.contains("news/h2.html"), "{retried}");

    // Unsubscribed (and verified), it gets nothing more; another subscriber still does.
    subscribe(&server, &mut subscriber, "other", &[]).await;
    let (status, _) = post_websub(
        &server,
        &[
            ("hub.mode", "unsubscribe"),
            ("hub.topic", TOPIC),
            ("hub.callback", &callback),
        ],
    )
    .await;
    assert_eq!(status, 202);
    let Seen::Get { query, .. } = subscriber.next().await else {
        panic!("an unsubscribe is verified");
    };
    assert_eq!(query["hub.mode"], "unsubscribe");
    active(&server, &callback, false).await;
    put(&server, "h3").await;
    let (path, _, body) = subscriber.delivery().await;
    assert_eq!(path, "other");
    assert!(body.contains("news/h3.html"));
    // No signal marks the absence of a delivery: give one a moment to come, and see none did.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        subscriber.seen.try_recv().is_err(),
        "nothing for the unsubscribed callback"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_subscribers_are_retried_given_up_or_dropped_when_gone() {
    let server = admin_server(Backend::Sqlite, hub_settings(FAST))
        .await
        .unwrap();
    let mut subscriber = Subscriber::start().await;
    idle(&server).await;
    subscribe(&server, &mut subscriber, "flaky", &[]).await;
    subscribe(&server, &mut subscriber, "broken", &[]).await;
    subscribe(&server, &mut subscriber, "gone", &[]).await;
    subscriber.answer("flaky", &[503, 500]);
    subscriber.answer("broken", &[500, 500, 500, 500]);
    subscriber.answer("gone", &[410]);
    put(&server, "f1").await;
    let mut tries: HashMap<String, usize> = HashMap::new();
    // flaky: two failures, then delivered; broken: three attempts, then given up; gone: once.
    while tries.get("flaky") != Some(&3)
        || tries.get("broken") != Some(&3)
        || tries.get("gone") != Some(&1)
    {
        let (path, _, body) = subscriber.delivery().await;
        assert!(body.contains("news/f1.html"));
        *tries.entry(path).or_default() += 1;
        assert!(tries.values().all(|&n| n <= 3), "{tries:?}");
    }
    active(&server, &subscriber.callback("gone"), false).await;
    active(&server, &subscriber.callback("flaky"), true).await;
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("feedcast_outbound_requests_total")
                && l.contains("kind=\"hub-deliver\"")
                && l.contains("outcome=\"given_up\"")),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lapses() {
    let server = admin_server(Backend::Sqlite, hub_settings(FAST))
        .await
        .unwrap();
    let mut subscriber = Subscriber::start().await;
    idle(&server).await;
    subscribe(
        &server,
        &mut subscriber,
        "brief",
        &[("hub.lease_seconds", "1")],
    )
    .await;
    subscribe(&server, &mut subscriber, "long", &[]).await;
    active(&server, &subscriber.callback("brief"), false).await;
    put(&server, "l1").await;
    let (path, _, body) = subscriber.delivery().await;
    assert_eq!(path, "long", "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        subscriber.seen.try_recv().is_err(),
        "nothing after the lease lapsed"
    );

    // The operator's view: one active subscription; the lapsed one purged.
    let database = server.db.as_ref().unwrap().url.to_string();
    let hub = |action: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_feedcast"))
            .args([
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/feeds.toml"),
            ])
            .args(["--database", &database, "hub", action])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = hub("list");
    assert!(
        listed.starts_with(&format!("{TOPIC}\t127.0.0.1\t")),
        "{listed}"
    );
    assert!(listed.ends_with("\n1 active subscriptions\n"), "{listed}");
    assert_eq!(
        hub("purge-expired"),
        "removed 1 lapsed subscriptions and unverified requests\n"
    );
    assert!(hub("list").ends_with("1 active subscriptions\n"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_the_reason_and_unknown_topics_denied() {
    let server = Server::start_with(Backend::Sqlite, hub_settings(FAST))
        .await
        .unwrap();
    let mut subscriber = Subscriber::start().await;
    idle(&server).await;
    let callback = subscriber.callback("cb");
    let long = format!("{TOPIC}?{}", "x".repeat(2100));
    let secret = "s".repeat(200);
    for (form, reason) in [
        (
            vec![("hub.topic", TOPIC), ("hub.callback", callback.as_str())],
            "hub.mode is missing",
        ),
        (
            vec![("hub.mode", "publish"), ("hub.topic", TOPIC)],
            "publish",
        ),
        (
            vec![
                ("hub.mode", "subscribe"),
                ("hub.callback", callback.as_str()),
            ],
            "hub.topic is missing",
        ),
        (
            vec![
                ("hub.mode", "subscribe"),
                ("hub.topic", TOPIC),
                ("hub.callback", "ftp://x/"),
            ],
            "http or https",
        ),
        (
            vec![
                ("hub.mode", "subscribe"),
                ("hub.topic", long.as_str()),
                ("hub.callback", callback.as_str()),
            ],
            "longer than 2048",
        ),
        (
            vec![
                ("hub.mode", "subscribe"),
                ("hub.topic", TOPIC),
                ("hub.callback", callback.as_str()),
                ("hub.secret", secret.as_str()),
            ],
            "shorter than 200",
        ),
        (
            vec![
                ("hub.mode", "subscribe"),
                ("hub.topic", TOPIC),
                ("hub.callback", callback.as_str()),
                ("hub.lease_seconds", "soon"),
            ],
            "whole number",
        ),
    ] {
        let (status, body) = post_websub(&server, &form).await;
        assert_eq!(status, 400, "{form:?}: {body}");
        assert!(body.contains(reason), "{form:?}: {body}");
    }
    // Nothing that could end the Link header of a delivery, nor hub.* parameters of its own.
    let newline = format!("{TOPIC}\n");
    let preset = format!("{callback}?hub.challenge=mine");
    for (form, reason) in [
        (
            vec![
                ("hub.mode", "subscribe"),
                ("hub.topic", newline.as_str()),
                ("hub.callback", callback.as_str()),
            ],
            "control characters",
        ),
        (
            vec![
                ("hub.mode", "subscribe"),
                ("hub.topic", TOPIC),
                ("hub.callback", preset.as_str()),
            ],
            "hub.* parameters",
        ),
    ] {
        let (status, body) = post_websub(&server, &form).await;
        assert_eq!(status, 400, "{form:?}: {body}");
        assert!(body.contains(reason), "{form:?}: {body}");
    }
    let huge = "a".repeat(9000);
    let (status, _) = post_websub(&server, &[("hub.mode", huge.as_str())]).await;
    assert_eq!(status, 413);

    // A topic this hub does not serve (an archive): accepted, then denied at the callback.
    let archive = "http://127.0.0.1:8080/feeds/region/320000/archive/2024-05.atom";
    let (status, _) = post_websub(
        &server,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", archive),
            ("hub.callback", &callback),
        ],
    )
    .await;
    assert_eq!(status, 202);
    let Seen::Get { query, .. } = subscriber.next().await else {
        panic!("a denial");
    };
    assert_eq!(query["hub.mode"], "denied");
    assert_eq!(query["hub.topic"], archive);
    assert!(!query["hub.reason"].is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_on_private_addresses_are_refused_without_the_switch() {
    let server = Server::start_with(Backend::Sqlite, hub_settings("first_retry_ms = 200"))
        .await
        .unwrap();
    let mut subscriber = Subscriber::start().await;
    idle(&server).await;
    // Written as an address: refused at once.
    let (status, body) = post_websub(
        &server,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", TOPIC),
            ("hub.callback", &subscriber.callback("cb")),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("not a public address"), "{body}");
    for mapped in [
        "http://[::ffff:127.0.0.1]/cb",
        "http://[::1]/cb",
        "http://169.254.169.254/latest",
    ] {
        let (status, _) = post_websub(
            &server,
            &[
                ("hub.mode", "subscribe"),
                ("hub.topic", TOPIC),
                ("hub.callback", mapped),
            ],
        )
        .await;
        assert_eq!(status, 400, "{mapped}");
    }
    // A name that resolves to loopback: taken, but the verification never connects to it.
    let port = subscriber.base.rsplit(':').next().unwrap().to_owned();
    let by_name = format!("http://localhost:{port}/cb");
    let (status, _) = post_websub(
        &server,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", TOPIC),
            ("hub.callback", &by_name),
        ],
    )
    .await;
    assert_eq!(status, 202);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = server.get("/metrics").await.text().await.unwrap();
        let refused = metrics.lines().any(|l| {
            l.starts_with("feedcast_hub_verifications_total") && l.contains("outcome=\"refused\"")
        });
        if refused {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the verification is refused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        subscriber.seen.try_recv().is_err(),
        "the subscriber was never called"
    );
    assert!(
        server
            .app
            .store
            .active_subscriptions()
            .await
            .unwrap()
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_deliver_each_change_once() {
    let Some(a) = admin_server(Backend::Postgres, hub_settings(FAST)).await else {
        return;
    };
    let url = a.db.as_ref().unwrap().url.clone();
    let b = Server::start_at(&url, hub_settings(FAST), None).await;
    let mut subscriber = Subscriber::start().await;
    idle(&a).await;
    // Subscribed through B, written through A: one hub.
    subscribe(&b, &mut subscriber, "cb", &[("hub.secret", "k")]).await;
    for id in ["p1", "p2", "p3"] {
        put(&a, id).await;
        let (_, headers, body) = subscriber.delivery().await;
        assert_eq!(headers["x-hub-signature"], signature("k", &body).as_str());
        // Each change once (a delivery carries the newest document; it may hold several).
        assert!(body.contains(&format!("news/{id}.html")), "{body}");
        idle(&a).await;
        assert!(subscriber.seen.try_recv().is_err(), "{id} delivered twice");
    }
    // The CMS takes one down in SQL: pushed too.
    let feedcast::store::DatabaseUrl::Postgres(direct) = &url else {
        unreachable!()
    };
    let cms = sqlx::PgPool::connect(direct).await.unwrap();
    sqlx::query("DELETE FROM articles WHERE id = 'p2'")
        .execute(&cms)
        .await
        .unwrap();
    cms.close().await;
    let (_, _, body) = subscriber.delivery().await;
    assert!(
        !body.contains("news/p2.html") && body.contains("news/p3.html"),
        "{body}"
    );
    idle(&a).await;
    assert!(
        subscriber.seen.try_recv().is_err(),
        "the takedown delivered twice"
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_delivery_has_it_finished_by_another() {
    let Some(db) = common::TestDb::new(Backend::Postgres).await else {
        return;
    };
    let text = include_str!("fixtures/feeds.toml")
        .replace("[outbound]\n", &format!("[hub]\n{FAST}\n\n[outbound]\n"))
        .replace("lease_ms = 60000", "lease_ms = 2000");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("feeds.toml");
    std::fs::write(&config, &text).unwrap();
    let (mut a, a_base) = common::spawn_replica(&config, &db.url);
    let client = reqwest::Client::new();
    let mut subscriber = Subscriber::start().await;
    // B watches the same store (it could have taken any of this work; here it idles).
    let settings = Settings::parse(&text, &config).unwrap();
    let b = Server::start_at(&db.url, settings, None).await;
    idle(&b).await;
    let callback = subscriber.callback("cb");
    let r = client
        .post(format!("{a_base}/websub"))
        .form(&[
            ("hub.mode", "subscribe"),
            ("hub.topic", TOPIC),
            ("hub.callback", &callback),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(matches!(subscriber.next().await, Seen::Get { .. }));
    active(&b, &callback, true).await;

    // The first delivery is held in flight; A dies holding its claim.
    subscriber.answer("cb", &[0]);
    let r = client
        .put(format!("{a_base}/api/articles/k1"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(article("k1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, _, held) = subscriber.delivery().await;
    assert!(held.contains("news/k1.html"));
    a.kill().unwrap();
    a.wait().unwrap();

    // Once the claim's lease has run out, B makes the delivery.
    let (_, _, finished) = subscriber.delivery().await;
    assert!(finished.contains("news/k1.html"));
    idle(&b).await;
    b.stop().await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_never_answer_hold_up_only_each_other() {
    // Two deliveries at once: one of them in the lane of hosts that could not be reached.
    let settings = hub_settings(&format!("{FAST}\nmax_in_flight = 2\nmax_per_host = 1"));
    let server = admin_server(Backend::Sqlite, settings).await.unwrap();
    idle(&server).await;
    let mut dead = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3"] {
        let mut host = Subscriber::start_on(ip).await;
        subscribe(&server, &mut host, "cb", &[]).await;
        // Every delivery is taken in and never answered (10 s later, it times out).
        host.answer("cb", &[0; 8]);
        dead.push(host);
    }
    let mut alive = Subscriber::start().await;
    subscribe(&server, &mut alive, "cb", &[]).await;

    // The first write: nobody is known to be slow yet; the two dead hosts time out.
    put(&server, "s1").await;
    let (_, _, body) = alive.delivery().await;
    assert!(body.contains("news/s1.html"));
    for host in &mut dead {
        host.delivery().await;
    }
    // Now they count as slow: one of them at a time is tried, the live subscriber is served
    // meanwhile, while that one still hangs.
    put(&server, "s2").await;
    let (_, _, body) = alive.delivery().await;
    assert!(body.contains("news/s2.html"));
    let tried: usize = dead
        .iter_mut()
        .map(|h| usize::from(h.seen.try_recv().is_ok()))
        .sum();
    assert!(
        tried <= 1,
        "the slow lane holds one delivery at a time, not {tried}"
    );
    server.stop().await;
}

/// A change is fanned out a page of subscribers at a time (so that no page holds SQLite's one
/// writer long): every subscriber gets it once, however many pages they fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_every_subscriber_across_pages_once() {
    const SUBSCRIBERS: usize = 1_234;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let limits = format!(
            "{FAST}\nmax_subscriptions_per_host = {n}\nmax_pending = {n}\nmax_pending_per_host = {n}",
            n = SUBSCRIBERS + 1
        );
        let Some(server) = admin_server(backend, hub_settings(&limits)).await else {
            continue;
        };
        idle(&server).await;
        let mut subscriber = Subscriber::start().await;
        for n in 0..SUBSCRIBERS {
            let callback = subscriber.callback(&n.to_string());
            let form = [
                ("hub.mode", "subscribe"),
                ("hub.topic", TOPIC),
                ("hub.callback", callback.as_str()),
            ];
            let (status, body) = post_websub(&server, &form).await;
            assert_eq!(status, 202, "{body}");
        }
        let mut verified = 0;
        while verified < SUBSCRIBERS {
            if let Seen::Get { .. } = subscriber.next().await {
                verified += 1;
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while server.app.store.active_subscriptions().await.unwrap().len() < SUBSCRIBERS {
            assert!(
                tokio::time::Instant::now() < deadline,
                "subscriptions active"
            );
            // The store has no signal for this: look again shortly.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        put(&server, "many").await;
        let mut reached = std::collections::HashSet::new();
        for _ in 0..SUBSCRIBERS {
            let (path, _, body) = subscriber.delivery().await;
            assert!(body.contains("news/many.html"));
            assert!(reached.insert(path.clone()), "{path} got the change twice");
        }
        idle(&server).await;
        assert!(
            subscriber.seen.try_recv().is_err(),
            "nothing more than one delivery each"
        );
        server.stop().await;
    }
}

/// Region 320281 as it was called before its rename, and as it is called now.
const OLD_TOPIC: &str = "http://127.0.0.1:8080/feeds/region/320299.atom";
const NEW_TOPIC: &str = "http://127.0.0.1:8080/feeds/region/320281.atom";
/// A feed removed for good (in the configuration after the renames).
const GONE_TOPIC: &str = "http://127.0.0.1:8080/feeds/category/events.rss";

/// The hub's configuration before the renames: region 320281 is called 320299, and there is a
/// category `events`.
fn before_renames() -> Settings {
    settings_with(&[
        ("[outbound]\n", &format!("[hub]\n{FAST}\n\n[outbound]\n")),
        ("code = \"320281\"", "code = \"320299\""),
        (
            "# Custom feeds:",
            "[[categories]]\nslug = \"events\"\nname = \"活动\"\n\n# Custom feeds:",
        ),
    ])
}

/// After them: 320299 is a former name of 320281, and `category/events` is gone for good.
fn renamed() -> Settings {
    settings_with(&[
        ("[outbound]\n", &format!("[hub]\n{FAST}\n\n[outbound]\n")),
        (
            "code = \"320281\"\nname = \"江阴市\"",
            "code = \"320281\"\nname = \"江阴市\"\nformerly = [\"320299\"]",
        ),
        (
            "# Custom feeds:",
            "[[gone]]\npath = \"category/events\"\n\n# Custom feeds:",
        ),
    ])
}

/// Regression: a subscription request for a renamed feed's old topic was denied as "not a
/// feed this hub serves", although the old URL answers 301 to the feed. It is one to the current
/// feed: verified and delivered with the topic as sent, and the same subscription as one to the
/// new topic. A request for a feed removed for good is denied, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_to_a_former_name_is_one_to_the_current_feed() {
    let server = admin_server(Backend::Sqlite, renamed()).await.unwrap();
    let mut subscriber = Subscriber::start().await;
    idle(&server).await;
    let callback = subscriber.callback("old");
    let (status, body) = post_websub(
        &server,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", OLD_TOPIC),
            ("hub.callback", &callback),
        ],
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let Seen::Get { query } = subscriber.next().await else {
        panic!("a verification first");
    };
    assert_eq!(query["hub.mode"], "subscribe");
    assert_eq!(query["hub.topic"], OLD_TOPIC, "the topic as sent");
    active(&server, &callback, true).await;
    let subs = server.app.store.active_subscriptions().await.unwrap();
    let sub = subs.iter().find(|s| s.callback == callback).unwrap();
    assert_eq!(
        (
            sub.feed.as_str(),
            sub.topic.as_str(),
            sub.topic_as_sent.as_str()
        ),
        ("region/320281.atom", NEW_TOPIC, OLD_TOPIC)
    );

    // A change to the feed reaches it: the Link header echoes what it asked for, the document
    // names its URL now.
    put(&server, "m1").await;
    let (path, headers, body) = subscriber.delivery().await;
    assert_eq!(path, "old");
    assert_eq!(
        headers["link"],
        format!("<http://127.0.0.1:8080/websub>; rel=\"hub\", <{OLD_TOPIC}>; rel=\"self\"")
    );
    assert!(body.contains("news/m1.html"), "{body}");
    assert!(body.contains(NEW_TOPIC), "{body}");

    // One subscription, whichever name it is asked by: unsubscribing by the new one ends it.
    let (status, _) = post_websub(
        &server,
        &[
            ("hub.mode", "unsubscribe"),
            ("hub.topic", NEW_TOPIC),
            ("hub.callback", &callback),
        ],
    )
    .await;
    assert_eq!(status, 202);
    let Seen::Get { query } = subscriber.next().await else {
        panic!("an unsubscribe is verified");
    };
    assert_eq!(query["hub.mode"], "unsubscribe");
    active(&server, &callback, false).await;

    // A feed removed for good: denied at the callback, saying why.
    let gone = subscriber.callback("gone");
    let (status, _) = post_websub(
        &server,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", GONE_TOPIC),
            ("hub.callback", &gone),
        ],
    )
    .await;
    assert_eq!(status, 202);
    let Seen::Get { query } = subscriber.next().await else {
        panic!("a denial");
    };
    assert_eq!(query["hub.mode"], "denied");
    assert_eq!(query["hub.topic"], GONE_TOPIC);
    assert!(
        query["hub.reason"].contains("removed for good"),
        "{query:?}"
    );
    server.stop().await;
}

/// Regression: subscriptions stored under a feed's old name were never delivered to after the
/// rename (fan-out goes by the current names) and, at delivery, were given up as "no longer a
/// topic"; those of a feed removed for good were never told. At start they are moved to the
/// current name, and those of a removed feed ended with a `hub.mode=denied` to their callback.
async fn subscriptions_under_former_names_are_refiled_at_start(backend: Backend) {
    let Some(db) = common::TestDb::new(backend).await else {
        return;
    };
    let before = Server::start_at(&db.url, before_renames(), None).await;
    let mut subscriber = Subscriber::start().await;
    idle(&before).await;
    subscribe_to(
        &before,
        &mut subscriber,
        OLD_TOPIC,
        "old",
        &[("hub.secret", "k")],
    )
    .await;
    subscribe_to(&before, &mut subscriber, GONE_TOPIC, "events", &[]).await;
    before.stop().await;

    let server = Server::start_at(&db.url, renamed(), Some(TOKEN)).await;
    // The subscriber of the feed removed for good is told, with the topic it asked for.
    let Seen::Get { query } = subscriber.next().await else {
        panic!("a denial");
    };
    assert_eq!(query["hub.mode"], "denied");
    assert_eq!(query["hub.topic"], GONE_TOPIC);
    assert!(
        query["hub.reason"].contains("removed for good"),
        "{query:?}"
    );
    active(&server, &subscriber.callback("events"), false).await;
    let subs = server.app.store.active_subscriptions().await.unwrap();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(
        (
            subs[0].feed.as_str(),
            subs[0].topic.as_str(),
            subs[0].topic_as_sent.as_str()
        ),
        ("region/320281.atom", NEW_TOPIC, OLD_TOPIC)
    );

    // The region tree changed with the rename, which is a change of every feed: pushed to the
    // moved subscription already.
    idle(&server).await;
    while let Ok(seen) = subscriber.seen.try_recv() {
        assert!(
            matches!(&seen, Seen::Post { path, .. } if path == "old"),
            "{seen:?}"
        );
    }
    // A change to the feed reaches the moved subscription, signed with its secret.
    put(&server, "r1").await;
    let (path, headers, body) = subscriber.delivery().await;
    assert_eq!(path, "old");
    assert_eq!(headers["x-hub-signature"], signature("k", &body).as_str());
    assert!(
        headers["link"]
            .to_str()
            .unwrap()
            .contains(&format!("<{OLD_TOPIC}>; rel=\"self\"")),
        "{headers:?}"
    );
    assert!(body.contains("news/r1.html"), "{body}");

    // Moved to the key the current topic has: subscribing again by the new name renews the same
    // subscription, and a change is delivered once.
    subscribe_to(&server, &mut subscriber, NEW_TOPIC, "old", &[]).await;
    let subs = server.app.store.active_subscriptions().await.unwrap();
    assert_eq!(subs.len(), 1, "{subs:?}");
    idle(&server).await;
    put(&server, "r2").await;
    let (path, _, body) = subscriber.delivery().await;
    assert_eq!(path, "old");
    assert!(body.contains("news/r2.html"), "{body}");
    idle(&server).await;
    assert!(
        subscriber.seen.try_recv().is_err(),
        "one delivery of the change"
    );
    server.stop().await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_refiled_at_start_on_sqlite() {
    subscriptions_under_former_names_are_refiled_at_start(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_refiled_at_start_on_postgres() {
    subscriptions_under_former_names_are_refiled_at_start(Backend::Postgres).await;
}
