//! Takedowns announced to readers (RFC 6721): for `tombstones.days` the feeds that held a
//! taken-down article, and its month's archive, say in Atom and JSON Feed that the item is gone,
//! naming it by the id it had and nothing of its text; storing the id again takes that back. A
//! reader that ignores tombstones still reads a valid feed. On PostgreSQL the CMS's own `DELETE`
//! and `INSERT` in SQL do the same as the admin API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::settings_with;
use common::{Backend, Server, TOKEN, admin_server, available, call, python_json, settings};
use feedcast::store::DatabaseUrl;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use serde_json::{Value, json};

const TOMBSTONES_NS: &str = "http://purl.org/atompub/tombstones/1.0";

/// The article taken down: every piece of its text is unique, so that finding any of it in a
/// document after the takedown means the document leaked it.
const TITLE: &str = "江阴加氢站撤稿测试标题";
const SUMMARY: &str = "撤稿测试摘要独有文字";
const CONTENT: &str = "撤稿测试正文独有段落";

fn taken(id: &str, region: &str) -> Value {
    json!({
        "id": id, "title": format!("{TITLE}{id}"), "summary": format!("{SUMMARY}{id}"),
        "content_html": format!("<p>{CONTENT}{id}</p>"),
        "url": format!("https://www.kechuang.example.cn/news/{id}.html"),
        "published_at": "2024-05-18T09:30:00+08:00", "categories": ["hydrogen"], "region": region
    })
}

fn kept(id: &str) -> Value {
    json!({
        "id": id, "title": "江阴氢能产业园开工", "content_html": "<p>正文。</p>",
        "url": format!("https://www.kechuang.example.cn/news/{id}.html"),
        "published_at": "2024-05-17T09:30:00+08:00", "categories": ["hydrogen"], "region": "320281"
    })
}

/// What a test reads of an Atom document.
#[derive(Debug, Default)]
struct Atom {
    /// The entries' atom:ids.
    entries: Vec<String>,
    /// The `at:deleted-entry` elements, in document order.
    deleted: Vec<DeletedEntry>,
}

#[derive(Debug)]
struct DeletedEntry {
    reference: String,
    when: String,
    /// Any text or element inside it.
    inside: String,
}

