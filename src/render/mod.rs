//! Rendering: one module per format, each turning a [`Feed`] into bytes.
//!
//! What every format shares lives here: the ids derived from article ids, dates shown in the
//! site's time zone with its offset, the links a document carries (self, WebSub hubs, RFC 5005
//! archives), the update schedule derived from the cache policy, and the visible attribution
//! line that ends a reprint's content, so that a reader or bridge that drops the format's
//! metadata still shows where the report came from. The catalog-wide documents (the index page
//! and the OPML subscription list) are rendered here too.

mod atom;
mod html;
mod json;
mod opml;
mod rss;
#[cfg(feature = "testing")]
pub mod verify;
mod wechat;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};

use crate::config::Settings;
use crate::feed::{Feed, FeedKey, Format, Tombstone, View};
use crate::model::{Article, ArticleId};
use crate::sanitize::escape_html;

pub use html::{content_security_policy, index_page};
pub use opml::opml;

/// Namespace of RFC 5005's `fh:archive`.
const FEED_HISTORY_NS: &str = "http://purl.org/syndication/history/1.0";
/// Namespace of the RSS syndication module (`sy:updatePeriod`, `sy:updateFrequency`).
const SYNDICATION_NS: &str = "http://purl.org/rss/1.0/modules/syndication/";
/// Namespace of Media RSS (`media:content`, `media:thumbnail`), read in RSS and Atom alike.
const MEDIA_NS: &str = "http://search.yahoo.com/mrss/";
/// Namespace of RFC 6721's `at:deleted-entry`.
const TOMBSTONES_NS: &str = "http://purl.org/atompub/tombstones/1.0";

/// A feed that could not be serialized.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the {format:?} document {path}: {message}")]
pub struct RenderError {
    /// The format being written.
    pub format: Format,
    /// The document's URL path.
    pub path: String,
    /// What the writer said.
    pub message: String,
}

/// Renders a feed in the format its key names.
pub fn render(feed: &Feed, settings: &Settings) -> Result<Bytes, RenderError> {
    let written = match feed.key.format {
        Format::Rss => rss::render(feed, settings),
        Format::Atom => atom::render(feed, settings),
        Format::Json => json::render(feed, settings),
        Format::Html => Ok(html::feed_page(feed, settings)),
        Format::Wechat => wechat::render(feed, settings),
    };
    // Boxed first, which drops the spare capacity the writer grew into: the cache weighs a
    // document by its length, and Bytes would otherwise keep up to twice that allocated.
    written
        .map(|body| Bytes::from(body.into_boxed_slice()))
        .map_err(|message| RenderError {
            format: feed.key.format,
            path: feed.key.url_path(),
            message,
        })
}

/// The links a feed document carries, as absolute URLs in its own format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    /// This document.
    pub self_url: String,
    /// WebSub hubs (on the newest-items view only: that is what subscribers subscribe to).
    pub hubs: Vec<String>,
    /// For an archive, the feed it belongs to (RFC 5005 `current`).
    pub current: Option<String>,
    /// The next older archive.
    pub prev_archive: Option<String>,
    /// The next newer archive.
    pub next_archive: Option<String>,
}

impl Links {
    /// The links of `feed`'s document.
    pub fn of(feed: &Feed, settings: &Settings) -> Links {
        let key = &feed.key;
        let month_url = |month| {
            FeedKey {
                view: View::Archive(month),
                ..key.clone()
            }
            .url(settings)
        };
        let is_latest = matches!(key.view, View::Latest { .. });
        Links {
            self_url: key.url(settings),
            // feedcast's own hub first, then the outside ones it also pings; only for what is
            // a topic.
            hubs: if is_latest && key.format.is_feed() {
                let own = settings.hub.enabled.then(|| settings.hub.url.to_string());
                own.into_iter()
                    .chain(settings.websub.hubs.iter().map(|h| h.to_string()))
                    .collect()
            } else {
                Vec::new()
            },
            current: (!is_latest).then(|| key.topic(settings)),
            prev_archive: feed.archive.prev.map(month_url),
            next_archive: feed.archive.next.map(month_url),
        }
    }
}

