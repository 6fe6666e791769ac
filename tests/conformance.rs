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

/// Whom an item must credit as its authors, in every format, as (name, link): a reprint's
/// original author, or else its publisher (never the portal, whose name the feed's author would
/// lend an item without one); then the article's own author, when that is someone else.
fn credited(a: &Article) -> Vec<(String, Option<String>)> {
    let mut authors = Vec::new();
    if let Some(source) = a.source() {
        authors.push(match &source.author {
            Some(author) => (author.clone(), None),
            None => (source.name.clone(), Some(source.url.clone())),
        });
    }
    if let Some(own) = a.author() {
        if authors.iter().all(|(name, _)| name != own) {
            authors.push((own.to_owned(), None));
        }
    }
    authors
}

/// Text escaped for HTML as the attribution line writes it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The visible attribution line names every credit with its label, so a bridge that forwards
/// only the content still states the source, original author, original title and editor.
fn check_credits_line(s: &Settings, a: &Article, html: &str) {
    let site = &s.site;
    let mut credits = Vec::new();
    if let Some(source) = a.source() {
        credits.push(format!(
            "{}：<a href=\"{}\">{}</a>",
            site.source_label,
            escaped(&source.url),
            escaped(&source.name)
        ));
        if let Some(author) = &source.author {
            credits.push(format!("{}：{}", site.author_label, escaped(author)));
        }
        if let Some(title) = &source.title {
            credits.push(format!(
                "{}：《{}》",
                site.original_title_label,
                escaped(title)
            ));
        }
    }
    if let Some(editor) = a.editor() {
        credits.push(format!("{}：{}", site.editor_label, escaped(editor)));
    }
    if credits.is_empty() {
        assert!(!html.contains("class=\"feedcast-"), "{html}");
    } else {
        assert!(
            html.contains(&credits.join("\u{3000}")),
            "{credits:?} in {html}"
        );
    }
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

/// One element of an XML document, as a validator sees it: its qualified name, its parent's,
/// its attributes and its text (character references decoded); where it starts in the document
/// (its order among the elements) and which RSS `<item>` it is in, named by the item's order.
struct Element {
    name: String,
    parent: String,
    attrs: BTreeMap<String, String>,
    text: String,
    order: usize,
    item: Option<usize>,
}

fn elements(body: &[u8]) -> Vec<Element> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut open: Vec<Element> = Vec::new();
    let mut done = Vec::new();
    let mut order = 0;
    let mut element = |e: &quick_xml::events::BytesStart, open: &[Element]| {
        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
        order += 1;
        Element {
            item: if name == "item" {
                Some(order)
            } else {
                open.last().and_then(|p| p.item)
            },
            order,
            name,
            parent: open.last().map_or(String::new(), |p| p.name.clone()),
            attrs: e
                .attributes()
                .map(|a| {
                    let a = a.unwrap();
                    (
                        String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                        a.unescape_value().unwrap().into_owned(),
                    )
                })
                .collect(),
            text: String::new(),
        }
    };
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => {
                let e = element(&e, &open);
                open.push(e);
            }
            Event::Empty(e) => done.push(element(&e, &open)),
            Event::Text(t) => {
                if let Some(e) = open.last_mut() {
                    e.text.push_str(&t.unescape().unwrap());
                }
            }
            Event::CData(t) => {
                if let Some(e) = open.last_mut() {
                    e.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(_) => done.extend(open.pop()),
            Event::Eof => break,
            _ => {}
        }
    }
    done
}

/// Whether decoded text holds markup or escaped markup, as a validator that reads it as plain
/// text sees it: a tag (`<` then a letter, `/` or `!`) or an HTML character or entity reference
/// (`&amp;`, `&#60;`). A `<` or `&` that starts neither is plain text (`1 < 2`, `R & D`).
fn markup(text: &str) -> bool {
    let tag = text.split('<').skip(1).any(|rest| {
        rest.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!')
    });
    let reference = text.split('&').skip(1).any(|rest| {
        let name = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .unwrap_or(rest.len());
        name > 0 && rest[name..].starts_with(';')
    });
    tag || reference
}

/// An RFC 3339 date as the documents write them: whole seconds, an explicit offset.
fn whole_second_rfc3339(date: &str) -> bool {
    DateTime::parse_from_rfc3339(date).is_ok() && !date.contains('.')
}

fn media_type(value: &str) -> bool {
    value
        .split_once('/')
        .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains('/'))
}

