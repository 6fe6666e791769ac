//! More real readers, besides feedparser and Chromium: newsboat (a terminal feed reader) and
//! rss2email (feeds delivered as mail), the Debian packages `.ci/run` installs, read the
//! conformance corpus served in RSS and in Atom. Every item arrives once, with its title
//! exact and, for dates from 1970 to 2100, the article's date to the second; after one item
//! is edited, a second run shows the edit and duplicates nothing.
//!
//! Each client runs with its home, configuration and data in the test's own temporary folder,
//! so nothing of the user's is read or written. Outside CI a missing client skips its test
//! with a message; in CI (`CI` set) it fails it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Datelike, Utc};
use common::{Backend, Server, available, say};
use feedcast::config::Settings;
use feedcast::model::Article;

const CORPUS: &str = include_str!("fixtures/adversarial.ndjson");

/// Dates as the CMS writes them, with microseconds. newsboat 2.21 reads
/// `2021-01-19T09:30:00.123456+08:00` in Atom as 09:30 UTC, eight hours off, so the feeds show
/// whole seconds; cut, not rounded: the last two would round into the next second, one of
/// them into 2101.
const FRACTIONS: &str = r#"
{"id": "frac-cms", "title": "日期：东八区的微秒", "content_html": "<p>正文。</p>", "url": "https://www.kechuang.example.cn/news/frac-cms.html", "published_at": "2021-01-19T09:30:00.123456+08:00", "updated_at": "2021-01-19T10:00:00.654321+08:00", "categories": ["hydrogen"], "region": "320281"}
{"id": "frac-epoch", "title": "日期：纪元的最后一微秒", "content_html": "<p>正文。</p>", "url": "https://www.kechuang.example.cn/news/frac-epoch.html", "published_at": "1970-01-01T00:00:00.999999Z", "categories": ["hydrogen"], "region": "320281"}
{"id": "frac-2100", "title": "日期：2100 年的最后一微秒", "content_html": "<p>正文。</p>", "url": "https://www.kechuang.example.cn/news/frac-2100.html", "published_at": "2100-12-31T23:59:59.999999Z", "categories": ["hydrogen"], "region": "320281"}
"#;

/// The corpus and [`FRACTIONS`], as NDJSON lines.
fn lines() -> Vec<serde_json::Value> {
    CORPUS
        .lines()
        .chain(FRACTIONS.lines())
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One custom feed holds every one of these articles; the readers subscribe to it.
const FEEDS: [&str; 2] = [
    "/feeds/industry.rss?limit=100",
    "/feeds/industry.atom?limit=100",
];

/// The article edited between a reader's two runs, and what the edit makes it.
const EDITED: &str = "adv-21";
fn edit(line: &mut serde_json::Value) {
    line["title"] = "XML 特殊字符（已更正）' \" < > & 全在".into();
    line["content_html"] = "<p>正文已更正。</p>".into();
    line["updated_at"] = "2024-05-19T08:00:00.5+08:00".into();
}

fn item_id(s: &Settings, a: &Article) -> String {
    format!("{}article/{}", s.site.id_prefix, a.id())
}

/// A server holding the corpus and [`FRACTIONS`]; and the articles as validated, by item id.
async fn serving_the_corpus() -> (Server, BTreeMap<String, Article>) {
    let server = Server::start(Backend::Sqlite).await.unwrap();
    let s = server.app.settings.clone();
    let text: String = lines().iter().map(|l| format!("{l}\n")).collect();
    let articles = feedcast::import::parse_ndjson(&text, &s).unwrap();
    server.app.write(&articles).await.unwrap();
    let by_id = articles.into_iter().map(|a| (item_id(&s, &a), a)).collect();
    (server, by_id)
}

/// Edits [`EDITED`] through the import, as the CMS would; returns it as edited.
async fn edit_one(server: &Server) -> Article {
    let mut line = lines().into_iter().find(|l| l["id"] == EDITED).unwrap();
    edit(&mut line);
    let text = format!("{line}\n");
    let edited = feedcast::import::parse_ndjson(&text, &server.app.settings)
        .unwrap()
        .remove(0);
    let imported = server
        .app
        .import_ndjson(std::io::Cursor::new(text.into_bytes()))
        .await
        .unwrap();
    assert_eq!(imported.articles, 1);
    edited
}

/// Whether readers are held to showing a date to the second. Outside these years each has
/// limits of its own (newsboat keeps dates as 32-bit Unix times); there an item must still
/// arrive, and what the reader shows is written down.
fn dated_exactly(t: DateTime<Utc>) -> bool {
    (1970..=2100).contains(&t.year())
}

/// One item as a reader shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    id: String,
    title: String,
    /// Unix seconds.
    date: i64,
}

