//! Naming feeds and assembling them.
//!
//! A [`FeedKey`] names one thing that can be served: which feed ([`FeedId`]), in which
//! [`Format`], and which [`View`] of it (the newest items, or one month's archive). The router,
//! the cache, the headers and the CLI's `render` all go through [`FeedKey`], so they cannot
//! disagree about what a URL means or how long it may be cached. [`select`] and [`finish`] build any
//! feed the same way; a category, a region roll-up and a custom feed differ only in their
//! [`Selection`].

mod assemble;
mod month;
pub mod tags;

use std::fmt;

use chrono::{DateTime, Utc};

use crate::config::Settings;
use crate::model::Catalog;
use crate::model::{Bucket, CategorySlug, FeedSlug, RegionCode};
use crate::store::Selection;

pub use assemble::{
    Archive, Feed, MAX_TOMBSTONES, NoArchive, SelectError, Selected, Tombstone, describe, finish,
    select,
};
pub use month::Month;

/// A feed, independent of format and item count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FeedId {
    /// One category's articles.
    Category(CategorySlug),
    /// One region's articles and those of every region below it.
    Region(RegionCode),
    /// A combination declared in `feeds.toml`.
    Custom(FeedSlug),
}

impl FeedId {
    /// The feed's path below `/feeds/`, without extension: `category/parks`, `region/320281`,
    /// or a custom feed's slug.
    pub fn path(&self) -> String {
        match self {
            FeedId::Category(s) => format!("category/{s}"),
            FeedId::Region(c) => format!("region/{c}"),
            FeedId::Custom(s) => s.to_string(),
        }
    }

    /// The path its atom:id is made of: the feed's oldest name's, since an RFC 4287 id never
    /// changes when the feed moves to a new URL.
    pub fn id_path(&self, catalog: &Catalog) -> String {
        match self {
            FeedId::Category(s) => match catalog
                .category(s.as_str())
                .and_then(|c| c.formerly.first())
            {
                Some(oldest) => FeedId::Category(oldest.clone()).path(),
                None => self.path(),
            },
            FeedId::Region(c) => {
                match catalog.region(c.as_str()).and_then(|r| r.formerly.first()) {
                    Some(oldest) => FeedId::Region(oldest.clone()).path(),
                    None => self.path(),
                }
            }
            FeedId::Custom(s) => match catalog.feed(s.as_str()).and_then(|f| f.formerly.first()) {
                Some(oldest) => FeedId::Custom(oldest.clone()).path(),
                None => self.path(),
            },
        }
    }

    /// Which articles the feed holds, in the store's terms.
    pub fn selection(&self, catalog: &Catalog) -> Selection {
        match self {
            FeedId::Category(s) => Selection {
                any_of: vec![Bucket::Category(s.clone())],
                and_any_of: Vec::new(),
            },
            FeedId::Region(c) => Selection {
                any_of: vec![Bucket::Region(c.clone())],
                and_any_of: Vec::new(),
            },
            FeedId::Custom(slug) => {
                let Some(f) = catalog.feed(slug.as_str()) else {
                    return Selection {
                        any_of: Vec::new(),
                        and_any_of: Vec::new(),
                    };
                };
                let categories: Vec<Bucket> =
                    f.categories.iter().cloned().map(Bucket::Category).collect();
                let regions: Vec<Bucket> = f.regions.iter().cloned().map(Bucket::Region).collect();
                if categories.is_empty() {
                    Selection {
                        any_of: regions,
                        and_any_of: Vec::new(),
                    }
                } else {
                    Selection {
                        any_of: categories,
                        and_any_of: regions,
                    }
                }
            }
        }
    }

    /// The feed's name as people read it: the category's or region's name, the custom feed's
    /// title (the path, should the catalog not know it).
    pub fn name(&self, catalog: &Catalog) -> String {
        match self {
            FeedId::Category(slug) => catalog
                .category(slug.as_str())
                .map_or(slug.as_str(), |c| &c.name)
                .to_owned(),
            FeedId::Region(code) => catalog
                .region(code.as_str())
                .map_or(code.as_str(), |r| &r.name)
                .to_owned(),
            FeedId::Custom(slug) => catalog
                .feed(slug.as_str())
                .map_or(slug.as_str(), |f| &f.title)
                .to_owned(),
        }
    }