/// The warnings a strict feed validator (the W3C Feed Validation Service's, for RSS and Atom)
/// gives about `body`, fetched at `self_url`, that a producer can avoid. Some it gives are not
/// avoidable and not checked: an article's own title may mention `<b>` (it is shown as text),
/// and an article may really be dated 1900 or 9999.
fn warnings(format: Format, body: &[u8], self_url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut warn = |rule: &str, what: String| found.push(format!("{rule}: {what}"));
    if format == Format::Json {
        let doc: serde_json::Value = serde_json::from_slice(body).unwrap();
        if doc["feed_url"] != self_url {
            warn("self link does not match", doc["feed_url"].to_string());
        }
        for key in ["icon", "favicon", "home_page_url"] {
            if !doc[key].as_str().is_some_and(absolute) {
                warn("not an absolute URL", format!("{key} {}", doc[key]));
            }
        }
        for item in doc["items"].as_array().unwrap() {
            for (key, date) in [
                ("date_published", &item["date_published"]),
                ("date_modified", &item["date_modified"]),
                ("_source.published_at", &item["_source"]["published_at"]),
            ] {
                if let Some(date) = date.as_str() {
                    if !whole_second_rfc3339(date) {
                        warn("date not in whole seconds", format!("{key} {date}"));
                    }
                }
            }
            if let Some(image) = item["image"].as_str() {
                if !absolute(image) {
                    warn("not an absolute URL", format!("image {image}"));
                }
            }
        }
        return found;
    }
    let all = elements(body);
    fn named<'a>(all: &'a [Element], name: &'a str) -> impl Iterator<Item = &'a Element> {
        all.iter().filter(move |e| e.name == name)
    }
    let named = |name: &'static str| named(&all, name);
    let text_of = |name: &'static str| named(name).next().map(|e| e.text.clone());
    // Dates a producer sets itself must be plausible; the syndication module's 1970 base is
    // the rss crate's default, not a date anyone chose.
    for e in named("sy:updateBase") {
        warn("implausible date", format!("sy:updateBase {}", e.text));
    }
    // Text constructs written from the configuration hold no markup, and no escaped markup
    // either: the validator reads RSS's channel `<title>` and `<description>` as plain text
    // (ContainsHTML), so text that still holds `&amp;` or `&lt;b&gt;` once the XML is decoded
    // was escaped twice, and plain-text readers show the escapes.
    for name in ["title", "subtitle", "rights", "generator", "description"] {
        for e in named(name).filter(|e| ["channel", "feed"].contains(&e.parent.as_str())) {
            if markup(&e.text) || e.attrs.get("type").is_some_and(|t| t != "text") {
                warn("HTML in a text construct", format!("<{name}> {}", e.text));
            }
        }
    }
    let self_links: Vec<&Element> = all
        .iter()
        .filter(|e| {
            ["atom:link", "link"].contains(&e.name.as_str())
                && ["channel", "feed"].contains(&e.parent.as_str())
                && e.attrs.get("rel").map(String::as_str) == Some("self")
        })
        .collect();
    match self_links.as_slice() {
        [link] => {
            if link.attrs.get("href").map(String::as_str) != Some(self_url) {
                warn("self link does not match", format!("{:?}", link.attrs));
            }
            if link.attrs.get("type").map(String::as_str) != Some(format.media_type()) {
                warn(
                    "self link's type is not the document's",
                    format!("{:?}", link.attrs),
                );
            }
        }
        other => warn("not one self link", format!("{}", other.len())),
    }
    for e in named("media:content") {
        if !e.attrs.get("url").is_some_and(|u| absolute(u)) {
            warn(
                "media:content without an absolute url",
                format!("{:?}", e.attrs),
            );
        }
        if e.attrs.get("medium").map(String::as_str) != Some("image") {
            warn(
                "media:content medium is not image",
                format!("{:?}", e.attrs),
            );
        }
        if e.attrs.get("type").is_some_and(|t| !media_type(t)) {
            warn(
                "media:content type is not a media type",
                format!("{:?}", e.attrs),
            );
        }
    }
    for e in named("media:thumbnail") {
        if !e.attrs.get("url").is_some_and(|u| absolute(u)) {
            warn(
                "media:thumbnail without an absolute url",
                format!("{:?}", e.attrs),
            );
        }
    }
    match format {
        Format::Rss => {
            for e in named("enclosure") {
                let length = e.attrs.get("length");
                if !length.is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit())) {
                    warn("enclosure without length", format!("{:?}", e.attrs));
                }
                if !e.attrs.get("type").is_some_and(|t| media_type(t)) {
                    warn("enclosure without type", format!("{:?}", e.attrs));
                }
                if !e.attrs.get("url").is_some_and(|u| absolute(u)) {
                    warn(
                        "enclosure without an absolute url",
                        format!("{:?}", e.attrs),
                    );
                }
            }
            // What each item carries, in document order.
            let mut items: BTreeMap<usize, Vec<&Element>> = BTreeMap::new();
            for e in all.iter().filter(|e| e.parent == "item") {
                items.entry(e.item.unwrap()).or_default().push(e);
            }
            for children in items.values_mut() {
                children.sort_by_key(|e| e.order);
                let has = |name: &str| children.iter().any(|e| e.name == name);
                // Readers that show `<description>` as the preview need one before the full
                // content (NeedDescriptionBeforeContent).
                if let Some(content) = children.iter().find(|e| e.name == "content:encoded") {
                    if !children
                        .iter()
                        .any(|e| e.name == "description" && e.order < content.order)
                    {
                        warn(
                            "content:encoded without a description before it",
                            format!("{:?}", children.iter().map(|e| &e.name).collect::<Vec<_>>()),
                        );
                    }
                }
                // Two elements of one meaning (DuplicateItemSemantics).
                if has("source") && has("dc:source") {
                    warn(
                        "an item carries both source and dc:source",
                        format!("{:?}", children.iter().map(|e| &e.name).collect::<Vec<_>>()),
                    );
                }
            }
            // The channel image describes the channel: same title, same link.
            let image_of = |name: &'static str| {
                named(name)
                    .find(|e| e.parent == "image")
                    .map(|e| e.text.clone())
            };
            if named("image").next().is_some() {
                let channel_title = named("title").find(|e| e.parent == "channel");
                let channel_link = named("link").find(|e| e.parent == "channel");
                if image_of("title") != channel_title.map(|e| e.text.clone()) {
                    warn(
                        "image title does not match the channel's",
                        format!("{:?}", image_of("title")),
                    );
                }
                if image_of("link") != channel_link.map(|e| e.text.clone()) {
                    warn(
                        "image link does not match the channel's",
                        format!("{:?}", image_of("link")),
                    );
                }
                if !image_of("url").is_some_and(|u| absolute(&u)) {
                    warn(
                        "image without an absolute url",
                        format!("{:?}", image_of("url")),
                    );
                }
                // The validator judges a channel image by its URL's extension (ImageUrlFormat).
                let typed = |url: &str| {
                    let extension = url.rsplit('.').next().unwrap_or_default();
                    ["jpg", "jpeg", "gif", "png"].contains(&extension.to_lowercase().as_str())
                };
                if !image_of("url").is_some_and(|u| typed(&u)) {
                    warn(
                        "image url does not end in .jpg, .jpeg, .gif or .png",
                        format!("{:?}", image_of("url")),
                    );
                }
            }
            for name in ["pubDate", "lastBuildDate"] {
                for e in named(name) {
                    if DateTime::parse_from_rfc2822(&e.text).is_err() {
                        warn("not an RFC 822 date", format!("<{name}> {}", e.text));
                    }
                }
            }
            if let Some(ttl) = text_of("ttl") {
                if ttl.parse::<u32>().is_err() {
                    warn("ttl is not a whole number of minutes", ttl);
                }
            }
        }
        Format::Atom => {
            // RFC 4287 lets an enclosure go without a type or length (readers then guess);
            // those it has must be right.
            let enclosures = named("link")
                .filter(|e| e.attrs.get("rel").map(String::as_str) == Some("enclosure"));
            for e in enclosures {
                if e.attrs.get("type").is_some_and(|t| !media_type(t)) {
                    warn(
                        "enclosure type is not a media type",
                        format!("{:?}", e.attrs),
                    );
                }
                if e.attrs
                    .get("length")
                    .is_some_and(|l| l.parse::<u64>().is_err())
                {
                    warn("enclosure length is not a number", format!("{:?}", e.attrs));
                }
            }
            for name in ["updated", "published", "at:deleted-entry"] {
                for e in named(name) {
                    let date = if name == "at:deleted-entry" {
                        e.attrs.get("when").cloned().unwrap_or_default()
                    } else {
                        e.text.clone()
                    };
                    if !whole_second_rfc3339(&date) {
                        warn("date not in whole seconds", format!("<{name}> {date}"));
                    }
                }
            }
            for name in ["icon", "logo"] {
                for e in named(name) {
                    if !absolute(&e.text) {
                        warn("not an absolute URL", format!("<{name}> {}", e.text));
                    }
                }
            }
        }
        Format::Json | Format::Html | Format::Wechat => {}
    }
    found
}

