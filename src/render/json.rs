//! JSON Feed 1.1. Attribution: the item's `_source` extension object names and links the
//! original publisher and carries the reprint's credits, its editor included (JSON Feed has no
//! field of its own for them); `authors` are those every format credits, never the portal for a
//! reprint, then, for the portal's own article, its editor. Archives
//! chain through `next_url`, which in JSON Feed points to older items. An item whose article
//! has no body carries `content_text` instead of an empty `content_html`.

use serde::Serialize;

use super::{
    Links, category_name, content_html, credited_authors, deleted_when, id_of, item_id, local,
};
use crate::README_URL;
use crate::config::Settings;
use crate::feed::Feed;
use crate::model::Article;

const VERSION: &str = "https://jsonfeed.org/version/1.1";

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: String,
    description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_url: Option<String>,
    language: &'a str,
    /// The site icon, for both of JSON Feed's sizes: one square image serves both.
    icon: String,
    favicon: String,
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<Hub>,
    items: Vec<JsonItem<'a>>,
    /// Takedowns: JSON Feed has no field for them, so an extension object says which items
    /// are gone, as Atom's RFC 6721 tombstones do.
    #[serde(rename = "_deleted", skip_serializing_if = "Option::is_none")]
    deleted: Option<Deleted>,
}

/// The `_deleted` extension: `about` points to its description, as JSON Feed asks of
/// extensions.
#[derive(Serialize)]
struct Deleted {
    about: &'static str,
    items: Vec<DeletedItem>,
}

#[derive(Serialize)]
struct DeletedItem {
    /// The id the item had.
    id: String,
    /// When it was taken down (RFC 3339, whole seconds).
    when: String,
}

#[derive(Serialize)]
struct Author<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
}

#[derive(Serialize)]
struct Hub {
    #[serde(rename = "type")]
    kind: &'static str,
    url: String,
}

#[derive(Serialize)]
struct JsonItem<'a> {
    id: String,
    url: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_html: Option<String>,
    /// For an article without a body, its summary (else its title): JSON Feed 1.1 requires
    /// `content_html` or `content_text`, and an empty `content_html` shows as a blank item.
    #[serde(skip_serializing_if = "Option::is_none")]
    content_text: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    summary: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    date_published: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_modified: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author<'a>>,
    tags: Vec<&'a str>,
    language: &'a str,
    #[serde(rename = "_source", skip_serializing_if = "Option::is_none")]
    source: Option<SourceObject<'a>>,
}

/// The `_source` extension: the original publisher and the reprint's credits. A reprint's
/// editor is here rather than in `authors`: JSON Feed's authors have no role, and a bridge
/// would show the editor as the writer of someone else's report.
#[derive(Serialize)]
struct SourceObject<'a> {
    name: &'a str,
    url: &'a str,
    /// The original author.
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<&'a str>,
    /// The original title.
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    /// When the original was published (RFC 3339, whole seconds, the site's offset).
    #[serde(skip_serializing_if = "Option::is_none")]
    published_at: Option<String>,
    /// Who filed the reprint on the portal.
    #[serde(skip_serializing_if = "Option::is_none")]
    editor: Option<&'a str>,
}

pub(super) fn render(feed: &Feed, settings: &Settings) -> Result<Vec<u8>, String> {
    let site = &settings.site;
    let links = Links::of(feed, settings);
    let doc = JsonFeed {
        version: VERSION,
        title: &feed.title,
        home_page_url: site.link.as_str(),
        feed_url: links.self_url,
        description: &feed.description,
        next_url: links.prev_archive,
        language: &site.language,
        icon: super::icon_url(settings),
        favicon: super::icon_url(settings),
        authors: vec![Author {
            name: &site.title,
            url: Some(site.link.as_str()),
        }],
        hubs: links
            .hubs
            .into_iter()
            .map(|url| Hub {
                kind: "WebSub",
                url,
            })
            .collect(),
        items: feed.items.iter().map(|a| item(settings, a)).collect(),
        deleted: (!feed.tombstones.is_empty()).then(|| Deleted {
            about: README_URL,
            items: feed
                .tombstones
                .iter()
                .map(|t| DeletedItem {
                    id: id_of(settings, &t.id),
                    when: deleted_when(settings, t),
                })
                .collect(),
        }),
    };
    serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())
}

fn item<'a>(settings: &'a Settings, a: &'a Article) -> JsonItem<'a> {
    JsonItem {
        id: item_id(settings, a),
        url: a.url(),
        title: a.title(),
        // A reprint without a body still carries its credit line as HTML.
        content_html: Some(content_html(settings, a)).filter(|c| !c.is_empty()),
        content_text: a.content_html().is_empty().then(|| {
            Some(a.summary())
                .filter(|s| !s.is_empty())
                .unwrap_or(a.title())
        }),
        summary: a.summary(),
        image: a.image(),
        date_published: local(settings, a.published_at()).to_rfc3339(),
        date_modified: a.updated_at().map(|t| local(settings, t).to_rfc3339()),
        authors: authors(a),
        tags: a
            .categories()
            .iter()
            .map(|c| category_name(settings, c.as_str()))
            .collect(),
        language: a.language(),
        source: a.source().map(|s| SourceObject {
            name: &s.name,
            url: &s.url,
            author: s.author.as_deref(),
            title: s.title.as_deref(),
            published_at: s.published_at.map(|t| local(settings, t).to_rfc3339()),
            editor: a.editor(),
        }),
    }
}

/// An item's `authors`: those every format credits, then, for the portal's own article, the
/// editor who filed it (RSS's `dc:contributor`, Atom's `contributor`), once: it has no
/// `_source` to carry it, and JSON Feed no other field a reader shows. On the portal's own
/// article the editor is the portal's staff, so naming them among its authors misleads no one.
fn authors(a: &Article) -> Vec<Author<'_>> {
    let mut authors: Vec<Author<'_>> = credited_authors(a)
        .into_iter()
        .map(|(name, url)| Author { name, url })
        .collect();
    if let (None, Some(editor)) = (a.source(), a.editor()) {
        if authors.iter().all(|author| author.name != editor) {
            authors.push(Author {
                name: editor,
                url: None,
            });
        }
    }
    authors
}
