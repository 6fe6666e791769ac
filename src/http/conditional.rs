//! Conditional requests (RFC 9110 §13): whether a GET or HEAD may be answered with
//! `304 Not Modified`.

use chrono::{DateTime, Utc};

/// The entity-tags of an `If-None-Match` list, without their weak prefixes; `None` for `*`.
fn tags(header: &str) -> Option<Vec<&str>> {
    if header.trim() == "*" {
        return None;
    }
    let mut out = Vec::new();
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            break;
        }
        let unprefixed = rest.strip_prefix("W/").unwrap_or(rest);
        // An entity-tag is a quoted string that may contain commas.
        let Some(body) = unprefixed.strip_prefix('"') else {
            // Not an entity-tag: skip to the next list element.
            rest = rest.find(',').map_or("", |i| &rest[i..]);
            continue;
        };
        let Some(end) = body.find('"') else { break };
        out.push(&unprefixed[..end + 2]);
        rest = &body[end + 1..];
    }
    Some(out)
}

/// Whether the client's copy is current. `If-None-Match` is compared weakly (a `W/` prefix on
/// either side is ignored) and, when present, `If-Modified-Since` is not looked at.
pub fn not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    etag: &str,
    last_modified: Option<DateTime<Utc>>,
) -> bool {
    let ours = etag.strip_prefix("W/").unwrap_or(etag);
    if let Some(header) = if_none_match {
        return match tags(header) {
            None => true,
            Some(list) => list.contains(&ours),
        };
    }
    match (if_modified_since, last_modified) {
        // httpdate reads all three forms RFC 9110 §5.6.7 requires recipients to accept: the
        // IMF-fixdate, RFC 850 and asctime.
        (Some(since), Some(modified)) => httpdate::parse_http_date(since.trim())
            // To the microsecond: a change later within the second a client holds is a change.
            .map(|since| modified <= DateTime::<Utc>::from(since))
            .unwrap_or(false),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"abc\"";

    fn at(s: &str) -> Option<DateTime<Utc>> {
        Some(DateTime::parse_from_rfc3339(s).unwrap().to_utc())
    }

    #[test]
    fn can_match_if_none_match() {
        let cases = [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"xyz\", \"abc\"", true),
            ("\"x,y\",W/\"abc\"", true),
            ("*", true),
            ("\"abcd\"", false),
            ("abc", false),
            ("", false),
            ("\"xyz\"", false),
        ];
        for (header, expected) in cases {
            assert_eq!(
                not_modified(Some(header), None, TAG, None),
                expected,
                "{header}"
            );
        }
    }

    #[test]
    fn if_modified_since_counts_only_without_if_none_match() {
        let modified = at("2024-05-18T01:30:00Z");
        let same = "Sat, 18 May 2024 01:30:00 GMT";
        let before = "Sat, 18 May 2024 01:29:59 GMT";
        assert!(not_modified(None, Some(same), TAG, modified));
        assert!(!not_modified(None, Some(before), TAG, modified));
        assert!(!not_modified(None, Some("yesterday"), TAG, modified));
        assert!(!not_modified(None, Some(same), TAG, None));
        assert!(!not_modified(Some("\"other\""), Some(same), TAG, modified));
    }

    #[test]
    fn a_change_later_within_the_given_second_is_a_change() {
        let same = "Sat, 18 May 2024 01:30:00 GMT";
        assert!(not_modified(
            None,
            Some(same),
            TAG,
            at("2024-05-18T01:30:00Z")
        ));
        assert!(!not_modified(
            None,
            Some(same),
            TAG,
            at("2024-05-18T01:30:00.000001Z")
        ));
    }

    #[test]
    fn if_modified_since_is_read_in_every_form_http_allows() {
        let modified = at("1994-11-06T08:49:37Z");
        for (form, date) in [
            ("IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("RFC 850", "Sunday, 06-Nov-94 08:49:37 GMT"),
            ("asctime", "Sun Nov  6 08:49:37 1994"),
        ] {
            assert!(not_modified(None, Some(date), TAG, modified), "{form}");
            let earlier = at("1994-11-06T08:49:38Z");
            assert!(!not_modified(None, Some(date), TAG, earlier), "{form}");
        }
    }
}
