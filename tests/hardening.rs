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
            eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
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
                sqlx::query("DROP TRIGGER refuse ON articles")
                    .execute(pool)
                    .await
                    .unwrap();
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
    // Large enough that SQLite must grow its files to write it.
    let mut big = article("w2");
    big["content_html"] = json!(format!("<p>{}</p>", "氢".repeat(300_000)));
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
