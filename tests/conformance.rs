//! The conformance suite: a corpus of adversarial articles (`tests/fixtures/adversarial.ndjson`),
//! each rendered in every format, parsed back and held to the rules a producer of RSS 2.0,
//! Atom 1.0 (RFC 4287) and JSON Feed 1.1 must keep; articles that cannot be fixed
//! (`tests/fixtures/rejected.ndjson`) are refused with the field at fault; and every
//! conformance feed, served over HTTP, is read by Python's feedparser.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::DateTime;
use common::{Backend, Server, available, python_json, settings};
use feedcast::config::Settings;
use feedcast::feed::{Archive, FeedKey, Format, Month, describe};
use feedcast::model::Article;
use feedcast::render::{render, verify};

const CORPUS: &str = include_str!("fixtures/adversarial.ndjson");
const REJECTED: &str = include_str!("fixtures/rejected.ndjson");

fn corpus(s: &Settings) -> Vec<Article> {
    feedcast::import::parse_ndjson(CORPUS, s)
        .unwrap_or_else(|e| panic!("the corpus must import: {e}"))
}

fn item_id(s: &Settings, a: &Article) -> String {
    format!("{}article/{}", s.site.id_prefix, a.id())
}

fn absolute(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// Every `href` and `src` in an HTML fragment.
fn html_urls(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].replace("&amp;", "&"));
            rest = &rest[end..];
        }
    }
    out
}

/// The markup of an HTML fragment: its tags, without the text between them. Sanitized HTML
/// has no `<` in its text, so every `<` starts a tag.
fn tags(html: &str) -> Vec<&str> {
    html.split('<')
        .skip(1)
        .map(|rest| rest.split_once('>').map_or(rest, |(tag, _)| tag))
        .collect()
}

fn check_content(html: &str) {
    // Text may mention anything (an article about XSS shows `onerror` as text); markup may not.
    for tag in tags(html) {
        let lower = tag.to_lowercase();
        let name = lower
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        for banned in [
            "script", "form", "input", "iframe", "style", "object", "embed", "base", "meta",
        ] {
            assert_ne!(name, banned, "<{tag}> in {html}");
        }
        for banned in ["javascript:", "onerror", "onclick", "style=", "data:"] {
            assert!(!lower.contains(banned), "{banned} in <{tag}> of {html}");
        }
    }
    for url in html_urls(html) {
        assert!(absolute(&url), "relative or odd URL `{url}` in {html}");
    }
}

/// RSS `<description>` is HTML, and plain text in it must stay text: parsed as HTML it has no
/// element (an HTML tokenizer starts a tag only at `<`) and its character references decode to
/// the plain text.
fn check_rss_description(description: &str, plain: &str) {
    assert!(
        !description.contains('<'),
        "plain text became markup: {description}"
    );
    let decoded = quick_xml::escape::unescape(description).unwrap();
    assert_eq!(decoded, plain, "{description}");
}

/// RSS `<title>` is plain text written with character references for `&`, `<` and `>`, so an
/// aggregator that decodes it as HTML still reads the characters.
fn check_rss_plain_text_references(body: &[u8]) {
    let xml = String::from_utf8_lossy(body);
    for title in xml.split("<title>").skip(1) {
        let (text, _) = title.split_once("</title>").unwrap();
        for entity in ["&amp;", "&lt;", "&gt;"] {
            assert!(!text.contains(entity), "{entity} in <title>{text}</title>");
        }
    }
}