/// Reads an Atom document with quick-xml, resolving namespaces as a reader does.
fn atom(body: &str) -> Atom {
    let mut reader = NsReader::from_str(body);
    let mut doc = Atom::default();
    let mut path: Vec<String> = Vec::new();
    let mut in_deleted = false;
    loop {
        let (ns, event) = reader.read_resolved_event().unwrap();
        let is_tombstone_ns =
            matches!(&ns, ResolveResult::Bound(n) if n.as_ref() == TOMBSTONES_NS.as_bytes());
        match &event {
            Event::Start(e) | Event::Empty(e) => {
                let local = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
                if in_deleted {
                    doc.deleted.last_mut().unwrap().inside += &format!("<{local}>");
                }
                if is_tombstone_ns && local == "deleted-entry" {
                    let attribute = |name: &str| {
                        let a = e.try_get_attribute(name).unwrap().expect(name);
                        a.unescape_value().unwrap().into_owned()
                    };
                    doc.deleted.push(DeletedEntry {
                        reference: attribute("ref"),
                        when: attribute("when"),
                        inside: String::new(),
                    });
                    in_deleted = matches!(event, Event::Start(_));
                }
                if matches!(event, Event::Start(_)) {
                    path.push(local);
                }
            }
            Event::End(_) => {
                let closed = path.pop();
                in_deleted &= closed.as_deref() != Some("deleted-entry");
            }
            Event::Text(t) => {
                let text = t.unescape().unwrap();
                if in_deleted {
                    doc.deleted.last_mut().unwrap().inside += &text;
                }
                if path == ["feed", "entry", "id"] {
                    doc.entries.push(text.into_owned());
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    doc
}

/// The `_deleted` items of a JSON Feed document as (id, when), checking that each says nothing
/// else and that the extension points to its description.
fn json_deleted(body: &str) -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(body).unwrap();
    let Some(deleted) = doc.get("_deleted") else {
        return Vec::new();
    };
    assert_eq!(deleted["about"], feedcast::README_URL, "{deleted}");
    let keys: Vec<&String> = deleted.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["about", "items"]);
    let items = deleted["items"].as_array().unwrap();
    assert!(!items.is_empty(), "an empty _deleted is left out");
    items
        .iter()
        .map(|item| {
            let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                ["id", "when"],
                "a tombstone says nothing else: {item}"
            );
            (
                item["id"].as_str().unwrap().to_owned(),
                item["when"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn json_items(body: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(body).unwrap();
    doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `when` is an RFC 3339 time in whole seconds, within the takedown (a second either side: the
/// store's clock is read in whole seconds).
fn assert_when(when: &str, from: DateTime<Utc>, to: DateTime<Utc>) {
    let t = DateTime::parse_from_rfc3339(when).unwrap().to_utc();
    assert!(!when.contains('.'), "whole seconds: {when}");
    assert_eq!(t.timestamp_subsec_nanos(), 0, "{when}");
    let slack = chrono::TimeDelta::seconds(1);
    assert!(
        t >= from - slack && t <= to + slack,
        "{when} not in {from}..{to}"
    );
}

/// Runs SQL on the server's store as another program would: the CMS on PostgreSQL, an operator
/// on SQLite.
async fn sql(server: &Server, statement: &str) {
    match &server.db.as_ref().unwrap().url {
        DatabaseUrl::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap();
            pool.close().await;
        }
        DatabaseUrl::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

async fn count(server: &Server, query: &str) -> i64 {
    match &server.db.as_ref().unwrap().url {
        DatabaseUrl::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            let n = sqlx::query_scalar(query).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
        DatabaseUrl::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let n = sqlx::query_scalar(query).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
    }
}

/// Runs a write of the CMS's in SQL and waits until the server has heard of its `rows`.
async fn cms(server: &Server, statement: &str, rows: u64) {
    let seen = *server.app.heard().borrow();
    sql(server, statement).await;
    server
        .hears(seen + rows, Duration::from_secs(10), statement)
        .await;
}

async fn put(server: &Server, article: &Value) {
    let id = article["id"].as_str().unwrap();
    let path = format!("/api/articles/{id}");
    let (status, body) = call(server, "PUT", &path, Some(TOKEN), &article.to_string()).await;
    assert_eq!(status, 200, "{body}");
}

async fn delete(server: &Server, id: &str) {
    let path = format!("/api/articles/{id}");
    let (status, body) = call(server, "DELETE", &path, Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
}

/// Takes an article down: through the admin API on SQLite, by the CMS's `DELETE` on PostgreSQL.
async fn take_down(server: &Server, backend: Backend, id: &str) {
    match backend {
        Backend::Sqlite => delete(server, id).await,
        Backend::Postgres => {
            cms(
                server,
                &format!("DELETE FROM articles WHERE id = '{id}'"),
                1,
            )
            .await
        }
    }
}

/// Stores an article again: through the admin API on SQLite, by the CMS's `INSERT` on
/// PostgreSQL.
async fn store_again(server: &Server, backend: Backend, article: &Value) {
    match backend {
        Backend::Sqlite => put(server, article).await,
        Backend::Postgres => {
            let published = DateTime::parse_from_rfc3339(article["published_at"].as_str().unwrap())
                .unwrap()
                .timestamp_micros();
            let text = |key: &str| article[key].as_str().unwrap().replace('\'', "''");
            let statement = format!(
                "INSERT INTO articles (id, title, summary, content_html, url, published_at, \
                 categories, region, language) VALUES ('{}', '{}', '{}', '{}', '{}', {published}, \
                 'hydrogen', '{}', 'zh-CN')",
                text("id"),
                text("title"),
                text("summary"),
                text("content_html"),
                text("url"),
                text("region"),
            );
            cms(server, &statement, 1).await;
        }
    }
}

/// The documents of every feed that held the taken-down article h1: the newest items (with
/// the default item count and another), and the archive of its month.
fn holding_documents(feed: &str) -> [String; 3] {
    [
        format!("/feeds/{feed}"),
        format!("/feeds/{feed}?limit=1"),
        format!("/feeds/{feed}/archive/2024-05"),
    ]
}

/// A document of [`holding_documents`] in a format: `/feeds/x?limit=1` as `/feeds/x.atom?limit=1`.
fn in_format(path: &str, ext: &str) -> String {
    match path.split_once('?') {
        Some((stem, query)) => format!("{stem}.{ext}?{query}"),
        None => format!("{path}.{ext}"),
    }
}

const FEEDS_OF_H1: [&str; 4] = [
    "region/320000",
    "region/320281",
    "category/hydrogen",
    "jiangsu-hydrogen",
];

const FEEDPARSER: &str = r#"
import json, sys
import feedparser
out = {}
for url in sys.argv[1:]:
    d = feedparser.parse(url)
    out[url] = {
        "bozo": bool(d.bozo),
        "error": str(d.get("bozo_exception", "")),
        "version": d.version,
        "entries": [e.get("id") for e in d.entries],
    }
print(json.dumps(out))
"#;

async fn tombstones_tell_readers_what_was_taken_down(backend: Backend) {
    let Some(server) = admin_server(backend, settings()).await else {
        return;
    };
    let h1 = taken("h1", "320281");
    // In the hydrogen category too, but not in Jiangsu: not in the custom feed of both.
    let x1 = taken("x1", "310115");
    for article in [&h1, &x1, &kept("k1")] {
        put(&server, article).await;
    }
    // The ids the entries had, as readers hold them.
    let before = atom(&server.text("/feeds/region/320000.atom").await);
    let h1_id = before
        .entries
        .iter()
        .find(|id| id.ends_with("article/h1"))
        .unwrap()
        .clone();
    let json_before = json_items(&server.text("/feeds/region/320000.json").await);
    assert!(
        json_before.contains(&h1_id),
        "JSON Feed names the item alike"
    );
    let x1_id = h1_id.replace("article/h1", "article/x1");
    assert!(
        atom(&server.text("/feeds/category/hydrogen.atom").await)
            .entries
            .contains(&x1_id)
    );
    for path in holding_documents("region/320000") {
        assert!(
            atom(&server.text(&in_format(&path, "atom")).await)
                .deleted
                .is_empty()
        );
    }

    let from = Utc::now();
    take_down(&server, backend, "h1").await;
    take_down(&server, backend, "x1").await;
    let to = Utc::now();
    // Taking down what is not there leaves the tombstone as it was.
    let (status, _) = call(&server, "DELETE", "/api/articles/h1", Some(TOKEN), "").await;
    assert_eq!(status, 404);
    let stored = "SELECT COUNT(*) FROM tombstone_index WHERE article_id = 'h1'";
    assert_eq!(
        count(&server, stored).await,
        4,
        "its category and its region's lineage"
    );

    let mut feedparser_urls = Vec::new();
    for feed in FEEDS_OF_H1 {
        for path in holding_documents(feed) {
            let url = |ext: &str| in_format(&path, ext);
            let body = server.text(&url("atom")).await;
            let doc = atom(&body);
            assert!(!doc.entries.contains(&h1_id), "{path}: the entry is gone");
            let h1_tombstones: Vec<&DeletedEntry> = doc
                .deleted
                .iter()
                .filter(|d| d.reference == h1_id)
                .collect();
            assert_eq!(h1_tombstones.len(), 1, "{path}: {body}");
            let tombstone = h1_tombstones[0];
            assert_eq!(tombstone.inside, "", "{path}: an empty element");
            assert_when(&tombstone.when, from, to);
            // The custom feed is hydrogen AND Jiangsu: x1 was never in it.
            let x1_shown = doc.deleted.iter().any(|d| d.reference == x1_id);
            assert_eq!(
                x1_shown,
                feed == "category/hydrogen",
                "{path}: x1's tombstone only where x1 was"
            );
            assert!(
                body.contains(&format!("xmlns:at=\"{TOMBSTONES_NS}\"")),
                "{path}"
            );
            for text in [TITLE, SUMMARY, CONTENT] {
                assert!(!body.contains(text), "{path}: nothing of the item's text");
            }

            let body = server.text(&url("json")).await;
            assert!(!json_items(&body).contains(&h1_id), "{path}");
            let deleted = json_deleted(&body);
            let h1_json: Vec<&(String, String)> =
                deleted.iter().filter(|(id, _)| *id == h1_id).collect();
            assert_eq!(h1_json.len(), 1, "{path}: {body}");
            assert_eq!(
                h1_json[0].1, tombstone.when,
                "{path}: the same time in both"
            );
            for text in [TITLE, SUMMARY, CONTENT] {
                assert!(!body.contains(text), "{path}: nothing of the item's text");
            }

            // RSS has no standard tombstone: it gets none, and the item is simply gone.
            let body = server.text(&url("rss")).await;
            assert!(
                !body.contains("tombstones") && !body.contains("deleted"),
                "{path}"
            );
            assert!(!body.contains("article/h1"), "{path}");

            for ext in ["atom", "rss"] {
                feedparser_urls.push(format!("{}{}", server.base, url(ext)));
            }
            // A reader that ignores the extension reads the feed as before.
            for ext in ["atom", "json"] {
                let body = server.text(&url(ext)).await;
                let parsed = feed_rs::parser::parse(body.as_bytes())
                    .unwrap_or_else(|e| panic!("{path}.{ext}: {e}"));
                assert!(parsed.entries.iter().all(|e| e.id != h1_id), "{path}.{ext}");
            }
        }
    }
    // Feeds and months that never held it carry no tombstone of it.
    for path in [
        "/feeds/category/materials.atom",
        "/feeds/region/320500.atom",
        "/feeds/region/320000/archive/2024-04.atom",
    ] {
        let r = server.get(path).await;
        if r.status() == 200 {
            assert!(atom(&r.text().await.unwrap()).deleted.is_empty(), "{path}");
        }
    }
    for path in [
        "/feeds/category/materials.json",
        "/feeds/region/320500.json",
    ] {
        assert!(json_deleted(&server.text(path).await).is_empty(), "{path}");
    }

    // feedparser reads every document with a tombstone as a valid feed. (feedparser 6.0, the
    // current release, has no JSON Feed support: feed-rs read those above.)
    if available("python3", &["-c", "import feedparser"]) {
        let results: BTreeMap<String, Value> =
            serde_json::from_value(python_json(FEEDPARSER, feedparser_urls.clone()).await).unwrap();
        for url in &feedparser_urls {
            let r = &results[url];
            assert_eq!(r["bozo"], false, "{url}: {}", r["error"]);
            assert!(
                r["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|e| *e != json!(h1_id)),
                "{url}"
            );
        }
    }

    // Storing the id again takes its tombstone back, wherever it was shown.
    store_again(&server, backend, &h1).await;
    for feed in FEEDS_OF_H1 {
        for path in holding_documents(feed) {
            let doc = atom(&server.text(&in_format(&path, "atom")).await);
            assert!(doc.deleted.iter().all(|d| d.reference != h1_id), "{path}");
            let json = server.text(&in_format(&path, "json")).await;
            assert!(
                json_deleted(&json).iter().all(|(id, _)| *id != h1_id),
                "{path}"
            );
            if !path.contains('?') {
                assert!(doc.entries.contains(&h1_id), "{path}: the entry is back");
            }
        }
    }
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM tombstones WHERE article_id = 'h1'"
        )
        .await,
        0
    );

    // A tombstone older than tombstones.days (30) is shown no more: x1's, aged in SQL (and
    // read in a document not yet built, since nothing tells feedcast of that write).
    let shown = "/feeds/category/hydrogen.atom?limit=5";
    assert!(
        atom(&server.text(shown).await)
            .deleted
            .iter()
            .any(|d| d.reference == x1_id)
    );
    let aged = (Utc::now() - chrono::TimeDelta::days(31)).timestamp_micros();
    for table in ["tombstones", "tombstone_index"] {
        sql(
            &server,
            &format!("UPDATE {table} SET deleted_at = {aged} WHERE article_id = 'x1'"),
        )
        .await;
    }
    for path in [
        "/feeds/category/hydrogen.atom?limit=6",
        "/feeds/category/hydrogen.json?limit=6",
    ] {
        let body = server.text(path).await;
        assert!(!body.contains("article/x1"), "{path}: {body}");
    }
    // Its month held nothing else there, and now announces nothing: it has no archive left.
    let emptied = "/feeds/region/310000/archive/2024-05.atom";
    assert_eq!(server.get(emptied).await.status(), 404, "{emptied}");
    // The next takedown forgets it for good.
    delete(&server, "k1").await;
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM tombstones WHERE article_id = 'x1'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM tombstones WHERE article_id = 'k1'"
        )
        .await,
        1
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_on_sqlite() {
    tombstones_tell_readers_what_was_taken_down(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_on_postgres_follow_the_cms_in_sql() {
    tombstones_tell_readers_what_was_taken_down(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_carries_the_newest_hundred_tombstones_at_most() {
    let server = admin_server(Backend::Sqlite, settings()).await.unwrap();
    let ids: Vec<String> = (0..105).map(|i| format!("m{i:03}")).collect();
    let batch: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({
                "id": id, "title": format!("新材料稿件{id}"), "content_html": "<p>正文。</p>",
                "url": format!("https://www.kechuang.example.cn/news/{id}.html"),
                "published_at": format!("2024-05-{:02}T09:30:00+08:00", 1 + i % 28),
                "categories": ["materials"]
            })
        })
        .collect();
    let (status, body) = call(
        &server,
        "POST",
        "/api/articles",
        Some(TOKEN),
        &Value::from(batch).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for id in &ids {
        delete(&server, id).await;
    }
    // Newest takedown first: the last hundred taken down.
    let newest: Vec<String> = ids
        .iter()
        .rev()
        .take(100)
        .map(|id| format!("tag:kechuang.example.cn,2021:article/{id}"))
        .collect();
    for path in [
        "/feeds/category/materials",
        "/feeds/category/materials/archive/2024-05",
    ] {
        let doc = atom(&server.text(&format!("{path}.atom")).await);
        let refs: Vec<String> = doc.deleted.iter().map(|d| d.reference.clone()).collect();
        assert_eq!(refs, newest, "{path}.atom");
        let json = json_deleted(&server.text(&format!("{path}.json")).await);
        let ids: Vec<String> = json.into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, newest, "{path}.json");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tombstone_is_shown_with_days_zero() {
    let settings = settings_with(&[("days = 30", "days = 0")]);
    let server = admin_server(Backend::Sqlite, settings).await.unwrap();
    put(&server, &taken("h1", "320281")).await;
    delete(&server, "h1").await;
    for path in holding_documents("region/320000") {
        // With no tombstone to announce, the month of the only item has no archive left.
        if path.contains("/archive/") {
            for format in ["atom", "json"] {
                let r = server.get(&in_format(&path, format)).await;
                assert_eq!(r.status(), 404, "{path}");
            }
            continue;
        }
        let body = server.text(&in_format(&path, "atom")).await;
        assert!(
            atom(&body).deleted.is_empty() && !body.contains(TOMBSTONES_NS),
            "{path}"
        );
        let body = server.text(&in_format(&path, "json")).await;
        assert!(json_deleted(&body).is_empty(), "{path}");
    }
    server.stop().await;
}
