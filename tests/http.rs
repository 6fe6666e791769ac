//! Feeds over real HTTP, on both stores: what a subscriber or aggregator sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;

use common::{Backend, Server, TOKEN, admin_server, article, call, settings};
use feedcast::feed::{FeedId, FeedKey, Format};
use serde_json::json;

/// Articles at every level of 江苏省 → 无锡市 → 江阴市, one elsewhere, one reprint.
fn fixtures() -> Vec<feedcast::model::Article> {
    vec![
        article(json!({
            "id": "county-1", "title": "江阴高新区氢能产业园开工", "summary": "江阴高新区氢能产业园今日开工。",
            "content_html": "<p>江阴高新区<a href=\"/news/2.html\">氢能产业园</a>开工。</p>",
            "url": "https://www.kechuang.example.cn/news/county-1.html",
            "published_at": "2024-05-18T09:30:00+08:00", "categories": ["hydrogen", "parks"], "region": "320281",
            "source": {"name": "江阴日报", "url": "https://www.jyrb.example.com/a/1.html"}, "author": "王明"
        })),
        article(json!({
            "id": "city-1", "title": "无锡出台新材料产业政策", "content_html": "<p>无锡市出台政策。</p>",
            "url": "https://www.kechuang.example.cn/news/city-1.html",
            "published_at": "2024-05-17T10:00:00+08:00", "categories": ["materials", "policy"], "region": "320200"
        })),
        article(json!({
            "id": "province-1", "title": "江苏省发布氢能发展规划", "content_html": "<p>江苏省发布规划。</p>",
            "url": "https://www.kechuang.example.cn/news/province-1.html",
            "published_at": "2024-05-16", "categories": ["hydrogen", "policy"], "region": "320000"
        })),
        article(json!({
            "id": "shanghai-1", "title": "浦东新区燃料电池汽车示范", "content_html": "<p>浦东示范。</p>",
            "url": "https://www.kechuang.example.cn/news/shanghai-1.html",
            "published_at": "2024-05-19T08:00:00+08:00", "categories": ["hydrogen"], "region": "310115"
        })),
    ]
}

fn rss_items(body: &str) -> rss::Channel {
    rss::Channel::read_from(body.as_bytes()).expect("well-formed RSS")
}

fn atom_entries(body: &str) -> atom_syndication::Feed {
    atom_syndication::Feed::read_from(body.as_bytes()).expect("well-formed Atom")
}

