//! What an outside attack on `main` found, each fault pinned over real HTTP: plain text that
//! became markup (see the conformance suite), a store that stopped writing after one failed
//! commit, memory one request could exhaust, clients that could hold connections forever or
//! hide behind the load balancer, and input that was read more loosely than it should be.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TOKEN, admin_server, call, read_response, settings_with};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

fn article(id: &str) -> Value {
    json!({
        "id": id, "title": "江阴氢能产业园开工", "content_html": "<p>正文。</p>",
        "url": format!("https://www.kechuang.example.cn/news/{id}.html"),
        "published_at": "2024-05-18T09:30:00+08:00", "categories": ["hydrogen"], "region": "320281"
    })
}

/// A batch POST with a declared content type; the status and the JSON answer.
async fn post_batch(server: &common::Server, content_type: &str, body: String) -> (u16, Value) {
    let response = server
        .client
        .post(format!("{}/api/articles", server.base))
        .bearer_auth(TOKEN)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_str(&response.text().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn a_body_of_a_million_bad_lines_is_answered_with_the_first_hundred_problems_and_a_count() {
    let server = admin_server(Backend::Sqlite, common::settings())
        .await
        .unwrap();
    // 200,000 lines of `{}` (the attack used a million; the bound is the same at any count):
    // each lacks four required fields.
    let body = "{}\n".repeat(200_000);
    let response = server
        .client
        .post(format!("{}/api/articles", server.base))
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let text = response.text().await.unwrap();
    assert!(text.len() < 64 * 1024, "{} bytes of answer", text.len());
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["problems"].as_array().unwrap().len(), 100);
    assert_eq!(answer["problem_count"], 800_000);
    assert_eq!(answer["problems"][99]["line"], 25);
    // The same as one JSON array: its items are read and checked a batch at a time too.
    let array = format!("[{}]", vec!["{}"; 200_000].join(","));
    let (status, answer) = post_batch(&server, "application/json", array).await;
    assert_eq!(status, 422);
    assert_eq!(answer["problems"].as_array().unwrap().len(), 100);
    assert_eq!(answer["problem_count"], 800_000);
    assert_eq!(answer["problems"][99]["item"], 25);
    assert_eq!(server.app.store.count().await.unwrap(), 0);
    server.stop().await;
}

/// A server whose admin bodies may hold at most 4 KiB.
async fn small_body_server() -> common::Server {
    let settings = settings_with(&[("max_body_bytes = 16777216", "max_body_bytes = 4096")]);
    admin_server(Backend::Sqlite, settings).await.unwrap()
}

async fn connect(server: &common::Server) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_declared_length_over_the_limit_gets_413_before_any_of_the_body_is_sent() {
    let server = small_body_server().await;
    let mut stream = connect(&server).await;
    // A gigabyte announced, not a byte of it sent: the answer must not wait for it.
    let head = format!(
        "POST /api/articles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 1000000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 413);
    let answer: Value = serde_json::from_slice(&response.body).unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("4096"),
        "{answer}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_chunked_body_gets_413_as_soon_as_it_passes_the_limit() {
    let server = small_body_server().await;
    let mut stream = connect(&server).await;
    let head = format!(
        "POST /api/articles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // 5 KiB in chunks, and the body never ends: the answer comes anyway.
    for _ in 0..5 {
        let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
        stream.write_all(chunk.as_bytes()).await.unwrap();
    }
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 413);
    server.stop().await;
}

#[tokio::test]
async fn an_array_in_place_of_an_article_is_refused_and_an_array_of_articles_is_a_batch() {
    let server = admin_server(Backend::Sqlite, common::settings())
        .await
        .unwrap();
    let positional =
        r#"["p1","标题","","","https://www.kechuang.example.cn/news/p1.html","2024-05-18"]"#;
    let (status, body) = call(&server, "PUT", "/api/articles/p1", Some(TOKEN), positional).await;
    assert_eq!(status, 422);
    assert_eq!(body["problems"][0]["item"], 1, "{body}");
    assert_eq!(
        body["problems"][0]["message"], "not a JSON object",
        "{body}"
    );
    let ndjson = format!("{}\n{positional}\n", article("p2"));
    let (status, body) = call(&server, "POST", "/api/articles", Some(TOKEN), &ndjson).await;
    assert_eq!(status, 422);
    assert_eq!(body["problems"][0]["line"], 2, "{body}");
    assert_eq!(
        body["problems"][0]["message"], "not a JSON object",
        "{body}"
    );
    let nested = format!("[{}, {positional}]", article("p3"));
    let (status, body) = call(&server, "POST", "/api/articles", Some(TOKEN), &nested).await;
    assert_eq!(status, 422);
    assert_eq!(body["problems"][0]["item"], 2, "{body}");
    assert_eq!(server.app.store.count().await.unwrap(), 0);

    // Declared NDJSON, a first line that opens with `[` is still a line, not an array.
    let first = format!("{positional}\n{}\n", article("p6"));
    let (status, body) = post_batch(&server, "application/x-ndjson", first).await;
    assert_eq!(status, 422);
    assert_eq!(body["problems"][0]["line"], 1, "{body}");
    assert_eq!(
        body["problems"][0]["message"], "not a JSON object",
        "{body}"
    );

    let batch = json!([article("p4"), article("p5")]).to_string();
    let (status, body) = call(&server, "POST", "/api/articles", Some(TOKEN), &batch).await;
    assert_eq!((status, body), (200, json!({ "stored": 2 })));
    server.stop().await;
}

#[tokio::test]
async fn a_byte_order_mark_is_skipped_and_every_refusal_names_the_line_and_the_field() {
    let server = admin_server(Backend::Sqlite, common::settings())
        .await
        .unwrap();
    let bom = '\u{FEFF}';
    let (status, body) = call(
        &server,
        "PUT",
        "/api/articles/b1",
        Some(TOKEN),
        &format!("{bom}{}", article("b1")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &server,
        "POST",
        "/api/articles",
        Some(TOKEN),
        &format!("{bom}{}\n{}\n", article("b2"), article("b3")),
    )
    .await;
    assert_eq!((status, body), (200, json!({ "stored": 2 })));

    // A lone surrogate and a raw control character: not valid JSON, in the title, and where.
    let surrogate = article("b4").to_string().replace("江阴", "\\ud800");
    let control = article("b5").to_string().replace("江阴", "江\u{1}阴");
    let (status, body) = call(
        &server,
        "POST",
        "/api/articles",
        Some(TOKEN),
        &format!("{}\n{surrogate}\n{control}\n", article("b6")),
    )
    .await;
    assert_eq!(status, 422);
    for (i, line) in [(0, 2), (1, 3)] {
        let p = &body["problems"][i];
        assert_eq!(
            (&p["line"], &p["field"]),
            (&json!(line), &json!("title")),
            "{body}"
        );
        let message = p["message"].as_str().unwrap();
        assert!(message.starts_with("not valid JSON: "), "{body}");
        assert!(message.contains(" at column "), "{body}");
    }
    // The body's id and the URL's disagree: the field is `id`.
    let (status, body) = call(
        &server,
        "PUT",
        "/api/articles/other",
        Some(TOKEN),
        &article("b7").to_string(),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["problems"][0]["field"], "id", "{body}");
    server.stop().await;
}

/// A small tmpfs the test mounts (CI runs as root) and unmounts when dropped: a disk that fills.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: usize) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root and must be able to mount a tmpfs"
            );
            common::say("SKIPPED: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills the disk with a file until no byte more fits.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.path().join("filler")).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while filler.write_all(&chunk).is_ok() {}
        let _ = filler.write_all(&[0u8; 512]);
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// How a test makes the store's writes fail, and lifts the fault again.
enum Fault {
    /// SQLite on a disk that is full.
    FullDisk(SmallDisk),
    /// PostgreSQL with a trigger (in the test's own schema) that refuses every commit.
    RefusingTrigger(sqlx::PgPool),
}

impl Fault {
    async fn start(&self) {
        match self {
            Fault::FullDisk(disk) => disk.fill(),
            Fault::RefusingTrigger(pool) => {
                for sql in [
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION 'refused at commit by the test'; END $$",
                    "CREATE CONSTRAINT TRIGGER refuse AFTER INSERT OR UPDATE OR DELETE ON articles \
                     DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()",
                    // Every table a write touches, the write probe's `meta` too.
                    "CREATE CONSTRAINT TRIGGER refuse AFTER INSERT OR UPDATE OR DELETE ON meta \
                     DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()",
                ] {
                    sqlx::query(sql).execute(pool).await.unwrap();
                }
            }
        }
    }

    async fn lift(&self) {
        match self {
            Fault::FullDisk(disk) => disk.free(),
            Fault::RefusingTrigger(pool) => {
                for table in ["articles", "meta"] {
                    sqlx::query(&format!("DROP TRIGGER refuse ON {table}"))
                        .execute(pool)
                        .await
                        .unwrap();
                }
            }
        }
    }
}

async fn a_failed_write_leaves_the_store_writable(server: common::Server, fault: Fault, why: &str) {
    let readyz = |server: &common::Server| {
        let url = format!("{}/readyz", server.base);
        let client = server.client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, _) = call(
        &server,
        "PUT",
        "/api/articles/w1",
        Some(TOKEN),
        &article("w1").to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(readyz(&server).await.0, 200);

    fault.start().await;
    // Large enough that SQLite must grow its files to write it: larger than the write-ahead
    // log the start-up leaves (some 1.3 MB of migrations), whose space a write may reuse once
    // a checkpoint (every 250 ms) has copied it out. At 0.9 MB it fit there whenever the
    // test ran slowly enough for a checkpoint to come first.
    let mut big = article("w2");
    big["content_html"] = json!(format!("<p>{}</p>", "氢".repeat(700_000)));
    let (status, body) = call(
        &server,
        "PUT",
        "/api/articles/w2",
        Some(TOKEN),
        &big.to_string(),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let (status, text) = readyz(&server).await;
    assert_eq!(status, 503, "{text}");
    assert!(
        text.starts_with("not ready: the store cannot write: "),
        "{text}"
    );
    assert!(text.contains(why), "{text}");
    // Reads go on.
    let feed = server.get("/feeds/category/hydrogen.rss").await;
    assert_eq!(feed.status(), 200);
    assert!(feed.text().await.unwrap().contains("article/w1"));
    let metrics = server.text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("feedcast_store_write_failures_total ")
                && l.split(' ').nth(1).is_some_and(|n| n != "0")),
        "{metrics}"
    );

    // The cause gone, the very next writes work, with no restart.
    fault.lift().await;
    let (status, body) = call(
        &server,
        "PUT",
        "/api/articles/w2",
        Some(TOKEN),
        &big.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&server, "DELETE", "/api/articles/w1", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(readyz(&server).await, (200, "ready\n".to_owned()));
    assert_eq!(server.app.store.count().await.unwrap(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_full_disk_sqlite_writes_again_once_there_is_room() {
    let Some(disk) = SmallDisk::mount(8 * 1024 * 1024) else {
        return;
    };
    let url = feedcast::store::DatabaseUrl::Sqlite(disk.path().join("feedcast.db"));
    let server = common::Server::start_at(&url, common::settings(), Some(TOKEN)).await;
    a_failed_write_leaves_the_store_writable(server, Fault::FullDisk(disk), "full").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_refused_commit_postgres_writes_again_once_the_cause_is_gone() {
    let Some(db) = common::TestDb::new(Backend::Postgres).await else {
        return;
    };
    let feedcast::store::DatabaseUrl::Postgres(url) = &db.url else {
        unreachable!()
    };
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let server = common::Server::start_at(&db.url, common::settings(), Some(TOKEN)).await;
    a_failed_write_leaves_the_store_writable(
        server,
        Fault::RefusingTrigger(pool),
        "refused at commit by the test",
    )
    .await;
    drop(db);
}

/// The tests' configuration with these trusted proxies, this many failed authentications a
/// minute and this many connections per address.
fn with_http(
    trusted_proxies: &str,
    failed_auth: u32,
    per_address: u32,
) -> feedcast::config::Settings {
    settings_with(&[
        (
            "trusted_proxies = []",
            &format!("trusted_proxies = {trusted_proxies}"),
        ),
        (
            "max_failed_auth_per_minute = 10",
            &format!("max_failed_auth_per_minute = {failed_auth}"),
        ),
        (
            "max_connections_per_address = 256",
            &format!("max_connections_per_address = {per_address}"),
        ),
    ])
}

/// A PUT of an article from the client a proxy names in `X-Forwarded-For`.
async fn put_from(server: &common::Server, forwarded_for: &str, token: &str) -> reqwest::Response {
    server
        .client
        .put(format!("{}/api/articles/x1", server.base))
        .bearer_auth(token)
        .header("x-forwarded-for", forwarded_for)
        .body(article("x1").to_string())
        .send()
        .await
        .unwrap()
}

const WRONG: &str = "wrong-token-wrong-token-wrong-tok";

#[tokio::test]
async fn failed_authentications_are_limited_per_client_behind_a_trusted_proxy() {
    let settings = with_http(r#"["127.0.0.0/8"]"#, 3, 256);
    let server = admin_server(Backend::Sqlite, settings).await.unwrap();
    for _ in 0..3 {
        assert_eq!(put_from(&server, "203.0.113.7", WRONG).await.status(), 401);
    }
    // That client has had its share: even the right token gets 429 for the rest of the minute.
    let limited = put_from(&server, "203.0.113.7", TOKEN).await;
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Another client behind the same proxy is not held back by it …
    assert_eq!(put_from(&server, "203.0.113.8", WRONG).await.status(), 401);
    assert_eq!(put_from(&server, "203.0.113.8", TOKEN).await.status(), 200);
    // … and a client cannot pose as another by writing the header itself: the proxy's entry,
    // the right-most untrusted one, names it.
    let spoofed = put_from(&server, "203.0.113.8, 203.0.113.7", TOKEN).await;
    assert_eq!(spoofed.status(), 429);
    server.stop().await;
}

#[tokio::test]
async fn without_a_trusted_proxy_forwarded_for_is_ignored() {
    let server = admin_server(Backend::Sqlite, with_http("[]", 3, 256))
        .await
        .unwrap();
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert_eq!(put_from(&server, client, WRONG).await.status(), 401);
    }
    // Every request came from 127.0.0.1, whatever the header said.
    assert_eq!(put_from(&server, "203.0.113.4", TOKEN).await.status(), 429);
    server.stop().await;
}

/// Sends raw bytes as a request and reads the answer.
async fn raw(server: &common::Server, request: &[u8]) -> common::RawResponse {
    let mut stream = connect(server).await;
    stream.write_all(request).await.unwrap();
    read_response(&mut stream).await
}

#[tokio::test]
async fn a_request_needs_one_valid_host_except_in_http_1_0() {
    let server = common::Server::start(Backend::Sqlite).await.unwrap();
    for request in [
        &b"GET /healthz HTTP/1.1\r\n\r\n"[..],
        b"GET /healthz HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: user@a.example\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: a example\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: \r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: a.example,b.example\r\n\r\n",
        b"GET /healthz HTTP/1.0\r\nHost: a.example:99999x\r\n\r\n",
    ] {
        let response = raw(&server, request).await;
        assert_eq!(response.status, 400, "{}", String::from_utf8_lossy(request));
    }
    for request in [
        &b"GET /healthz HTTP/1.0\r\n\r\n"[..],
        b"GET /healthz HTTP/1.1\r\nHost: feeds.example.cn:8080\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    ] {
        let response = raw(&server, request).await;
        assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(request));
    }
    server.stop().await;
}

/// The value of a counter in the metrics `/metrics` serves (0 while it has not been counted),
/// read in process: a test that holds every connection the server allows can still read it.
async fn counter(_server: &common::Server, series: &str) -> u64 {
    let metrics = feedcast::metrics::handle().unwrap().render();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn requests_hyper_refuses_are_counted_like_every_other() {
    let server = common::Server::start(Backend::Sqlite).await.unwrap();
    let series =
        |status| format!("feedcast_http_requests_total{{route=\"other\",status=\"{status}\"}}");
    for (status, request) in [
        (400, b"NOT AN HTTP REQUEST\r\n\r\n".to_vec()),
        (
            431,
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(600_000)
            )
            .into_bytes(),
        ),
        (
            414,
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).into_bytes(),
        ),
    ] {
        let before = counter(&server, &series(status)).await;
        let response = raw(&server, &request).await;
        assert_eq!(response.status, status);
        // hyper answers, then closes the connection and says why; the count follows that.
        let counted = async {
            while counter(&server, &series(status)).await <= before {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), counted)
            .await
            .unwrap_or_else(|_| panic!("{status} not counted"));
    }
    server.stop().await;
}

#[tokio::test]
async fn every_response_is_nosniff_and_pages_carry_a_strict_content_security_policy() {
    let settings = settings_with(&[(
        "iframe_hosts = []",
        r#"iframe_hosts = ["player.video.example.cn"]"#,
    )]);
    let server = common::Server::start_with(Backend::Sqlite, settings)
        .await
        .unwrap();
    for path in [
        "/",
        "/feeds/category/parks.rss",
        "/feeds/nope.rss",
        "/healthz",
        "/feeds.opml",
    ] {
        let r = server.get(path).await;
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    let page = server.get("/").await;
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        page.headers()["referrer-policy"],
        "strict-origin-when-cross-origin"
    );
    let body = page.text().await.unwrap();
    // The page's own stylesheet, by the hash of exactly what it holds.
    let style = body
        .split_once("<style>")
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .unwrap()
        .0;
    use base64::Engine;
    use sha2::Digest;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(style));
    assert_eq!(
        csp,
        format!(
            "default-src 'none'; img-src http: https: data:; style-src 'sha256-{hash}'; \
             frame-src https://player.video.example.cn; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'"
        )
    );
    // A feed's page for people carries it too; the feed itself has no need.
    let html = server
        .client
        .get(format!("{}/feeds/category/parks.rss", server.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(html.headers()["content-security-policy"], csp.as_str());
    let feed = server.get("/feeds/category/parks.rss").await;
    assert!(feed.headers().get("content-security-policy").is_none());
    server.stop().await;
}

#[tokio::test]
async fn a_404_never_echoes_control_characters_or_markup() {
    let server = common::Server::start(Backend::Sqlite).await.unwrap();
    for path in [
        "/feeds/category/%3Cscript%3Ealert(1)%3C%2Fscript%3E.rss",
        "/feeds/region/%1B%5B2J%0D%0AX-Injected:%201.rss",
        "/feeds/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E.atom",
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains(['<', '>', '\u{1b}', '\r']), "{body:?}");
        assert_eq!(body.matches('\n').count(), 1, "{body:?}");
    }
    let r = server.get("/feeds/category/parks.rss?limit=%3Cb%3E").await;
    assert_eq!(r.status(), 400);
    assert!(!r.text().await.unwrap().contains('<'));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_their_answers_cannot_lock_everyone_out() {
    // Four connections in all; each stuck client pipelines requests for a large feed and reads
    // nothing, so its socket fills and stays full.
    let settings = settings_with(&[
        ("max_connections = 10000 ", "max_connections = 4 "),
        ("write_timeout_ms = 30000 ", "write_timeout_ms = 300 "),
    ]);
    let server = common::Server::start_with(Backend::Sqlite, settings)
        .await
        .unwrap();
    server.app.load_demo_if_empty().await.unwrap();
    let request = "GET /feeds/region/320000.rss?limit=100 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
    let mut stuck = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&server).await;
        let request = request.clone();
        stuck.push(tokio::spawn(async move {
            // Writes until the server stops reading (its answers are not being read), or
            // until it closes the connection.
            while stream.write_all(request.as_bytes()).await.is_ok() {}
            stream
        }));
    }
    let closed = "feedcast_http_connections_closed_total{reason=\"write_timeout\"}";
    // A fifth client is served once the stuck ones are closed for not reading.
    let served = async {
        loop {
            let attempt = server
                .client
                .get(format!("{}/healthz", server.base))
                .timeout(std::time::Duration::from_secs(1))
                .send()
                .await;
            if attempt.is_ok_and(|r| r.status() == 200) {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), served)
        .await
        .expect("served once the clients that do not read are cut off");
    assert!(counter(&server, closed).await >= 1);
    for task in stuck {
        task.abort();
    }
    server.stop().await;
}

/// `n` connections, each served one request and kept open.
async fn served_connections(server: &common::Server, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut stream = connect(server).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_response(&mut stream).await.status, 200);
        held.push(stream);
    }
    held
}

#[tokio::test]
async fn one_address_holds_a_bounded_number_of_connections_unless_it_is_a_trusted_proxy() {
    use tokio::io::AsyncReadExt;
    let server = common::Server::start_with(Backend::Sqlite, with_http("[]", 10, 2))
        .await
        .unwrap();
    let mut held = served_connections(&server, 2).await;
    // The third is closed at once, before a byte is read from it.
    let mut third = connect(&server).await;
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), third.read(&mut byte))
        .await
        .expect("closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        counter(
            &server,
            "feedcast_http_connections_closed_total{reason=\"per_address\"}"
        )
        .await
            >= 1
    );
    // Once one is let go, the address may connect again.
    drop(held.pop());
    let again = async {
        loop {
            let mut stream = connect(&server).await;
            if stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .is_ok()
            {
                let mut buf = [0u8; 12];
                if stream.read_exact(&mut buf).await.is_ok() {
                    return buf;
                }
            }
            tokio::task::yield_now().await;
        }
    };
    let head = tokio::time::timeout(std::time::Duration::from_secs(10), again)
        .await
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    server.stop().await;

    // A trusted proxy (here every client is 127.0.0.1) carries many clients: it is exempt.
    let server = common::Server::start_with(Backend::Sqlite, with_http(r#"["127.0.0.1"]"#, 10, 2))
        .await
        .unwrap();
    let held = served_connections(&server, 5).await;
    assert_eq!(held.len(), 5);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_write_failed_probes_until_writes_work_again() {
    let Some(db) = common::TestDb::new(Backend::Postgres).await else {
        return;
    };
    let feedcast::store::DatabaseUrl::Postgres(url) = &db.url else {
        unreachable!()
    };
    let fault = Fault::RefusingTrigger(sqlx::PgPool::connect(url).await.unwrap());
    let settings = common::settings();
    // Probing at every readiness check, rather than every ten seconds, so the test need not wait.
    let store = feedcast::store::Store::open(&db.url, &settings.catalog)
        .await
        .unwrap()
        .with_write_probe_interval(std::time::Duration::ZERO);
    let server = common::Server::serve(settings, store, Some(TOKEN)).await;
    fault.start().await;
    let (status, _) = call(
        &server,
        "PUT",
        "/api/articles/p1",
        Some(TOKEN),
        &article("p1").to_string(),
    )
    .await;
    assert_eq!(status, 503);
    let r = server.get("/readyz").await;
    assert_eq!(r.status(), 503, "the probe's own write is refused too");
    // The cause gone, readiness comes back with no write from outside: a load balancer that
    // took the instance out of rotation sends it none.
    fault.lift().await;
    let r = server.get("/readyz").await;
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "ready\n".to_owned())
    );
    server.stop().await;
    drop(db);
}
