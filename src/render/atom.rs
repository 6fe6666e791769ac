//! Atom 1.0 (RFC 4287) with RFC 5005 archive links and `fh:archive`, WebSub hub links and the
//! syndication module's update schedule. Attribution: the entry's `<source>` carries the
//! original publisher's name and link (and the original's publication time as its `updated`);
//! `<author>` the authors every format credits (a reprint's original author, or else its
//! publisher: never the portal, which the feed's `<author>` would otherwise lend it), and
//! `<contributor>` the editor.

use std::collections::BTreeMap;

use atom_syndication::extension::{Extension, ExtensionMap};
use atom_syndication::{
    Category, Content, Entry, Feed as AtomFeed, Generator, Link, Person, Source, Text,
};

use super::{
    FEED_HISTORY_NS, Links, MEDIA_NS, SYNDICATION_NS, TOMBSTONES_NS, category_name, content_html,
    credited_authors, deleted_when, feed_id, id_of, item_id, local, schedule,
};
use crate::GENERATOR;
use crate::config::Settings;
use crate::feed::{Feed, View};
use crate::model::Article;
use crate::sanitize::escape_html;

fn simple(name: &str, value: Option<String>) -> Vec<Extension> {
    vec![Extension {
        name: name.to_owned(),
        value,
        ..Extension::default()
    }]
}

pub(super) fn render(feed: &Feed, settings: &Settings) -> Result<Vec<u8>, String> {
    let site = &settings.site;
    let links = Links::of(feed, settings);
    let link = |href: &str, rel: &str| Link {
        href: href.to_owned(),
        rel: rel.to_owned(),
        ..Link::default()
    };
    let mut atom_links = vec![
        Link {
            mime_type: Some(feed.key.format.media_type().to_owned()),
            ..link(&links.self_url, "self")
        },
        Link {
            mime_type: Some("text/html".to_owned()),
            ..link(site.link.as_str(), "alternate")
        },
    ];
    atom_links.extend(links.hubs.iter().map(|h| link(h, "hub")));
    atom_links.extend(links.current.iter().map(|h| link(h, "current")));
    atom_links.extend(links.prev_archive.iter().map(|h| link(h, "prev-archive")));
    atom_links.extend(links.next_archive.iter().map(|h| link(h, "next-archive")));

    let mut extensions = ExtensionMap::default();
    let mut namespaces = BTreeMap::new();
    if matches!(feed.key.view, View::Archive(_)) && feed.closed {
        extensions.insert(
            "fh".to_owned(),
            BTreeMap::from([("archive".to_owned(), simple("fh:archive", None))]),
        );
        namespaces.insert("fh".to_owned(), FEED_HISTORY_NS.to_owned());
    }
    if let Some((_, period, frequency)) = schedule(feed, settings) {
        extensions.insert(
            "sy".to_owned(),
            BTreeMap::from([
                (
                    "updatePeriod".to_owned(),
                    simple("sy:updatePeriod", Some(period.to_owned())),
                ),
                (
                    "updateFrequency".to_owned(),
                    simple("sy:updateFrequency", Some(frequency.to_string())),
                ),
            ]),
        );
        namespaces.insert("sy".to_owned(), SYNDICATION_NS.to_owned());
    }
    if feed.items.iter().any(|a| a.image().is_some()) {
        namespaces.insert("media".to_owned(), MEDIA_NS.to_owned());
    }
    if !feed.tombstones.is_empty() {
        let deleted = feed
            .tombstones
            .iter()
            .map(|t| Extension {
                name: "at:deleted-entry".to_owned(),
                // Written as given (atom_syndication does not escape extension attributes):
                // the id prefix is the operator's text.
                attrs: BTreeMap::from([
                    ("ref".to_owned(), escape_html(&id_of(settings, &t.id))),
                    ("when".to_owned(), deleted_when(settings, t)),
                ]),
                ..Extension::default()
            })
            .collect();
        extensions.insert(
            "at".to_owned(),
            BTreeMap::from([("deleted-entry".to_owned(), deleted)]),
        );
        namespaces.insert("at".to_owned(), TOMBSTONES_NS.to_owned());
    }

    let out = AtomFeed {
        title: Text::plain(feed.title.clone()),
        id: feed_id(settings, feed),
        updated: local(settings, feed.updated),
        // RFC 4287 wants an author on the feed unless every entry has one: the portal.
        authors: vec![Person {
            name: site.title.clone(),
            uri: Some(site.link.to_string()),
            ..Person::default()
        }],
        links: atom_links,
        generator: Some(Generator {
            value: GENERATOR.to_owned(),
            ..Generator::default()
        }),
        icon: Some(super::icon_url(settings)),
        logo: Some(super::icon_url(settings)),
        rights: site.copyright.clone().map(Text::plain),
        subtitle: Some(Text::plain(feed.description.clone())),
        lang: Some(site.language.clone()),
        extensions,
        namespaces,
        entries: feed.items.iter().map(|a| entry(settings, a)).collect(),
        ..AtomFeed::default()
    };
    out.write_to(Vec::new()).map_err(|e| e.to_string())
}

