//! Who polled a feed, as the User-Agent header tells: the aggregators that fetch once for many
//! readers and say how many, and everyone else.
//!
//! Hosted readers such as Feedly, Inoreader or NewsBlur fetch a feed once for all their users and
//! put the number in their User-Agent (`Feedly/1.0 (…; 57 subscribers; …)`). That number is the
//! only honest subscriber count a publisher can get since FeedBurner closed, so this module owns
//! reading it: [`recognise`] turns a User-Agent into a [`Poller`], [`AGGREGATORS`] is the table of
//! the fetchers known by name (the README lists it), and [`aggregator_of_host`] tells which of
//! them a WebSub callback belongs to, so a push subscription is not counted on top of the count
//! the same aggregator reports.
//!
//! The header is attacker-controlled, so everything here works on its bytes in a few linear
//! passes, never panics, allocates nothing but the small [`Report`] it returns, and bounds every
//! field of that.

/// The largest subscriber count believed. No feed reader serves anywhere near a million readers
/// of one feed; a larger number is a forgery or a bug, and would swamp every honest count.
pub const MAX_REPORTED: u64 = 1_000_000;

/// [`Poller::Suspect`]'s reason for a count above [`MAX_REPORTED`].
pub const COUNT_TOO_LARGE: &str = "count above 1000000";

/// [`Poller::Suspect`]'s reason for a count that is not a plain `u64` (too many digits, or digit
/// groups such as `1,000`).
pub const COUNT_NOT_A_NUMBER: &str = "count does not parse as u64";

/// The longest aggregator name kept from an unknown User-Agent: long enough for any product name,
/// short enough that a forged one cannot bloat the stored statistics.
const MAX_NAME: usize = 32;

/// The longest feed id kept. Real ones are at most 24 characters (The Old Reader's hex ids); a
/// longer one is cut off or forged, and a truncated id would merge different feeds.
const MAX_FEED_ID: usize = 64;

/// The name of an aggregator whose User-Agent has nothing usable before its count.
const UNKNOWN: &str = "unknown";

/// A count an aggregator reported for one of the feeds it fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The aggregator's name: the table's name for a known one (e.g. "Feedly"), else the product
    /// token of the User-Agent, at most 32 characters of `[A-Za-z0-9 ._-]`, trimmed.
    pub aggregator: String,
    /// The aggregator's own id of the feed when it gives one (`feed-id=1234`, `feed-id:1`,
    /// NewsBlur's `/site/1234/`), at most 64 characters of `[A-Za-z0-9._:-]`; None otherwise (an
    /// id with other characters or longer: None, never a truncated id).
    pub feed_id: Option<String>,
    /// How many of its users subscribe.
    pub subscribers: u64,
}

/// Who made a poll, as its User-Agent tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poller {
    /// An aggregator fetching for many users, with the count it reported.
    Aggregator(Report),
    /// A report no one should believe: a count above [`MAX_REPORTED`], or a count that does not
    /// parse as `u64` ([`COUNT_TOO_LARGE`] or [`COUNT_NOT_A_NUMBER`]). Counted as suspect and
    /// otherwise ignored.
    Suspect(&'static str),
    /// Any other client: one reader (or one self-hosted reader instance).
    Client,
}

/// How a known aggregator's User-Agent is recognised. Both compare ASCII case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// The User-Agent's product token starts with this: the text before the first `/`, `;`, `(`,
    /// `)` or ` - `, or for `Mozilla/5.0 (compatible; NAME; …)` the NAME. Tried for every
    /// aggregator first, because it names the fetcher itself rather than something it mentions:
    /// Feedly's User-Agent says `like FeedFetcher-Google`, NewsBlur's carries the feed's own name.
    Product(&'static str),
    /// This appears anywhere in the User-Agent (a home-page domain). Tried only when no
    /// aggregator's product pattern matched.
    Contains(&'static str),
}

/// Where a known aggregator puts its own id of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedIdRule {
    /// A `feed-id` or `feedId` parameter, followed by `=` or `:` (spaces allowed around it):
    /// `feed-id=1234`, `feed-id:1`, `feedId: 5404723`. Also how an unknown aggregator's id is read.
    Parameter,
    /// The path segment right after this text, as in NewsBlur's `…/site/1234/name`.
    PathAfter(&'static str),
}

/// A known aggregator: its name, how it is recognised, the hosts its WebSub callbacks come from,
/// and a real User-Agent of it (the README's table and the tests use it).
#[derive(Debug)]
pub struct Aggregator {
    /// The name reports carry, whatever its User-Agent calls it.
    pub name: &'static str,
    /// What recognises its User-Agent; see [`Pattern`] for the order they are tried in.
    pub recognised_by: &'static [Pattern],
    /// Where its User-Agent carries its id of the feed.
    pub feed_id: FeedIdRule,
    /// Domain suffixes its WebSub callbacks come from, e.g. "feedly.com". Its own domains only:
    /// a callback there can be no one else's.
    pub callback_hosts: &'static [&'static str],
    /// A User-Agent it sends, with a count.
    pub example: &'static str,
}

