//! RSS 2.0 with the `content` (full HTML), Dublin Core (author) and Atom (self link)
//! extensions. Attribution: the item's `<source url=…>` names the original publisher.

use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::{Category, Channel, Guid, Item, Source};

use super::{GENERATOR, category_name, content_html, item_id, local, self_url};
use crate::config::Settings;
use crate::feed::Feed;
use crate::model::Article;

pub(super) fn render(feed: &Feed, settings: &Settings) -> Result<Vec<u8>, String> {
    let site = &settings.site;
    let channel = Channel {
        title: feed.title.clone(),
        link: site.link.to_string(),
        description: feed.description.clone(),
        language: Some(site.language.clone()),
        copyright: site.copyright.clone(),
        last_build_date: Some(local(settings, feed.updated).to_rfc2822()),
        generator: Some(GENERATOR.to_owned()),
        atom_ext: Some(AtomExtension {
            links: vec![Link {
                href: self_url(settings, &feed.key),
                rel: "self".to_owned(),
                mime_type: Some(feed.key.format.media_type().to_owned()),
                ..Link::default()
            }],
        }),
        items: feed.items.iter().map(|a| item(settings, a)).collect(),
        ..Channel::default()
    };
    channel.write_to(Vec::new()).map_err(|e| e.to_string())
}

fn item(settings: &Settings, a: &Article) -> Item {
    Item {
        title: Some(a.title().to_owned()),
        link: Some(a.url().to_owned()),
        description: Some(a.summary().to_owned()),
        guid: Some(Guid {
            value: item_id(settings, a),
            permalink: false,
        }),
        pub_date: Some(local(settings, a.published_at()).to_rfc2822()),
        content: Some(content_html(settings, a)),
        categories: a
            .categories()
            .iter()
            .map(|c| Category {
                name: category_name(settings, c.as_str()).to_owned(),
                domain: None,
            })
            .collect(),
        source: a.source().map(|s| Source {
            url: s.url.clone(),
            title: Some(s.name.clone()),
        }),
        dublin_core_ext: a.author().map(|name| DublinCoreExtension {
            creators: vec![name.to_owned()],
            ..DublinCoreExtension::default()
        }),
        ..Item::default()
    }
}