/// Holds what `reader` shows of `url` to the articles the feed holds: each exactly once, its
/// title exact, its date the article's published time to the second (see [`dated_exactly`]).
fn check(reader: &str, url: &str, shown: &[Shown], articles: &BTreeMap<String, Article>) {
    let ids: Vec<&str> = shown.iter().map(|i| i.id.as_str()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "{reader}, {url}: duplicates in {ids:?}"
    );
    let expected: BTreeSet<&str> = articles.keys().map(String::as_str).collect();
    assert_eq!(unique, expected, "{reader}, {url}: the items");
    for item in shown {
        let a = &articles[&item.id];
        assert_eq!(item.title, a.title(), "{reader}, {url}: {}", a.id());
        let published = a.published_at();
        if dated_exactly(published) {
            assert_eq!(
                item.date,
                published.timestamp(),
                "{reader}, {url}: {} published {published}, shown {}",
                a.id(),
                DateTime::from_timestamp(item.date, 0)
                    .map_or(item.date.to_string(), |d| d.to_string())
            );
        } else {
            say(&format!(
                "{reader}, {url}: {} published {published} is shown as {} ({})",
                a.id(),
                item.date,
                DateTime::from_timestamp(item.date, 0).map_or("-".into(), |d| d.to_string())
            ));
        }
    }
}

/// An environment with nothing of the user's: home and XDG folders inside `dir`, a UTF-8
/// locale (readers convert text to the locale's character set).
fn sealed(command: &mut Command, dir: &Path) {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("LANG", "C.UTF-8")
        .current_dir(dir);
}

/// Runs a client to its end, failing the test with what it said if it fails.
async fn run(mut command: Command) -> std::process::Output {
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// newsboat subscribed to one feed, with its URL list, configuration and cache in a folder of
/// its own. One feed per cache: newsboat keys items by guid across all its feeds, and the
/// RSS and Atom documents carry the same ids.
struct Newsboat {
    dir: tempfile::TempDir,
    url: String,
}

impl Newsboat {
    fn subscribed_to(url: String) -> Newsboat {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("urls"), format!("{url}\n")).unwrap();
        std::fs::write(dir.path().join("config"), "").unwrap();
        Newsboat { dir, url }
    }

    /// `newsboat -x reload`, then the items its cache holds for the feed.
    async fn reload(&self) -> Vec<Shown> {
        let dir = self.dir.path();
        let mut command = Command::new("newsboat");
        sealed(&mut command, dir);
        command
            .arg("-u")
            .arg(dir.join("urls"))
            .arg("-c")
            .arg(dir.join("cache.db"))
            .arg("-C")
            .arg(dir.join("config"))
            .args(["-x", "reload"]);
        let out = run(command).await;
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        // The cache is SQLite: what the reader shows is what it stored.
        use sqlx::Connection;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("cache.db"))
            .read_only(true);
        let mut cache = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT guid, title, pubDate FROM rss_item WHERE feedurl = ? AND deleted = 0",
        )
        .bind(&self.url)
        .fetch_all(&mut cache)
        .await
        .unwrap();
        cache.close().await.unwrap();
        assert!(
            !rows.is_empty(),
            "newsboat stored nothing for {}: {said}",
            self.url
        );
        rows.into_iter()
            .map(|(id, title, date)| Shown { id, title, date })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newsboat_shows_every_item_once_with_its_title_and_date_and_takes_an_edit() {
    if !available("newsboat", &["--version"]) {
        return;
    }
    let (server, mut articles) = serving_the_corpus().await;
    let readers: Vec<Newsboat> = FEEDS
        .iter()
        .map(|feed| Newsboat::subscribed_to(format!("{}{feed}", server.base)))
        .collect();
    for reader in &readers {
        check("newsboat", &reader.url, &reader.reload().await, &articles);
    }

    let edited = edit_one(&server).await;
    let id = item_id(&server.app.settings, &edited);
    articles.insert(id.clone(), edited);
    for reader in &readers {
        // The edited item keeps its place: its title changes, nothing is added.
        let shown = reader.reload().await;
        check("newsboat, after an edit", &reader.url, &shown, &articles);
        let item = shown.iter().find(|i| i.id == id).unwrap();
        assert_eq!(item.title, articles[&id].title());
    }
    server.stop().await;
}
