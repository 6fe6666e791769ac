//! Feed URLs that never break: a renamed category, region or custom feed keeps answering at
//! its old URLs (301 to the new ones, in every format, archives and `?limit` included), keeps
//! its atom:id, and takes articles sent or stored under its old name; a feed removed for good
//! answers 410. And archives as RFC 5005 says: only a month that has ended is `fh:archive`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Datelike, TimeZone, Utc};
use common::{Backend, Server, TOKEN, TestDb, admin_server, call, settings_with};
use feedcast::config::Settings;
use feedcast::store::{DatabaseUrl, Store};
use serde_json::json;

/// Where the fixture's self links point (`site.base_url`).
const BASE_URL: &str = "http://127.0.0.1:8080";

/// The tests' configuration after renames: category `h2` became `hydrogen` (it was `fuel`
/// before that), region `320299` became `320281`, custom feed `jiangsu-h2` became
/// `jiangsu-hydrogen`; and two feeds are gone for good.
fn renamed() -> Settings {
    settings_with(&[
        (
            "slug = \"hydrogen\"\nname = \"氢能科技\"",
            "slug = \"hydrogen\"\nname = \"氢能科技\"\nformerly = [\"fuel\", \"h2\"]",
        ),
        (
            "code = \"320281\"\nname = \"江阴市\"",
            "code = \"320281\"\nname = \"江阴市\"\nformerly = [\"320299\"]",
        ),
        (
            "slug = \"jiangsu-hydrogen\"",
            "slug = \"jiangsu-hydrogen\"\nformerly = [\"jiangsu-h2\"]",
        ),
        (
            "# Custom feeds:",
            "[[gone]]\npath = \"category/events\"\n\n[[gone]]\npath = \"old-digest\"\n\n# Custom feeds:",
        ),
    ])
}