fn check_rss(s: &Settings, a: &Article, body: &[u8]) {
    let channel = rss::Channel::read_from(body).unwrap();
    assert!(
        !channel.title().is_empty()
            && absolute(channel.link())
            && !channel.description().is_empty()
    );
    let self_link = &channel.atom_ext().unwrap().links()[0];
    assert!(self_link.rel() == "self" && absolute(self_link.href()));
    DateTime::parse_from_rfc2822(channel.last_build_date().unwrap()).unwrap();
    let item = &channel.items()[0];
    assert_eq!(item.guid().unwrap().value(), item_id(s, a));
    assert!(!item.guid().unwrap().is_permalink());
    assert_eq!(item.title(), Some(a.title()));
    assert_eq!(item.link(), Some(a.url()));
    assert!(absolute(item.link().unwrap()));
    match item.description() {
        Some(description) => check_rss_description(description, a.summary()),
        None => assert!(a.summary().is_empty()),
    }
    assert!(!channel.description().contains('<'));
    check_rss_plain_text_references(body);
    let published = DateTime::parse_from_rfc2822(item.pub_date().unwrap()).unwrap();
    assert_eq!(published.timestamp(), a.published_at().timestamp());
    // The site's offset at that date, in whole minutes (LMT before 1901 had seconds).
    let zone = a
        .published_at()
        .with_timezone(&s.site.time_zone)
        .fixed_offset();
    let seconds = zone.offset().local_minus_utc();
    assert_eq!(published.offset().local_minus_utc(), seconds - seconds % 60);
    check_content(item.content().unwrap_or_default());
    if let Some(source) = a.source() {
        assert_eq!(item.source().unwrap().url(), source.url);
        assert!(absolute(item.source().unwrap().url()));
    }
}