    /// The kind of feed, as named in `[caching]`.
    pub fn kind(&self) -> &'static str {
        match self {
            FeedId::Category(_) => "category",
            FeedId::Region(_) => "region",
            FeedId::Custom(_) => "custom",
        }
    }

    /// Every feed the catalog declares: each category, each region, each custom feed.
    pub fn all(catalog: &Catalog) -> Vec<FeedId> {
        let categories = catalog
            .categories()
            .iter()
            .map(|c| FeedId::Category(c.slug.clone()));
        let regions = catalog
            .regions()
            .iter()
            .map(|r| FeedId::Region(r.code.clone()));
        let custom = catalog
            .feeds()
            .iter()
            .map(|f| FeedId::Custom(f.slug.clone()));
        categories.chain(regions).chain(custom).collect()
    }

    /// The feeds whose content may change when articles filed under `buckets` change.
    /// A custom feed counts when any of its buckets does, which may over-approximate.
    pub fn touched_by(catalog: &Catalog, buckets: &[Bucket]) -> Vec<FeedId> {
        let mut out: Vec<FeedId> = buckets
            .iter()
            .map(|b| match b {
                Bucket::Category(c) => FeedId::Category(c.clone()),
                Bucket::Region(r) => FeedId::Region(r.clone()),
            })
            .collect();
        for f in catalog.feeds() {
            let custom = FeedId::Custom(f.slug.clone());
            let selection = custom.selection(catalog);
            let hits = selection
                .any_of
                .iter()
                .chain(&selection.and_any_of)
                .any(|b| buckets.contains(b));
            if hits {
                out.push(custom);
            }
        }
        out
    }
}

impl fmt::Display for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// A representation of a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// RSS 2.0.
    Rss,
    /// Atom 1.0.
    Atom,
    /// JSON Feed 1.1.
    Json,
    /// A page for people: served at `.html`, and instead of a feed format to a browser that
    /// prefers HTML.
    Html,
    /// The WeChat-ready profile for bridges that make official-account drafts: each item fitted
    /// to WeChat's limits. Served at `.wechat.json`, for the newest items only; not a feed
    /// anyone subscribes to, so not a WebSub topic, not listed and never negotiated.
    Wechat,
}

impl Format {
    /// The feed formats, in the order they are offered to subscribers: what pages, OPML and
    /// autodiscovery list, what the hubs know as topics and what content negotiation may swap
    /// for the page. The WeChat profile is none of them.
    pub const FEEDS: [Format; 3] = [Format::Rss, Format::Atom, Format::Json];

    /// Every format served.
    pub const ALL: [Format; 5] = [
        Format::Rss,
        Format::Atom,
        Format::Json,
        Format::Html,
        Format::Wechat,
    ];

    /// Whether this is one of the [`FEEDS`](Format::FEEDS).
    pub fn is_feed(self) -> bool {
        Format::FEEDS.contains(&self)
    }

    /// The URL extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Rss => "rss",
            Format::Atom => "atom",
            Format::Json => "json",
            Format::Html => "html",
            Format::Wechat => "wechat.json",
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Rss => "application/rss+xml; charset=utf-8",
            Format::Atom => "application/atom+xml; charset=utf-8",
            Format::Json => "application/feed+json; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
            Format::Wechat => "application/json; charset=utf-8",
        }
    }

    /// The media type alone, for `<link rel="alternate" type=…>`.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Rss => "application/rss+xml",
            Format::Atom => "application/atom+xml",
            Format::Json => "application/feed+json",
            Format::Html => "text/html",
            Format::Wechat => "application/json",
        }
    }

    /// A short name for people.
    pub fn label(self) -> &'static str {
        match self {
            Format::Rss => "RSS",
            Format::Atom => "Atom",
            Format::Json => "JSON Feed",
            Format::Html => "HTML",
            Format::Wechat => "WeChat",
        }
    }

    /// The format a path names by its extension, and the path without it. The longest
    /// extension wins: `x.wechat.json` is the WeChat profile of `x` (no name may end in
    /// `.wechat`, so it is never the JSON Feed of `x.wechat`).
    fn split_extension(path: &str) -> Option<(&str, Format)> {
        let mut by_length = Format::ALL;
        by_length.sort_by_key(|f| std::cmp::Reverse(f.extension().len()));
        by_length.into_iter().find_map(|f| {
            let stem = path.strip_suffix(f.extension())?.strip_suffix('.')?;
            Some((stem, f))
        })
    }
}

