//! Real clients: the index and a feed URL rendered by headless Chromium, and the same feed URL
//! fetched by Python's feedparser, which must get the feed itself.
//!
//! Outside CI, a missing Chromium or feedparser skips these tests with a message; in CI
//! (`CI` set) it fails them, since `.ci/run` installs both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Server, available, chromium_dom, python_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_index_and_a_feed_as_pages() {
    if !available("chromium", &["--version"]) {
        return;
    }
    let server = Server::start(Backend::Sqlite).await.unwrap();
    server.app.load_demo_if_empty().await.unwrap();

    let index = chromium_dom(format!("{}/", server.base)).await;
    assert!(index.contains("<h1>科创产业网</h1>"), "{index}");
    for heading in ["栏目", "地区", "专题"] {
        assert!(
            index.contains(&format!("<h2>{heading}</h2>")),
            "{heading}: {index}"
        );
    }
    // The region tree nests: 江阴市 is listed inside 无锡市, inside 江苏省.
    let province = index.find(">江苏省</a>").unwrap();
    let city = index.find(">无锡市</a>").unwrap();
    let county = index.find(">江阴市</a>").unwrap();
    assert!(province < city && city < county);
    assert!(
        index.contains("href=\"/feeds/region/320281.atom\""),
        "subscribe links"
    );
    assert!(
        index.contains("<link rel=\"alternate\" type=\"application/rss+xml\""),
        "autodiscovery"
    );

    // A feed URL opened in the browser is a readable page, not raw XML.
    let rss = rss::Channel::read_from(server.text("/feeds/category/hydrogen.rss").await.as_bytes())
        .unwrap();
    let page = chromium_dom(format!("{}/feeds/category/hydrogen.rss", server.base)).await;
    assert!(page.contains("<h1>科创产业网 · 氢能科技</h1>"), "{page}");
    assert!(page.contains("这是一个订阅源"), "a subscribe hint");
    for item in rss.items() {
        // The serialized DOM escapes `&` in text.
        let title = item.title().unwrap().replace('&', "&amp;");
        assert!(page.contains(&title), "{title}");
    }
    let reprint = rss.items().iter().find_map(|i| i.source()).unwrap();
    assert!(
        page.contains(reprint.title().unwrap()),
        "the source is shown"
    );
    assert!(!page.contains("<rss"), "not the feed's XML");
    server.stop().await;
}

const FEEDPARSER: &str = r#"
import json, sys
import feedparser
d = feedparser.parse(sys.argv[1])
print(json.dumps({
    "bozo": bool(d.bozo),
    "error": str(d.get("bozo_exception", "")),
    "version": d.version,
    "entries": [{"id": e.id, "link": e.link, "title": e.title, "published": e.published} for e in d.entries],
}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedparser_gets_the_feed_at_the_same_url() {
    if !available("python3", &["-c", "import feedparser"]) {
        return;
    }
    let server = Server::start(Backend::Sqlite).await.unwrap();
    server.app.load_demo_if_empty().await.unwrap();
    let url = format!("{}/feeds/category/hydrogen.rss", server.base);
    let parsed = python_json(FEEDPARSER, vec![url]).await;
    assert_eq!(parsed["bozo"], false, "{}", parsed["error"]);
    assert_eq!(parsed["version"], "rss20");
    let rss = rss::Channel::read_from(server.text("/feeds/category/hydrogen.rss").await.as_bytes())
        .unwrap();
    let entries = parsed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), rss.items().len());
    for (e, item) in entries.iter().zip(rss.items()) {
        assert_eq!(e["id"].as_str(), item.guid().map(|g| g.value()));
        assert_eq!(e["link"].as_str(), item.link());
        assert_eq!(e["title"].as_str(), item.title());
        assert_eq!(e["published"].as_str(), item.pub_date());
    }
    server.stop().await;
}