/// The aggregators known by name, each reporting its count as `N subscribers` or `N readers`.
/// Only services known to send a count in that form are here; any other one that does is still
/// counted, under its product token.
pub const AGGREGATORS: &[Aggregator] = &[
    Aggregator {
        name: "Feedly",
        recognised_by: &[Pattern::Product("feedly"), Pattern::Contains("feedly.com")],
        feed_id: FeedIdRule::Parameter,
        callback_hosts: &["feedly.com"],
        example: "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 57 subscribers; like FeedFetcher-Google)",
    },
    Aggregator {
        name: "Inoreader",
        recognised_by: &[
            Pattern::Product("inoreader"),
            Pattern::Contains("inoreader.com"),
        ],
        feed_id: FeedIdRule::Parameter,
        callback_hosts: &["inoreader.com"],
        example: "Mozilla/5.0 (compatible; inoreader.com; 114 subscribers)",
    },
    Aggregator {
        name: "NewsBlur",
        recognised_by: &[
            Pattern::Product("newsblur"),
            Pattern::Contains("newsblur.com"),
        ],
        feed_id: FeedIdRule::PathAfter("newsblur.com/site/"),
        callback_hosts: &["newsblur.com"],
        example: "NewsBlur Feed Fetcher - 5 subscribers - https://www.newsblur.com/site/1234/hydrogen-news (Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0.1 Safari/605.1.15)",
    },
    Aggregator {
        name: "Feedbin",
        recognised_by: &[
            Pattern::Product("feedbin"),
            Pattern::Contains("feedbin.com"),
        ],
        feed_id: FeedIdRule::Parameter,
        callback_hosts: &["feedbin.com"],
        example: "Feedbin feed-id:1373711 - 142 subscribers",
    },
    Aggregator {
        name: "The Old Reader",
        recognised_by: &[
            Pattern::Product("theoldreader"),
            Pattern::Product("the old reader"),
            Pattern::Contains("theoldreader.com"),
        ],
        feed_id: FeedIdRule::Parameter,
        callback_hosts: &["theoldreader.com"],
        example: "Mozilla/5.0 (compatible; theoldreader.com; 2 subscribers; feed-id=2b8bce4a2e1e6bc1f6f79a9e)",
    },
    Aggregator {
        name: "BazQux",
        recognised_by: &[Pattern::Product("bazqux"), Pattern::Contains("bazqux.com")],
        feed_id: FeedIdRule::Parameter,
        callback_hosts: &["bazqux.com"],
        example: "Mozilla/5.0 (compatible; BazQux/2.4; +https://bazqux.com/fetcher; 3 subscribers)",
    },
    Aggregator {
        name: "Google Feedfetcher",
        // Not `Contains("feedfetcher-google")`: Feedly and Feedspot say `like FeedFetcher-Google`.
        recognised_by: &[
            Pattern::Product("feedfetcher-google"),
            Pattern::Contains("google.com/feedfetcher"),
        ],
        feed_id: FeedIdRule::Parameter,
        // google.com hosts far more than a feed reader; a callback there proves nothing.
        callback_hosts: &[],
        example: "Feedfetcher-Google; (+http://www.google.com/feedfetcher.html; 4 subscribers; feed-id=12499587138938146489)",
    },
    Aggregator {
        name: "Netvibes",
        recognised_by: &[
            Pattern::Product("netvibes"),
            Pattern::Contains("netvibes.com"),
        ],
        feed_id: FeedIdRule::Parameter,
        callback_hosts: &["netvibes.com"],
        example: "Netvibes (http://www.netvibes.com/; 5 subscribers; feedID: 5404723)",
    },
    Aggregator {
        name: "Bloglovin",
        recognised_by: &[
            Pattern::Product("bloglovin"),
            Pattern::Contains("bloglovin.com"),
        ],
        feed_id: FeedIdRule::Parameter,
        callback_hosts: &["bloglovin.com"],
        example: "Bloglovin/1.0 (http://www.bloglovin.com; 1 subscribers)",
    },
    Aggregator {
        name: "Dreamwidth",
        // Its feed accounts (`/users/name_feed/`) hold underscores, which ids may not, so it has
        // no id and its count is kept per feed.
        recognised_by: &[
            Pattern::Product("dreamwidth"),
            Pattern::Contains("dreamwidth.org"),
        ],
        feed_id: FeedIdRule::Parameter,
        callback_hosts: &["dreamwidth.org"],
        example: "Dreamwidth Studios (webmaster@dreamwidth.org; for https://www.dreamwidth.org/users/hydrogen_feed/; 2 readers)",
    },
    Aggregator {
        name: "Overcast",
        recognised_by: &[
            Pattern::Product("overcast"),
            Pattern::Contains("overcast.fm"),
        ],
        feed_id: FeedIdRule::Parameter,
        callback_hosts: &["overcast.fm"],
        example: "Overcast/1.0 Podcast Sync (123 subscribers; feed-id=456789; +http://overcast.fm/)",
    },
];

