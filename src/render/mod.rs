//! Rendering: one module per format, each turning a [`Feed`] into bytes.
//!
//! What every format shares lives here: the ids derived from article ids, dates shown in the
//! site's time zone with its offset, self links, and the visible attribution line that ends a
//! reprint's content, so that a reader or bridge that drops the format's metadata still shows
//! where the report came from.

mod atom;
mod rss;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};

use crate::config::Settings;
use crate::feed::{Feed, FeedKey, Format};
use crate::model::Article;
use crate::sanitize::escape_html;

/// The generator named in every feed.
pub const GENERATOR: &str = concat!("feedcast ", env!("CARGO_PKG_VERSION"));

/// A feed that could not be serialized.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the {format:?} feed {path}: {message}")]
pub struct RenderError {
    /// The format being written.
    pub format: Format,
    /// The feed's URL path.
    pub path: String,
    /// What the writer said.
    pub message: String,
}

/// Renders a feed in the format its key names.
pub fn render(feed: &Feed, settings: &Settings) -> Result<Bytes, RenderError> {
    let written = match feed.key.format {
        Format::Rss => rss::render(feed, settings),
        Format::Atom => atom::render(feed, settings),
    };
    written.map(Bytes::from).map_err(|message| RenderError {
        format: feed.key.format,
        path: feed.key.url_path(),
        message,
    })
}

/// The absolute URL a key is served at; `?limit=` is kept when it is not the default, so a
/// self link names exactly the document it is in.
pub fn self_url(settings: &Settings, key: &FeedKey) -> String {
    let path = key.url_path();
    let mut url = settings
        .site
        .base_url
        .join(path.trim_start_matches('/'))
        .map_or_else(|_| path.clone(), String::from);
    if key.limit != settings.limits.default_items {
        url.push_str(&format!("?limit={}", key.limit));
    }
    url
}

/// The stable id of an item: it derives from the article id alone, so an edit never changes it.
fn item_id(settings: &Settings, article: &Article) -> String {
    format!("{}article/{}", settings.site.id_prefix, article.id())
}

/// The stable id of a feed, the same in every format.
fn feed_id(settings: &Settings, feed: &Feed) -> String {
    format!("{}feed/{}", settings.site.id_prefix, feed.key.feed.path())
}

/// A time as shown in feeds: in the site's time zone, with that zone's offset.
fn local(settings: &Settings, t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&settings.site.time_zone).fixed_offset()
}

/// A category's display name, falling back to its slug.
fn category_name<'a>(settings: &'a Settings, slug: &'a str) -> &'a str {
    settings
        .catalog
        .category(slug)
        .map_or(slug, |c| c.name.as_str())
}

/// The article body as feeds carry it: the sanitized HTML, then, for a reprint, a visible line
/// naming and linking the original publisher, then the site's reprint notice.
fn content_html(settings: &Settings, article: &Article) -> String {
    let mut html = article.content_html().to_owned();
    if let Some(source) = article.source() {
        let site = &settings.site;
        html.push_str(&format!(
            "<p class=\"feedcast-source\">{}：<a href=\"{}\">{}</a>",
            escape_html(&site.source_label),
            escape_html(&source.url),
            escape_html(&source.name),
        ));
        if let Some(notice) = &site.reprint_notice {
            html.push_str(&format!(" {}", escape_html(notice)));
        }
        html.push_str("</p>");
    }
    html
}