fn assert_no_warnings(format: Format, body: &[u8], self_url: &str, what: &str) {
    let found = warnings(format, body, self_url);
    assert!(
        found.is_empty(),
        "{what} as {format:?}: {found:#?}\n{}",
        String::from_utf8_lossy(body)
    );
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
    // The summary, else (for an item with content) the title: every item with content has a
    // description before it, which readers show as its preview.
    match item.description() {
        Some(description) if a.summary().is_empty() => {
            check_rss_description(description, a.title())
        }
        Some(description) => check_rss_description(description, a.summary()),
        None => assert!(a.summary().is_empty() && item.content().is_none()),
    }
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
    check_credits_line(s, a, item.content().unwrap_or_default());
    if let Some(source) = a.source() {
        assert_eq!(item.source().unwrap().url(), source.url);
        assert_eq!(item.source().unwrap().title(), Some(source.name.as_str()));
        assert!(absolute(item.source().unwrap().url()));
    }
    // Dublin Core: the credited authors and the editor. The original report is `<source url>`
    // alone: an item with `dc:source` too draws a validator warning.
    let dc = item.dublin_core_ext().cloned().unwrap_or_default();
    let names: Vec<String> = credited(a).into_iter().map(|(name, _)| name).collect();
    assert_eq!(dc.creators(), names);
    assert_eq!(
        dc.contributors(),
        Vec::from_iter(a.editor().map(str::to_owned))
    );
    assert!(dc.sources().is_empty(), "{:?}", dc.sources());
    // The cover image: an enclosure when its type is known (RSS requires one), and Media RSS.
    let media = item.extensions().get("media");
    match a.image() {
        Some(image) => {
            let enclosure = item.enclosure();
            match a.image_type() {
                Some(t) => {
                    let enclosure = enclosure.unwrap();
                    assert_eq!(
                        (enclosure.url(), enclosure.mime_type(), enclosure.length()),
                        (image, t, "0")
                    );
                }
                None => assert!(enclosure.is_none(), "no enclosure without a type"),
            }
            let media = media.unwrap();
            let content = &media["content"][0];
            assert_eq!(content.attrs()["url"], image);
            assert_eq!(content.attrs()["medium"], "image");
            assert_eq!(
                content.attrs().get("type").map(String::as_str),
                a.image_type()
            );
            assert_eq!(media["thumbnail"][0].attrs()["url"], image);
        }
        None => assert!(item.enclosure().is_none() && media.is_none()),
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
        check_credits_line(s, a, content.value().unwrap());
    } else {
        assert!(a.content_html().is_empty() && a.source().is_none() && a.editor().is_none());
    }
    let people = |people: &[atom_syndication::Person]| {
        people
            .iter()
            .map(|p| (p.name().to_owned(), p.uri().map(str::to_owned)))
            .collect::<Vec<_>>()
    };
    assert_eq!(people(entry.authors()), credited(a));
    if a.source().is_some() {
        assert!(
            entry.authors().iter().all(|p| p.name() != s.site.title),
            "a reprint is never the portal's"
        );
    }
    let editor = a.editor().map(|name| (name.to_owned(), None));
    assert_eq!(people(entry.contributors()), Vec::from_iter(editor));
    if let Some(source) = a.source() {
        let atom_source = entry.source().unwrap();
        assert_eq!(atom_source.title().as_str(), source.name);
        assert_eq!(
            atom_source.updated().timestamp(),
            source.published_at.unwrap_or(a.published_at()).timestamp()
        );
    }
    let enclosure = entry.links().iter().find(|l| l.rel() == "enclosure");
    assert_eq!(enclosure.map(|l| l.href()), a.image());
    assert_eq!(enclosure.and_then(|l| l.mime_type()), a.image_type());
    let thumbnail = entry
        .extensions()
        .get("media")
        .map(|m| m["thumbnail"][0].attrs()["url"].as_str());
    assert_eq!(thumbnail, a.image());
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
    // JSON Feed 1.1 requires content_html or content_text; an article without a body carries
    // its summary, else its title, as text rather than a blank item.
    assert!(item["content_html"].is_string() || item["content_text"].is_string());
    if let Some(html) = item["content_html"].as_str() {
        assert!(!html.is_empty());
        check_content(html);
        check_credits_line(s, a, html);
    }
    if a.content_html().is_empty() {
        let expected = if a.summary().is_empty() {
            a.title()
        } else {
            a.summary()
        };
        assert_eq!(item["content_text"].as_str(), Some(expected), "{}", a.id());
    } else {
        assert!(item["content_text"].is_null(), "{}", a.id());
    }
    if let Some(image) = item["image"].as_str() {
        assert!(absolute(image));
    }
    let mut authors: Vec<serde_json::Value> = credited(a)
        .into_iter()
        .map(|(name, url)| match url {
            Some(url) => serde_json::json!({ "name": name, "url": url }),
            None => serde_json::json!({ "name": name }),
        })
        .collect();
    // The editor, whom RSS (`dc:contributor`) and Atom (`contributor`) credit too: of a reprint
    // in `_source.editor` (in `authors` a bridge would show the editor as the writer of another
    // paper's report); of the portal's own article after its authors, once.
    let editor = serde_json::json!({ "name": a.editor() });
    if a.source().is_none() && a.editor().is_some() && !authors.contains(&editor) {
        authors.push(editor);
    }
    let found = item["authors"].as_array().cloned().unwrap_or_default();
    assert_eq!(found, authors, "{}", a.id());
    let credited_editor = match item.get("_source") {
        Some(object) => object["editor"].as_str(),
        None => a
            .editor()
            .filter(|e| found.contains(&serde_json::json!({ "name": e }))),
    };
    assert_eq!(credited_editor, a.editor(), "{}", a.id());
    match a.source() {
        Some(source) => {
            let object = &item["_source"];
            assert_eq!(object["name"].as_str(), Some(source.name.as_str()));
            assert_eq!(object["url"].as_str(), Some(source.url.as_str()));
            assert_eq!(object["author"].as_str(), source.author.as_deref());
            assert_eq!(object["title"].as_str(), source.title.as_deref());
            assert_eq!(object["editor"].as_str(), a.editor());
            let published = object["published_at"]
                .as_str()
                .map(|t| DateTime::parse_from_rfc3339(t).unwrap().timestamp());
            assert_eq!(published, source.published_at.map(|t| t.timestamp()));
        }
        None => assert!(item.get("_source").is_none()),
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
                Format::Html | Format::Wechat => {}
            }
            assert_no_warnings(format, &body, &key.url(&s), a.id().as_str());
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

/// A feed's description is the operator's plain text: in every format it reads back as the
/// characters configured, with no markup and no escapes left once the XML is decoded, which is
/// what the validator's plain-text rule (ContainsHTML) and plain-text readers expect.
#[test]
fn a_description_with_markup_characters_is_plain_text_in_every_format() {
    let configured = "氢能 & 新材料：<产业观察> 与 \"动态\"";
    let s = common::settings_with(&[(
        "description = \"氢能与新材料产业动态\"",
        &format!("description = {configured:?}"),
    )]);
    let articles = corpus(&s);
    for format in Format::FEEDS {
        let key = FeedKey::parse(&format!("industry.{}", format.extension()), None, &s).unwrap();
        let body = render(
            &describe(&s, &key, articles[..3].to_vec(), Archive::default()),
            &s,
        )
        .unwrap();
        assert_no_warnings(format, &body, &key.url(&s), "a custom feed's description");
        let description = match format {
            Format::Rss => rss::Channel::read_from(&body[..])
                .unwrap()
                .description()
                .to_owned(),
            Format::Atom => atom_syndication::Feed::read_from(&body[..])
                .unwrap()
                .subtitle()
                .unwrap()
                .as_str()
                .to_owned(),
            _ => serde_json::from_slice::<serde_json::Value>(&body).unwrap()["description"]
                .as_str()
                .unwrap()
                .to_owned(),
        };
        assert_eq!(description, configured, "{format:?}");
    }
}

/// Plain text as an HTML text node writes it.
fn html_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Holds an item of the WeChat profile to what WeChat's `draft/add` takes and to what a bridge
/// relies on: the title at most 32 characters and the digest at most 120, the content under
/// 20,000 characters and 1,000,000 bytes with no script, style, form or iframe and no link but
/// to another WeChat article, every image it shows listed, the credit of a reprint kept.
fn check_wechat(s: &Settings, a: &Article, item: &serde_json::Value) {
    let id = a.id();
    assert_eq!(item["id"].as_str(), Some(item_id(s, a).as_str()), "{id}");
    let title = item["title"].as_str().unwrap();
    assert!(title.chars().count() <= 32, "{id}: title {title}");
    if let Some(short) = a.short_title() {
        // The editor's own short title, whole, wins over any cut.
        assert_eq!(
            (title, &item["title_cut"]),
            (short, &serde_json::json!(false)),
            "{id}"
        );
    } else if item["title_cut"] == true {
        let kept = title.strip_suffix('…').unwrap();
        assert!(a.title().starts_with(kept), "{id}: {title}");
    } else {
        assert_eq!(item["title_cut"], false, "{id}");
        assert_eq!(title, a.title(), "{id}");
    }
    let digest = item["digest"].as_str().unwrap();
    assert!(
        !digest.is_empty() && digest.chars().count() <= 120,
        "{id}: digest {digest}"
    );
    assert_eq!(item["content_source_url"].as_str(), Some(a.url()), "{id}");
    assert_eq!(item["thumb_url"].as_str(), a.image(), "{id}");
    // The first credited, as every format credits: never the portal for a reprint.
    let first = credited(a).into_iter().next().map(|(name, _)| name);
    assert_eq!(item["author"].as_str(), first.as_deref(), "{id}");
    let content = item["content"].as_str().unwrap();
    assert!(
        content.chars().count() < 20_000 && content.len() < 1_000_000,
        "{id}: {} characters, {} bytes",
        content.chars().count(),
        content.len()
    );
    for tag in tags(content) {
        let lower = tag.to_lowercase();
        let name = lower
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        for banned in [
            "script", "style", "form", "input", "iframe", "object", "embed",
        ] {
            assert_ne!(name, banned, "{id}: <{tag}> in {content}");
        }
        if name == "a" {
            assert!(
                lower.starts_with("a href=\"https://mp.weixin.qq.com/"),
                "{id}: an outside link left as a link: <{tag}>"
            );
        }
    }
    // Every image it shows is listed, once, and nothing else is.
    let mut shown: Vec<String> = Vec::new();
    for tag in tags(content).into_iter().filter(|t| t.starts_with("img ")) {
        let src = html_urls(&format!("<{tag}>")).remove(0);
        assert!(absolute(&src), "{id}: {src}");
        if !shown.contains(&src) {
            shown.push(src);
        }
    }
    let images: Vec<String> = item["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(images, shown, "{id}");
    if let Some(source) = a.source() {
        assert!(
            content.contains(&html_text(&source.name)),
            "{id}: the credit is gone: {content}"
        );
    }
    if item["content_cut"] == true {
        assert!(
            content.contains("阅读原文"),
            "{id}: a cut says where the rest is"
        );
    } else {
        assert_eq!(item["content_cut"], false, "{id}");
    }
}

#[test]
fn every_adversarial_article_fits_the_wechat_profile() {
    let s = settings();
    let articles = corpus(&s);
    for a in &articles {
        let key = FeedKey::parse("region/320000.wechat.json", None, &s).unwrap();
        let body = render(&describe(&s, &key, vec![a.clone()], Archive::default()), &s).unwrap();
        verify::well_formed(Format::Wechat, &body).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["feed"].as_str(), Some(key.url(&s).as_str()));
        check_wechat(&s, a, &doc["items"][0]);
    }
    // The corpus has what each rule is for.
    let profile = |id: &str| {
        let a = articles.iter().find(|a| a.id().as_str() == id).unwrap();
        let key = FeedKey::parse("region/320000.wechat.json", None, &s).unwrap();
        let body = render(&describe(&s, &key, vec![a.clone()], Archive::default()), &s).unwrap();
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["items"][0].clone()
    };
    let linked = profile("adv-34");
    assert_eq!(linked["title_cut"], true);
    assert_eq!(linked["images"].as_array().unwrap().len(), 2);
    let content = linked["content"].as_str().unwrap();
    assert!(
        content.contains("江阴日报<sup>[1]</sup>") && content.contains("同一链接<sup>[1]</sup>"),
        "one number per URL: {content}"
    );
    assert!(
        content.contains("[1] https://www.jyrb.example.com/a?id=1&amp;from=rss"),
        "{content}"
    );
    assert!(content.contains("<a href=\"https://mp.weixin.qq.com/s/abc\">"));
    assert!(
        !content.contains("alert") && !content.contains("color"),
        "{content}"
    );
    assert_eq!(profile("adv-35")["content_cut"], true);
    assert_eq!(profile("adv-01")["content_cut"], false);
}

#[test]
fn the_whole_corpus_makes_one_wechat_profile_within_the_limits() {
    let s = settings();
    let articles = corpus(&s);
    let key = FeedKey::parse("industry.wechat.json", Some("limit=100"), &s).unwrap();
    let body = render(
        &describe(&s, &key, articles.clone(), Archive::default()),
        &s,
    )
    .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let items = doc["items"].as_array().unwrap();
    assert_eq!(items.len(), articles.len());
    for item in items {
        let a = articles
            .iter()
            .find(|a| Some(item_id(&s, a).as_str()) == item["id"].as_str())
            .unwrap();
        check_wechat(&s, a, item);
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
        assert_no_warnings(format, &body, &key.url(&s), "the whole corpus");
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
    // A summary given, or taken from the content, that is too long ends after its last
    // sentence within the limit.
    for id in ["adv-34", "adv-35"] {
        let summary = by_id[id].summary();
        assert!(
            summary.chars().count() <= feedcast::model::MAX_SUMMARY_CHARS
                && summary.ends_with("。…"),
            "{id}: {summary}"
        );
    }
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
    // Credits are plain text: markup and controls gone, entities decoded once, what is only
    // markup no credit at all; a short title counts characters, not what they look like.
    let reprint = &by_id["adv-credit-1"];
    let source = reprint.source().unwrap();
    assert_eq!(source.author.as_deref(), Some("王明 ]]> 记者"));
    assert_eq!(source.title.as_deref(), Some("原题 ]]> &amp; 《书名》"));
    assert_eq!(
        (reprint.editor(), reprint.short_title()),
        (Some("李华"), Some("短标题 ]]> 粗"))
    );
    let other = &by_id["adv-credit-3"];
    assert_eq!(
        other.source().unwrap().author.as_deref(),
        Some("مرحبا 👩🏽\u{200d}🔬 e\u{301}")
    );
    assert_eq!(other.source().unwrap().title, None);
    assert_eq!(other.short_title().map(|t| t.chars().count()), Some(16));
    // Bodies with no text of their own (only an image, only the credit line the feeds add)
    // have no summary, so an RSS item of them takes its description from the title.
    for id in ["adv-37", "adv-38", "adv-39"] {
        assert_eq!(by_id[id].summary(), "", "{id}");
    }
    assert!(by_id["adv-37"].content_html().contains("<img"));
    assert_eq!(by_id["adv-38"].content_html(), "");
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
            "author": e.get("author"),
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
            // The author feedparser shows (what FreshRSS and its kin show): of a reprint, one
            // it credits, never the portal.
            if a.source().is_some() {
                let author = e["author"].as_str();
                assert!(
                    credited(a)
                        .iter()
                        .any(|(name, _)| Some(name.as_str()) == author),
                    "{url} {}: {author:?}",
                    a.id()
                );
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

#[test]
fn the_page_for_people_shows_the_cover_image_and_names_the_icon() {
    let s = settings();
    for a in &corpus(&s) {
        let key = FeedKey::parse("region/320000.html", None, &s).unwrap();
        let body = render(&describe(&s, &key, vec![a.clone()], Archive::default()), &s).unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            html.contains(
                "<link rel=\"icon\" type=\"image/png\" href=\"http://127.0.0.1:8080/favicon.ico\">"
            ),
            "{html}"
        );
        let images: Vec<&str> = tags(&html)
            .into_iter()
            .filter(|t| t.starts_with("img "))
            .collect();
        match a.image() {
            Some(image) => {
                let src = format!(
                    "src=\"{}\"",
                    image.replace('&', "&amp;").replace('"', "&quot;")
                );
                assert!(
                    images.len() == 1 && images[0].contains(&src),
                    "{}: {images:?} should show {src}",
                    a.id()
                );
            }
            None => assert!(images.is_empty(), "{}: {images:?}", a.id()),
        }
    }
}

/// The self URL a document served at `url` names: the same path and query, under the
/// configured base URL rather than the test server's address.
fn canonical(s: &Settings, served_at: &str) -> String {
    let path = served_at.split_once("/feeds/").unwrap().1;
    let (path, query) = path
        .split_once('?')
        .map_or((path, None), |(p, q)| (p, Some(q)));
    FeedKey::parse(path, query, s).unwrap().url(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_demo_document_passes_the_validator_rules() {
    let server = Server::start(Backend::Sqlite).await.unwrap();
    server.app.load_demo_if_empty().await.unwrap();
    let s = server.app.settings.clone();
    let mut checked = 0;
    for feed in feedcast::feed::FeedId::all(&s.catalog) {
        for format in Format::FEEDS {
            // The newest items, then every archive the chain links to, as a client walks it.
            let mut next = Some(format!(
                "{}{}",
                server.base,
                FeedKey::latest(feed.clone(), format, &s).url_path()
            ));
            while let Some(url) = next.take() {
                let response = server.client.get(&url).send().await.unwrap();
                assert_eq!(response.status(), 200, "{url}");
                let body = response.bytes().await.unwrap();
                verify::well_formed(format, &body).unwrap_or_else(|e| panic!("{url}: {e}"));
                assert_no_warnings(format, &body, &canonical(&s, &url), &url);
                checked += 1;
                next = prev_archive(format, &body).map(|u| {
                    format!(
                        "{}/feeds/{}",
                        server.base,
                        u.split_once("/feeds/").unwrap().1
                    )
                });
            }
        }
    }
    assert!(checked > 50, "{checked} documents");
    println!("{checked} demo documents checked");
    server.stop().await;
}

/// The link to the next older archive, in any format.
fn prev_archive(format: Format, body: &[u8]) -> Option<String> {
    if format == Format::Json {
        let doc: serde_json::Value = serde_json::from_slice(body).unwrap();
        return doc["next_url"].as_str().map(str::to_owned);
    }
    elements(body)
        .into_iter()
        .find(|e| e.attrs.get("rel").map(String::as_str) == Some("prev-archive"))
        .and_then(|e| e.attrs.get("href").cloned())
}

#[test]
fn the_validator_rules_catch_what_they_are_for() {
    let rss = br#"<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/" xmlns:media="http://search.yahoo.com/mrss/" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>a &lt;b>b&lt;/b></title><link>https://x.cn/</link><description>R &amp;amp; D</description>
<atom:link href="https://x.cn/feeds/other.rss" rel="self" type="application/rss+xml"/>
<sy:updateBase>1970-01-01T00:00+00:00</sy:updateBase><ttl>5.5</ttl>
<image><url>https://x.cn/favicon.ico</url><title>other</title><link>https://x.cn/</link></image>
<item><title>t</title><pubDate>yesterday</pubDate><enclosure url="https://x.cn/a.jpg" type="image/jpeg"/><media:content url="/rel.jpg" medium="video"/><media:thumbnail/></item>
<item><title>reprint</title><source url="https://y.cn/">Y</source><dc:source>https://y.cn/1</dc:source><content:encoded>&lt;p>c&lt;/p></content:encoded><description>late</description></item></channel></rss>"#;
    let found = warnings(Format::Rss, rss, "https://x.cn/feeds/this.rss");
    for rule in [
        "implausible date",
        "HTML in a text construct",
        "self link does not match",
        "enclosure without length",
        "media:content without an absolute url",
        "media:content medium is not image",
        "media:thumbnail without an absolute url",
        "image title does not match",
        "image url does not end in",
        "not an RFC 822 date",
        "ttl is not a whole number",
        "an item carries both source and dc:source",
        "content:encoded without a description before it",
        // Escaped markup in the channel's description, not only markup in its title.
        "HTML in a text construct: <description> R &amp; D",
    ] {
        assert!(
            found.iter().any(|w| w.starts_with(rule)),
            "{rule}: {found:#?}"
        );
    }
    let atom = br#"<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title type="html">t</title><id>x</id><updated>2024-05-18T09:30:00.5+08:00</updated><icon>/i.png</icon>
<link rel="self" href="https://x.cn/feeds/this.atom" type="application/atom+xml"/>
<entry><link rel="enclosure" href="https://x.cn/a" type="jpeg" length="big"/></entry></feed>"#;
    let found = warnings(Format::Atom, atom, "https://x.cn/feeds/this.atom");
    for rule in [
        "HTML in a text construct",
        "date not in whole seconds",
        "not an absolute URL",
        "enclosure type is not a media type",
        "enclosure length is not a number",
    ] {
        assert!(
            found.iter().any(|w| w.starts_with(rule)),
            "{rule}: {found:#?}"
        );
    }
    let json = br#"{"feed_url":"https://x.cn/feeds/other.json","home_page_url":"https://x.cn/","icon":"i.png","favicon":"https://x.cn/i.png","items":[{"date_published":"2024-05-18T09:30:00.123+08:00","_source":{"published_at":"2024-05-17T20:00:00.5+08:00"}}]}"#;
    let found = warnings(Format::Json, json, "https://x.cn/feeds/this.json");
    for rule in [
        "self link does not match",
        "not an absolute URL",
        "date not in whole seconds",
    ] {
        assert!(
            found.iter().any(|w| w.starts_with(rule)),
            "{rule}: {found:#?}"
        );
    }
    assert!(
        found.iter().any(|w| w.contains("_source.published_at")),
        "{found:#?}"
    );
}