/// Tells who made a poll from its User-Agent: an aggregator with the count it reports, a report
/// too large to believe, or any other client.
///
/// A count is `N subscribers`, `N subscriber`, `N readers` or `N reader` (any case, N ASCII
/// digits, one or more spaces between), standing at the start or after `;`, `-`, `,`, `(`, `)` or
/// a space, and followed by the end or one of those; the first one counts. Without a count the
/// poller is a [`Poller::Client`], even a known aggregator's plain fetch. Runs in time linear in
/// the header and allocates only the returned report.
pub fn recognise(user_agent: &str) -> Poller {
    let ua = user_agent.as_bytes();
    let Some(count) = find_count(ua) else {
        return Poller::Client;
    };
    let subscribers = match count.value {
        Ok(n) if n <= MAX_REPORTED => n,
        Ok(_) => return Poller::Suspect(COUNT_TOO_LARGE),
        Err(why) => return Poller::Suspect(why),
    };
    let product = product_token(&ua[..count.start]);
    let (aggregator, rule) = match known_aggregator(ua, product) {
        Some(known) => (known.name.to_owned(), known.feed_id),
        None => (name_of(product), FeedIdRule::Parameter),
    };
    Poller::Aggregator(Report {
        aggregator,
        feed_id: find_feed_id(ua, rule),
        subscribers,
    })
}

/// The known aggregator whose WebSub callbacks come from `host` (a host name; matches the suffix
/// on a label boundary, case-insensitive, ignoring a trailing dot), if any.
pub fn aggregator_of_host(host: &str) -> Option<&'static str> {
    let host = host.as_bytes();
    let host = host.strip_suffix(b".").unwrap_or(host);
    AGGREGATORS
        .iter()
        .find(|known| {
            known
                .callback_hosts
                .iter()
                .any(|suffix| is_domain_or_subdomain(host, suffix.as_bytes()))
        })
        .map(|known| known.name)
}

/// Whether `host` is `domain` or a subdomain of it: `cloud.feedly.com` is Feedly's, `notfeedly.com`
/// is not.
fn is_domain_or_subdomain(host: &[u8], domain: &[u8]) -> bool {
    let Some(cut) = host.len().checked_sub(domain.len()) else {
        return false;
    };
    !domain.is_empty()
        && host[cut..].eq_ignore_ascii_case(domain)
        && (cut == 0 || host[cut - 1] == b'.')
}

/// A count found in a User-Agent: where its digits start (the product token ends there at the
/// latest) and its value, or why it has none.
struct Count {
    start: usize,
    value: Result<u64, &'static str>,
}

/// Whether `b` may stand around a count.
fn is_separator(b: u8) -> bool {
    matches!(b, b';' | b'-' | b',' | b'(' | b')' | b' ')
}

/// The first count in `ua`. Each byte is looked at a bounded number of times: digit runs and the
/// spaces after them are scanned once, and the word after them is at most 11 bytes.
fn find_count(ua: &[u8]) -> Option<Count> {
    let mut i = 0;
    while i < ua.len() {
        if !ua[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < ua.len() && ua[i].is_ascii_digit() {
            i += 1;
        }
        let standalone = start == 0 || is_separator(ua[start - 1]);
        if standalone && is_count_word_at(ua, i) {
            // `1,000 subscribers` would otherwise read as 0: the number as written is no u64.
            let grouped = start >= 2 && ua[start - 1] == b',' && ua[start - 2].is_ascii_digit();
            let value = if grouped {
                Err(COUNT_NOT_A_NUMBER)
            } else {
                parse_digits(&ua[start..i])
            };
            return Some(Count { start, value });
        }
    }
    None
}

/// Whether `ua[at..]` is spaces, then `subscriber(s)` or `reader(s)`, then the end or a separator.
fn is_count_word_at(ua: &[u8], at: usize) -> bool {
    let mut i = at;
    while ua.get(i) == Some(&b' ') {
        i += 1;
    }
    if i == at {
        return false;
    }
    let rest = &ua[i..];
    let word = if starts_with_ignore_case(rest, b"subscriber") {
        "subscriber".len()
    } else if starts_with_ignore_case(rest, b"reader") {
        "reader".len()
    } else {
        return false;
    };
    let word = match rest.get(word) {
        Some(b's' | b'S') => word + 1,
        _ => word,
    };
    rest.get(word).is_none_or(|&b| is_separator(b))
}

/// ASCII digits as a `u64`, or [`COUNT_NOT_A_NUMBER`] when they do not fit (leading zeros do).
fn parse_digits(digits: &[u8]) -> Result<u64, &'static str> {
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(COUNT_NOT_A_NUMBER)
    })
}