fn check_atom(s: &Settings, a: &Article, body: &[u8]) {
    let feed = atom_syndication::Feed::read_from(body).unwrap();
    assert!(!feed.id().is_empty() && !feed.title().is_empty());
    assert!(
        !feed.authors().is_empty(),
        "a feed-level author (entries may have none)"
    );
    assert!(
        feed.links()
            .iter()
            .any(|l| l.rel() == "self" && absolute(l.href()))
    );
    let entry = &feed.entries()[0];
    assert_eq!(entry.id(), item_id(s, a));
    assert!(url::Url::parse(entry.id()).is_ok(), "atom:id is an IRI");
    // Atom text constructs of `type="text"` carry the characters as they are.
    assert_eq!(entry.title().as_str(), a.title());
    assert_eq!(entry.title().r#type, atom_syndication::TextType::Text);
    assert_eq!(entry.updated().timestamp(), a.modified_at().timestamp());
    assert_eq!(
        entry.published().unwrap().timestamp(),
        a.published_at().timestamp()
    );
    let alternate = entry
        .links()
        .iter()
        .find(|l| l.rel() == "alternate")
        .unwrap();
    assert_eq!(alternate.href(), a.url());
    assert_eq!(entry.summary().map_or("", |t| t.as_str()), a.summary());
    if let Some(summary) = entry.summary() {
        assert_eq!(summary.r#type, atom_syndication::TextType::Text);
    }
    if let Some(content) = entry.content() {
        assert_eq!(content.content_type(), Some("html"));
        check_content(content.value().unwrap());
    } else {
        assert!(a.content_html().is_empty() && a.source().is_none());
    }
}

fn check_json(s: &Settings, a: &Article, body: &[u8]) {
    let doc: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(doc["version"], "https://jsonfeed.org/version/1.1");
    assert!(doc["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(absolute(doc["feed_url"].as_str().unwrap()));
    let item = &doc["items"][0];
    assert_eq!(item["id"].as_str(), Some(item_id(s, a).as_str()));
    assert_eq!(item["url"].as_str(), Some(a.url()));
    assert_eq!(item["title"].as_str(), Some(a.title()));
    assert_eq!(item["summary"].as_str().unwrap_or_default(), a.summary());
    let published = DateTime::parse_from_rfc3339(item["date_published"].as_str().unwrap()).unwrap();
    assert_eq!(published.timestamp(), a.published_at().timestamp());
    check_content(item["content_html"].as_str().unwrap());
    if let Some(image) = item["image"].as_str() {
        assert!(absolute(image));
    }
}

#[test]
fn every_adversarial_article_renders_conformant_feeds_in_every_format() {
    let s = settings();
    let articles = corpus(&s);
    assert!(articles.len() >= 25);
    for a in &articles {
        for format in Format::FEEDS {
            let key =
                FeedKey::parse(&format!("region/320000.{}", format.extension()), None, &s).unwrap();
            let archive = Archive {
                prev: Some(Month::of(a.published_at(), s.site.time_zone)),
                next: None,
            };
            let body = render(&describe(&s, &key, vec![a.clone()], archive), &s).unwrap();
            if let Err(e) = verify::well_formed(format, &body) {
                panic!(
                    "{} as {format:?}: {e}\n{}",
                    a.id(),
                    String::from_utf8_lossy(&body)
                );
            }
            match format {
                Format::Rss => check_rss(&s, a, &body),
                Format::Atom => check_atom(&s, a, &body),
                Format::Json => check_json(&s, a, &body),
                Format::Html => {}
            }
            // An independent parser agrees.
            let parsed = feed_rs::parser::parse(&body[..])
                .unwrap_or_else(|e| panic!("{} as {format:?}: feed-rs: {e}", a.id()));
            assert_eq!(parsed.entries.len(), 1);
            let entry = &parsed.entries[0];
            assert_eq!(
                entry.title.as_ref().map(|t| t.content.as_str()),
                Some(a.title()),
                "{format:?}"
            );
            assert_eq!(
                entry.links.first().map(|l| l.href.as_str()),
                Some(a.url()),
                "{format:?}"
            );
        }
    }
}

#[test]
fn all_adversarial_articles_together_make_one_valid_feed_with_unique_ids() {
    let s = settings();
    let articles = corpus(&s);
    for format in Format::FEEDS {
        let key = FeedKey::parse(
            &format!("industry.{}", format.extension()),
            Some("limit=100"),
            &s,
        )
        .unwrap();
        let body = render(
            &describe(&s, &key, articles.clone(), Archive::default()),
            &s,
        )
        .unwrap();
        verify::well_formed(format, &body).unwrap();
        let parsed = feed_rs::parser::parse(&body[..]).unwrap();
        let ids: BTreeSet<&str> = parsed.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), articles.len(), "{format:?}");
    }
}

#[test]
fn what_cannot_be_fixed_is_refused_naming_the_field() {
    let s = settings();
    for line in REJECTED.lines() {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let err = feedcast::import::parse_ndjson(&case["article"].to_string(), &s).unwrap_err();
        let fields: Vec<&str> = err.problems.iter().filter_map(|p| p.field).collect();
        assert!(
            fields.contains(&case["expect"].as_str().unwrap()),
            "{line}: {err}"
        );
    }
}

#[test]
fn sanitizing_keeps_what_readers_need() {
    let s = settings();
    let by_id: BTreeMap<String, Article> = corpus(&s)
        .into_iter()
        .map(|a| (a.id().to_string(), a))
        .collect();
    // Characters XML forbids are gone; NEL (U+0085) is a line break, so it folds to a space.
    assert_eq!(by_id["adv-01"].title(), "控制符 结束");
    // Entities are decoded once; a no-break space is white space, folded like any other.
    assert_eq!(by_id["adv-06"].title(), "双重转义 &amp; <b> 氢 水 空格");
    assert!(by_id["adv-13"].title().contains("👩🏽‍🔬"));
    assert!(by_id["adv-14"].title().contains("مرحبا"));
    assert!(by_id["adv-15"].title().contains("e\u{301}"));
    assert_eq!(
        by_id["adv-16"].summary().chars().count(),
        feedcast::model::MAX_SUMMARY_CHARS
    );
    assert!(by_id["adv-16"].summary().ends_with('…'));
    assert_eq!(
        by_id["adv-05"].image(),
        Some("https://www.kechuang.example.cn/uploads/lead.jpg")
    );
    assert_eq!(
        by_id["adv-07"].published_at().to_rfc3339(),
        "2021-01-18T16:00:00+00:00"
    );
    // Markup that an article only mentions (escaped in its HTML) is text: in the title, in a
    // summary, and in the lead taken from the content when there is no summary.
    assert_eq!(
        by_id["adv-28"].title(),
        "标题提到 <script>alert(1)</script> 与 AT&T"
    );
    assert_eq!(
        by_id["adv-28"].summary(),
        "写 <img src=x onerror=alert(1)> 会执行"
    );
    assert_eq!(
        by_id["adv-29"].summary(),
        "摘要 <b>粗体</b> &lt;i&gt; 与 <a href=\"javascript:alert(1)\">链接</a> ]]>"
    );
    // A style that hid text is gone, so the text shows like any other.
    let hostile = by_id["adv-04"].content_html();
    assert!(
        hostile.contains("隐藏文字") && !hostile.contains("display"),
        "{hostile}"
    );
}

const FEEDPARSER: &str = r#"
import calendar, json, sys
from html.parser import HTMLParser
import feedparser

class Reader(HTMLParser):
    """The text and the element names of an HTML fragment."""
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text, self.tags = [], []
    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
    def handle_data(self, data):
        self.text.append(data)

def summary(e):
    detail = e.get("summary_detail")
    if not detail:
        return None
    if detail.get("type") == "text/html":
        r = Reader()
        r.feed(detail["value"])
        r.close()
        return {"text": "".join(r.text), "tags": r.tags}
    return {"text": detail["value"], "tags": []}

out = {}
for url in sys.argv[1:]:
    d = feedparser.parse(url)
    out[url] = {
        "bozo": bool(d.bozo),
        "error": str(d.get("bozo_exception", "")),
        "entries": [{
            "id": e.get("id"), "link": e.get("link"), "title": e.get("title"),
            "published": calendar.timegm(e.published_parsed) if e.get("published_parsed") else None,
            "updated": calendar.timegm(e.updated_parsed) if e.get("updated_parsed") else None,
            "summary": summary(e),
        } for e in d.entries],
    }
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedparser_reads_every_conformance_feed() {
    if !available("python3", &["-c", "import feedparser"]) {
        return;
    }
    let server = Server::start(Backend::Sqlite).await.unwrap();
    let s = server.app.settings.clone();
    let articles = corpus(&s);
    server.app.write(&articles).await.unwrap();
    let by_id: BTreeMap<String, &Article> = articles.iter().map(|a| (item_id(&s, a), a)).collect();

    let mut urls = Vec::new();
    for feed in [
        "category/hydrogen",
        "category/materials",
        "region/320000",
        "region/320281",
        "industry",
        "jiangsu-hydrogen",
    ] {
        // feedparser 6.0 (the current release) reads RSS and Atom; it has no JSON Feed support.
        for format in [Format::Rss, Format::Atom] {
            urls.push(format!(
                "{}/feeds/{feed}.{}?limit=100",
                server.base,
                format.extension()
            ));
            urls.push(format!(
                "{}/feeds/{feed}/archive/2024-05.{}",
                server.base,
                format.extension()
            ));
        }
    }
    let results: BTreeMap<String, serde_json::Value> =
        serde_json::from_value(python_json(FEEDPARSER, urls.clone()).await).unwrap();
    let mut checked = 0;
    for url in &urls {
        let r = &results[url];
        assert_eq!(r["bozo"], false, "{url}: {}", r["error"]);
        let entries = r["entries"].as_array().unwrap();
        assert!(!entries.is_empty(), "{url}");
        for e in entries {
            let a = by_id[e["id"].as_str().unwrap()];
            assert_eq!(e["link"].as_str(), Some(a.url()), "{url}");
            assert_eq!(e["title"].as_str(), Some(a.title()), "{url}");
            // Read as the reader reads it (HTML for RSS, text for Atom), a summary is its
            // characters and never markup.
            if !a.summary().is_empty() {
                let summary = &e["summary"];
                assert_eq!(summary["text"].as_str(), Some(a.summary()), "{url}");
                assert_eq!(summary["tags"], serde_json::json!([]), "{url}");
            }
            let published: Option<i64> = e["published"].as_i64();
            assert_eq!(
                published,
                Some(a.published_at().timestamp()),
                "{url} {}",
                a.id()
            );
            checked += 1;
        }
    }
    println!(
        "feedparser: {} documents, {checked} entries checked",
        urls.len()
    );
    server.stop().await;
}