fn ids(c: &rss::Channel) -> Vec<String> {
    c.items()
        .iter()
        .map(|i| {
            i.guid()
                .unwrap()
                .value()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

async fn region_roll_up_and_custom_feeds(backend: Backend) {
    let Some(server) = Server::start(backend).await else {
        return;
    };
    server.app.write(&fixtures()).await.unwrap();

    // The province's feed rolls up its city and county; newest first; Shanghai is not in it.
    let province = rss_items(&server.text("/feeds/region/320000.rss").await);
    assert_eq!(ids(&province), ["county-1", "city-1", "province-1"]);
    let county = atom_entries(&server.text("/feeds/region/320281.atom").await);
    assert_eq!(county.entries().len(), 1);
    assert!(county.entries()[0].id().ends_with("article/county-1"));

    // Category feeds and a custom feed (hydrogen AND in Jiangsu).
    let hydrogen = rss_items(&server.text("/feeds/category/hydrogen.rss").await);
    assert_eq!(ids(&hydrogen), ["shanghai-1", "county-1", "province-1"]);
    let custom = rss_items(&server.text("/feeds/jiangsu-hydrogen.rss").await);
    assert_eq!(ids(&custom), ["county-1", "province-1"]);
    let industry = atom_entries(&server.text("/feeds/industry.atom").await);
    assert_eq!(industry.entries().len(), 4);

    // limit
    let one = rss_items(&server.text("/feeds/region/320000.rss?limit=1").await);
    assert_eq!(ids(&one), ["county-1"]);
    server.stop().await;
}

/// A time cut to its second, as feeds and HTTP dates show it.
fn whole_second(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::from_timestamp(t.timestamp(), 0)
        .unwrap()
        .fixed_offset()
}

async fn items_carry_dates_content_and_attribution(backend: Backend) {
    let Some(server) = Server::start(backend).await else {
        return;
    };
    let before_write = whole_second(chrono::Utc::now());
    server.app.write(&fixtures()).await.unwrap();

    let response = server.get("/feeds/region/320281.rss").await;
    let last_modified = response.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response.headers()["content-type"],
        "application/rss+xml; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    assert!(
        body.contains("江阴高新区氢能产业园开工"),
        "CJK stays readable: {body}"
    );
    assert!(
        !body.contains("&#"),
        "no numeric character references: {body}"
    );
    let channel = rss_items(&body);
    let item = &channel.items()[0];
    assert_eq!(item.pub_date(), Some("Sat, 18 May 2024 09:30:00 +0800"));
    assert_eq!(
        item.link(),
        Some("https://www.kechuang.example.cn/news/county-1.html")
    );
    assert_eq!(item.description(), Some("江阴高新区氢能产业园今日开工。"));
    let source = item.source().unwrap();
    assert_eq!(
        (source.title(), source.url()),
        (Some("江阴日报"), "https://www.jyrb.example.com/a/1.html")
    );
    let content = item.content().unwrap();
    assert!(
        content.contains(r#"href="https://www.kechuang.example.cn/news/2.html""#),
        "{content}"
    );
    assert!(
        content.contains(r#"来源：<a href="https://www.jyrb.example.com/a/1.html">江阴日报</a>"#),
        "visible attribution: {content}"
    );
    let categories: Vec<&str> = item.categories().iter().map(|c| c.name()).collect();
    assert_eq!(categories, ["氢能科技", "园区"]);
    // A reprint that names no original author (`source.author`) is its publisher's first; the
    // article's own author is credited after it.
    assert_eq!(
        item.dublin_core_ext().unwrap().creators(),
        ["江阴日报", "王明"]
    );
    assert_eq!(channel.language(), Some("zh-CN"));
    // When the store last changed what the feed shows (the write just made), not the newest
    // item's date; Last-Modified is that second too, once it is two seconds old.
    let built = chrono::DateTime::parse_from_rfc2822(channel.last_build_date().unwrap()).unwrap();
    assert!(built >= before_write, "{built} is the write's time");
    assert!(channel.last_build_date().unwrap().ends_with("+0800"));
    let modified = chrono::DateTime::parse_from_rfc2822(&last_modified).unwrap();
    assert!(
        modified <= built && built - modified <= chrono::TimeDelta::seconds(2),
        "lastBuildDate {built}, Last-Modified {modified} (held back just after the write)"
    );
    assert!(channel.generator().unwrap().starts_with("feedcast"));
    let self_link = &channel.atom_ext().unwrap().links()[0];
    assert_eq!(self_link.rel(), "self");
    assert_eq!(
        self_link.href(),
        "http://127.0.0.1:8080/feeds/region/320281.rss"
    );

    let response = server.get("/feeds/region/320281.atom").await;
    assert_eq!(
        response.headers()["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    let feed = atom_entries(&response.text().await.unwrap());
    let entry = &feed.entries()[0];
    assert_eq!(
        entry.published().unwrap().to_rfc3339(),
        "2024-05-18T09:30:00+08:00"
    );
    assert_eq!(entry.source().unwrap().title().as_str(), "江阴日报");
    assert_eq!(
        entry.source().unwrap().links()[0].href(),
        "https://www.jyrb.example.com/a/1.html"
    );
    assert_eq!(entry.content().unwrap().content_type(), Some("html"));
    assert!(
        entry
            .content()
            .unwrap()
            .value()
            .unwrap()
            .contains("江阴日报</a>")
    );
    assert_eq!(feed.lang(), Some("zh-CN"));
    assert!(
        feed.links()
            .iter()
            .any(|l| l.rel() == "self" && l.href().ends_with("/feeds/region/320281.atom"))
    );

    // A bare date is midnight in the site's time zone, shown with its offset.
    let province = atom_entries(&server.text("/feeds/region/320000.atom").await);
    let bare = province
        .entries()
        .iter()
        .find(|e| e.id().ends_with("province-1"))
        .unwrap();
    assert_eq!(
        bare.published().unwrap().to_rfc3339(),
        "2024-05-16T00:00:00+08:00"
    );
    server.stop().await;
}

async fn a_write_shows_at_once_in_every_feed_it_touches(backend: Backend) {
    let Some(server) = Server::start(backend).await else {
        return;
    };
    server.app.write(&fixtures()).await.unwrap();
    let before = rss_items(&server.text("/feeds/region/320000.rss").await);
    let guid = before.items()[0].guid().unwrap().value().to_owned();
    // Warm the Atom and custom feeds too, so the cache holds them.
    server.text("/feeds/jiangsu-hydrogen.atom").await;

    // Edit the county article's title and move it to Shanghai.
    let moved = article(json!({
        "id": "county-1", "title": "江阴氢能产业园（更正）", "content_html": "<p>更正。</p>",
        "url": "https://www.kechuang.example.cn/news/county-1.html",
        "published_at": "2024-05-18T09:30:00+08:00", "updated_at": "2024-05-20T12:00:00+08:00",
        "categories": ["hydrogen"], "region": "310000"
    }));
    let before_edit = whole_second(chrono::Utc::now());
    server.app.write(&[moved]).await.unwrap();

    let province = rss_items(&server.text("/feeds/region/320000.rss").await);
    assert_eq!(
        ids(&province),
        ["city-1", "province-1"],
        "gone from its old region's feeds"
    );
    let custom = atom_entries(&server.text("/feeds/jiangsu-hydrogen.atom").await);
    assert_eq!(custom.entries().len(), 1);
    let shanghai = rss_items(&server.text("/feeds/region/310000.rss").await);
    let item = shanghai
        .items()
        .iter()
        .find(|i| i.link() == Some("https://www.kechuang.example.cn/news/county-1.html"))
        .unwrap();
    assert_eq!(item.title(), Some("江阴氢能产业园（更正）"));
    assert_eq!(
        item.guid().unwrap().value(),
        guid,
        "the id never changes on edit"
    );
    let atom = atom_entries(&server.text("/feeds/region/310000.atom").await);
    let entry = atom
        .entries()
        .iter()
        .find(|e| e.links()[0].href() == "https://www.kechuang.example.cn/news/county-1.html")
        .unwrap();
    assert_eq!(entry.updated().to_rfc3339(), "2024-05-20T12:00:00+08:00");
    assert!(
        atom.updated() >= &before_edit,
        "the feed changed with the edit: {}",
        atom.updated()
    );
    server.stop().await;
}

async fn errors_are_short_plain_text(backend: Backend) {
    let Some(server) = Server::start(backend).await else {
        return;
    };
    for (path, status, words) in [
        ("/feeds/category/nope.rss", 404, "no category `nope`"),
        ("/feeds/region/999999.atom", 404, "no region `999999`"),
        ("/feeds/nope.atom", 404, "no feed `nope`"),
        ("/feeds/category/parks.pdf", 404, "unknown feed format"),
        (
            "/feeds/category/parks.rss?limit=0",
            400,
            "limit must be a whole number from 1 to 100",
        ),
        ("/feeds/category/parks.rss?limit=101", 400, "not `101`"),
        ("/feeds/category/parks.rss?limit=x", 400, "not `x`"),
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
        let body = r.text().await.unwrap();
        assert!(body.contains(words), "{path}: {body}");
    }
    // HEAD answers like GET, without a body.
    let head = server.head("/feeds/category/parks.atom", &[]).await;
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    assert!(head.bytes().await.unwrap().is_empty());
    // A HEAD of what is not there is the GET's 404, its length told and its body not sent.
    let missing = "/feeds/category/nope.rss";
    let got = server.get(missing).await.bytes().await.unwrap().len();
    let head = server.head(missing, &[]).await;
    assert_eq!(head.status(), 404);
    assert_eq!(header(&head, "content-length"), got.to_string());
    assert!(head.bytes().await.unwrap().is_empty());
    // A path that is no text once decoded, and a method a feed does not take, are refused in
    // so many words; an escaped dot is a dot.
    let r = server.get("/feeds/category/%FF%FE.rss").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Invalid UTF-8"));
    let r = server
        .client
        .post(format!("{}/feeds/category/parks.rss", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(header(&r, "allow"), "GET,HEAD");
    assert_eq!(
        server.text("/feeds/category/parks%2Erss").await,
        server.text("/feeds/category/parks.rss").await
    );
    // An empty feed is still a valid feed.
    let empty = atom_entries(&server.text("/feeds/category/reform.atom").await);
    assert!(empty.entries().is_empty());
    server.stop().await;
}

async fn the_demo_fills_an_empty_store_once(backend: Backend) {
    let Some(server) = Server::start(backend).await else {
        return;
    };
    let added = server.app.load_demo_if_empty().await.unwrap();
    assert!(added >= 30, "{added} demo articles");
    assert_eq!(server.app.load_demo_if_empty().await.unwrap(), 0);
    let settings = &server.app.settings;
    for feed in FeedId::all(&settings.catalog) {
        for format in [Format::Rss, Format::Atom] {
            let path = FeedKey::latest(feed.clone(), format, settings).url_path();
            let body = server.text(&path).await;
            if format == Format::Rss {
                rss_items(&body);
            } else {
                atom_entries(&body);
            }
        }
    }
    // The province feed holds its counties' articles.
    let province = rss_items(&server.text("/feeds/region/320000.rss?limit=100").await);
    let county = rss_items(&server.text("/feeds/region/320281.rss?limit=100").await);
    assert!(!county.items().is_empty());
    for item in county.items() {
        assert!(province.items().iter().any(|p| p.guid() == item.guid()));
    }
    server.stop().await;
}

/// A reprint with every credit the reprint rules ask for, and the portal's own.
fn credited_reprint() -> feedcast::model::Article {
    article(json!({
        "id": "reprint-1", "title": "江阴氢能产业园开工", "short_title": "江阴氢能园开工",
        "content_html": "<p>正文。</p>", "url": "https://www.kechuang.example.cn/news/reprint-1.html",
        "published_at": "2024-05-18T09:30:00+08:00", "categories": ["hydrogen"], "region": "320281",
        "author": "张三", "editor": "李华",
        "source": {
            "name": "江阴日报", "url": "https://www.jyrb.example.com/a/1.html", "author": "王明",
            "title": "氢能产业园昨日开工", "published_at": "2024-05-17T18:00:00+08:00"
        }
    }))
}

async fn reprint_credits_survive_the_store_and_show_in_every_format(backend: Backend) {
    let Some(server) = Server::start(backend).await else {
        return;
    };
    let reprint = credited_reprint();
    server
        .app
        .write(std::slice::from_ref(&reprint))
        .await
        .unwrap();

    // Read back, the article is what was written, short title and all.
    let county = feedcast::model::RegionCode::parse("320281").unwrap();
    let selection = feedcast::store::Selection {
        any_of: vec![feedcast::model::Bucket::Region(county)],
        and_any_of: Vec::new(),
    };
    let rows = server
        .app
        .store
        .articles(&selection, feedcast::store::Window::newest(10))
        .await
        .unwrap();
    let read_back: Vec<_> = rows
        .into_iter()
        .filter_map(|row| feedcast::import::stored(row, &server.app.settings))
        .collect();
    assert_eq!(read_back, [reprint]);

    let line = "来源：<a href=\"https://www.jyrb.example.com/a/1.html\">江阴日报</a>\u{3000}\
                原作者：王明\u{3000}原题：《氢能产业园昨日开工》\u{3000}编辑：李华\u{3000}\
                转载文章版权归原作者及原发媒体所有。";
    let channel = rss_items(&server.text("/feeds/region/320281.rss").await);
    let item = &channel.items()[0];
    assert!(
        item.content().unwrap().contains(line),
        "{:?}",
        item.content()
    );
    assert_eq!(item.source().unwrap().title(), Some("江阴日报"));
    assert_eq!(
        item.source().unwrap().url(),
        "https://www.jyrb.example.com/a/1.html"
    );
    let dc = item.dublin_core_ext().unwrap();
    assert_eq!(dc.creators(), ["王明", "张三"]);
    assert_eq!(dc.contributors(), ["李华"]);
    assert!(
        dc.sources().is_empty(),
        "<source url> alone names the report"
    );

    let feed = atom_entries(&server.text("/feeds/region/320281.atom").await);
    let entry = &feed.entries()[0];
    let names = |people: &[atom_syndication::Person]| {
        people
            .iter()
            .map(|p| p.name().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(entry.authors()), ["王明", "张三"]);
    assert_eq!(names(entry.contributors()), ["李华"]);
    let source = entry.source().unwrap();
    assert_eq!(source.title().as_str(), "江阴日报");
    assert_eq!(source.updated().to_rfc3339(), "2024-05-17T18:00:00+08:00");
    assert!(entry.content().unwrap().value().unwrap().contains(line));

    let doc: serde_json::Value =
        serde_json::from_str(&server.text("/feeds/region/320281.json").await).unwrap();
    let item = &doc["items"][0];
    assert_eq!(
        item["_source"],
        json!({
            "name": "江阴日报", "url": "https://www.jyrb.example.com/a/1.html",
            "author": "王明", "title": "氢能产业园昨日开工",
            "published_at": "2024-05-17T18:00:00+08:00", "editor": "李华"
        })
    );
    assert_eq!(item["authors"], json!([{"name": "王明"}, {"name": "张三"}]));
    assert!(item["content_html"].as_str().unwrap().contains(line));
    server.stop().await;
}

/// GETs `path` with the given request headers.
async fn get_with(server: &Server, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = server.client.get(format!("{}{path}", server.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The WeChat profile is a document like any other (cached, compressed, revalidated, dropped
/// when an article it holds is taken down) but a profile for bridges, not a feed: a browser
/// gets it as asked, it names no hub, and no list of feeds names it.
async fn the_wechat_profile_is_served_like_every_document(backend: Backend) {
    let Some(server) = admin_server(backend, settings()).await else {
        return;
    };
    server.app.write(&fixtures()).await.unwrap();
    let path = "/feeds/category/hydrogen.wechat.json";
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let r = get_with(&server, path, &[("accept", browser)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "content-type"),
        "application/json; charset=utf-8"
    );
    assert_eq!(header(&r, "vary"), "Accept-Encoding");
    let link = header(&r, "link");
    assert!(
        link.contains("/feeds/category/hydrogen.wechat.json>; rel=\"self\""),
        "{link}"
    );
    assert!(!link.contains("rel=\"hub\""), "not a WebSub topic: {link}");
    let rss_link = header(&server.get("/feeds/category/hydrogen.rss").await, "link");
    assert!(rss_link.contains("rel=\"hub\""), "{rss_link}");
    let etag = header(&r, "etag");
    let plain = r.bytes().await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    let ids: Vec<&str> = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(ids, ["shanghai-1", "county-1", "province-1"]);
    let county = &doc["items"][1];
    assert_eq!(county["title"], "江阴高新区氢能产业园开工");
    assert_eq!(county["digest"], "江阴高新区氢能产业园今日开工。");
    assert_eq!(
        county["content_source_url"],
        "https://www.kechuang.example.cn/news/county-1.html"
    );
    let content = county["content"].as_str().unwrap();
    assert!(
        content.contains("氢能产业园<sup>[1]</sup>") && content.contains("江阴日报<sup>[2]</sup>"),
        "{content}"
    );

    // Revalidated and compressed like every other document.
    let again = get_with(&server, path, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), 304);
    let gz = get_with(&server, path, &[("accept-encoding", "gzip")]).await;
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz.bytes().await.unwrap()[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain);

    // A takedown drops it from the cache like any document that held the article, and the
    // profile says which item is gone, for the bridge to delete its draft.
    let (status, body) = call(&server, "DELETE", "/api/articles/county-1", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    let after = get_with(&server, path, &[("if-none-match", &etag)]).await;
    assert_eq!(after.status(), 200);
    let text = after.text().await.unwrap();
    assert!(!text.contains("江阴高新区氢能产业园开工"), "{text}");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["items"].as_array().unwrap().len(), 2);
    assert!(
        doc["deleted"][0]["id"]
            .as_str()
            .unwrap()
            .ends_with("article/county-1"),
        "{text}"
    );

    // Not a feed: no page, list or archive offers it.
    for listing in ["/feeds.opml", "/", "/feeds/category/hydrogen.html"] {
        assert!(!server.text(listing).await.contains("wechat"), "{listing}");
    }
    let archive = server
        .get("/feeds/category/hydrogen/archive/2024-05.wechat.json")
        .await;
    assert_eq!(archive.status(), 404);
    server.stop().await;
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Postgres).await })*
        }
    };
}

on_both_stores!(
    region_roll_up_and_custom_feeds,
    items_carry_dates_content_and_attribution,
    a_write_shows_at_once_in_every_feed_it_touches,
    errors_are_short_plain_text,
    the_demo_fills_an_empty_store_once,
    reprint_credits_survive_the_store_and_show_in_every_format,
    the_wechat_profile_is_served_like_every_document,
);

/// The Accept headers real clients send: browsers, then feed readers.
const BROWSERS: [(&str, &str); 2] = [
    (
        "Chromium",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,\
         image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
    ),
    (
        "Firefox",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
];
const READERS: [(&str, &str); 4] = [
    (
        "FreshRSS",
        "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, \
         application/xml;q=0.8, text/xml;q=0.8, text/html;q=0.7, unknown/unknown;q=0.1, \
         application/unknown;q=0.1, */*;q=0.1",
    ),
    (
        "Miniflux",
        "application/xml, application/atom+xml, application/rss+xml, application/rdf+xml, \
         application/feed+json, text/html, */*;q=0.9",
    ),
    (
        "NetNewsWire",
        "application/rss+xml, application/atom+xml, application/feed+json, application/json, \
         text/xml;q=0.9, */*;q=0.8",
    ),
    (
        "feedparser",
        "application/atom+xml,application/rdf+xml,application/rss+xml,application/x-netcdf,\
         application/xml;q=0.9,text/xml;q=0.2,*/*;q=0.1",
    ),
];

#[tokio::test]
async fn feed_readers_get_the_feed_they_asked_for_and_browsers_the_page() {
    let server = Server::start(Backend::Sqlite).await.unwrap();
    server.app.write(&fixtures()).await.unwrap();
    for format in Format::FEEDS {
        let path = format!("/feeds/region/320000.{}", format.extension());
        let readers = READERS.map(|(client, accept)| (client, accept, format.content_type()));
        let browsers =
            BROWSERS.map(|(client, accept)| (client, accept, "text/html; charset=utf-8"));
        for (client, accept, expected) in readers.into_iter().chain(browsers) {
            let r = get_with(&server, &path, &[("accept", accept)]).await;
            // Even FreshRSS, which names no JSON type, gets JSON Feed at a .json URL.
            assert_eq!(r.headers()["content-type"], expected, "{client} at {path}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn the_site_icon_is_served_and_named_by_every_feed_and_page() {
    let server = Server::start(Backend::Sqlite).await.unwrap();
    server.app.write(&fixtures()).await.unwrap();
    let icon = server.get("/favicon.ico").await;
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/png");
    assert!(
        icon.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=86400")
    );
    let bytes = icon.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "the shipped PNG");
    // The same icon at a path with its type's extension, which RSS's <image> names.
    let typed = server.get("/icon.png").await;
    assert_eq!(typed.status(), 200);
    assert_eq!(typed.headers()["content-type"], "image/png");
    assert_eq!(typed.bytes().await.unwrap(), bytes);

    let named = "http://127.0.0.1:8080/favicon.ico";
    let rss = rss_items(
        &server
            .get("/feeds/region/320000.rss")
            .await
            .text()
            .await
            .unwrap(),
    );
    let image = rss.image().unwrap();
    assert_eq!(
        (image.url(), image.link()),
        ("http://127.0.0.1:8080/icon.png", rss.link())
    );
    assert_eq!(image.title(), rss.title());
    let atom = atom_entries(
        &server
            .get("/feeds/region/320000.atom")
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!((atom.icon(), atom.logo()), (Some(named), Some(named)));
    let json = server.get("/feeds/region/320000.json").await.bytes().await;
    let json: serde_json::Value = serde_json::from_slice(&json.unwrap()).unwrap();
    assert_eq!(
        (json["icon"].as_str(), json["favicon"].as_str()),
        (Some(named), Some(named))
    );
    for page in ["/", "/feeds/region/320000.html"] {
        let html = server.get(page).await.text().await.unwrap();
        assert!(
            html.contains(&format!(
                "<link rel=\"icon\" type=\"image/png\" href=\"{named}\">"
            )),
            "{page}: {html}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_configured_icon_is_served_as_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    // The header of an ICO file: a format browsers show, but not one RSS allows.
    let ico: &[u8] = &[
        0, 0, 1, 0, 1, 0, 16, 16, 0, 0, 1, 0, 32, 0, 0, 0, 0, 0, 22, 0, 0, 0,
    ];
    std::fs::write(dir.path().join("site.ico"), ico).unwrap();
    let settings = feedcast::config::Settings::parse(
        &include_str!("fixtures/feeds.toml").replacen(
            "[site]\n",
            "[site]\nicon = \"site.ico\"\n",
            1,
        ),
        &dir.path().join("feeds.toml"),
    )
    .unwrap();
    let server = Server::start_with(Backend::Sqlite, settings).await.unwrap();
    server.app.write(&fixtures()).await.unwrap();
    let icon = server.get("/favicon.ico").await;
    assert_eq!(icon.headers()["content-type"], "image/x-icon");
    assert_eq!(&icon.bytes().await.unwrap()[..], ico);
    let typed = server.get("/icon.ico").await;
    assert_eq!(typed.headers()["content-type"], "image/x-icon");
    assert_eq!(&typed.bytes().await.unwrap()[..], ico);
    assert_eq!(server.get("/icon.png").await.status(), 404);
    // RSS allows only GIF, JPEG and PNG as the channel image: an ICO is left to the others.
    let rss = rss_items(
        &server
            .get("/feeds/region/320000.rss")
            .await
            .text()
            .await
            .unwrap(),
    );
    assert!(rss.image().is_none());
    let atom = atom_entries(
        &server
            .get("/feeds/region/320000.atom")
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(atom.icon(), Some("http://127.0.0.1:8080/favicon.ico"));
    server.stop().await;
}
