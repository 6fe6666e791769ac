//! RSS 2.0 with the `content` (full HTML), Dublin Core (credits), syndication (update schedule),
//! Atom (self, hub and archive links) and feed-history (`fh:archive`) extensions.
//! Attribution: the item's `<source url=…>` names the original publisher and links the
//! original report; `dc:creator` the authors every format credits (a reprint's original author
//! first), `dc:contributor` the editor. No `dc:source`: it says what `<source url>` says, and
//! validators warn about an item that carries both (DuplicateItemSemantics).

use std::collections::BTreeMap;

use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::extension::{Extension, ExtensionMap};
use rss::{Category, Channel, Enclosure, Guid, Image, Item, Source};

use super::{
    FEED_HISTORY_NS, Links, MEDIA_NS, SYNDICATION_NS, category_name, content_html,
    credited_authors, item_id, local, rfc2822, schedule,
};
use crate::GENERATOR;
use crate::config::Settings;
use crate::feed::{Feed, View};
use crate::model::Article;
use crate::sanitize::escape_html;

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
    if matches!(feed.key.view, View::Archive(_)) && feed.closed {
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
    if let Some((_, period, frequency)) = schedule {
        // Written as plain extensions: the rss crate's syndication module always adds an
        // `sy:updateBase` of 1970, a date validators rightly call implausible. Without it the
        // module's own default applies, and the period and frequency say all there is to say.
        let element = |name: &str, value: String| Extension {
            name: format!("sy:{name}"),
            value: Some(value),
            ..Extension::default()
        };
        extensions.insert(
            "sy".to_owned(),
            BTreeMap::from([
                (
                    "updatePeriod".to_owned(),
                    vec![element("updatePeriod", period.to_owned())],
                ),
                (
                    "updateFrequency".to_owned(),
                    vec![element("updateFrequency", frequency.to_string())],
                ),
            ]),
        );
        namespaces.insert("sy".to_owned(), SYNDICATION_NS.to_owned());
    }
    if feed.items.iter().any(|a| a.image().is_some()) {
        namespaces.insert("media".to_owned(), MEDIA_NS.to_owned());
    }

    let channel = Channel {
        title: feed.title.clone(),
        link: site.link.to_string(),
        // The channel's `<description>` is plain text, like its `<title>` (unlike an item's,
        // which may be HTML): written as the characters configured, with the hex references
        // below for `&` and `<`. Escaped for HTML first, it would still hold `&amp;` once the XML
        // is decoded, which validators flag (ContainsHTML) and plain-text readers show.
        description: feed.description.clone(),
        language: Some(site.language.clone()),
        copyright: site.copyright.clone(),
        last_build_date: Some(rfc2822(local(settings, feed.updated))),
        generator: Some(GENERATOR.to_owned()),
        ttl: schedule.map(|(ttl, _, _)| ttl.to_string()),
        // RSS allows only GIF, JPEG and PNG here; another icon is named by the other formats.
        // Named at the path with its extension, which validators and readers go by.
        image: settings.site.icon.fits_rss().then(|| Image {
            url: super::typed_icon_url(settings),
            title: feed.title.clone(),
            link: site.link.to_string(),
            ..Image::default()
        }),
        atom_ext: Some(AtomExtension { links: atom_links }),
        extensions,
        namespaces,
        items: feed.items.iter().map(|a| item(settings, a)).collect(),
        ..Channel::default()
    };
    channel
        .write_to(Vec::new())
        .map(|xml| hex_references(&xml))
        .map_err(|e| e.to_string())
}

