//! OPML 2.0: every feed in one file a reader can import, outlined by kind, regions as a tree.

use crate::config::Settings;
use crate::feed::{FeedId, FeedKey, Format};
use crate::model::Region;
use crate::sanitize::{escape_html, escape_plain_xml};

fn outline(settings: &Settings, text: &str, feed: FeedId) -> String {
    let xml = FeedKey::latest(feed.clone(), Format::Rss, settings).url(settings);
    let page = FeedKey::latest(feed, Format::Html, settings).url(settings);
    let text = escape_plain_xml(text);
    format!(
        "<outline type=\"rss\" text=\"{text}\" title=\"{text}\" xmlUrl=\"{}\" htmlUrl=\"{}\"",
        escape_html(&xml),
        escape_html(&page)
    )
}

fn regions(settings: &Settings, parent: Option<&Region>, depth: usize, out: &mut String) {
    for r in settings.catalog.children(parent.map(|p| &p.code)) {
        let indent = "  ".repeat(depth);
        out.push_str(&indent);
        out.push_str(&outline(settings, &r.name, FeedId::Region(r.code.clone())));
        if settings.catalog.children(Some(&r.code)).next().is_some() {
            out.push_str(">\n");
            regions(settings, Some(r), depth + 1, out);
            out.push_str(&indent);
            out.push_str("</outline>\n");
        } else {
            out.push_str("/>\n");
        }
    }
}

/// The OPML document of every feed.
pub fn opml(settings: &Settings) -> Vec<u8> {
    let c = &settings.catalog;
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<opml version=\"2.0\">\n");
    out.push_str(&format!(
        "<head>\n  <title>{}</title>\n  <docs>http://opml.org/spec2.opml</docs>\n</head>\n<body>\n",
        escape_plain_xml(&settings.site.title)
    ));
    out.push_str("<outline text=\"栏目\">\n");
    for cat in c.categories() {
        out.push_str("  ");
        out.push_str(&outline(
            settings,
            &cat.name,
            FeedId::Category(cat.slug.clone()),
        ));
        out.push_str("/>\n");
    }
    out.push_str("</outline>\n<outline text=\"地区\">\n");
    regions(settings, None, 1, &mut out);
    out.push_str("</outline>\n");
    if !c.feeds().is_empty() {
        out.push_str("<outline text=\"专题\">\n");
        for f in c.feeds() {
            out.push_str("  ");
            out.push_str(&outline(settings, &f.title, FeedId::Custom(f.slug.clone())));
            out.push_str("/>\n");
        }
        out.push_str("</outline>\n");
    }
    out.push_str("</body>\n</opml>\n");
    out.into_bytes()
}