/// The product token of `head` (the User-Agent before its count), leading spaces trimmed and not
/// yet restricted: `Feedly` in `Feedly/1.0 (…`, `BazQux` in `Mozilla/5.0 (compatible; BazQux/2.4;
/// …`, `NewsBlur Feed Fetcher` in `NewsBlur Feed Fetcher - …`.
fn product_token(head: &[u8]) -> &[u8] {
    let token = trim_start_spaces(compatible_token(head).unwrap_or(head));
    let mut end = 0;
    while end < token.len() {
        match token[end] {
            b'/' | b';' | b'(' | b')' => break,
            b' ' if token[end..].starts_with(b" - ") => break,
            _ => end += 1,
        }
    }
    &token[..end]
}

/// For a `Mozilla/… (compatible; NAME; …)` User-Agent, the text from NAME on, since `Mozilla`
/// names nothing; None for any other.
fn compatible_token(head: &[u8]) -> Option<&[u8]> {
    if !starts_with_ignore_case(head, b"mozilla/") {
        return None;
    }
    let open = head.iter().position(|&b| b == b'(')?;
    let inside = trim_start_spaces(&head[open + 1..]);
    let after = inside.get(b"compatible".len()..)?;
    if !starts_with_ignore_case(inside, b"compatible") {
        return None;
    }
    trim_start_spaces(after).strip_prefix(b";")
}

/// The known aggregator `ua` comes from: first by its product token, then by a domain anywhere.
fn known_aggregator(ua: &[u8], product: &[u8]) -> Option<&'static Aggregator> {
    let by_product = AGGREGATORS.iter().find(|known| {
        known.recognised_by.iter().any(|pattern| match pattern {
            Pattern::Product(name) => starts_with_ignore_case(product, name.as_bytes()),
            Pattern::Contains(_) => false,
        })
    });
    by_product.or_else(|| {
        AGGREGATORS.iter().find(|known| {
            known.recognised_by.iter().any(|pattern| match pattern {
                Pattern::Product(_) => false,
                Pattern::Contains(text) => contains_ignore_case(ua, text.as_bytes()),
            })
        })
    })
}

/// Whether `b` may be part of an unknown aggregator's name.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b' ' | b'.' | b'_' | b'-')
}

/// An unknown aggregator's name from its product token: up to its first byte that may not be in
/// a name (so `Feedbin feed-id:1` gives `Feedbin feed-id`, never a splice of the parts around the
/// byte), trimmed, at most [`MAX_NAME`] bytes; [`UNKNOWN`] when nothing is left.
fn name_of(product: &[u8]) -> String {
    let usable = product
        .iter()
        .position(|&b| !is_name_byte(b))
        .unwrap_or(product.len());
    let name = trim_spaces(&product[..usable]);
    let name = trim_spaces(&name[..name.len().min(MAX_NAME)]);
    if name.is_empty() {
        UNKNOWN.to_owned()
    } else {
        // Every byte is ASCII, so each is its own char.
        name.iter().map(|&b| char::from(b)).collect()
    }
}

/// The aggregator's id of the feed, read the way `rule` says.
fn find_feed_id(ua: &[u8], rule: FeedIdRule) -> Option<String> {
    match rule {
        FeedIdRule::Parameter => parameter_id(ua),
        FeedIdRule::PathAfter(marker) => {
            let at = find_ignore_case(ua, marker.as_bytes())?;
            id_until(&ua[at + marker.len()..], |b| {
                matches!(b, b'/' | b'?' | b'#') || ends_id(b)
            })
        }
    }
}

/// The value of the first `feed-id` or `feedid` key followed by `=` or `:` (any case, spaces
/// allowed around the `=` or `:`), if it is a valid id.
fn parameter_id(ua: &[u8]) -> Option<String> {
    for at in 0..ua.len() {
        let rest = &ua[at..];
        let key = if starts_with_ignore_case(rest, b"feed-id") {
            "feed-id".len()
        } else if starts_with_ignore_case(rest, b"feedid") {
            "feedid".len()
        } else {
            continue;
        };
        let after_key = trim_start_spaces(&rest[key..]);
        let Some((b'=' | b':', value)) = after_key.split_first() else {
            continue;
        };
        return id_until(trim_start_spaces(value), ends_id);
    }
    None
}

/// Whether `b` ends a feed id: what separates parameters in the User-Agents seen.
fn ends_id(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b';' | b',' | b'(' | b')')
}

/// The id at the start of `value`, up to the first byte that `ends` it, if it is a valid id.
fn id_until(value: &[u8], ends: impl Fn(u8) -> bool) -> Option<String> {
    // Looks no further than one byte past the longest id: a longer one is refused, not cut.
    let window = &value[..value.len().min(MAX_FEED_ID + 1)];
    let end = window.iter().position(|&b| ends(b)).unwrap_or(window.len());
    valid_id(&window[..end])
}

