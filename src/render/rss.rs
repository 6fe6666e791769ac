//! RSS 2.0 with the `content` (full HTML), Dublin Core (author), syndication (update schedule),
//! Atom (self, hub and archive links) and feed-history (`fh:archive`) extensions.
//! Attribution: the item's `<source url=…>` names the original publisher.

use std::collections::BTreeMap;

use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::extension::syndication::{SyndicationExtension, UpdatePeriod};
use rss::extension::{Extension, ExtensionMap};
use rss::{Category, Channel, Guid, Item, Source};

use super::{
    FEED_HISTORY_NS, GENERATOR, Links, SYNDICATION_NS, category_name, content_html, item_id, local,
    rfc2822, schedule,
};
use crate::config::Settings;
use crate::feed::{Feed, View};
use crate::model::Article;

pub(super) fn render(feed: &Feed, settings: &Settings) -> Result<Vec<u8>, String> {
    let site = &settings.site;
    let links = Links::of(feed, settings);
    let link = |href: &str, rel: &str| Link {
        href: href.to_owned(),
        rel: rel.to_owned(),
        ..Link::default()
    };
    let mut atom_links = vec![Link {
        mime_type: Some(feed.key.format.media_type().to_owned()),
        ..link(&links.self_url, "self")
    }];
    atom_links.extend(links.hubs.iter().map(|h| link(h, "hub")));
    atom_links.extend(links.current.iter().map(|h| link(h, "current")));
    atom_links.extend(links.prev_archive.iter().map(|h| link(h, "prev-archive")));
    atom_links.extend(links.next_archive.iter().map(|h| link(h, "next-archive")));

    let mut extensions = ExtensionMap::default();
    let mut namespaces = BTreeMap::new();
    if matches!(feed.key.view, View::Archive(_)) {
        let archive = Extension {
            name: "fh:archive".to_owned(),
            ..Extension::default()
        };
        extensions.insert(
            "fh".to_owned(),
            BTreeMap::from([("archive".to_owned(), vec![archive])]),
        );
        namespaces.insert("fh".to_owned(), FEED_HISTORY_NS.to_owned());
    }
    let schedule = schedule(feed, settings);
    if schedule.is_some() {
        // The rss crate writes sy: elements only under a declared prefix.
        namespaces.insert("sy".to_owned(), SYNDICATION_NS.to_owned());
    }

    let channel = Channel {
        title: feed.title.clone(),
        link: site.link.to_string(),
        description: feed.description.clone(),
        language: Some(site.language.clone()),
        copyright: site.copyright.clone(),
        last_build_date: Some(rfc2822(local(settings, feed.updated))),
        generator: Some(GENERATOR.to_owned()),
        ttl: schedule.map(|(ttl, _, _)| ttl.to_string()),
        syndication_ext: schedule.map(|(_, period, frequency)| SyndicationExtension {
            period: if period == "hourly" {
                UpdatePeriod::Hourly
            } else {
                UpdatePeriod::Daily
            },
            frequency,
            ..SyndicationExtension::default()
        }),
        atom_ext: Some(AtomExtension { links: atom_links }),
        extensions,
        namespaces,
        items: feed.items.iter().map(|a| item(settings, a)).collect(),
        ..Channel::default()
    };
    channel.write_to(Vec::new()).map_err(|e| e.to_string())
}

fn item(settings: &Settings, a: &Article) -> Item {
    Item {
        title: Some(a.title().to_owned()),
        link: Some(a.url().to_owned()),
        description: (!a.summary().is_empty()).then(|| a.summary().to_owned()),
        guid: Some(Guid {
            value: item_id(settings, a),
            permalink: false,
        }),
        pub_date: Some(rfc2822(local(settings, a.published_at()))),
        content: Some(content_html(settings, a)).filter(|c| !c.is_empty()),
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