/// A feed's change time as its `Last-Modified` shows it: rounded up to the whole second, so
/// that the date a client sends back is never before a change it was shown. Dates inside the
/// documents are cut to the second instead (see [`local`]): there a date names when something
/// happened, and must not move into a second that had not begun.
pub fn whole_second_up(t: DateTime<Utc>) -> DateTime<Utc> {
    let up = t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0);
    DateTime::from_timestamp(up, 0).unwrap_or(t)
}

/// How often a polling reader should come back, derived from the feed's max-age so that the
/// document and the HTTP headers agree: (RSS `ttl` in minutes, `sy:updatePeriod`,
/// `sy:updateFrequency`). `None` for archives, which are not polled.
fn schedule(feed: &Feed, settings: &Settings) -> Option<(u32, &'static str, u32)> {
    if !matches!(feed.key.view, View::Latest { .. }) {
        return None;
    }
    let max_age = feed.key.max_age(settings, feed.updated).max(60);
    let (period, seconds) = if max_age <= 3600 {
        ("hourly", 3600)
    } else {
        ("daily", 86_400)
    };
    Some((max_age / 60, period, (seconds / max_age).max(1)))
}

/// The stable id of an item: it derives from the article id alone, so an edit never changes it.
fn item_id(settings: &Settings, article: &Article) -> String {
    id_of(settings, article.id())
}

/// The item id of the article with this id: its tombstone names the item by it.
fn id_of(settings: &Settings, id: &ArticleId) -> String {
    format!("{}article/{id}", settings.site.id_prefix)
}

/// When a tombstone says its article was taken down: in the site's time zone, in whole
/// seconds, as RFC 6721 shows it (and readers compare it with the entries they hold).
fn deleted_when(settings: &Settings, tombstone: &Tombstone) -> String {
    local(settings, tombstone.deleted_at).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Where the site icon is served (`/favicon.ico`, where readers and browsers look for it),
/// as the feeds name it.
fn icon_url(settings: &Settings) -> String {
    site_url(settings, "favicon.ico")
}

/// The site icon at the path that ends in its type's extension (`/icon.png`), as RSS's
/// `<image>` names it: validators judge a channel image by its URL's extension, and only
/// `.jpg`, `.jpeg`, `.gif` and `.png` pass.
fn typed_icon_url(settings: &Settings) -> String {
    let path = settings.site.icon.path();
    site_url(settings, path.trim_start_matches('/'))
}

/// An absolute URL of this service's own, `path` relative to the base URL.
fn site_url(settings: &Settings, path: &str) -> String {
    let base = &settings.site.base_url;
    base.join(path)
        .map_or_else(|_| format!("{base}{path}"), String::from)
}

/// The stable id of a feed, the same in every format and for all its archives, and after the
/// feed is renamed: it is made of the feed's oldest name.
fn feed_id(settings: &Settings, feed: &Feed) -> String {
    let path = feed.key.feed.id_path(&settings.catalog);
    format!("{}feed/{path}", settings.site.id_prefix)
}

/// A time as shown in feeds: in whole seconds, in the site's time zone, with that zone's offset.
///
/// The fraction is cut, never rounded: a date never moves into the next second, and readers
/// that misread fractional seconds (newsboat 2.21 takes `09:30:00.123456+08:00` for 09:30 UTC)
/// get a date they all read the same way. `timestamp()` is the floor, so before 1970 too the
/// instant shown is the second the time falls in.
///
/// Before standard time zones, a zone's offset was local mean time, with seconds (Shanghai's
/// was +08:05:43), which neither RFC 2822 nor RFC 3339 can write; such an offset is cut to
/// whole minutes and the wall time shown with it, so the date still names the right instant.
fn local(settings: &Settings, t: DateTime<Utc>) -> DateTime<FixedOffset> {
    let t = DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t);
    let zoned = t.with_timezone(&settings.site.time_zone).fixed_offset();
    let seconds = zoned.offset().local_minus_utc();
    match FixedOffset::east_opt(seconds - seconds % 60) {
        Some(offset) if seconds % 60 != 0 => t.with_timezone(&offset),
        _ => zoned,
    }
}