/// Rewrites the writer's `&amp;`, `&lt;` and `&gt;` outside CDATA sections as `&#x26;`,
/// `&#x3C;` and `&#x3E;`. The document means the same to an XML parser, but RSS never said
/// whether `<title>` and its kin are plain text or HTML, and aggregators that decode them as
/// HTML read character references as the characters themselves where they would read `&lt;b>`
/// as a tag: the RSS Best Practices Profile's advice for plain text. Inside CDATA (the HTML of
/// `<description>` and `content:encoded`) the text is literal and stays as it is.
fn hex_references(xml: &[u8]) -> Vec<u8> {
    const CDATA_START: &[u8] = b"<![CDATA[";
    const CDATA_END: &[u8] = b"]]>";
    let mut out = Vec::with_capacity(xml.len() + xml.len() / 16);
    let mut rest = xml;
    // Only an entity (`&`) or a CDATA section (`<`) changes what is copied: the runs between
    // them are copied whole. Byte by byte, this was a fifth of a cold build's CPU.
    while let Some(at) = memchr::memchr2(b'&', b'<', rest) {
        out.extend_from_slice(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with(CDATA_START) {
            let end =
                memchr::memmem::find(rest, CDATA_END).map_or(rest.len(), |i| i + CDATA_END.len());
            out.extend_from_slice(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        let replaced = [
            (&b"&amp;"[..], &b"&#x26;"[..]),
            (b"&lt;", b"&#x3C;"),
            (b"&gt;", b"&#x3E;"),
        ]
        .into_iter()
        .find(|(entity, _)| rest.starts_with(entity));
        let (copied, skipped) = match replaced {
            Some((entity, reference)) => (reference, entity.len()),
            None => (&rest[..1], 1),
        };
        out.extend_from_slice(copied);
        rest = &rest[skipped..];
    }
    out.extend_from_slice(rest);
    out
}

fn item(settings: &Settings, a: &Article) -> Item {
    let content = Some(content_html(settings, a)).filter(|c| !c.is_empty());
    // The summary; for an item with content but no summary (a body of only an image, a reprint
    // whose body is only its credit line), the title, as JSON Feed's `content_text` falls back
    // to it: readers show `<description>` as the preview, and validators want one before
    // `content:encoded` (NeedDescriptionBeforeContent).
    let description = Some(a.summary())
        .filter(|s| !s.is_empty())
        .or(content.is_some().then(|| a.title()));
    Item {
        title: Some(a.title().to_owned()),
        link: Some(a.url().to_owned()),
        // `<description>` is HTML: the plain text is escaped once for it, so a summary or title
        // that mentions markup shows it as text instead of becoming live markup in a reader.
        description: description.map(escape_html),
        guid: Some(Guid {
            value: item_id(settings, a),
            permalink: false,
        }),
        pub_date: Some(rfc2822(local(settings, a.published_at()))),
        content,
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
        dublin_core_ext: dublin_core(a),
        // RSS requires an enclosure's type and length: without a known type, none is written,
        // and the length, unknown, is 0 as the RSS Advisory Board's profile advises.
        enclosure: a
            .image()
            .zip(a.image_type())
            .map(|(url, mime_type)| Enclosure {
                url: url.to_owned(),
                length: "0".to_owned(),
                mime_type: mime_type.to_owned(),
            }),
        extensions: a
            .image()
            .map(|url| media(url, a.image_type()))
            .unwrap_or_default(),
        ..Item::default()
    }
}

/// The credits in Dublin Core, which RSS readers and bridges read for what RSS lacks: `None`
/// when there are none, so an article without credits gets no empty extension. The original
/// report's URL is not repeated as `dc:source`: `<source url>` carries it (and the attribution
/// line links it), and an item with both draws a validator warning.
fn dublin_core(a: &Article) -> Option<DublinCoreExtension> {
    let dc = DublinCoreExtension {
        creators: credited_authors(a)
            .into_iter()
            .map(|(name, _)| name.to_owned())
            .collect(),
        contributors: a.editor().map(str::to_owned).into_iter().collect(),
        ..DublinCoreExtension::default()
    };
    (dc != DublinCoreExtension::default()).then_some(dc)
}

/// Media RSS for the cover image: `media:content medium="image"` (read by RSS-to-email
/// services) and `media:thumbnail` (read by readers that show thumbnails).
fn media(url: &str, mime_type: Option<&str>) -> ExtensionMap {
    let element = |name: &str, attrs: BTreeMap<String, String>| Extension {
        name: format!("media:{name}"),
        attrs,
        ..Extension::default()
    };
    let mut content = BTreeMap::from([
        ("url".to_owned(), url.to_owned()),
        ("medium".to_owned(), "image".to_owned()),
    ]);
    if let Some(t) = mime_type {
        content.insert("type".to_owned(), t.to_owned());
    }
    let thumbnail = BTreeMap::from([("url".to_owned(), url.to_owned())]);
    BTreeMap::from([(
        "media".to_owned(),
        BTreeMap::from([
            ("content".to_owned(), vec![element("content", content)]),
            (
                "thumbnail".to_owned(),
                vec![element("thumbnail", thumbnail)],
            ),
        ]),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_references_rewrite_escapes_outside_cdata_only() {
        let xml =
            b"<t a=\"1&amp;2\">x &amp; &lt;b&gt; &quot;</t><d><![CDATA[&amp; <b> &lt;]]></d>&amp;";
        assert_eq!(
            String::from_utf8(hex_references(xml)).unwrap(),
            "<t a=\"1&#x26;2\">x &#x26; &#x3C;b&#x3E; &quot;</t><d><![CDATA[&amp; <b> &lt;]]></d>&#x26;"
        );
    }

    #[test]
    fn hex_references_copy_an_unclosed_cdata_and_a_cut_entity_as_they_are() {
        for (xml, rewritten) in [
            ("a<![CDATA[&amp;", "a<![CDATA[&amp;"),
            ("&gt;<![CDATA[]]]]>&lt;", "&#x3E;<![CDATA[]]]]>&#x3C;"),
            ("氢能 &am", "氢能 &am"),
            ("<![CDATA", "<![CDATA"),
            ("", ""),
        ] {
            assert_eq!(
                hex_references(xml.as_bytes()),
                rewritten.as_bytes(),
                "{xml}"
            );
        }
    }
}
