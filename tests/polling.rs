//! What an aggregator polling forever relies on: validators and 304s, caching headers,
//! compression, JSON Feed, archives it can walk back through, WebSub pings, OPML.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Read;

use common::{Backend, Server, TestDb, article, settings, settings_with};
use feedcast::feed::{FeedId, FeedKey, Format};
use feedcast::model::CategorySlug;
use serde_json::json;

const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
const FEEDPARSER_ACCEPT: &str = "application/atom+xml,application/rdf+xml,application/rss+xml,application/x-netcdf,application/xml;q=0.9,text/xml;q=0.2,*/*;q=0.1";

async fn demo(backend: Backend) -> Option<Server> {
    let server = Server::start(backend).await?;
    server.app.load_demo_if_empty().await.unwrap();
    Some(server)
}

/// GETs `path` once its Last-Modified is no longer held back. A date is held a second behind
/// the store's clock, in case a write stamped within that second is not yet visible: until the
/// change is two seconds old, Last-Modified is Date minus one second, and a client sending it
/// back rightly gets a 200. Only the clock passing ends that, so this polls the clock.
async fn settled(server: &Server, path: &str) -> reqwest::Response {
    for _ in 0..100 {
        let r = server.get(path).await;
        let date = |name| httpdate::parse_http_date(&header(&r, name)).unwrap();
        let behind = date("date").duration_since(date("last-modified"));
        if behind.is_ok_and(|d| d >= std::time::Duration::from_secs(2)) {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{path}: Last-Modified stayed held back for 10 s");
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn get_with(server: &Server, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = server.client.get(format!("{}{path}", server.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn validators_answer_304_without_building_again() {
    let server = demo(Backend::Sqlite).await.unwrap();
    let path = "/feeds/category/hydrogen.atom";
    let first = settled(&server, path).await;
    assert_eq!(first.status(), 200);
    let etag = header(&first, "etag");
    let modified = header(&first, "last-modified");
    let first_length: usize = header(&first, "content-length").parse().unwrap();
    assert!(
        etag.starts_with('"') && etag.len() == 34,
        "strong ETag: {etag}"
    );
    assert!(modified.ends_with(" GMT"), "{modified}");
    assert_eq!(
        header(&first, "cache-control"),
        "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400"
    );
    assert_eq!(header(&first, "vary"), "Accept, Accept-Encoding");
    let builds = server.app.builds();

    for validators in [
        vec![("if-none-match", etag.clone())],
        vec![("if-none-match", format!("W/{etag}"))],
        vec![("if-none-match", format!("\"other\", {etag}"))],
        vec![("if-none-match", "*".to_owned())],
        vec![("if-modified-since", modified.clone())],
    ] {
        let headers: Vec<(&str, &str)> = validators.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let r = get_with(&server, path, &headers).await;
        assert_eq!(r.status(), 304, "{validators:?}");
        assert_eq!(header(&r, "etag"), etag);
        assert_eq!(header(&r, "last-modified"), modified);
        assert_eq!(
            header(&r, "cache-control"),
            "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400"
        );
        // What a cache needs to freshen its copy, and no more (RFC 9110 §15.4.5): the
        // copy's links and cache tags are those of this very tag.
        for left_out in ["link", "surrogate-key", "cache-tag", "content-type"] {
            assert!(r.headers().get(left_out).is_none(), "{left_out} on a 304");
        }
        assert!(r.bytes().await.unwrap().is_empty());
    }
    assert!(first.headers().get("link").is_some());
    assert!(first.headers().get("surrogate-key").is_some());
    // A different tag, or an older date, gets the document.
    let r = get_with(&server, path, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(r.status(), 200);
    let r = get_with(
        &server,
        path,
        &[("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT")],
    )
    .await;
    assert_eq!(r.status(), 200);
    // If-None-Match wins over If-Modified-Since.
    let r = get_with(
        &server,
        path,
        &[
            ("if-none-match", "\"other\""),
            ("if-modified-since", &modified),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(server.app.builds(), builds, "hits and 304s build nothing");

    let head = server.head(path, &[]).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "etag"), etag);
    // A HEAD tells the length a GET would send, and sends none of it.
    assert!(first_length > 0);
    assert_eq!(
        header(&head, "content-length").parse::<usize>().unwrap(),
        first_length,
        "HEAD and GET agree"
    );
    assert!(head.bytes().await.unwrap().is_empty());
    // A conditional HEAD is a 304 that tells no length: one would have to be the 200's
    // (RFC 9110 §8.6), not its own empty body's 0.
    let head = server.head(path, &[("if-none-match", &etag)]).await;
    assert_eq!(head.status(), 304);
    assert!(head.headers().get("content-length").is_none());
    server.stop().await;
}

#[tokio::test]
async fn etags_are_stable_across_requests_and_restarts() {
    let settings = settings();
    let server = Server::start(Backend::Sqlite).await.unwrap();
    server.app.load_demo_if_empty().await.unwrap();
    let paths = [
        "/feeds/region/320000.rss",
        "/feeds/industry.json",
        "/",
        "/feeds.opml",
    ];
    let mut before = Vec::new();
    for p in paths {
        let a = header(&server.get(p).await, "etag");
        assert_eq!(a, header(&server.get(p).await, "etag"), "{p}");
        before.push(a);
    }
    let db: TestDb = server.stop().await.unwrap();
    let again = Server::start_on(db, settings).await;
    for (p, tag) in paths.into_iter().zip(before) {
        assert_eq!(
            header(&again.get(p).await, "etag"),
            tag,
            "{p} after restart"
        );
    }
    again.stop().await;
}

#[tokio::test]
async fn compressed_variants_are_negotiated_and_have_their_own_etags() {
    let server = demo(Backend::Sqlite).await.unwrap();
    let path = "/feeds/region/320000.rss";
    let plain = server.get(path).await;
    assert_eq!(header(&plain, "content-encoding"), "");
    let plain_tag = header(&plain, "etag");
    let plain = plain.bytes().await.unwrap();

    let gz = get_with(&server, path, &[("accept-encoding", "gzip")]).await;
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    let gz_tag = header(&gz, "etag");
    let gz = gz.bytes().await.unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, plain);

    let br = get_with(&server, path, &[("accept-encoding", "gzip, deflate, br")]).await;
    assert_eq!(header(&br, "content-encoding"), "br");
    let br_tag = header(&br, "etag");
    let br = br.bytes().await.unwrap();
    out.clear();
    brotli::Decompressor::new(&br[..], 4096)
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, plain);
    assert!(br.len() < plain.len() / 2 && gz.len() < plain.len() / 2);
    println!(
        "{path}: identity {} B, gzip {} B, brotli {} B",
        plain.len(),
        gz.len(),
        br.len()
    );

    assert_ne!(plain_tag, gz_tag);
    assert_ne!(gz_tag, br_tag);
    let r = get_with(
        &server,
        path,
        &[("accept-encoding", "gzip"), ("if-none-match", &gz_tag)],
    )
    .await;
    assert_eq!(r.status(), 304);
    let r = get_with(
        &server,
        path,
        &[
            ("accept-encoding", "br;q=0, gzip;q=0"),
            ("if-none-match", &gz_tag),
        ],
    )
    .await;
    assert_eq!(
        r.status(),
        200,
        "the identity variant is another representation"
    );
    assert_eq!(header(&r, "content-encoding"), "");
    server.stop().await;
}

#[tokio::test]
async fn json_feed_carries_what_the_xml_formats_carry() {
    let server = demo(Backend::Sqlite).await.unwrap();
    let r = server.get("/feeds/region/320281.json").await;
    assert_eq!(
        header(&r, "content-type"),
        "application/feed+json; charset=utf-8"
    );
    let doc: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let rss =
        rss::Channel::read_from(server.text("/feeds/region/320281.rss").await.as_bytes()).unwrap();
    let items = doc["items"].as_array().unwrap();
    assert_eq!(items.len(), rss.items().len());
    for (j, r) in items.iter().zip(rss.items()) {
        assert_eq!(j["id"].as_str(), r.guid().map(|g| g.value()));
        assert_eq!(j["url"].as_str(), r.link());
        assert_eq!(j["title"].as_str(), r.title());
        // JSON Feed's summary is plain text; RSS's description is that text escaped as HTML.
        let description = r
            .description()
            .map(|d| quick_xml::escape::unescape(d).unwrap());
        assert_eq!(j["summary"].as_str(), description.as_deref());
        assert_eq!(j["content_html"].as_str(), r.content());
        assert_eq!(j["_source"]["url"].as_str(), r.source().map(|s| s.url()));
        let published =
            chrono::DateTime::parse_from_rfc3339(j["date_published"].as_str().unwrap()).unwrap();
        assert_eq!(published.offset().local_minus_utc(), 8 * 3600);
        assert_eq!(Some(published.to_rfc2822().as_str()), r.pub_date());
    }
    assert!(
        items.iter().any(|j| j["image"].is_string()),
        "demo images come through"
    );
    server.stop().await;
}

/// One archive document of a walk: its path, its Cache-Control, whether it is marked as an
/// archive (RFC 5005 `fh:archive`).
struct Visited {
    path: String,
    cache_control: String,
    marked: bool,
}

/// Follows `prev-archive` from the current Atom feed to the oldest month.
async fn walk_archives(server: &Server, feed: &str) -> (Vec<String>, Vec<Visited>) {
    let mut ids = Vec::new();
    let mut months = Vec::new();
    let current = atom_syndication::Feed::read_from(
        server.text(&format!("/feeds/{feed}.atom")).await.as_bytes(),
    )
    .unwrap();
    let prev = |f: &atom_syndication::Feed| {
        f.links()
            .iter()
            .find(|l| l.rel() == "prev-archive")
            .map(|l| l.href().replace("http://127.0.0.1:8080", ""))
    };
    let mut next = prev(&current);
    while let Some(path) = next {
        let r = server.get(&path).await;
        assert_eq!(r.status(), 200, "{path}");
        let cache_control = header(&r, "cache-control");
        let doc = atom_syndication::Feed::read_from(r.text().await.unwrap().as_bytes()).unwrap();
        assert!(doc.links().iter().any(|l| l.rel() == "current" && l.href().ends_with(&format!("/feeds/{feed}.atom"))));
        assert!(
            !doc.entries().is_empty(),
            "{path}: the chain skips empty months"
        );
        let marked = doc
            .extensions()
            .get("fh")
            .is_some_and(|fh| fh.contains_key("archive"));
        months.push(Visited {
            path,
            cache_control,
            marked,
        });
        ids.extend(doc.entries().iter().map(|e| e.id().to_owned()));
        next = prev(&doc);
    }
    (ids, months)
}

async fn an_archive_walk_collects_every_article_exactly_once(backend: Backend) {
    let Some(server) = demo(backend).await else {
        return;
    };
    let settings = &server.app.settings;
    // One article of today, so that the walk begins at the month in progress.
    let now = chrono::Utc::now().with_timezone(&settings.site.time_zone);
    let today = article(json!({
        "id": "today", "title": "今天的氢能报道", "content_html": "<p>正文</p>",
        "url": "https://www.kechuang.example.cn/news/today.html",
        "published_at": now.to_rfc3339(), "categories": ["hydrogen"], "region": "320281"
    }));
    server
        .app
        .write(std::slice::from_ref(&today))
        .await
        .unwrap();
    let mut demo = feedcast::import::parse_ndjson(feedcast::DEMO_ARTICLES, settings).unwrap();
    demo.push(today);
    let hydrogen = CategorySlug::parse("hydrogen").unwrap();
    let mut expected: Vec<String> = demo
        .iter()
        .filter(|a| a.categories().contains(&hydrogen))
        .map(|a| format!("{}article/{}", settings.site.id_prefix, a.id()))
        .collect();
    expected.sort();

    let (mut ids, months) = walk_archives(&server, "category/hydrogen").await;
    assert!(
        months.len() >= 3,
        "{:?}",
        months.iter().map(|m| &m.path).collect::<Vec<_>>()
    );
    // The month in progress comes first: it still changes, so it is not marked as an archive
    // and is cached like its feed.
    let (in_progress, ended) = months.split_first().unwrap();
    let this_month = now.format("/archive/%Y-%m.atom").to_string();
    assert!(
        in_progress.path.ends_with(&this_month),
        "{}",
        in_progress.path
    );
    assert!(!in_progress.marked, "{}: still changing", in_progress.path);
    assert!(
        in_progress
            .cache_control
            .starts_with("public, max-age=300,"),
        "{}",
        in_progress.cache_control
    );
    // Every month after it has ended: marked, and cached long.
    for month in ended {
        assert!(month.marked, "{} is marked as an archive", month.path);
        assert!(
            month.cache_control.contains("max-age=86400,"),
            "{}: {}",
            month.path,
            month.cache_control
        );
    }
    ids.sort();
    assert_eq!(ids, expected);
    // Region roll-ups archive the same way.
    let (ids, months) = walk_archives(&server, "region/320000").await;
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no article in two archives");
    assert!(!months[0].marked && months[1..].iter().all(|m| m.marked));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_walk_on_sqlite() {
    an_archive_walk_collects_every_article_exactly_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_walk_on_postgres() {
    an_archive_walk_collects_every_article_exactly_once(Backend::Postgres).await;
}

#[tokio::test]
async fn browsers_get_a_page_and_feed_clients_the_feed() {
    let server = demo(Backend::Sqlite).await.unwrap();
    let path = "/feeds/category/hydrogen.rss";
    let page = get_with(&server, path, &[("accept", BROWSER_ACCEPT)]).await;
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "vary"), "Accept, Accept-Encoding");
    let page_tag = header(&page, "etag");
    let html = page.text().await.unwrap();
    assert!(html.contains("<h1>科创产业网 · 氢能科技</h1>"), "{html}");
    assert!(
        html.contains("rel=\"alternate\" type=\"application/rss+xml\""),
        "autodiscovery"
    );

    let feed = get_with(&server, path, &[("accept", FEEDPARSER_ACCEPT)]).await;
    assert_eq!(
        header(&feed, "content-type"),
        "application/rss+xml; charset=utf-8"
    );
    assert_ne!(header(&feed, "etag"), page_tag);
    rss::Channel::read_from(feed.text().await.unwrap().as_bytes()).unwrap();

    let explicit = server.get("/feeds/category/hydrogen.html").await;
    assert_eq!(
        header(&explicit, "content-type"),
        "text/html; charset=utf-8"
    );
    assert_eq!(header(&explicit, "vary"), "Accept-Encoding");
    server.stop().await;
}

#[tokio::test]
async fn opml_lists_every_feed_with_regions_as_a_tree() {
    let server = Server::start(Backend::Sqlite).await.unwrap();
    let r = server.get("/feeds.opml").await;
    assert_eq!(header(&r, "content-type"), "text/x-opml; charset=utf-8");
    let text = r.text().await.unwrap();
    // Walk the outline tree: text of each feed outline → its ancestors' texts.
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut stack: Vec<String> = Vec::new();
    let mut feeds: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    loop {
        let (element, opens) = match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(e) => (e, true),
            quick_xml::events::Event::Empty(e) => (e, false),
            quick_xml::events::Event::End(_) => {
                stack.pop();
                continue;
            }
            quick_xml::events::Event::Eof => break,
            _ => continue,
        };
        if element.name().as_ref() != b"outline" {
            if opens {
                stack.push(String::new());
            }
            continue;
        }
        let attr = |n: &str| {
            element
                .try_get_attribute(n)
                .unwrap()
                .map(|a| a.unescape_value().unwrap().into_owned())
        };
        let name = attr("text").unwrap();
        if let Some(xml) = attr("xmlUrl") {
            let ancestors = stack.iter().filter(|s| !s.is_empty()).cloned().collect();
            feeds.insert(name.clone(), (ancestors, xml));
        }
        if opens {
            stack.push(name);
        }
    }
    let s = &server.app.settings;
    assert_eq!(feeds.len(), FeedId::all(&s.catalog).len());
    let (ancestors, xml) = &feeds["江阴市"];
    assert_eq!(ancestors, &["地区", "江苏省", "无锡市"]);
    assert_eq!(xml, "http://127.0.0.1:8080/feeds/region/320281.rss");
    assert_eq!(feeds["氢能科技"].0, ["栏目"]);
    assert_eq!(feeds["江苏氢能"].0, ["专题"]);
    server.stop().await;
}

/// The stub hub's state: where it reports what it was sent, and the topics it refused once.
type HubState = (
    tokio::sync::mpsc::UnboundedSender<BTreeMap<String, String>>,
    std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
);

#[tokio::test]
async fn a_write_pings_the_hub_and_feeds_advertise_it() {
    use axum::extract::State;
    use tokio::sync::mpsc;

    // A stub hub: refuses the first request of each topic, then records what it is sent.
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<BTreeMap<String, String>>();
    let refused = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let hub = axum::Router::new()
        .route(
            "/hub",
            axum::routing::post(
                |State((seen_tx, refused)): State<HubState>, body: String| async move {
                    let form: BTreeMap<String, String> =
                        url::form_urlencoded::parse(body.as_bytes())
                            .into_owned()
                            .collect();
                    let topic = form.get("hub.url").cloned().unwrap_or_default();
                    if refused.lock().unwrap().insert(topic) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    seen_tx.send(form).unwrap();
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state((seen_tx, refused));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub_url = format!("http://{}/hub", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hub).await.unwrap() });

    let hubs = format!("hubs = [\"{hub_url}\"]");
    let settings = settings_with(&[
        ("hubs = []", &hubs),
        ("first_retry_ms = 1000", "first_retry_ms = 10"),
    ]);
    let server = Server::start_with(Backend::Sqlite, settings).await.unwrap();

    // Feeds advertise feedcast's own hub first, then the outside one, in the document and in a
    // Link header.
    let r = server.get("/feeds/category/parks.atom").await;
    assert_eq!(
        header(&r, "link"),
        format!(
            "<http://127.0.0.1:8080/websub>; rel=\"hub\", <{hub_url}>; rel=\"hub\", \
             <http://127.0.0.1:8080/feeds/category/parks.atom>; rel=\"self\""
        )
    );
    let atom = atom_syndication::Feed::read_from(r.text().await.unwrap().as_bytes()).unwrap();
    assert!(
        atom.links()
            .iter()
            .any(|l| l.rel() == "hub" && l.href() == hub_url)
    );
    let json: serde_json::Value =
        serde_json::from_str(&server.text("/feeds/category/parks.json").await).unwrap();
    assert_eq!(json["hubs"][0]["url"], "http://127.0.0.1:8080/websub");
    assert_eq!(json["hubs"][1]["url"], hub_url.as_str());

    server
        .app
        .write(&[article(json!({
            "id": "ping-1", "title": "江阴高新区新建加氢站投用", "content_html": "<p>投用。</p>",
            "url": "https://www.kechuang.example.cn/news/ping-1.html",
            "published_at": "2024-06-01T09:00:00+08:00", "categories": ["parks"], "region": "320281"
        }))])
        .await
        .unwrap();

    let s = &server.app.settings;
    let mut expected: std::collections::BTreeSet<String> = [
        "category/parks",
        "region/320281",
        "region/320200",
        "region/320000",
    ]
    .iter()
    .flat_map(|p| {
        Format::FEEDS.map(|f| {
            FeedKey::parse(&format!("{p}.{}", f.extension()), None, s)
                .unwrap()
                .topic(s)
        })
    })
    .collect();
    while !expected.is_empty() {
        let form = tokio::time::timeout(std::time::Duration::from_secs(10), seen.recv())
            .await
            .expect("the hub is pinged, after a retry")
            .unwrap();
        assert_eq!(form["hub.mode"], "publish");
        expected.remove(&form["hub.url"]);
    }
    server.stop().await;
}

/// GET `path` with `If-Modified-Since: since`: the status, Last-Modified and Date.
async fn since(server: &Server, path: &str, since: &str) -> (u16, String, String) {
    let r = get_with(server, path, &[("if-modified-since", since)]).await;
    let status = r.status().as_u16();
    (status, header(&r, "last-modified"), header(&r, "date"))
}

/// Last-Modified is when the store last changed what a document shows, so a client that
/// revalidates by date alone sees every change: an edit or a takedown of an older item, one in
/// the same second as the change before, one made in SQL by the CMS; and never a date after the
/// response's own.
async fn last_modified_moves_with_every_change(backend: Backend) {
    let Some(server) = Server::start(backend).await else {
        return;
    };
    let dated = |id: &str, published: &str, title: &str| {
        article(json!({
            "id": id, "title": title, "content_html": "<p>正文</p>",
            "url": format!("https://www.kechuang.example.cn/news/{id}.html"),
            "published_at": published, "categories": ["hydrogen"]
        }))
    };
    server
        .app
        .write(&[
            dated("older", "2024-05-02T09:00:00+08:00", "较早的报道"),
            dated("newer", "2024-05-20T09:00:00+08:00", "较新的报道"),
        ])
        .await
        .unwrap();
    let paths = [
        "/feeds/category/hydrogen.atom",
        "/feeds/category/hydrogen.json",
        "/feeds/category/hydrogen/archive/2024-05.rss",
    ];
    let mut held = Vec::new();
    for path in paths {
        let r = settled(&server, path).await;
        held.push(header(&r, "last-modified"));
        let (status, ..) = since(&server, path, held.last().unwrap()).await;
        assert_eq!(status, 304, "{path}: unchanged since the date it gave");
    }

    // An edit of the older item: not the newest, yet every document that shows it changed.
    let id = feedcast::model::ArticleId::parse("older").unwrap();
    server
        .app
        .write(&[dated(
            "older",
            "2024-05-02T09:00:00+08:00",
            "较早的报道（更正）",
        )])
        .await
        .unwrap();
    for (path, date) in paths.iter().zip(&held) {
        let (status, ..) = since(&server, path, date).await;
        assert_eq!(status, 200, "{path}: an edit of an older item after {date}");
    }

    // A takedown of the older item, just after a client was given a date: whether or not it is
    // within the same second, that date never gets a 304.
    let given: Vec<String> = {
        let mut given = Vec::new();
        for path in paths {
            given.push(header(&server.get(path).await, "last-modified"));
        }
        given
    };
    assert!(server.app.take_down(&id).await.unwrap());
    for (path, date) in paths.iter().zip(&given) {
        let (status, modified, response_date) = since(&server, path, date).await;
        assert_eq!(status, 200, "{path}: taken down after {date}");
        let (modified, response_date) = (
            httpdate::parse_http_date(&modified).unwrap(),
            httpdate::parse_http_date(&response_date).unwrap(),
        );
        assert!(
            modified <= response_date,
            "{path}: Last-Modified after Date"
        );
        let body = server.text(path).await;
        assert!(!body.contains("news/older.html"), "{path}: {body}");
    }

    // A future-dated article: Last-Modified still never passes Date.
    server
        .app
        .write(&[dated("future", "2030-01-01T00:00:00+08:00", "未来的报道")])
        .await
        .unwrap();
    let r = server.get(paths[0]).await;
    let modified = httpdate::parse_http_date(&header(&r, "last-modified")).unwrap();
    assert!(modified <= httpdate::parse_http_date(&header(&r, "date")).unwrap());
    assert!(modified < std::time::SystemTime::now() + std::time::Duration::from_secs(1));

    // An article in an earlier month moves the archive's link to its previous month, so the
    // archive changed too, though none of its own articles did.
    let may = paths[2];
    let date = header(&settled(&server, may).await, "last-modified");
    assert_eq!(since(&server, may, &date).await.0, 304);
    server
        .app
        .write(&[dated("march", "2024-03-10T09:00:00+08:00", "三月的报道")])
        .await
        .unwrap();
    let (status, ..) = since(&server, may, &date).await;
    assert_eq!(status, 200, "{may}: its prev-archive link moved");
    assert!(server.text(may).await.contains("archive/2024-03.rss"));

    // On PostgreSQL, the CMS edits a row in SQL: the database's trigger moves the change time.
    if let Some(feedcast::store::DatabaseUrl::Postgres(url)) = server.db.as_ref().map(|d| &d.url) {
        let r = settled(&server, paths[0]).await;
        let date = header(&r, "last-modified");
        assert_eq!(since(&server, paths[0], &date).await.0, 304);
        let seen = *server.app.heard().borrow();
        let cms = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query("UPDATE articles SET title = '较新的报道（CMS 更正）' WHERE id = 'newer'")
            .execute(&cms)
            .await
            .unwrap();
        cms.close().await;
        // The change reaches this replica's cache by notification; the date is the store's.
        let within = std::time::Duration::from_secs(10);
        server.hears(seen + 1, within, "the CMS write").await;
        assert_eq!(
            since(&server, paths[0], &date).await.0,
            200,
            "after a CMS edit"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_modified_on_sqlite() {
    last_modified_moves_with_every_change(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_modified_on_postgres() {
    last_modified_moves_with_every_change(Backend::Postgres).await;
}

/// A feed reads its change time in the statement that reads its first bucket's rows; a custom
/// feed whose first category has no article has no row to carry it, so the time is read on
/// its own first and that bucket read again after it. Its dates still follow every change.
async fn a_feed_whose_first_bucket_is_empty_dates_its_changes(backend: Backend) {
    let Some(server) = Server::start(backend).await else {
        return;
    };
    // "industry" lists hydrogen, then materials: every article here is in materials only.
    let material = |id: &str, title: &str| {
        article(json!({
            "id": id, "title": title, "content_html": "<p>正文</p>",
            "url": format!("https://www.kechuang.example.cn/news/{id}.html"),
            "published_at": "2024-05-02T09:00:00+08:00", "categories": ["materials"]
        }))
    };
    let path = "/feeds/industry.atom";
    server
        .app
        .write(&[material("graphene", "石墨烯量产")])
        .await
        .unwrap();
    let r = settled(&server, path).await;
    let date = header(&r, "last-modified");
    assert!(r.text().await.unwrap().contains("news/graphene.html"));
    assert_eq!(since(&server, path, &date).await.0, 304, "unchanged since");
    server
        .app
        .write(&[material("aerogel", "气凝胶")])
        .await
        .unwrap();
    assert_eq!(since(&server, path, &date).await.0, 200, "after a write");
    let body = server.text(path).await;
    assert!(body.contains("news/graphene.html") && body.contains("news/aerogel.html"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_first_bucket_is_empty_on_sqlite() {
    a_feed_whose_first_bucket_is_empty_dates_its_changes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_first_bucket_is_empty_on_postgres() {
    a_feed_whose_first_bucket_is_empty_dates_its_changes(Backend::Postgres).await;
}

/// Others may serve a feed past its age while they revalidate and while feedcast cannot
/// answer (RFC 5861), for times set per kind of feed; 0 leaves a directive out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_lets_others_serve_stale_for_times_set_per_kind() {
    let settings = settings_with(&[(
        "archive = 86400 # archives of months that have ended",
        "archive = 86400\n\
         [caching.stale_while_revalidate]\nregion = 30\ncategory = 0\n\
         [caching.stale_if_error]\nregion = 600",
    )]);
    let server = Server::start_with(Backend::Sqlite, settings).await.unwrap();
    server.app.load_demo_if_empty().await.unwrap();
    for (path, expected) in [
        (
            "/feeds/region/320000.rss",
            "public, max-age=300, stale-while-revalidate=30, stale-if-error=600",
        ),
        (
            "/feeds/category/hydrogen.atom",
            "public, max-age=300, stale-if-error=86400",
        ),
        (
            "/feeds/category/hydrogen/archive/2024-01.json",
            "public, max-age=86400, stale-while-revalidate=60, stale-if-error=86400",
        ),
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "cache-control"), expected, "{path}");
    }
    server.stop().await;
}

#[test]
fn a_stale_time_that_is_not_a_number_is_refused_naming_its_line() {
    let text = include_str!("fixtures/feeds.toml").replace(
        "archive = 86400 # archives of months that have ended",
        "archive = 86400\n[caching.stale_if_error]\nregion = \"long\"",
    );
    let line = 1 + text[..text.find("region = \"long\"").unwrap()]
        .matches('\n')
        .count();
    let e = feedcast::config::Settings::parse(&text, std::path::Path::new("feeds.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(&format!("feeds.toml:{line}:")), "{e}");
    assert!(e.contains("u32"), "{e}");
}
