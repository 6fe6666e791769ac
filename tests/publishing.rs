//! The publishing path over real HTTP: the admin API, takedowns and edits that show at once
//! on every replica, stale stand-ins during a store outage, one build per stampede, and a cache
//! that stays within its byte budget.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Backend, Proxy, Server, TOKEN, TestDb, admin_server, call, settings, settings_with};
use feedcast::feed::{FeedId, FeedKey, Format};
use feedcast::store::DatabaseUrl;
use serde_json::{Value, json};

fn article(id: &str, title: &str, region: &str) -> Value {
    json!({
        "id": id, "title": title, "content_html": "<p>正文。</p>",
        "url": format!("https://www.kechuang.example.cn/news/{id}.html"),
        "published_at": "2024-05-18T09:30:00+08:00", "categories": ["hydrogen"], "region": region
    })
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_token() {
    let server = Server::start(Backend::Sqlite).await.unwrap();
    let (status, _) = call(
        &server,
        "PUT",
        "/api/articles/a1",
        Some("anything"),
        &article("a1", "标题", "320281").to_string(),
    )
    .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn the_admin_api_checks_token_size_and_every_field() {
    let settings = settings_with(&[("max_body_bytes = 16777216", "max_body_bytes = 4096")]);
    let server = admin_server(Backend::Sqlite, settings).await.unwrap();
    let good = article("a1", "江阴氢能产业园开工", "320281").to_string();

    for token in [
        None,
        Some("wrong"),
        Some(&TOKEN[..TOKEN.len() - 1]),
        Some(&format!("{TOKEN}-and-more")),
    ] {
        let (status, body) = call(&server, "PUT", "/api/articles/a1", token, &good).await;
        assert_eq!(status, 401, "{token:?}");
        assert!(body["error"].as_str().unwrap().contains("bearer token"));
    }
    let (status, body) = call(
        &server,
        "PUT",
        "/api/articles/a1",
        Some(TOKEN),
        &"x".repeat(5000),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("4096"));

    let bad = json!({
        "id": "a1", "title": "  ", "url": "/news/a1.html", "published_at": "明天",
        "categories": ["hydrogen", "nope"], "region": "999999"
    });
    let (status, body) = call(
        &server,
        "PUT",
        "/api/articles/a1",
        Some(TOKEN),
        &bad.to_string(),
    )
    .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["url", "title", "published_at", "categories", "region"],
        "{body}"
    );
    let (status, body) = call(
        &server,
        "PUT",
        "/api/articles/a1",
        Some(TOKEN),
        &good.replace("\"id\"", "\"colour\":1,\"id\""),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{body}"
    );
    let (status, _) = call(&server, "PUT", "/api/articles/other", Some(TOKEN), &good).await;
    assert_eq!(status, 422, "the body's id must match the URL's");

    // A batch with one bad line stores nothing.
    let batch = format!(
        "{}\n{}\n",
        article("b1", "第一篇", "320281"),
        article("b2", "", "320281")
    );
    let (status, body) = call(&server, "POST", "/api/articles", Some(TOKEN), &batch).await;
    assert_eq!(status, 422);
    assert_eq!(body["problems"][0]["line"], 2, "{body}");
    assert_eq!(body["problems"][0]["field"], "title");
    assert_eq!(server.app.store.count().await.unwrap(), 0);

    // A JSON array is taken too.
    let array = json!([
        article("b1", "第一篇", "320281"),
        article("b2", "第二篇", "320200")
    ])
    .to_string();
    let (status, body) = call(&server, "POST", "/api/articles", Some(TOKEN), &array).await;
    assert_eq!((status, body), (200, json!({ "stored": 2 })));
    let (status, body) = call(&server, "PUT", "/api/articles/a1", Some(TOKEN), &good).await;
    assert_eq!(
        (status, body),
        (200, json!({ "id": "a1", "status": "stored" }))
    );
    assert_eq!(server.app.store.count().await.unwrap(), 3);
    server.stop().await;
}

#[tokio::test]
async fn the_admin_api_refuses_credits_it_could_not_show_naming_each_field() {
    let server = admin_server(Backend::Sqlite, settings()).await.unwrap();
    let long = "长".repeat(201);
    let mut bad = article("c1", "转载文章", "320281");
    bad["source"] = json!({
        "name": "江阴日报", "url": "https://www.jyrb.example.com/a/1.html",
        "author": long, "title": long,
        // A day after the reprint: a reprint cannot come before its original.
        "published_at": "2024-05-19"
    });
    bad["editor"] = json!(long);
    bad["short_title"] = json!("短".repeat(33));
    let (status, body) = call(
        &server,
        "PUT",
        "/api/articles/c1",
        Some(TOKEN),
        &bad.to_string(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let problems: Vec<(&str, &str)> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["field"].as_str().unwrap(), p["message"].as_str().unwrap()))
        .collect();
    let fields: Vec<&str> = problems.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        fields,
        [
            "source.author",
            "source.title",
            "source.published_at",
            "editor",
            "short_title"
        ],
        "{body}"
    );
    assert!(
        problems[0].1.contains("201 characters") && problems[0].1.contains("200"),
        "{body}"
    );
    assert!(problems[4].1.contains("32"), "{body}");
    let (status, body) = call(
        &server,
        "PUT",
        "/api/articles/c1",
        Some(TOKEN),
        &json!({
            "id": "c1", "title": "转载文章", "url": "https://www.kechuang.example.cn/news/c1.html",
            "published_at": "2024-05-18T09:30:00+08:00",
            "source": {"name": "江阴日报", "url": "https://www.jyrb.example.com/a/1.html", "published_at": "昨天"}
        })
        .to_string(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["problems"][0]["field"], "source.published_at",
        "{body}"
    );
    assert_eq!(
        server.app.store.count().await.unwrap(),
        0,
        "nothing was stored"
    );

    // At the limits, and with the original published the moment it was reprinted, it is taken.
    let mut good = article("c1", "转载文章", "320281");
    good["source"] = json!({
        "name": "江阴日报", "url": "https://www.jyrb.example.com/a/1.html",
        "author": "长".repeat(200), "title": "<b>原题</b>",
        "published_at": "2024-05-18T09:30:00+08:00"
    });
    good["short_title"] = json!("短".repeat(32));
    let (status, body) = call(
        &server,
        "PUT",
        "/api/articles/c1",
        Some(TOKEN),
        &good.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

/// Every document a reader could hold the article in.
fn documents() -> Vec<String> {
    let mut paths = Vec::new();
    for feed in [
        "region/320000",
        "region/320281",
        "category/hydrogen",
        "jiangsu-hydrogen",
        "industry",
    ] {
        for format in ["rss", "atom", "json", "html"] {
            paths.push(format!("/feeds/{feed}.{format}"));
            paths.push(format!("/feeds/{feed}/archive/2024-05.{format}"));
        }
    }
    paths
}

async fn holding(server: &Server, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for path in documents() {
        if server.text(&path).await.contains(needle) {
            found.push(path);
        }
    }
    found
}

async fn edits_and_takedowns_show_at_once_everywhere(backend: Backend) {
    let Some(server) = admin_server(backend, settings()).await else {
        return;
    };
    let (status, _) = call(
        &server,
        "PUT",
        "/api/articles/h1",
        Some(TOKEN),
        &article("h1", "江阴加氢站投用", "320281").to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        holding(&server, "江阴加氢站投用").await.len(),
        documents().len()
    );

    let (status, _) = call(
        &server,
        "PUT",
        "/api/articles/h1",
        Some(TOKEN),
        &article("h1", "江阴加氢站正式投用", "320281").to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        holding(&server, "江阴加氢站投用").await.is_empty(),
        "no document shows the old title"
    );
    assert_eq!(
        holding(&server, "江阴加氢站正式投用").await.len(),
        documents().len()
    );

    let (status, body) = call(&server, "DELETE", "/api/articles/h1", Some(TOKEN), "").await;
    assert_eq!(
        (status, body),
        (200, json!({ "id": "h1", "status": "taken down" }))
    );
    assert!(
        // Named by its URL: its tombstone (Atom, JSON Feed) names the id it had, never the URL.
        holding(&server, "news/h1.html").await.is_empty(),
        "gone from every feed, archive and format"
    );
    let (status, _) = call(&server, "DELETE", "/api/articles/h1", Some(TOKEN), "").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_takedowns_on_sqlite() {
    edits_and_takedowns_show_at_once_everywhere(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_takedowns_on_postgres() {
    edits_and_takedowns_show_at_once_everywhere(Backend::Postgres).await;
}

/// Waits until `server` has applied a change notification after `seen`, for at most a second.
async fn heard_within_a_second(server: &Server, seen: u64) {
    server
        .hears(seen + 1, Duration::from_secs(1), "a change notification")
        .await;
}

/// A replica follows the store's change log, not its notifications alone: with its listening
/// connection cut and its reconnect held back, a takedown through another replica is still gone
/// from it within a second, in every format and archive, and its feeds still count as fresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takedown_reaches_a_replica_that_cannot_listen() {
    let Some(a) = admin_server(Backend::Postgres, settings()).await else {
        return;
    };
    let db = a.db.as_ref().unwrap();
    let (proxy, proxied) = Proxy::in_front_of(db).await;
    let b = Server::start_at(&proxied, settings(), None).await;
    let started = *b.app.heard().borrow();
    for id in ["t1", "t2"] {
        let body = article(id, &format!("无锡稿件{id}"), "320281").to_string();
        let (status, _) = call(
            &a,
            "PUT",
            &format!("/api/articles/{id}"),
            Some(TOKEN),
            &body,
        )
        .await;
        assert_eq!(status, 200);
    }
    let mut paths = Vec::new();
    for format in ["rss", "atom", "json"] {
        paths.push(format!("/feeds/region/320000.{format}"));
        paths.push(format!("/feeds/region/320281/archive/2024-05.{format}"));
    }
    // B has heard of both writes (one log entry each), and caches every document.
    b.hears(started + 2, Duration::from_secs(10), "B, both writes")
        .await;
    let seen = *b.app.heard().borrow();
    // All at once, so that B's pool holds a connection for each: new ones will be held too.
    let bodies = futures::future::join_all(paths.iter().map(|path| b.text(path))).await;
    for (path, body) in paths.iter().zip(bodies) {
        assert!(body.contains("article/t1"), "{path}");
    }

    // Cut B's listening connection in PostgreSQL, and hold its reconnect at the proxy.
    proxy.hold_new();
    let DatabaseUrl::Postgres(direct) = &db.url else {
        unreachable!()
    };
    let admin = sqlx::PgPool::connect(direct).await.unwrap();
    let ports: Vec<i32> = proxy.ports().into_iter().map(i32::from).collect();
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE client_port = ANY($1) AND query LIKE 'LISTEN%'",
    )
    .bind(&ports)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(cut, [true], "B's one listening connection");
    admin.close().await;

    let (status, answer) = call(&a, "DELETE", "/api/articles/t1", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{answer}");
    heard_within_a_second(&b, seen).await;
    for path in &paths {
        let r = b.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            header(&r, "warning"),
            None,
            "{path}: B still vouches for it"
        );
        let body = r.text().await.unwrap();
        assert!(!body.contains("news/t1.html"), "{path}: {body}");
        assert!(body.contains("article/t2"), "{path}");
    }
    proxy.restore();
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_postgres_stay_coherent() {
    let Some(a) = admin_server(Backend::Postgres, settings()).await else {
        return;
    };
    let url = a.db.as_ref().unwrap().url.clone();
    let b = Server::start_at(&url, settings(), None).await;
    for id in ["r1", "r2"] {
        let (status, _) = call(
            &a,
            "PUT",
            &format!("/api/articles/{id}"),
            Some(TOKEN),
            &article(id, &format!("无锡稿件{id}"), "320281").to_string(),
        )
        .await;
        assert_eq!(status, 200);
    }
    // B has the feeds cached.
    let feed = "/feeds/region/320000.rss";
    assert!(b.text(feed).await.contains("无锡稿件r1"));
    b.text("/feeds/region/320000/archive/2024-05.atom").await;

    // A takedown through A is gone from B within a second.
    let seen = *b.app.heard().borrow();
    let (status, _) = call(&a, "DELETE", "/api/articles/r1", Some(TOKEN), "").await;
    assert_eq!(status, 200);
    heard_within_a_second(&b, seen).await;
    assert!(!b.text(feed).await.contains("无锡稿件r1"));
    assert!(
        !b.text("/feeds/region/320000/archive/2024-05.atom")
            .await
            .contains("news/r1.html")
    );

    // The CMS writes in SQL: both instances see it.
    let DatabaseUrl::Postgres(pg) = &url else {
        unreachable!()
    };
    let cms = sqlx::PgPool::connect(pg).await.unwrap();
    let seen = (*a.app.heard().borrow(), *b.app.heard().borrow());
    sqlx::query("UPDATE articles SET title = '无锡稿件（CMS 更正）' WHERE id = 'r2'")
        .execute(&cms)
        .await
        .unwrap();
    heard_within_a_second(&a, seen.0).await;
    heard_within_a_second(&b, seen.1).await;
    for server in [&a, &b] {
        let text = server.text(feed).await;
        assert!(
            text.contains("无锡稿件（CMS 更正）") && !text.contains("无锡稿件r2"),
            "{text}"
        );
    }
    // A row the CMS inserts is filed by the database itself, region roll-up included.
    let seen = *b.app.heard().borrow();
    sqlx::query(
        "INSERT INTO articles (id, title, summary, content_html, url, published_at, categories, region, language) \
         VALUES ('cms-1', 'CMS 直接写入的宜兴稿件', '', '<p>x</p>', 'https://www.kechuang.example.cn/news/cms-1.html', \
         1716000000000000, 'materials', '320282', 'zh-CN')",
    )
    .execute(&cms)
    .await
    .unwrap();
    heard_within_a_second(&b, seen).await;
    assert!(b.text(feed).await.contains("CMS 直接写入的宜兴稿件"));
    assert!(
        b.text("/feeds/category/materials.atom")
            .await
            .contains("CMS 直接写入的宜兴稿件")
    );
    cms.close().await;
    b.stop().await;
    a.stop().await;
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_serves_cached_feeds_stale_and_recovers() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let (proxy, proxied) = Proxy::in_front_of(&db).await;
    let server = Server::start_at(&proxied, settings(), None).await;
    server.app.load_demo_if_empty().await.unwrap();
    let cached = "/feeds/category/hydrogen.rss";
    let fresh = server.text(cached).await;
    assert_eq!(server.get("/readyz").await.status(), 200);

    proxy.break_();
    let r = server.get("/feeds/category/parks.rss").await;
    assert_eq!(r.status(), 503, "an uncached feed cannot be built");
    assert_eq!(header(&r, "retry-after").as_deref(), Some("5"));
    let r = server.get(cached).await;
    assert_eq!(r.status(), 200, "a cached feed is still served");
    assert!(header(&r, "warning").unwrap().contains("Response is Stale"));
    assert_eq!(
        header(&r, "cache-control").as_deref(),
        Some("public, max-age=5"),
        "a stand-in is not to be served stale by others in turn"
    );
    assert!(header(&r, "age").is_some());
    assert_eq!(r.text().await.unwrap(), fresh);
    assert_eq!(server.get("/readyz").await.status(), 503);

    proxy.restore();
    assert_eq!(
        server.get("/readyz").await.status(),
        200,
        "recovers by itself"
    );
    // Cached feeds vouch for themselves again once changes are heard again.
    let mut heard = server.app.heard();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !server.app.is_listening() {
            heard.changed().await.unwrap();
        }
    })
    .await
    .expect("listening again after the outage");
    let r = server.get("/feeds/category/parks.rss").await;
    assert_eq!(r.status(), 200);
    let r = server.get(cached).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "warning"), None);
    server.stop().await;
    drop(db);
}

async fn a_stampede_of_misses_queries_the_store_once(backend: Backend) {
    let Some(server) = Server::start(backend).await else {
        return;
    };
    let seen = *server.app.heard().borrow();
    let added = server.app.load_demo_if_empty().await.unwrap() as u64;
    if matches!(backend, Backend::Postgres) {
        // The demo write's own notifications (one per row) arrive after it returns; a build
        // they overlap is rightly built again, so wait for them before counting.
        let within = Duration::from_secs(10);
        server
            .hears(seen + added, within, "the demo write's notifications")
            .await;
    }
    let (queries, builds) = (server.app.store_queries(), server.app.builds());
    let requests = (0..64).map(|_| server.get("/feeds/region/320000.atom"));
    let responses = futures::future::join_all(requests).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    assert_eq!(server.app.builds() - builds, 1);
    assert_eq!(
        server.app.store_queries() - queries,
        1,
        "one store query for 64 concurrent misses"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stampede_on_sqlite() {
    a_stampede_of_misses_queries_the_store_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stampede_on_postgres() {
    a_stampede_of_misses_queries_the_store_once(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_of_distinct_feeds_stays_within_the_cache_budget() {
    let budget = 256 * 1024;
    let settings = settings_with(&[("max_bytes = 67108864", &format!("max_bytes = {budget}"))]);
    let server = Server::start_with(Backend::Sqlite, settings).await.unwrap();
    server.app.load_demo_if_empty().await.unwrap();
    let s = server.app.settings.clone();
    let mut served = 0u64;
    for feed in FeedId::all(&s.catalog) {
        for format in [Format::Rss, Format::Atom, Format::Json, Format::Html] {
            for limit in [1, 10, 100] {
                let path = FeedKey::latest(feed.clone(), format, &s).url_path();
                let r = server.get(&format!("{path}?limit={limit}")).await;
                served += r.bytes().await.unwrap().len() as u64;
            }
        }
    }
    let held = server.app.cache_bytes().await;
    assert!(
        served > 4 * budget,
        "the sweep must overflow the budget to prove anything: {served}"
    );
    assert!(held <= budget, "{held} bytes held, budget {budget}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_cms_writes_in_sql_are_sanitized_or_skipped_never_break_a_feed() {
    let Some(server) = admin_server(Backend::Postgres, settings()).await else {
        return;
    };
    let DatabaseUrl::Postgres(pg) = &server.db.as_ref().unwrap().url else {
        unreachable!()
    };
    let cms = sqlx::PgPool::connect(pg).await.unwrap();
    let insert = "INSERT INTO articles (id, title, summary, content_html, url, published_at, categories, region, language, source_name, source_url) \
                  VALUES ($1, $2, $3, $4, $5, 1716000000000000, 'hydrogen', '320281', 'zh-CN', $6, $7)";
    for (id, title, content, url, source_url) in [
        (
            "cms-dirty",
            "CMS\u{1}标题 <b>粗</b>",
            "<p onclick=\"x()\">正文<script>alert(1)</script></p>",
            "https://www.kechuang.example.cn/n/1.html",
            "javascript:alert(2)",
        ),
        (
            "cms-bad-url",
            "坏链接",
            "<p>x</p>",
            "javascript:alert(3)",
            "https://ok.example.com/",
        ),
    ] {
        sqlx::query(insert)
            .bind(id)
            .bind(title)
            .bind("摘要\u{2}")
            .bind(content)
            .bind(url)
            .bind("来源")
            .bind(source_url)
            .execute(&cms)
            .await
            .unwrap();
    }
    for format in Format::FEEDS {
        let path = format!("/feeds/region/320281.{}", format.extension());
        let body = server.text(&path).await;
        feedcast::render::verify::well_formed(format, body.as_bytes()).unwrap();
        assert!(body.contains("article/cms-dirty"), "{path}");
        assert!(
            !body.contains("article/cms-bad-url"),
            "a row without a valid URL is skipped: {path}"
        );
        assert!(
            !body.contains("alert(") && !body.contains("onclick"),
            "{path}: {body}"
        );
    }
    let rss =
        rss::Channel::read_from(server.text("/feeds/region/320281.rss").await.as_bytes()).unwrap();
    let item = &rss.items()[0];
    assert_eq!(item.title(), Some("CMS标题 粗"));
    // feedcast's own rows are marked sanitized, so text like `a <b> c` in a plain-text title
    // is not taken for markup a second time.
    let own = json!({
        "id": "own-1", "title": "比较 a <b> c", "url": "https://www.kechuang.example.cn/n/2.html",
        "published_at": "2024-05-19", "categories": ["hydrogen"], "region": "320281"
    });
    let (status, _) = call(
        &server,
        "PUT",
        "/api/articles/own-1",
        Some(TOKEN),
        &own.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let (sanitized,): (bool,) = sqlx::query_as("SELECT sanitized FROM articles WHERE id = 'own-1'")
        .fetch_one(&cms)
        .await
        .unwrap();
    assert!(sanitized);
    let (sanitized,): (bool,) =
        sqlx::query_as("SELECT sanitized FROM articles WHERE id = 'cms-dirty'")
            .fetch_one(&cms)
            .await
            .unwrap();
    assert!(!sanitized);
    assert!(
        item.source().is_none(),
        "a source without an http(s) URL is dropped"
    );
    cms.close().await;
    server.stop().await;
}

#[tokio::test]
async fn rows_the_cms_writes_follow_the_same_rules_as_what_arrives_through_the_api() {
    let settings = settings_with(&[(
        "iframe_hosts = []",
        r#"iframe_hosts = ["player.video.example.cn"]"#,
    )]);
    let Some(server) = admin_server(Backend::Postgres, settings).await else {
        return;
    };
    let DatabaseUrl::Postgres(pg) = &server.db.as_ref().unwrap().url else {
        unreachable!()
    };
    let cms = sqlx::PgPool::connect(pg).await.unwrap();
    // An embed from an allowed host, a relative image, a language that is not a tag, a
    // category that cannot be a name beside one that is, and an edit time no feed can write.
    sqlx::query(
        "INSERT INTO articles (id, title, summary, content_html, url, published_at, updated_at, \
         categories, region, language, image) VALUES ('cms-rules', '规则一致', '', $1, \
         'https://www.kechuang.example.cn/n/9.html', 1716000000000000, 999999999999999999, \
         'bad/slug hydrogen', '320281', 'not a tag!', 'img/lead.jpg')",
    )
    .bind(r#"<p>视频</p><iframe src="https://player.video.example.cn/embed/9"></iframe><iframe src="https://evil.example.com/x"></iframe>"#)
    .execute(&cms)
    .await
    .unwrap();
    let doc: Value =
        serde_json::from_str(&server.text("/feeds/category/hydrogen.json").await).unwrap();
    let item = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"].as_str().unwrap().ends_with("article/cms-rules"))
        .expect("the row is kept: only its bad fields are left out");
    let content = item["content_html"].as_str().unwrap();
    assert!(
        content.contains(r#"src="https://player.video.example.cn/embed/9""#),
        "{content}"
    );
    assert!(!content.contains("evil"), "{content}");
    assert_eq!(
        item["image"],
        "https://www.kechuang.example.cn/n/img/lead.jpg"
    );
    assert_eq!(item["language"], "zh-CN", "the site's, not `not a tag!`");
    assert_eq!(item["tags"], json!(["氢能科技"]));
    assert!(item.get("date_modified").is_none(), "{item}");
    assert_eq!(
        item["summary"], "视频",
        "a lead from the content, as on import"
    );
    let dropped = feedcast::metrics::handle().unwrap().render();
    assert!(
        dropped
            .lines()
            .any(|l| l.starts_with("feedcast_stored_article_fields_dropped_total ")),
        "{dropped}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_the_cms_writes_in_sql_are_shown_or_left_out_never_break_a_feed() {
    let Some(server) = admin_server(Backend::Postgres, settings()).await else {
        return;
    };
    let DatabaseUrl::Postgres(pg) = &server.db.as_ref().unwrap().url else {
        unreachable!()
    };
    let cms = sqlx::PgPool::connect(pg).await.unwrap();
    // The README's contract: the credits are columns beside source_name and source_url, times
    // in microseconds since the epoch.
    let insert = "INSERT INTO articles (id, title, summary, content_html, url, published_at, \
                  categories, region, language, source_name, source_url, source_author, \
                  source_title, source_published_at, editor, short_title) \
                  VALUES ($1, '转载', '', '<p>x</p>', $2, 1716000000000000, 'hydrogen', '320281', \
                  'zh-CN', '江阴日报', 'https://www.jyrb.example.com/a/1.html', $3, $4, $5, $6, $7)";
    let (long, short) = ("长".repeat(201), "短".repeat(33));
    for (id, author, title, original, editor, short_title) in [
        (
            "cms-credited",
            "王明<script>x()</script>",
            "<b>原题</b>\u{1}",
            Some(1_715_990_000_000_000_i64),
            "李华",
            "短标题",
        ),
        // Everything import would refuse: too long, an original after the reprint.
        (
            "cms-overlong",
            long.as_str(),
            long.as_str(),
            Some(1_716_000_000_000_001),
            long.as_str(),
            short.as_str(),
        ),
    ] {
        sqlx::query(insert)
            .bind(id)
            .bind(format!("https://www.kechuang.example.cn/n/{id}.html"))
            .bind(author)
            .bind(title)
            .bind(original)
            .bind(editor)
            .bind(short_title)
            .execute(&cms)
            .await
            .unwrap();
    }
    // Credits with no publisher to belong to are left out with it.
    sqlx::query(
        "INSERT INTO articles (id, title, summary, content_html, url, published_at, categories, \
         region, language, source_author) VALUES ('cms-orphan', '无来源', '', '<p>x</p>', \
         'https://www.kechuang.example.cn/n/orphan.html', 1715000000000000, 'hydrogen', \
         '320281', 'zh-CN', '王明')",
    )
    .execute(&cms)
    .await
    .unwrap();

    let doc: Value = serde_json::from_str(&server.text("/feeds/region/320281.json").await).unwrap();
    let item = |id: &str| {
        doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| {
                i["id"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("article/{id}"))
            })
            .unwrap_or_else(|| panic!("{id} is kept: only its bad fields are left out"))
            .clone()
    };
    assert_eq!(
        item("cms-credited")["_source"],
        json!({
            "name": "江阴日报", "url": "https://www.jyrb.example.com/a/1.html",
            "author": "王明", "title": "原题",
            "published_at": "2024-05-18T07:53:20+08:00", "editor": "李华"
        })
    );
    let overlong = item("cms-overlong");
    assert_eq!(
        overlong["_source"],
        json!({"name": "江阴日报", "url": "https://www.jyrb.example.com/a/1.html"})
    );
    assert_eq!(
        overlong["authors"],
        json!([{"name": "江阴日报", "url": "https://www.jyrb.example.com/a/1.html"}])
    );
    assert!(!overlong["content_html"].as_str().unwrap().contains("长长"));
    let orphan = item("cms-orphan");
    assert!(
        orphan.get("_source").is_none() && orphan.get("authors").is_none(),
        "{orphan}"
    );
    for format in Format::FEEDS {
        let path = format!("/feeds/region/320281.{}", format.extension());
        let body = server.text(&path).await;
        feedcast::render::verify::well_formed(format, body.as_bytes()).unwrap();
        assert!(
            !body.contains("x()") && !body.contains("<b>原题"),
            "{path}: {body}"
        );
    }
    cms.close().await;
    server.stop().await;
}

/// A bulk import on PostgreSQL is one transaction; when each of its statements restamped the
/// same change-time rows, their dead versions slowed the import and every cold build after it
/// until a vacuum, which with autovacuum off (as on this machine) never came. A large import
/// stamps every feed once, at its commit, and leaves its tables vacuumed and analysed; a small
/// write (an admin POST) does neither.
#[tokio::test]
async fn a_bulk_import_on_postgres_moves_every_feed_at_commit_and_leaves_its_tables_vacuumed_and_measured()
 {
    let Some(server) = admin_server(Backend::Postgres, settings()).await else {
        return;
    };
    let DatabaseUrl::Postgres(pg) = &server.db.as_ref().unwrap().url else {
        unreachable!()
    };
    let stats = sqlx::PgPool::connect(pg).await.unwrap();
    // Of the tables the bulk write vacuums, `change_times` is left out: the store's upkeep
    // vacuums it too, on start and every minute (tests/outbound.rs).
    let tidied = || async {
        let query = "SELECT relname::text, last_vacuum IS NOT NULL, last_analyze IS NOT NULL \
                     FROM pg_stat_user_tables WHERE schemaname = current_schema() \
                     AND relname IN ('articles', 'feed_index') ORDER BY relname";
        sqlx::query_as::<_, (String, bool, bool)>(query)
            .fetch_all(&stats)
            .await
            .unwrap()
    };
    let lines = |from: usize, count: usize| {
        (from..from + count)
            .map(|i| {
                article(&format!("bulk-{i}"), &format!("第{i}篇"), "320281").to_string() + "\n"
            })
            .collect::<String>()
    };
    let everything = || async {
        sqlx::query_scalar::<_, i64>("SELECT changed_at FROM change_times WHERE bucket = '*'")
            .fetch_one(&stats)
            .await
            .unwrap()
    };
    let at_start = everything().await;
    let small = server
        .app
        .import_ndjson(std::io::Cursor::new(lines(0, 100).into_bytes()))
        .await
        .unwrap();
    assert_eq!(small.articles, 100);
    assert!(tidied().await.iter().all(|(_, vacuumed, _)| !vacuumed));
    assert_eq!(
        everything().await,
        at_start,
        "a small write stamps only its own feeds"
    );

    let before = everything().await;
    let bulk = server
        .app
        .import_ndjson(std::io::Cursor::new(lines(100, 12_000).into_bytes()))
        .await
        .unwrap();
    assert_eq!(bulk.articles, 12_000);
    // Past 10,000 articles the import stopped stamping statement by statement, and moved
    // every feed's change time at its commit instead.
    assert!(everything().await > before);
    assert_eq!(
        tidied().await,
        [
            ("articles".to_owned(), false, true),
            ("feed_index".to_owned(), true, true),
        ]
    );
    stats.close().await;
    // Closing the store lets the change log's bookkeeping of 12,100 writes finish first.
    drop(server.stop().await);
}

/// A bulk import on SQLite is one transaction, so none of its log can be checkpointed before
/// it commits: it is folded into the database file and the log emptied right after, rather
/// than left for the next process to open (which must read the whole log first: a million
/// articles left 7 GB). An admin write of a few articles leaves the log to the checkpointer.
#[tokio::test]
async fn a_bulk_import_on_sqlite_leaves_no_log_behind() {
    let server = admin_server(Backend::Sqlite, settings()).await.unwrap();
    let DatabaseUrl::Sqlite(path) = &server.db.as_ref().unwrap().url else {
        unreachable!()
    };
    let log = path.with_extension("db-wal");
    let lines: String = (0..10_000)
        .map(|i| article(&format!("bulk-{i}"), &format!("第{i}篇"), "320281").to_string() + "\n")
        .collect();
    let imported = server
        .app
        .import_ndjson(std::io::Cursor::new(lines.into_bytes()))
        .await
        .unwrap();
    assert_eq!(imported.articles, 10_000);
    let left = std::fs::metadata(&log).map_or(0, |m| m.len());
    assert_eq!(left, 0, "the log is emptied after a bulk import");
    assert!(
        std::fs::metadata(path).unwrap().len() > 1_000_000,
        "folded into the file"
    );
    server.stop().await;
}
