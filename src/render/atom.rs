//! Atom 1.0 (RFC 4287). Attribution: the entry's `<source>` carries the original publisher's
//! name and link.

use atom_syndication::{
    Category, Content, Entry, Feed as AtomFeed, Generator, Link, Person, Source, Text,
};

use super::{GENERATOR, category_name, content_html, feed_id, item_id, local, self_url};
use crate::config::Settings;
use crate::feed::Feed;
use crate::model::Article;

pub(super) fn render(feed: &Feed, settings: &Settings) -> Result<Vec<u8>, String> {
    let site = &settings.site;
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
        links: vec![
            Link {
                href: self_url(settings, &feed.key),
                rel: "self".to_owned(),
                mime_type: Some(feed.key.format.media_type().to_owned()),
                ..Link::default()
            },
            Link {
                href: site.link.to_string(),
                rel: "alternate".to_owned(),
                mime_type: Some("text/html".to_owned()),
                ..Link::default()
            },
        ],
        generator: Some(Generator {
            value: GENERATOR.to_owned(),
            ..Generator::default()
        }),
        rights: site.copyright.clone().map(Text::plain),
        subtitle: Some(Text::plain(feed.description.clone())),
        lang: Some(site.language.clone()),
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
        authors: a
            .author()
            .map(|name| Person {
                name: name.to_owned(),
                ..Person::default()
            })
            .into_iter()
            .collect(),
        links: vec![Link {
            href: a.url().to_owned(),
            rel: "alternate".to_owned(),
            mime_type: Some("text/html".to_owned()),
            ..Link::default()
        }],
        categories: a
            .categories()
            .iter()
            .map(|c| Category {
                term: c.to_string(),
                label: Some(category_name(settings, c.as_str()).to_owned()),
                ..Category::default()
            })
            .collect(),
        summary: Some(Text::plain(a.summary().to_owned())),
        content: Some(Content {
            value: Some(content_html(settings, a)),
            content_type: Some("html".to_owned()),
            lang: Some(a.language().to_owned()),
            ..Content::default()
        }),
        source: a.source().map(|s| Source {
            title: Text::plain(s.name.clone()),
            id: s.url.clone(),
            updated: published,
            links: vec![Link {
                href: s.url.clone(),
                rel: "alternate".to_owned(),
                ..Link::default()
            }],
            ..Source::default()
        }),
        ..Entry::default()
    }
}