/// Which part of a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    /// The newest items: what subscribers poll.
    Latest {
        /// How many, within the configured limits.
        limit: u32,
    },
    /// Every item published in one month (in the site's time zone): an RFC 5005 archive.
    Archive(Month),
}

/// One servable thing: a view of a feed in a format. Also the cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeedKey {
    /// Which feed.
    pub feed: FeedId,
    /// Which format.
    pub format: Format,
    /// Which items.
    pub view: View,
}

/// Why a request does not name a feed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No such feed or format.
    #[error("{0}")]
    NotFound(String),
    /// The feed exists but a parameter is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// The feed has another name now (`formerly`): this is the absolute URL of the same
    /// document under it, the request's query kept.
    #[error("moved to {0}")]
    Moved(String),
    /// The feed was removed for good (`[[gone]]`).
    #[error("{0}")]
    Gone(String),
}

/// A feed as a path names it, before the catalog is asked.
#[derive(Clone, Copy)]
enum Named<'a> {
    Category(&'a str),
    Region(&'a str),
    Custom(&'a str),
}

impl FeedKey {
    /// Resolves a path below `/feeds/` (e.g. `category/parks.atom` or
    /// `region/320000/archive/2021-01.rss`) and a query string against the catalog. The only
    /// parameter read is `limit`, on the newest-items view; others are ignored, since
    /// aggregators add cache-busting parameters of their own.
    pub fn parse(path: &str, query: Option<&str>, settings: &Settings) -> Result<Self, KeyError> {
        let not_found = |why: String| KeyError::NotFound(why);
        let Some((stem, format)) = Format::split_extension(path) else {
            return Err(not_found(match path.rsplit_once('.') {
                Some((_, ext)) if !ext.contains('/') => format!(
                    "unknown feed format `.{ext}`: use .rss, .atom, .json, .html or .wechat.json"
                ),
                _ => format!("no feed at `{path}`: add .rss, .atom or .json"),
            }));
        };
        // The last segment, and whether `archive` is the one before it (a character search:
        // cheaper than a substring search on every hit).
        let archive = stem
            .rsplit_once('/')
            .and_then(|(head, month)| Some((head.strip_suffix("/archive")?, month)));
        let (stem, month) = match archive {
            Some((feed, month)) => {
                let month = Month::parse(month).ok_or_else(|| {
                    not_found(format!("no archive `{month}`: archives are named YYYY-MM"))
                })?;
                (feed, Some(month))
            }
            None => (stem, None),
        };
        if format == Format::Wechat && month.is_some() {
            // A bridge takes what is new; a month's archive is for readers catching up.
            return Err(not_found(
                "the WeChat profile has the newest items only: drop /archive/…".to_owned(),
            ));
        }
        let catalog = &settings.catalog;
        // Each kind: the feed by its name, else by a name it had (then a move), else nothing;
        // the later lookups and the message only on a miss, which a hit never pays for.
        let kind = match stem.split_once('/') {
            Some(("category", slug)) => Named::Category(slug),
            Some(("region", code)) => Named::Region(code),
            Some(_) => return Err(not_found(format!("no feed at `{path}`"))),
            None => Named::Custom(stem),
        };
        let found = match kind {
            Named::Category(slug) => catalog
                .category(slug)
                .map(|c| FeedId::Category(c.slug.clone())),
            Named::Region(code) => catalog.region(code).map(|r| FeedId::Region(r.code.clone())),
            Named::Custom(slug) => catalog.feed(slug).map(|f| FeedId::Custom(f.slug.clone())),
        };
        let renamed = || match kind {
            Named::Category(slug) => catalog
                .renamed_category(slug)
                .map(|c| FeedId::Category(c.slug.clone())),
            Named::Region(code) => catalog
                .renamed_region(code)
                .map(|r| FeedId::Region(r.code.clone())),
            Named::Custom(slug) => catalog
                .renamed_feed(slug)
                .map(|f| FeedId::Custom(f.slug.clone())),
        };
        let feed = match found.ok_or_else(renamed) {
            Ok(feed) => feed,
            Err(Some(feed)) => {
                // Only its path is used: the limit travels in the query, as the client gave it.
                let moved = FeedKey {
                    feed,
                    format,
                    view: month.map_or(View::Latest { limit: 0 }, View::Archive),
                };
                return Err(KeyError::Moved(moved.moved_url(query, settings)));
            }
            Err(None) if catalog.is_gone(stem) => {
                return Err(KeyError::Gone(format!(
                    "the feed `{stem}` was removed for good; unsubscribe"
                )));
            }
            Err(None) => {
                return Err(not_found(match kind {
                    Named::Category(slug) => format!("no category `{slug}`"),
                    Named::Region(code) => format!("no region `{code}`"),
                    Named::Custom(slug) => format!("no feed `{slug}`"),
                }));
            }
        };
        let view = match month {
            Some(month) => View::Archive(month),
            None => View::Latest {
                limit: parse_limit(query, settings)?,
            },
        };
        Ok(FeedKey { feed, format, view })
    }

    /// The newest-items view of a feed with the default item count: what subscribers poll.
    pub fn latest(feed: FeedId, format: Format, settings: &Settings) -> Self {
        FeedKey {
            feed,
            format,
            view: View::Latest {
                limit: settings.limits.default_items,
            },
        }
    }

    /// The same view and feed in another format.
    pub fn with_format(&self, format: Format) -> Self {
        FeedKey {
            format,
            ..self.clone()
        }
    }

    /// The URL path that serves this key (without `?limit=`).
    pub fn url_path(&self) -> String {
        match self.view {
            View::Latest { .. } => {
                format!("/feeds/{}.{}", self.feed.path(), self.format.extension())
            }
            View::Archive(m) => format!(
                "/feeds/{}/archive/{m}.{}",
                self.feed.path(),
                self.format.extension()
            ),
        }
    }

    /// The absolute URL of this key; `?limit=` is kept when it is not the default, so a self
    /// link names exactly the document it is in.
    pub fn url(&self, settings: &Settings) -> String {
        let path = self.url_path();
        let mut url = settings
            .site
            .base_url
            .join(path.trim_start_matches('/'))
            .map_or_else(|_| path.clone(), String::from);
        if let View::Latest { limit } = self.view {
            if limit != settings.limits.default_items {
                url.push_str(&format!("?limit={limit}"));
            }
        }
        url
    }

    /// The absolute URL of this key with the query of a request for its old name, as given: a
    /// redirect changes the name, nothing else the client asked for.
    fn moved_url(&self, query: Option<&str>, settings: &Settings) -> String {
        let path = self.url_path();
        let mut url = settings
            .site
            .base_url
            .join(path.trim_start_matches('/'))
            .map_or_else(|_| path.clone(), String::from);
        if let Some(query) = query.filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// Whether this is the archive of a month that has ended at `now` (in the site's time
    /// zone): RFC 5005's `fh:archive`, a document that no longer changes unless an item in it
    /// is edited or taken down. The month in progress is not one.
    pub fn is_closed_archive(&self, settings: &Settings, now: DateTime<Utc>) -> bool {
        matches!(self.view, View::Archive(month) if month.end(settings.site.time_zone) <= now)
    }

    /// The canonical URL of this feed and format: the WebSub topic subscribers use.
    pub fn topic(&self, settings: &Settings) -> String {
        FeedKey::latest(self.feed.clone(), self.format, settings).url(settings)
    }

    /// How long, in seconds, others may cache this document at `now`: per feed kind for the
    /// newest items and for the month in progress; long for a month that has ended, whose
    /// archive changes only if one of its articles is edited or taken down.
    pub fn max_age(&self, settings: &Settings, now: DateTime<Utc>) -> u32 {
        self.of_kind(settings, now, settings.caching.max_age)
    }

    /// How long past `max-age` others may serve this document at `now` (RFC 5861): while
    /// they revalidate, and while feedcast cannot answer.
    pub fn stale_for(&self, settings: &Settings, now: DateTime<Utc>) -> (u32, u32) {
        let caching = &settings.caching;
        (
            self.of_kind(settings, now, caching.stale_while_revalidate),
            self.of_kind(settings, now, caching.stale_if_error),
        )
    }

    /// This document's value among `values`: an ended month's archive's, or its feed kind's.
    fn of_kind(
        &self,
        settings: &Settings,
        now: DateTime<Utc>,
        values: crate::config::PerKind,
    ) -> u32 {
        if self.is_closed_archive(settings, now) {
            return values.archive;
        }
        match self.feed {
            FeedId::Category(_) => values.category,
            FeedId::Region(_) => values.region,
            FeedId::Custom(_) => values.custom,
        }
    }
}

fn parse_limit(query: Option<&str>, settings: &Settings) -> Result<u32, KeyError> {
    let max = settings.limits.max_items;
    let bad = |v: &str| {
        KeyError::BadRequest(format!(
            "limit must be a whole number from 1 to {max}, not `{v}`"
        ))
    };
    let mut limit = None;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if name != "limit" {
            continue;
        }
        if limit.is_some() {
            return Err(KeyError::BadRequest("limit is given more than once".into()));
        }
        let n: u32 = value.parse().map_err(|_| bad(&value))?;
        if !(1..=max).contains(&n) {
            return Err(bad(&value));
        }
        limit = Some(n);
    }
    Ok(limit.unwrap_or(settings.limits.default_items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::test_fixture()
    }

    #[test]
    fn can_parse_every_kind_of_feed_path() {
        let s = settings();
        let key = FeedKey::parse("category/parks.atom", None, &s).unwrap();
        assert_eq!(key.format, Format::Atom);
        assert_eq!(
            key.view,
            View::Latest {
                limit: s.limits.default_items
            }
        );
        assert_eq!(key.url_path(), "/feeds/category/parks.atom");
        let key = FeedKey::parse("region/320281.rss", Some("limit=5&utm=x"), &s).unwrap();
        assert_eq!(
            key.feed,
            FeedId::Region(RegionCode::parse("320281").unwrap())
        );
        assert_eq!(key.view, View::Latest { limit: 5 });
        let custom = &s.catalog.feeds()[0];
        let key = FeedKey::parse(&format!("{}.rss", custom.slug), None, &s).unwrap();
        assert_eq!(key.feed, FeedId::Custom(custom.slug.clone()));
    }

    #[test]
    fn can_parse_archive_paths() {
        let s = settings();
        let key =
            FeedKey::parse("category/parks/archive/2021-01.atom", Some("limit=500"), &s).unwrap();
        assert_eq!(key.view, View::Archive(Month::parse("2021-01").unwrap()));
        assert_eq!(key.url_path(), "/feeds/category/parks/archive/2021-01.atom");
        let key = FeedKey::parse("jiangsu-hydrogen/archive/2024-11.json", None, &s).unwrap();
        assert_eq!(key.format, Format::Json);
        for bad in [
            "category/parks/archive/2021-13.rss",
            "category/parks/archive/21-01.rss",
            "category/parks/archive/.rss",
        ] {
            assert!(
                matches!(FeedKey::parse(bad, None, &s), Err(KeyError::NotFound(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_wechat_profile_has_a_double_extension_and_no_archives() {
        let s = settings();
        let key = FeedKey::parse("category/parks.wechat.json", Some("limit=5"), &s).unwrap();
        assert_eq!(key.format, Format::Wechat);
        assert_eq!(
            key.feed,
            FeedId::Category(CategorySlug::parse("parks").unwrap())
        );
        assert_eq!(key.view, View::Latest { limit: 5 });
        assert_eq!(key.url_path(), "/feeds/category/parks.wechat.json");
        let custom = &s.catalog.feeds()[0];
        let key = FeedKey::parse(&format!("{}.wechat.json", custom.slug), None, &s).unwrap();
        assert_eq!(key.feed, FeedId::Custom(custom.slug.clone()));
        // The plain JSON Feed is still JSON Feed.
        let key = FeedKey::parse("category/parks.json", None, &s).unwrap();
        assert_eq!(key.format, Format::Json);
        assert!(matches!(
            FeedKey::parse("category/parks/archive/2024-05.wechat.json", None, &s),
            Err(KeyError::NotFound(_))
        ));
        assert!(!Format::Wechat.is_feed() && !Format::FEEDS.contains(&Format::Wechat));
    }

    #[test]
    fn a_closed_month_is_cached_long_and_the_current_one_like_its_feed() {
        let s = settings();
        let now = chrono::DateTime::parse_from_rfc3339("2024-05-18T12:00:00+08:00")
            .unwrap()
            .to_utc();
        let closed = FeedKey::parse("region/320000/archive/2024-04.rss", None, &s).unwrap();
        let open = FeedKey::parse("region/320000/archive/2024-05.rss", None, &s).unwrap();
        let latest = FeedKey::parse("region/320000.rss", None, &s).unwrap();
        assert_eq!(closed.max_age(&s, now), s.caching.max_age.archive);
        assert_eq!(open.max_age(&s, now), s.caching.max_age.region);
        assert_eq!(latest.max_age(&s, now), s.caching.max_age.region);
    }

    #[test]
    fn errors_on_unknown_feeds_and_formats() {
        let s = settings();
        for path in [
            "category/nope.rss",
            "region/000.atom",
            "nope.rss",
            "category/parks.xml",
            "category/parks",
            "x/y.rss",
        ] {
            assert!(
                matches!(FeedKey::parse(path, None, &s), Err(KeyError::NotFound(_))),
                "{path}"
            );
        }
    }

    #[test]
    fn errors_on_a_limit_out_of_range() {
        let s = settings();
        let max = s.limits.max_items;
        for q in [
            "limit=0",
            "limit=-1",
            "limit=abc",
            "limit=",
            &format!("limit={}", max + 1),
            "limit=1&limit=2",
        ] {
            assert!(
                matches!(
                    FeedKey::parse("category/parks.rss", Some(q), &s),
                    Err(KeyError::BadRequest(_))
                ),
                "{q}"
            );
        }
        let key = FeedKey::parse("category/parks.rss", Some(&format!("limit={max}")), &s).unwrap();
        assert_eq!(key.view, View::Latest { limit: max });
    }

    #[test]
    fn a_write_touches_the_feeds_of_its_buckets_and_custom_feeds_using_them() {
        let s = settings();
        let custom = &s.catalog.feeds()[0];
        let category = custom.categories[0].clone();
        let touched = FeedId::touched_by(&s.catalog, &[Bucket::Category(category.clone())]);
        assert!(touched.contains(&FeedId::Category(category)));
        assert!(touched.contains(&FeedId::Custom(custom.slug.clone())));
        // A region no custom feed names touches its own feed only.
        let lone = s
            .catalog
            .regions()
            .iter()
            .find(|r| {
                s.catalog
                    .feeds()
                    .iter()
                    .all(|f| !f.regions.contains(&r.code))
            })
            .unwrap();
        let touched = FeedId::touched_by(&s.catalog, &[Bucket::Region(lone.code.clone())]);
        assert_eq!(touched, [FeedId::Region(lone.code.clone())]);
    }
}