/// An RFC 2822 date as RSS wants it. Unlike chrono's `to_rfc2822`, never panics (on years past
/// 9999, which validation keeps out anyway).
fn rfc2822(t: DateTime<FixedOffset>) -> String {
    if (0..=9999).contains(&chrono::Datelike::year(&t)) {
        t.to_rfc2822()
    } else {
        t.format("%a, %d %b %Y %H:%M:%S %z").to_string()
    }
}

/// A category's display name, falling back to its slug.
fn category_name<'a>(settings: &'a Settings, slug: &'a str) -> &'a str {
    settings
        .catalog
        .category(slug)
        .map_or(slug, |c| c.name.as_str())
}

/// Who an item credits as its authors, as (name, link), in every format alike: for a reprint,
/// its original author, or else its publisher, never the portal (Atom and JSON Feed give an
/// item without authors the feed's, and readers show the portal as the writer of another
/// paper's report); then the article's own author, when it names someone else.
fn credited_authors(article: &Article) -> Vec<(&str, Option<&str>)> {
    let mut authors = Vec::new();
    if let Some(source) = article.source() {
        authors.push(match &source.author {
            Some(author) => (author.as_str(), None),
            None => (source.name.as_str(), Some(source.url.as_str())),
        });
    }
    if let Some(own) = article.author() {
        if authors.iter().all(|(name, _)| *name != own) {
            authors.push((own, None));
        }
    }
    authors
}

/// Separates the credits of the attribution line: the ideographic space Chinese text uses
/// between labelled fields.
const CREDIT_SEPARATOR: &str = "\u{3000}";

/// The article body as feeds carry it: the sanitized HTML, then a visible line of credits, so
/// that a reader or bridge that drops the format's metadata (an email, a chat message) still
/// shows them. For a reprint it is what the reprint rules ask for (the original publisher,
/// named and linked, its author and its title), the editor, then the site's reprint notice;
/// for the portal's own article with an editor, the editor alone.
fn content_html(settings: &Settings, article: &Article) -> String {
    let mut html = article.content_html().to_owned();
    html.push_str(&credit_line(settings, article).unwrap_or_default());
    html
}

/// The visible line of credits [`content_html`] ends with, if the article has any.
fn credit_line(settings: &Settings, article: &Article) -> Option<String> {
    let site = &settings.site;
    let mut credits = Vec::new();
    if let Some(source) = article.source() {
        credits.push(format!(
            "{}：<a href=\"{}\">{}</a>",
            escape_html(&site.source_label),
            escape_html(&source.url),
            escape_html(&source.name),
        ));
        if let Some(author) = &source.author {
            credits.push(format!(
                "{}：{}",
                escape_html(&site.author_label),
                escape_html(author)
            ));
        }
        if let Some(title) = &source.title {
            credits.push(format!(
                "{}：《{}》",
                escape_html(&site.original_title_label),
                escape_html(title)
            ));
        }
    }
    if let Some(editor) = article.editor() {
        credits.push(format!(
            "{}：{}",
            escape_html(&site.editor_label),
            escape_html(editor)
        ));
    }
    if credits.is_empty() {
        return None;
    }
    // The reprint line keeps the class it always had, which sites style and bridges look for.
    let class = if article.source().is_some() {
        "feedcast-source"
    } else {
        "feedcast-credits"
    };
    let mut html = format!("<p class=\"{class}\">{}", credits.join(CREDIT_SEPARATOR));
    // Set apart like a credit: after a plain-text name, a plain space would run into it.
    if let (Some(_), Some(notice)) = (article.source(), &site.reprint_notice) {
        html.push_str(CREDIT_SEPARATOR);
        html.push_str(&escape_html(notice));
    }
    html.push_str("</p>");
    Some(html)
}