/// `id` as a feed id if it is 1 to [`MAX_FEED_ID`] bytes of `[A-Za-z0-9._:-]`.
fn valid_id(id: &[u8]) -> Option<String> {
    let valid = !id.is_empty()
        && id.len() <= MAX_FEED_ID
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'-'));
    // Every byte is ASCII, so each is its own char.
    valid.then(|| id.iter().map(|&b| char::from(b)).collect())
}

fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Where `needle` first appears in `haystack`, ASCII case-insensitively. Linear in the haystack
/// for the short, fixed needles used here.
fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    find_ignore_case(haystack, needle).is_some()
}

fn trim_start_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let bytes = trim_start_spaces(bytes);
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(0, |last| last + 1);
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report `user_agent` gives; fails the test for anything else.
    fn report(user_agent: &str) -> Report {
        match recognise(user_agent) {
            Poller::Aggregator(report) => report,
            other => panic!("{user_agent:?} gave {other:?}, not a report"),
        }
    }

    fn expect(name: &str, feed_id: Option<&str>, subscribers: u64) -> Report {
        Report {
            aggregator: name.to_owned(),
            feed_id: feed_id.map(str::to_owned),
            subscribers,
        }
    }

    fn example_of(name: &str) -> &'static str {
        match AGGREGATORS.iter().find(|known| known.name == name) {
            Some(known) => known.example,
            None => panic!("no aggregator named {name}"),
        }
    }

    #[test]
    fn can_recognise_feedly() {
        let ua = example_of("Feedly");
        assert_eq!(report(ua), expect("Feedly", None, 57));
    }

    #[test]
    fn can_recognise_feedly_with_a_feed_id() {
        let ua = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 57 subscribers; feed-id=1234)";
        assert_eq!(report(ua), expect("Feedly", Some("1234"), 57));
    }

    #[test]
    fn can_recognise_inoreader() {
        let ua = example_of("Inoreader");
        assert_eq!(report(ua), expect("Inoreader", None, 114));
    }

    #[test]
    fn can_recognise_inoreader_in_each_of_its_forms() {
        for ua in [
            "Mozilla/5.0 (compatible; Inoreader; 12 subscribers; +http://www.inoreader.com)",
            "Inoreader/1.0 (+http://www.inoreader.com/feed-fetcher; 12 subscribers; )",
            "FeedFetcher (+https://www.inoreader.com/; 12 subscribers)",
        ] {
            assert_eq!(report(ua), expect("Inoreader", None, 12), "{ua}");
        }
    }

    #[test]
    fn can_recognise_newsblur_with_its_site_id() {
        let ua = example_of("NewsBlur");
        assert_eq!(report(ua), expect("NewsBlur", Some("1234"), 5));
    }

    #[test]
    fn can_recognise_newsblur_whose_feed_is_named_after_another_aggregator() {
        let ua = "NewsBlur Feed Fetcher - 9 subscribers - https://www.newsblur.com/site/77/feedly-tips \
                  (Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) like FeedFetcher-Google)";
        assert_eq!(report(ua), expect("NewsBlur", Some("77"), 9));
    }

    #[test]
    fn can_recognise_feedbin() {
        let ua = example_of("Feedbin");
        assert_eq!(report(ua), expect("Feedbin", Some("1373711"), 142));
        assert_eq!(
            report("Feedbin feed-id:1 - 3 subscribers"),
            expect("Feedbin", Some("1"), 3)
        );
    }

    #[test]
    fn can_recognise_the_old_reader() {
        let ua = example_of("The Old Reader");
        assert_eq!(
            report(ua),
            expect("The Old Reader", Some("2b8bce4a2e1e6bc1f6f79a9e"), 2)
        );
    }

    #[test]
    fn can_recognise_the_old_reader_counting_readers() {
        assert_eq!(
            report("The Old Reader - 2 readers"),
            expect("The Old Reader", None, 2)
        );
        assert_eq!(
            report("Mozilla/5.0 (compatible; theoldreader.com; 2 subscribers; feed-id=abc123)"),
            expect("The Old Reader", Some("abc123"), 2)
        );
    }

    #[test]
    fn can_recognise_bazqux() {
        let ua = example_of("BazQux");
        assert_eq!(report(ua), expect("BazQux", None, 3));
    }

    #[test]
    fn can_recognise_google_feedfetcher() {
        let ua = example_of("Google Feedfetcher");
        assert_eq!(
            report(ua),
            expect("Google Feedfetcher", Some("12499587138938146489"), 4)
        );
        let ua = "Feedfetcher-Google; (+http://www.google.com/feedfetcher.html; 4 subscribers; feed-id=123456789)";
        assert_eq!(
            report(ua),
            expect("Google Feedfetcher", Some("123456789"), 4)
        );
    }

    #[test]
    fn can_tell_a_fetcher_that_is_like_feedfetcher_google_from_it() {
        let ua = "Mozilla/5.0 (compatible; Feedspot/1.0 (+https://www.feedspot.com/fs/fetcher; \
                  like FeedFetcher-Google); 8 subscribers)";
        assert_eq!(report(ua), expect("Feedspot", None, 8));
    }

    #[test]
    fn can_recognise_netvibes() {
        let ua = example_of("Netvibes");
        assert_eq!(report(ua), expect("Netvibes", Some("5404723"), 5));
    }

    #[test]
    fn can_recognise_bloglovin() {
        let ua = example_of("Bloglovin");
        assert_eq!(report(ua), expect("Bloglovin", None, 1));
    }

    #[test]
    fn can_recognise_dreamwidth() {
        let ua = example_of("Dreamwidth");
        assert_eq!(report(ua), expect("Dreamwidth", None, 2));
    }

    #[test]
    fn can_recognise_overcast() {
        let ua = example_of("Overcast");
        assert_eq!(report(ua), expect("Overcast", Some("456789"), 123));
    }

    #[test]
    fn can_recognise_every_aggregator_by_its_own_example() {
        for known in AGGREGATORS {
            assert_eq!(report(known.example).aggregator, known.name);
        }
    }

    #[test]
    fn can_read_a_singular_subscriber() {
        let ua = "Bloglines/3.1 (http://www.bloglines.com; 1 subscriber)";
        assert_eq!(report(ua), expect("Bloglines", None, 1));
    }

    #[test]
    fn can_read_readers_in_any_case() {
        assert_eq!(report("YandexBlogs/0.99 (7 READERS)").subscribers, 7);
        assert_eq!(
            report("Zhuaxia.com 1 Subscribers"),
            expect("Zhuaxia.com", None, 1)
        );
        assert_eq!(report("Reader/2 (1 reader)").subscribers, 1);
    }

    #[test]
    fn can_read_the_first_of_several_counts() {
        let ua = "Feedly/1.0 (3 subscribers; 900 readers)";
        assert_eq!(report(ua).subscribers, 3);
        let ua = "Feedly/1.0 (3 subscribers; 9000000 readers)";
        assert_eq!(report(ua).subscribers, 3);
    }

    #[test]
    fn can_read_a_count_of_exactly_the_maximum() {
        let ua = "Feedly/1.0 (1000000 subscribers)";
        assert_eq!(report(ua).subscribers, MAX_REPORTED);
    }

    #[test]
    fn suspects_a_count_above_the_maximum() {
        let ua = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 1000001 subscribers)";
        assert_eq!(recognise(ua), Poller::Suspect(COUNT_TOO_LARGE));
        assert_eq!(COUNT_TOO_LARGE, format!("count above {MAX_REPORTED}"));
    }

    #[test]
    fn suspects_a_count_of_thirty_digits() {
        let ua = "Feedly/1.0 (123456789012345678901234567890 subscribers)";
        assert_eq!(recognise(ua), Poller::Suspect(COUNT_NOT_A_NUMBER));
    }

    #[test]
    fn suspects_a_count_in_digit_groups() {
        let ua = "Feedly/1.0 (1,000 subscribers)";
        assert_eq!(recognise(ua), Poller::Suspect(COUNT_NOT_A_NUMBER));
    }

    #[test]
    fn can_read_a_count_with_leading_zeros() {
        let ua = "Feedly/1.0 (000000000000000000000000000042 subscribers)";
        assert_eq!(report(ua).subscribers, 42);
    }

    #[test]
    fn treats_a_known_aggregator_without_a_count_as_a_client() {
        for ua in [
            "Feedly/1.0 (+http://www.feedly.com/fetcher.html; like FeedFetcher-Google)",
            "NewsBlur Page Fetcher - https://www.newsblur.com",
            "Mozilla/5.0 (compatible; inoreader.com)",
        ] {
            assert_eq!(recognise(ua), Poller::Client, "{ua}");
        }
    }

    #[test]
    fn treats_browsers_and_personal_readers_as_clients() {
        for ua in [
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            "feedparser/6.0.11 +https://github.com/kurtmckee/feedparser/",
            "Newsboat/2.36.0 (Linux x86_64)",
            "rss2email/3.14 (https://github.com/rss2email/rss2email)",
            "FreshRSS/1.24.1 (Linux; https://freshrss.org)",
            "Mozilla/5.0 (compatible; Miniflux/2.1.3; +https://miniflux.app)",
            "curl/8.5.0",
            "Tiny Tiny RSS/24.05 (https://tt-rss.org/)",
            "",
        ] {
            assert_eq!(recognise(ua), Poller::Client, "{ua}");
        }
    }

    #[test]
    fn treats_a_number_that_only_looks_like_a_count_as_a_client() {
        for ua in [
            "Feed 2 Reader/1.0",
            "Reader5 readers",
            "Foo/1.0 (5 readership)",
            "Foo/1.0 (5subscribers)",
            "Foo/1.0 (v5 subscribers)",
            "Foo/1.0 (1.5 subscribers)",
        ] {
            assert_eq!(recognise(ua), Poller::Client, "{ua}");
        }
    }

    #[test]
    fn names_an_unknown_aggregator_by_its_product_token() {
        assert_eq!(
            report("NewsGatorOnline/2.0 (http://www.newsgator.com; 39 subscribers)"),
            expect("NewsGatorOnline", None, 39)
        );
        assert_eq!(
            report("livedoor FeedFetcher/0.01 (http://reader.livedoor.com/; 1 subscriber)"),
            expect("livedoor FeedFetcher", None, 1)
        );
        assert_eq!(
            report("Acme Reader - 6 subscribers - feed-id=a.b-c:9"),
            expect("Acme Reader", Some("a.b-c:9"), 6)
        );
    }

    #[test]
    fn names_an_unknown_compatible_aggregator_by_the_token_after_compatible() {
        assert_eq!(
            report("Mozilla/5.0 (compatible; Acme/2.4; +https://acme.example/bot; 3 subscribers)"),
            expect("Acme", None, 3)
        );
        assert_eq!(
            report("Mozilla/5.0 (compatible;Acme Feeds; 3 subscribers)"),
            expect("Acme Feeds", None, 3)
        );
    }

    #[test]
    fn names_an_aggregator_unknown_when_its_token_has_nothing_usable() {
        for ua in [
            "5 subscribers",
            "江阴 Reader (5 subscribers)",
            "Mozilla/5.0 (compatible; 5 subscribers)",
            "/1.0 (5 subscribers)",
        ] {
            assert_eq!(report(ua).aggregator, UNKNOWN, "{ua}");
        }
    }

    #[test]
    fn can_cut_an_unknown_name_at_its_first_unusable_character() {
        assert_eq!(report("Acme:Feeds (5 subscribers)").aggregator, "Acme");
        assert_eq!(
            report("  Acme\u{1}Feeds (5 subscribers)").aggregator,
            "Acme"
        );
        let long = format!("{} 5 subscribers", "A".repeat(100));
        assert_eq!(report(&long).aggregator, "A".repeat(MAX_NAME));
        let spaced = format!("{}B (5 subscribers)", "A ".repeat(16));
        assert_eq!(report(&spaced).aggregator, "A ".repeat(16).trim_end());
    }

    #[test]
    fn drops_a_feed_id_with_bad_characters() {
        for ua in [
            "Feedly/1.0 (57 subscribers; feed-id=12<script>)",
            "Feedly/1.0 (57 subscribers; feed-id=12/34)",
            "Feedly/1.0 (57 subscribers; feed-id=ab_cd)",
            "Feedly/1.0 (57 subscribers; feed-id=12é)",
            "Feedly/1.0 (57 subscribers; feed-id=)",
            "NewsBlur Feed Fetcher - 5 subscribers - https://www.newsblur.com/site/12%34/name",
        ] {
            assert_eq!(report(ua).feed_id, None, "{ua}");
        }
    }

    #[test]
    fn drops_a_feed_id_longer_than_the_maximum_rather_than_cutting_it() {
        let longest = "a".repeat(MAX_FEED_ID);
        let ua = format!("Feedly/1.0 (57 subscribers; feed-id={longest})");
        assert_eq!(report(&ua).feed_id.as_deref(), Some(longest.as_str()));
        let ua = format!("Feedly/1.0 (57 subscribers; feed-id={longest}b)");
        assert_eq!(report(&ua).feed_id, None);
    }

    #[test]
    fn can_find_the_aggregator_of_a_callback_host() {
        assert_eq!(aggregator_of_host("cloud.feedly.com"), Some("Feedly"));
        assert_eq!(aggregator_of_host("feedly.com"), Some("Feedly"));
        assert_eq!(aggregator_of_host("FEEDLY.COM."), Some("Feedly"));
        assert_eq!(aggregator_of_host("push.newsblur.com"), Some("NewsBlur"));
        assert_eq!(aggregator_of_host("notfeedly.com"), None);
        assert_eq!(aggregator_of_host("feedly.com.evil.example"), None);
        assert_eq!(aggregator_of_host("google.com"), None);
        assert_eq!(aggregator_of_host(""), None);
        assert_eq!(aggregator_of_host("."), None);
        assert_eq!(aggregator_of_host(".feedly.com"), Some("Feedly"));
    }

    #[test]
    fn keeps_every_known_name_and_host_within_the_bounds_it_promises() {
        for known in AGGREGATORS {
            assert!(!known.name.is_empty() && known.name.len() <= MAX_NAME);
            assert!(known.name.bytes().all(is_name_byte), "{}", known.name);
            for host in known.callback_hosts {
                assert_eq!(aggregator_of_host(host), Some(known.name), "{host}");
            }
        }
    }

    /// A small deterministic generator (xorshift64*), so the fuzz test needs no crate and
    /// replays the same inputs every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            // n is small, so the modulo bias does not matter here.
            (self.next() % n as u64) as usize
        }
    }

    /// Pieces that exercise every branch: counts, ids, separators, names, hostile bytes.
    const PIECES: &[&str] = &[
        " ",
        "  ",
        ";",
        "-",
        " - ",
        ",",
        "(",
        ")",
        "/",
        ":",
        "=",
        ".",
        "+",
        "_",
        "subscribers",
        "subscriber",
        "Readers",
        "READER",
        "subscriberss",
        "reader_",
        "0",
        "1",
        "42",
        "999999",
        "1000000",
        "1000001",
        "18446744073709551615",
        "18446744073709551616",
        "123456789012345678901234567890",
        "feed-id",
        "feedId",
        "FEED-ID=",
        "feed-id:",
        "feedid = ",
        "abc123",
        "/site/",
        "newsblur.com/site/",
        "Mozilla/5.0",
        "Mozilla/5.0 (compatible;",
        "compatible",
        "Feedly",
        "inoreader.com",
        "like FeedFetcher-Google",
        "The Old Reader",
        "google.com/feedfetcher",
        "Feedbin feed-id:",
        "江阴",
        "é",
        "\u{0}",
        "\u{1}",
        "\t",
        "\r\n",
        "\u{7f}",
        "\u{85}",
        "\u{202e}",
        "\u{fffd}",
        "😀",
        "\u{10ffff}",
        // Whole counts, so that generated strings often hold one.
        " 3 subscribers",
        "(12 readers)",
        "; 1 subscriber;",
        " - 57 Subscribers - ",
        " 2000000 readers",
        " 99999999999999999999999 subscribers",
        "Feedly/1.0 (",
        "NewsBlur Feed Fetcher - ",
    ];

    fn assert_bounded(user_agent: &str) {
        match recognise(user_agent) {
            Poller::Client => {}
            Poller::Suspect(why) => {
                assert!(why == COUNT_TOO_LARGE || why == COUNT_NOT_A_NUMBER, "{why}");
            }
            Poller::Aggregator(report) => {
                let name = &report.aggregator;
                assert!(!name.is_empty() && name.len() <= MAX_NAME, "{name:?}");
                assert!(name.bytes().all(is_name_byte), "{name:?}");
                assert_eq!(name.trim(), name);
                if let Some(id) = &report.feed_id {
                    assert!(!id.is_empty() && id.len() <= MAX_FEED_ID, "{id:?}");
                    assert!(
                        id.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b".:-".contains(&b)),
                        "{id:?}"
                    );
                }
                assert!(report.subscribers <= MAX_REPORTED);
                let lower = user_agent.to_ascii_lowercase();
                assert!(lower.contains("subscriber") || lower.contains("reader"));
            }
        }
    }

    #[test]
    fn never_panics_and_keeps_its_bounds_on_generated_input() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut reports, mut suspects) = (0, 0);
        for _ in 0..5000 {
            let mut ua = String::new();
            for _ in 0..rng.below(40) {
                ua.push_str(PIECES[rng.below(PIECES.len())]);
            }
            assert_bounded(&ua);
            match recognise(&ua) {
                Poller::Aggregator(_) => reports += 1,
                Poller::Suspect(_) => suspects += 1,
                Poller::Client => {}
            }
        }
        // The generator must reach every branch, or the test proves little.
        assert!(
            reports > 500 && suspects > 100,
            "{reports} reports, {suspects} suspects"
        );
    }

    #[test]
    fn never_panics_on_random_characters() {
        let mut rng = Rng(42);
        for _ in 0..2000 {
            let ua: String = (0..rng.below(200))
                .filter_map(|_| char::from_u32(rng.below(0x11_0000) as u32))
                .collect();
            assert_bounded(&ua);
        }
    }

    #[test]
    fn can_handle_the_largest_hostile_headers_in_linear_time() {
        const LIMIT: usize = 64 * 1024;
        let repeat = |piece: &str| piece.repeat(LIMIT / piece.len());
        let hostile = [
            repeat("1 "),
            repeat("1 reader_ "),
            format!("{}1 subscribers", repeat(" ")),
            format!("Feedly (1 subscribers; feed-id={})", "1".repeat(LIMIT)),
            format!("Feedly (1 subscribers; {}", repeat("feed-id ")),
            format!("Mozilla/5.0 ({}1 subscribers", repeat(" ")),
            format!("{} (1 subscribers)", repeat("A")),
            format!("{} (1 subscribers)", repeat("江")),
            format!(
                "{} (1 subscribers) newsblur.com/site/",
                repeat("newsblur.com/sit")
            ),
            format!("x {}", "9".repeat(LIMIT)),
            format!("x {} subscribers", "9".repeat(LIMIT)),
        ];
        let started = std::time::Instant::now();
        for ua in &hostile {
            assert_bounded(ua);
        }
        // Quadratic work on these would take minutes; linear work takes milliseconds. The bound
        // is loose so a busy machine does not fail it.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