/// The configuration before the renames: `h2` and `320299` are live names.
fn before_renames() -> Settings {
    settings_with(&[
        ("slug = \"hydrogen\"", "slug = \"h2\""),
        ("categories = [\"hydrogen\"]", "categories = [\"h2\"]"),
        (
            "categories = [\"hydrogen\", \"materials\"]",
            "categories = [\"h2\", \"materials\"]",
        ),
        ("code = \"320281\"", "code = \"320299\""),
    ])
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn hydrogen_article(
    id: &str,
    categories: &[&str],
    region: &str,
    published: &str,
) -> serde_json::Value {
    json!({
        "id": id, "title": format!("氢能报道 {id}"), "content_html": "<p>正文</p>",
        "url": format!("https://www.kechuang.example.cn/news/{id}.html"),
        "published_at": published, "categories": categories, "region": region
    })
}

#[tokio::test]
async fn old_urls_answer_301_to_the_new_ones_in_every_format_with_the_query_kept() {
    let server = Server::start_with(Backend::Sqlite, renamed())
        .await
        .unwrap();
    let client = no_redirects();
    for (old, new) in [
        ("category/fuel", "category/hydrogen"),
        ("category/h2", "category/hydrogen"),
        ("region/320299", "region/320281"),
        ("jiangsu-h2", "jiangsu-hydrogen"),
    ] {
        for format in ["rss", "atom", "json", "html"] {
            for (asked, query) in [
                (format!("{old}.{format}"), ""),
                (format!("{old}.{format}"), "?limit=5&utm_source=reader"),
                (format!("{old}/archive/2024-05.{format}"), ""),
            ] {
                let r = client
                    .get(format!("{}/feeds/{asked}{query}", server.base))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 301, "{asked}{query}");
                let moved = asked.replacen(old, new, 1);
                assert_eq!(
                    header(&r, "location"),
                    format!("{BASE_URL}/feeds/{moved}{query}"),
                    "{asked}{query}"
                );
                assert_eq!(header(&r, "cache-control"), "public, max-age=86400");
            }
        }
    }
    // A limit out of range is the new URL's to refuse: the redirect keeps what was asked.
    let r = client
        .get(format!("{}/feeds/category/h2.rss?limit=0", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert!(header(&r, "location").ends_with("/feeds/category/hydrogen.rss?limit=0"));
    // An old name with a month that is no month, or a format that is none, is still a 404.
    for path in ["category/h2/archive/2024-13.rss", "category/h2.xml"] {
        let r = client
            .get(format!("{}/feeds/{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_renamed_feed_keeps_the_atom_id_of_its_oldest_name() {
    let server = Server::start_with(Backend::Sqlite, renamed())
        .await
        .unwrap();
    let id_of = |body: String| {
        atom_syndication::Feed::read_from(body.as_bytes())
            .unwrap()
            .id()
            .to_owned()
    };
    let prefix = &server.app.settings.site.id_prefix;
    for (path, oldest) in [
        ("category/hydrogen", "category/fuel"),
        ("region/320281", "region/320299"),
        ("jiangsu-hydrogen", "jiangsu-h2"),
        // Never renamed: its own name.
        ("category/parks", "category/parks"),
    ] {
        let id = id_of(server.text(&format!("/feeds/{path}.atom")).await);
        assert_eq!(id, format!("{prefix}feed/{oldest}"), "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn feeds_removed_for_good_answer_410_in_every_format() {
    let server = Server::start_with(Backend::Sqlite, renamed())
        .await
        .unwrap();
    for path in ["category/events", "old-digest"] {
        for format in ["rss", "atom", "json", "html"] {
            for asked in [
                format!("/feeds/{path}.{format}"),
                format!("/feeds/{path}.{format}?limit=5"),
                format!("/feeds/{path}/archive/2024-05.{format}"),
            ] {
                let r = server.get(&asked).await;
                assert_eq!(r.status(), 410, "{asked}");
                assert_eq!(header(&r, "cache-control"), "public, max-age=86400");
                assert!(r.text().await.unwrap().contains("removed for good"));
            }
        }
    }
    // Whatever was never declared is still a plain 404.
    assert_eq!(server.get("/feeds/category/never.rss").await.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn an_article_sent_under_a_former_category_and_region_lands_in_the_current_feeds() {
    let server = admin_server(Backend::Sqlite, renamed()).await.unwrap();
    let body = hydrogen_article(
        "old-names",
        &["h2", "parks"],
        "320299",
        "2024-05-18T09:30:00+08:00",
    );
    let (status, answer) = call(
        &server,
        "PUT",
        "/api/articles/old-names",
        Some(TOKEN),
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    for path in [
        "/feeds/category/hydrogen.atom",
        "/feeds/region/320281.atom",
        "/feeds/region/320000.atom",
        "/feeds/jiangsu-hydrogen.atom",
    ] {
        let feed = atom_syndication::Feed::read_from(server.text(path).await.as_bytes()).unwrap();
        let entry = feed
            .entries()
            .iter()
            .find(|e| e.id().ends_with("article/old-names"))
            .unwrap_or_else(|| panic!("{path} holds the article"));
        let terms: Vec<&str> = entry.categories().iter().map(|c| c.term()).collect();
        assert!(
            terms.contains(&"hydrogen") && !terms.contains(&"h2"),
            "{path}: {terms:?}"
        );
    }
    server.stop().await;
}

/// Articles stored while `h2` and `320299` were live names; then feedcast starts with them
/// renamed: the rows are rewritten and refiled at start, once.
async fn rows_under_former_names_are_refiled_at_start(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let old = before_renames();
    let store = Store::open(&db.url, &old.catalog).await.unwrap();
    let stored = |id: &str, categories: &[&str], region: &str| {
        let input: feedcast::import::ArticleInput = serde_json::from_value(hydrogen_article(
            id,
            categories,
            region,
            "2024-05-18T09:30:00+08:00",
        ))
        .unwrap();
        input.validate(&old).unwrap()
    };
    store
        .upsert(
            &[
                stored("both-old", &["h2", "parks"], "320299"),
                stored("region-old", &["materials"], "320299"),
                stored("untouched", &["parks"], "320000"),
            ],
            &old.catalog,
        )
        .await
        .unwrap();
    store.close().await;

    // On PostgreSQL the CMS also wrote a row in SQL under the old name: it stays unsanitized.
    let cms = match &db.url {
        DatabaseUrl::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query(
                "INSERT INTO articles (id, title, summary, content_html, url, published_at, \
                 categories, region, language) VALUES ('cms-old', 'CMS 的氢能报道', '', \
                 '<p onclick=\"x()\">正文</p>', 'https://www.kechuang.example.cn/news/cms.html', \
                 1716000000000000, 'h2', NULL, 'zh-CN')",
            )
            .execute(&pool)
            .await
            .unwrap();
            Some(pool)
        }
        DatabaseUrl::Sqlite(_) => None,
    };

    let url = db.url.clone();
    let server = Server::start_on(db, renamed()).await;
    let ids = |body: String| -> Vec<String> {
        atom_syndication::Feed::read_from(body.as_bytes())
            .unwrap()
            .entries()
            .iter()
            .map(|e| e.id().rsplit('/').next().unwrap().to_owned())
            .collect()
    };
    let hydrogen = ids(server.text("/feeds/category/hydrogen.atom").await);
    assert!(hydrogen.contains(&"both-old".to_owned()), "{hydrogen:?}");
    let county = ids(server.text("/feeds/region/320281.atom").await);
    assert!(
        county.contains(&"both-old".to_owned()) && county.contains(&"region-old".to_owned()),
        "{county:?}"
    );
    let province = ids(server.text("/feeds/region/320000.atom").await);
    assert_eq!(province.len(), 3, "{province:?}");
    if let Some(pool) = &cms {
        assert!(hydrogen.contains(&"cms-old".to_owned()), "{hydrogen:?}");
        let (categories, sanitized): (String, bool) =
            sqlx::query_as("SELECT categories, sanitized FROM articles WHERE id = 'cms-old'")
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(categories, "hydrogen");
        assert!(!sanitized, "a CMS row is never taken for feedcast's own");
        let (sanitized,): (bool,) =
            sqlx::query_as("SELECT sanitized FROM articles WHERE id = 'both-old'")
                .fetch_one(pool)
                .await
                .unwrap();
        assert!(sanitized, "feedcast's own row stays its own");
        let body = server.text("/feeds/category/hydrogen.atom").await;
        assert!(
            !body.contains("onclick"),
            "the CMS row is still sanitized on read"
        );
    }
    let db = server.stop().await.unwrap();

    // A second start finds nothing left to do; the feeds are as they were.
    let store = Store::open(&url, &renamed().catalog).await.unwrap();
    let server = Server::serve(renamed(), store, None).await;
    let again = ids(server.text("/feeds/category/hydrogen.atom").await);
    assert_eq!(again, hydrogen);
    server.stop().await;
    if let Some(pool) = cms {
        pool.close().await;
    }
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refile_at_start_on_sqlite() {
    rows_under_former_names_are_refiled_at_start(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refile_at_start_on_postgres() {
    rows_under_former_names_are_refiled_at_start(Backend::Postgres).await;
}

/// On PostgreSQL, a replica already running hears of another's refile. The first replica runs
/// the configuration from before the renames (a rolling deploy): the CMS writes a row under
/// `h2`, live there; a replica starting with `h2` renamed rewrites it, and the first one's cached
/// `h2` feed no longer holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refile_at_one_replicas_start_reaches_every_replicas_cache() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let DatabaseUrl::Postgres(url) = db.url.clone() else {
        unreachable!()
    };
    let first = Server::start_on(db, before_renames()).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let heard = *first.app.heard().borrow();
    sqlx::query(
        "INSERT INTO articles (id, title, summary, content_html, url, published_at, categories, \
         region, language) VALUES ('cms-late', 'CMS 迟到的报道', '', '<p>正文</p>', \
         'https://www.kechuang.example.cn/news/late.html', 1716000000000000, 'h2', NULL, 'zh-CN')",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    first
        .hears(heard + 1, std::time::Duration::from_secs(10), "the insert")
        .await;
    let before = first.text("/feeds/category/h2.atom").await;
    assert!(before.contains("article/cms-late"), "{before}");
    let heard = *first.app.heard().borrow();
    let second = Server::start_at(&DatabaseUrl::Postgres(url), renamed(), None).await;
    // The row's rewrite and the refile: two entries of the change log at least.
    first
        .hears(heard + 2, std::time::Duration::from_secs(10), "the refile")
        .await;
    let after = first.text("/feeds/category/h2.atom").await;
    assert!(!after.contains("article/cms-late"), "{after}");
    let body = second.text("/feeds/category/hydrogen.atom").await;
    assert!(body.contains("article/cms-late"), "{body}");
    second.stop().await;
    first.stop().await;
}

/// Regression: on PostgreSQL, a row the CMS wrote in SQL under a former category slug was filed
/// under the old bucket, and one under a former region code under no region, until a restart
/// refiled it. The database now maps former names as it stores the row: the current feeds show
/// it as soon as the change is heard, and the row carries the current names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_cms_writes_under_former_names_reaches_the_current_feeds_without_a_restart() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let DatabaseUrl::Postgres(url) = db.url.clone() else {
        unreachable!()
    };
    let server = Server::start_on(db, renamed()).await;
    let current = [
        "/feeds/category/hydrogen.atom",
        "/feeds/region/320281.atom",
        "/feeds/region/320000.atom",
        "/feeds/jiangsu-hydrogen.atom",
    ];
    // Cached first: the write must reach them through the change notification.
    for path in current {
        assert!(!server.text(path).await.contains("article/cms-"), "{path}");
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let heard = *server.app.heard().borrow();
    sqlx::query(
        "INSERT INTO articles (id, title, summary, content_html, url, published_at, categories, \
         region, language) VALUES \
         ('cms-h2', 'CMS 旧分类', '', '<p>正文</p>', \
          'https://www.kechuang.example.cn/news/cms-h2.html', 1716000000000000, \
          'fuel parks  h2', '320299', 'zh-CN'), \
         ('cms-parks', 'CMS 旧地区', '', '<p>正文</p>', \
          'https://www.kechuang.example.cn/news/cms-parks.html', 1716000100000000, \
          'parks', NULL, 'zh-CN')",
    )
    .execute(&pool)
    .await
    .unwrap();
    // An UPDATE under former names too: the row moves into the current feeds.
    sqlx::query("UPDATE articles SET categories = 'h2', region = '320299' WHERE id = 'cms-parks'")
        .execute(&pool)
        .await
        .unwrap();
    server
        .hears(
            heard + 3,
            std::time::Duration::from_secs(10),
            "the CMS's writes",
        )
        .await;
    for path in current {
        let body = server.text(path).await;
        for id in ["cms-h2", "cms-parks"] {
            assert!(body.contains(&format!("article/{id}")), "{path} holds {id}");
        }
    }
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, categories, region FROM articles WHERE id LIKE 'cms-%' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (
                "cms-h2".to_owned(),
                "hydrogen parks".to_owned(),
                Some("320281".to_owned())
            ),
            (
                "cms-parks".to_owned(),
                "hydrogen".to_owned(),
                Some("320281".to_owned())
            ),
        ]
    );
    // Nothing is left filed under a former name.
    let (stale,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM feed_index WHERE bucket IN ('c:h2', 'c:fuel', 'r:320299')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stale, 0);
    pool.close().await;
    server.stop().await;
}

/// The month in progress in the site's time zone, and the one after it.
fn this_and_next_month() -> (String, String) {
    let now = Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let (y, m) = (now.year(), now.month());
    let next = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (
        format!("{y:04}-{m:02}"),
        format!("{:04}-{:02}", next.0, next.1),
    )
}

fn is_marked(atom: &str) -> bool {
    atom_syndication::Feed::read_from(atom.as_bytes())
        .unwrap()
        .extensions()
        .get("fh")
        .is_some_and(|fh| fh.contains_key("archive"))
}

#[tokio::test]
async fn only_months_that_have_ended_are_marked_as_archives_and_others_have_none() {
    let server = Server::start(Backend::Sqlite).await.unwrap();
    let (current, next) = this_and_next_month();
    let now = Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let today = now.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
    let write = |items: Vec<serde_json::Value>| {
        let articles: Vec<_> = items.into_iter().map(common::article).collect();
        let app = server.app.clone();
        async move { app.write(&articles).await.unwrap() }
    };
    write(vec![
        hydrogen_article(
            "march",
            &["hydrogen"],
            "320281",
            "2024-03-10T09:00:00+08:00",
        ),
        hydrogen_article("today", &["hydrogen"], "320281", &today),
    ])
    .await;
    let archive =
        |month: &str, format: &str| format!("/feeds/category/hydrogen/archive/{month}.{format}");

    // The month in progress: served, unmarked, cached like its feed, linked from the feed.
    let r = server.get(&archive(&current, "atom")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "cache-control"),
        header(
            &server.get("/feeds/category/hydrogen.atom").await,
            "cache-control"
        )
    );
    assert!(header(&r, "cache-control").starts_with("public, max-age=300,"));
    let body = r.text().await.unwrap();
    assert!(
        !is_marked(&body),
        "the month in progress still changes: {body}"
    );
    assert!(body.contains("article/today"));
    assert!(
        body.contains(&archive("2024-03", "atom")),
        "prev-archive: {body}"
    );
    let rss = server.text(&archive(&current, "rss")).await;
    assert!(!rss.contains("fh:archive"), "{rss}");
    let feed = server.text("/feeds/category/hydrogen.atom").await;
    assert!(
        feed.contains(&archive(&current, "atom")),
        "the feed links the month in progress: {feed}"
    );

    // A month that has ended: marked, cached long, linked on to the month in progress.
    let r = server.get(&archive("2024-03", "atom")).await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "cache-control").starts_with("public, max-age=86400,"));
    let body = r.text().await.unwrap();
    assert!(is_marked(&body), "{body}");
    assert!(
        body.contains(&archive(&current, "atom")),
        "next-archive: {body}"
    );
    assert!(
        server
            .text(&archive("2024-03", "rss"))
            .await
            .contains("<fh:archive")
    );
    // Between two archives a month without items is an archive still, empty and ended.
    let april = server.text(&archive("2024-04", "atom")).await;
    assert!(is_marked(&april));

    // Months to come and months before the oldest item have no archive, in every format.
    for month in [next.as_str(), "9999-12", "2024-02", "1900-01"] {
        for format in ["rss", "atom", "json", "html"] {
            let r = server.get(&archive(month, format)).await;
            assert_eq!(r.status(), 404, "{month}.{format}");
            assert_eq!(
                header(&r, "cache-control"),
                "public, max-age=60",
                "{month}.{format}"
            );
        }
    }

    // An item dated ahead is in the feed, but the feed links no archive after this month's,
    // and that month still has none.
    let ahead = Utc
        .with_ymd_and_hms(now.year() + 1, 6, 1, 0, 0, 0)
        .unwrap()
        .to_rfc3339();
    write(vec![hydrogen_article(
        "ahead",
        &["hydrogen"],
        "320281",
        &ahead,
    )])
    .await;
    let feed = server.text("/feeds/category/hydrogen.atom").await;
    assert!(feed.contains("article/ahead"));
    assert!(feed.contains(&archive(&current, "atom")), "{feed}");
    let ahead_month = format!("{}-06", now.year() + 1);
    assert_eq!(
        server.get(&archive(&ahead_month, "atom")).await.status(),
        404
    );
    let body = server.text(&archive(&current, "atom")).await;
    assert!(!body.contains("next-archive"), "{body}");

    // An older article gives its month an archive: the cached 404 goes with the write.
    assert_eq!(server.get(&archive("2024-02", "atom")).await.status(), 404);
    write(vec![hydrogen_article(
        "february",
        &["hydrogen"],
        "320281",
        "2024-02-10T09:00:00+08:00",
    )])
    .await;
    let february = server.text(&archive("2024-02", "atom")).await;
    assert!(is_marked(&february) && february.contains("article/february"));
    // Taken down, the month's only item leaves its archive in place, in every format: the
    // archive is where its tombstone is announced.
    let id = feedcast::model::ArticleId::parse("february").unwrap();
    assert!(server.app.take_down(&id).await.unwrap());
    let february = server.text(&archive("2024-02", "atom")).await;
    assert!(february.contains("deleted-entry") && !february.contains("news/february.html"));
    assert_eq!(server.get(&archive("2024-02", "rss")).await.status(), 200);
    server.stop().await;
}
