//! Content negotiation: which encoding to send (`Accept-Encoding`) and whether a request
//! prefers a page for people over the feed itself (`Accept`).

use crate::cache::Encoding;
use crate::feed::Format;

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

/// Media types that ask for a feed of `format`.
fn feed_types(format: Format) -> &'static [&'static str] {
    match format {
        Format::Rss => &["application/rss+xml", "application/xml", "text/xml"],
        Format::Atom => &["application/atom+xml", "application/xml", "text/xml"],
        Format::Json => &["application/feed+json", "application/json"],
        Format::Html => &[],
    }
}

/// Whether the request explicitly prefers `text/html` over every type that would get it the
/// feed (wildcards count for the feed). Browsers do; feed readers and `curl` do not.
pub fn prefers_html(accept: Option<&str>, format: Format) -> bool {
    let Some(header) = accept else {
        return false;
    };
    let ranges = weighted(header);
    let html = ranges
        .iter()
        .filter(|(t, _)| t == "text/html" || t == "application/xhtml+xml")
        .map(|(_, q)| *q)
        .reduce(f32::max);
    let Some(html) = html else {
        return false;
    };
    let wanted = feed_types(format);
    let feed = ranges
        .iter()
        .filter(|(t, _)| {
            wanted.contains(&t.as_str())
                || t == "*/*"
                || (t.ends_with("/*") && wanted.iter().any(|w| w.starts_with(&t[..t.len() - 1])))
        })
        .map(|(_, q)| *q)
        .fold(0.0, f32::max);
    html > feed
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
        let chromium =
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        let feedparser = "application/atom+xml,application/rdf+xml,application/rss+xml,application/x-netcdf,application/xml;q=0.9,text/xml;q=0.2,*/*;q=0.1";
        let cases = [
            (Some(chromium), Format::Rss, true),
            (Some(firefox), Format::Atom, true),
            (Some(chromium), Format::Json, true),
            (Some(feedparser), Format::Rss, false),
            (Some("*/*"), Format::Atom, false),
            (None, Format::Rss, false),
            (
                Some("application/rss+xml, text/html;q=0.9"),
                Format::Rss,
                false,
            ),
            (Some("text/html, application/atom+xml"), Format::Atom, false),
            (
                Some("application/json, text/html;q=0.5"),
                Format::Json,
                false,
            ),
            (Some("text/html"), Format::Json, true),
        ];
        for (accept, format, html) in cases {
            assert_eq!(
                prefers_html(accept, format),
                html,
                "{accept:?} for {format:?}"
            );
        }
    }
}
