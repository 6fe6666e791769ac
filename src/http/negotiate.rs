//! Content negotiation: which encoding to send (`Accept-Encoding`) and whether a request
//! prefers a page for people over the feed itself (`Accept`).

use crate::cache::Encoding;

/// `(lowercased token, q)` pairs of a header such as `gzip;q=0.8, br`.
fn weighted(header: &str) -> Vec<(String, f32)> {
    header
        .split(',')
        .filter_map(|part| {
            let mut params = part.split(';');
            let token = params.next()?.trim().to_ascii_lowercase();
            if token.is_empty() {
                return None;
            }
            let q = params
                .filter_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .or_else(|| p.trim().strip_prefix("Q="))
                })
                .find_map(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            Some((token, q.clamp(0.0, 1.0)))
        })
        .collect()
}

/// The encoding to send: the acceptable one with the highest q, preferring brotli, then gzip,
/// then identity on a tie. Without the header, identity (the safe choice for old clients).
pub fn encoding(accept_encoding: Option<&str>) -> Encoding {
    let Some(header) = accept_encoding else {
        return Encoding::Identity;
    };
    let codings = weighted(header);
    let q_of = |names: &[&str], default: f32| {
        codings
            .iter()
            .filter(|(t, _)| names.contains(&t.as_str()))
            .map(|(_, q)| *q)
            .reduce(f32::max)
            .or_else(|| codings.iter().find(|(t, _)| t == "*").map(|(_, q)| *q))
            .unwrap_or(default)
    };
    // identity is acceptable unless excluded, but when it is not named any coding the client
    // names is preferred to it; the others count only when named (or by `*`).
    let candidates = [
        (Encoding::Brotli, q_of(&["br"], 0.0)),
        (Encoding::Gzip, q_of(&["gzip", "x-gzip"], 0.0)),
        (Encoding::Identity, q_of(&["identity"], f32::MIN_POSITIVE)),
    ];
    candidates
        .into_iter()
        .filter(|(_, q)| *q > 0.0)
        .fold(None, |best: Option<(Encoding, f32)>, (e, q)| match best {
            Some((_, bq)) if bq >= q => best,
            _ => Some((e, q)),
        })
        .map_or(Encoding::Identity, |(e, _)| e)
}

/// Media types that name a feed. A request naming any of them is a feed reader's, whatever
/// else it accepts. Generic XML types do not count: browsers send `application/xml;q=0.9`.
const FEED_TYPES: [&str; 4] = [
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/json",
];

/// Whether the request is a browser's, to be shown the page for people instead of the feed:
/// it names `text/html` (or XHTML), prefers it at least as much as anything else (`*/*`), and
/// names no feed type at all. A feed reader names feed types, usually with `text/html` at a
/// lower q for discovery (FreshRSS, Miniflux), and gets the feed at the URL it asked for, even
/// where the type it names is another format's; `curl` and clients that send no preference
/// get the feed too.
pub fn prefers_html(accept: Option<&str>) -> bool {
    let Some(header) = accept else {
        return false;
    };
    let ranges = weighted(header);
    let named = |types: &[&str]| {
        ranges
            .iter()
            .filter(|(t, _)| types.contains(&t.as_str()))
            .map(|(_, q)| *q)
            .fold(0.0, f32::max)
    };
    let html = named(&["text/html", "application/xhtml+xml"]);
    html > 0.0 && named(&FEED_TYPES) == 0.0 && html >= named(&["*/*"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_choose_an_encoding() {
        let cases = [
            (None, Encoding::Identity),
            (Some(""), Encoding::Identity),
            (Some("gzip"), Encoding::Gzip),
            (Some("gzip, deflate, br"), Encoding::Brotli),
            (Some("br;q=0.5, gzip"), Encoding::Gzip),
            (Some("br;q=0, gzip;q=0"), Encoding::Identity),
            (Some("identity"), Encoding::Identity),
            (Some("*"), Encoding::Brotli),
            (Some("*;q=0.5, identity;q=1"), Encoding::Identity),
            (Some("x-gzip"), Encoding::Gzip),
            (Some("GZIP;Q=0.8"), Encoding::Gzip),
            (Some("deflate"), Encoding::Identity),
        ];
        for (header, expected) in cases {
            assert_eq!(encoding(header), expected, "{header:?}");
        }
    }

    #[test]
    fn browsers_get_html_and_feed_clients_get_the_feed() {
        // The Accept headers these clients send.
        let chromium = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,\
                        image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        let feedparser = "application/atom+xml,application/rdf+xml,application/rss+xml,\
                          application/x-netcdf,application/xml;q=0.9,text/xml;q=0.2,*/*;q=0.1";
        // SimplePie's, which FreshRSS subscribes with.
        let freshrss = "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, \
                        application/xml;q=0.8, text/xml;q=0.8, text/html;q=0.7, \
                        unknown/unknown;q=0.1, application/unknown;q=0.1, */*;q=0.1";
        let miniflux = "application/xml, application/atom+xml, application/rss+xml, \
                        application/rdf+xml, application/feed+json, text/html, */*;q=0.9";
        let netnewswire = "application/rss+xml, application/atom+xml, application/feed+json, \
                           application/json, text/xml;q=0.9, */*;q=0.8";
        for (client, accept, html) in [
            ("Chromium", Some(chromium), true),
            ("Firefox", Some(firefox), true),
            ("feedparser", Some(feedparser), false),
            ("FreshRSS", Some(freshrss), false),
            ("Miniflux", Some(miniflux), false),
            ("NetNewsWire", Some(netnewswire), false),
            ("curl", Some("*/*"), false),
            ("no Accept", None, false),
            (
                "a feed type at a low q",
                Some("text/html, application/json;q=0.1"),
                false,
            ),
            (
                "a feed type refused",
                Some("text/html, application/rss+xml;q=0"),
                true,
            ),
            ("XML only", Some("application/xml, text/xml"), false),
            ("anything over HTML", Some("text/html;q=0.5, */*"), false),
            ("HTML only", Some("text/html"), true),
        ] {
            assert_eq!(prefers_html(accept), html, "{client}");
        }
    }
}