fn entry(settings: &Settings, a: &Article) -> Entry {
    let published = local(settings, a.published_at());
    Entry {
        title: Text::plain(a.title().to_owned()),
        id: item_id(settings, a),
        updated: local(settings, a.modified_at()),
        published: Some(published),
        authors: credited_authors(a)
            .into_iter()
            .map(|(name, uri)| Person {
                name: name.to_owned(),
                uri: uri.map(str::to_owned),
                ..Person::default()
            })
            .collect(),
        contributors: a
            .editor()
            .map(|name| Person {
                name: name.to_owned(),
                ..Person::default()
            })
            .into_iter()
            .collect(),
        links: std::iter::once(Link {
            href: a.url().to_owned(),
            rel: "alternate".to_owned(),
            mime_type: Some("text/html".to_owned()),
            ..Link::default()
        })
        // The cover image as an enclosure, as RSS carries it; its length is unknown, and
        // RFC 4287 leaves it out then.
        .chain(a.image().map(|url| Link {
            href: url.to_owned(),
            rel: "enclosure".to_owned(),
            mime_type: a.image_type().map(str::to_owned),
            ..Link::default()
        }))
        .collect(),
        categories: a
            .categories()
            .iter()
            .map(|c| Category {
                term: c.to_string(),
                label: Some(category_name(settings, c.as_str()).to_owned()),
                ..Category::default()
            })
            .collect(),
        summary: (!a.summary().is_empty()).then(|| Text::plain(a.summary().to_owned())),
        content: Some(content_html(settings, a))
            .filter(|c| !c.is_empty())
            .map(|html| Content {
                value: Some(html),
                content_type: Some("html".to_owned()),
                lang: Some(a.language().to_owned()),
                ..Content::default()
            }),
        source: a.source().map(|s| Source {
            title: Text::plain(s.name.clone()),
            id: s.url.clone(),
            // When the original appeared, if known: the source's own date, not the reprint's.
            updated: s
                .published_at
                .map_or(published, |original| local(settings, original)),
            links: vec![Link {
                href: s.url.clone(),
                rel: "alternate".to_owned(),
                ..Link::default()
            }],
            ..Source::default()
        }),
        extensions: a.image().map(thumbnail).unwrap_or_default(),
        ..Entry::default()
    }
}

/// Media RSS's `media:thumbnail`, which readers of Atom read for a thumbnail too.
fn thumbnail(url: &str) -> ExtensionMap {
    let element = Extension {
        name: "media:thumbnail".to_owned(),
        // Escaped here: atom_syndication writes extension attributes as given.
        attrs: BTreeMap::from([("url".to_owned(), escape_html(url))]),
        ..Extension::default()
    };
    BTreeMap::from([(
        "media".to_owned(),
        BTreeMap::from([("thumbnail".to_owned(), vec![element])]),
    )])
}
