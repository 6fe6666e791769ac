//! feedcast behind a real Varnish (Debian's `varnish` with the xkey vmod of `varnish-modules`),
//! running the shipped `deploy/varnish.vcl` with only its backend's port changed: Varnish
//! caches feeds, feedcast purges them by cache tag on every change, so a takedown (through the
//! admin API, or by the CMS in SQL on PostgreSQL) is gone from Varnish's answers within a second
//! in every format and archive; and with feedcast down, Varnish serves its stale copy past
//! `stale-while-revalidate` and within `stale-if-error`, never one from before a takedown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Backend, Server, TOKEN, TestDb, admin_server, available, call, settings_with};
use feedcast::config::Settings;
use feedcast::store::DatabaseUrl;
use serde_json::json;

/// A Varnish of the test's own: its port, working folder and compiled VCL.
struct Varnish {
    child: std::process::Child,
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A port nothing listens on now, for a server started later (Varnish's, which feedcast's
/// purger must name before Varnish starts).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Varnish {
    /// Starts varnishd on `port` in front of feedcast at `backend` (`http://127.0.0.1:N`), and
    /// waits until it answers through to feedcast; `None` (with a message) without Varnish.
    async fn start(port: u16, backend: &str) -> Option<Varnish> {
        if !available("varnishd", &["-V"]) {
            return None;
        }
        let backend_port = backend.rsplit(':').next().unwrap();
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/varnish.vcl"),
        )
        .unwrap();
        assert!(shipped.contains(".port = \"8080\";"));
        let vcl = shipped.replace(".port = \"8080\";", &format!(".port = \"{backend_port}\";"));
        let dir = tempfile::tempdir().unwrap();
        let vcl_path = dir.path().join("varnish.vcl");
        std::fs::write(&vcl_path, vcl).unwrap();
        let child = std::process::Command::new("varnishd")
            .arg("-F")
            .args(["-j", "none"])
            .args(["-a", &format!("127.0.0.1:{port}")])
            .arg("-f")
            .arg(&vcl_path)
            .arg("-n")
            .arg(dir.path().join("work"))
            .args(["-s", "malloc,64m", "-T", "none"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let varnish = Varnish {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            _dir: dir,
        };
        // Ready once a request passes through to feedcast (the VCL compiled, the probe ran).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = varnish
                .client
                .get(format!("{}/healthz", varnish.base))
                .send()
                .await
            {
                if r.status() == 200 {
                    return Some(varnish);
                }
            }
            assert!(Instant::now() < deadline, "Varnish did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tests' configuration with a Varnish purger at `port`, and these texts replaced.
fn behind_varnish(port: u16, replace: &[(&str, &str)]) -> Settings {
    let purger = format!(
        "[[purgers]]\nkind = \"varnish\"\nurl = \"http://127.0.0.1:{port}/\"\n\n[outbound]\n"
    );
    let mut all = vec![("[outbound]\n", purger.as_str())];
    all.extend_from_slice(replace);
    settings_with(&all)
}

fn article(id: &str) -> String {
    json!({
        "id": id, "title": format!("无锡稿件{id}"), "content_html": "<p>正文。</p>",
        "url": format!("https://www.kechuang.example.cn/news/{id}.html"),
        "published_at": "2024-05-18T09:30:00+08:00", "categories": ["hydrogen"],
        "region": "320281"
    })
    .to_string()
}

/// Stores these articles through the admin API.
async fn put_all(server: &Server, ids: &[&str]) {
    for id in ids {
        let path = format!("/api/articles/{id}");
        let (status, _) = call(server, "PUT", &path, Some(TOKEN), &article(id)).await;
        assert_eq!(status, 200);
    }
}

/// A server on a PostgreSQL schema of its own, purging a Varnish to be started on `port`;
/// with the schema's URL, for the CMS's own SQL. `None` without PostgreSQL.
async fn on_postgres_behind_varnish(port: u16) -> Option<(Server, String)> {
    let db = TestDb::new(Backend::Postgres).await?;
    let DatabaseUrl::Postgres(direct) = db.url.clone() else {
        unreachable!()
    };
    let mut server = Server::start_at(&db.url, behind_varnish(port, &[]), Some(TOKEN)).await;
    server.db = Some(db);
    Some((server, direct))
}

/// Every document that holds the test's articles: the province's and the category's newest
/// items (default and another item count) and the county's archive month, in every format.
fn documents() -> Vec<String> {
    let mut paths = Vec::new();
    for format in ["rss", "atom", "json"] {
        paths.push(format!("/feeds/region/320000.{format}"));
        paths.push(format!("/feeds/category/hydrogen.{format}?limit=7"));
        paths.push(format!("/feeds/region/320281/archive/2024-05.{format}"));
    }
    paths
}

/// Fetches every document through Varnish twice; the second answer is Varnish's own copy.
async fn cache_all(varnish: &Varnish, holding: &str) {
    for path in documents() {
        let first = varnish.get(&path).await;
        assert_eq!(first.status(), 200, "{path}");
        assert!(first.text().await.unwrap().contains(holding), "{path}");
        let second = varnish.get(&path).await;
        assert_eq!(
            second.headers()["x-cache"],
            "HIT",
            "{path}: a copy from Varnish's cache"
        );
        assert!(second.text().await.unwrap().contains(holding), "{path}");
    }
}

/// Fails unless, within a second of `since`, no document Varnish answers holds `gone` and each
/// still holds `kept`.
async fn gone_within_a_second(varnish: &Varnish, since: Instant, gone: &str, kept: &str) {
    let mut waiting: Vec<String> = documents();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for path in waiting {
            let r = varnish.get(&path).await;
            assert_eq!(r.status(), 200, "{path}");
            let body = r.text().await.unwrap();
            assert!(body.contains(kept), "{path}");
            if body.contains(gone) {
                still.push(path);
            }
        }
        waiting = still;
        assert!(
            since.elapsed() <= Duration::from_secs(1) || waiting.is_empty(),
            "still served by Varnish after {:?}: {waiting:?}",
            since.elapsed()
        );
        // Varnish has no signal to wait for: look again shortly.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takedown_through_the_admin_api_is_gone_from_varnish_within_a_second() {
    let port = free_port();
    let server = admin_server(Backend::Sqlite, behind_varnish(port, &[]))
        .await
        .unwrap();
    put_all(&server, &["v1", "v2"]).await;
    let Some(varnish) = Varnish::start(port, &server.base).await else {
        return;
    };
    // Varnish caches each document, and feedcast names its tags for purging.
    let tagged = server
        .get("/feeds/region/320281/archive/2024-05.atom")
        .await;
    let tags = tagged.headers()["surrogate-key"]
        .to_str()
        .unwrap()
        .to_owned();
    for tag in ["feed:region/320281/2024-05", "a:v1", "a:v2"] {
        assert!(tags.split(' ').any(|t| t == tag), "{tag} in {tags}");
    }
    assert_eq!(
        tagged.headers()["cache-tag"].to_str().unwrap(),
        tags.replace(' ', ",")
    );
    cache_all(&varnish, "news/v1.html").await;

    let (status, _) = call(&server, "DELETE", "/api/articles/v1", Some(TOKEN), "").await;
    assert_eq!(status, 200);
    gone_within_a_second(&varnish, Instant::now(), "news/v1.html", "news/v2.html").await;

    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("feedcast_outbound_requests_total")
                && l.contains("kind=\"purge\"")
                && l.contains("outcome=\"delivered\"")),
        "purges counted: {metrics}"
    );
    drop(varnish);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takedown_by_the_cms_in_sql_is_gone_from_varnish_within_a_second() {
    let port = free_port();
    let Some((server, direct)) = on_postgres_behind_varnish(port).await else {
        return;
    };
    put_all(&server, &["c1", "c2"]).await;
    let Some(varnish) = Varnish::start(port, &server.base).await else {
        return;
    };
    cache_all(&varnish, "news/c1.html").await;

    // The CMS takes the reprint down in SQL: the change log tells feedcast, which purges.
    let cms = sqlx::PgPool::connect(&direct).await.unwrap();
    let deleted = sqlx::query("DELETE FROM articles WHERE id = 'c1'")
        .execute(&cms)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 1);
    gone_within_a_second(&varnish, Instant::now(), "news/c1.html", "news/c2.html").await;
    cms.close().await;
    drop(varnish);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_feedcast_down_varnish_serves_its_stale_copy_within_stale_if_error_only() {
    let port = free_port();
    // Newest items: fresh 1 s, then 1 s while revalidating, and 4 s while feedcast is down.
    let stale = "archive = 86400 # archives of months that have ended\n\
                 [caching.stale_while_revalidate]\nregion = 1\n\
                 [caching.stale_if_error]\nregion = 4\n";
    let settings = behind_varnish(
        port,
        &[
            ("region = 300\n", "region = 1\n"),
            (
                "archive = 86400 # archives of months that have ended\n",
                stale,
            ),
        ],
    );
    let server = admin_server(Backend::Sqlite, settings).await.unwrap();
    put_all(&server, &["s1", "s2"]).await;
    let Some(varnish) = Varnish::start(port, &server.base).await else {
        return;
    };
    let feed = "/feeds/region/320000.atom";
    assert!(
        varnish
            .get(feed)
            .await
            .text()
            .await
            .unwrap()
            .contains("news/s1.html")
    );
    // Taken down before feedcast goes away: Varnish's copy from before must never come back.
    let (status, _) = call(&server, "DELETE", "/api/articles/s1", Some(TOKEN), "").await;
    assert_eq!(status, 200);
    let since = Instant::now();
    loop {
        let body = varnish.get(feed).await.text().await.unwrap();
        if !body.contains("news/s1.html") {
            break;
        }
        assert!(since.elapsed() < Duration::from_secs(1), "purged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;

    // Past max-age + stale-while-revalidate (2 s) Varnish still answers, from its copy, until
    // past max-age + stale-if-error (5 s); the copy never holds the item taken down.
    let mut oldest_served = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = varnish.get(feed).await;
        let status = r.status();
        let age: u64 = r
            .headers()
            .get("age")
            .and_then(|a| a.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let body = r.text().await.unwrap();
        if status == 200 {
            assert!(
                !body.contains("news/s1.html"),
                "a copy from before the takedown"
            );
            assert!(body.contains("news/s2.html"));
            assert!(age <= 6, "served {age} s old, past stale-if-error");
            oldest_served = oldest_served.max(age);
        } else if oldest_served >= 3 {
            // Past stale-if-error: no copy any more.
            assert_eq!(status, 503);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "oldest copy served: {oldest_served} s"
        );
        // The condition is time passing: look again shortly.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        oldest_served >= 3,
        "served past stale-while-revalidate: {oldest_served} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_id_from_the_cms_does_not_spoil_the_purge_of_a_takedown_beside_it() {
    let port = free_port();
    let Some((server, direct)) = on_postgres_behind_varnish(port).await else {
        return;
    };
    put_all(&server, &["b1", "b2"]).await;
    let cms = sqlx::PgPool::connect(&direct).await.unwrap();
    // The CMS stores a row under an id feedcast would never take (feeds leave it out), with a
    // newline in it: no header could carry it.
    sqlx::query(
        "INSERT INTO articles (id, title, summary, content_html, url, published_at, categories, \
         region, language) SELECT E'bad\\nid', title, summary, content_html, \
         'https://www.kechuang.example.cn/news/bad.html', published_at, categories, region, \
         language FROM articles WHERE id = 'b2'",
    )
    .execute(&cms)
    .await
    .unwrap();
    let Some(varnish) = Varnish::start(port, &server.base).await else {
        return;
    };
    cache_all(&varnish, "news/b1.html").await;
    // One statement takes down b1 and the bad row: b1 is purged all the same.
    let deleted = sqlx::query("DELETE FROM articles WHERE id IN ('b1', E'bad\\nid')")
        .execute(&cms)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 2);
    gone_within_a_second(&varnish, Instant::now(), "news/b1.html", "news/b2.html").await;
    cms.close().await;
    drop(varnish);
    server.stop().await;
}
