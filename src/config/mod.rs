//! `feeds.toml`: parsed into raw serde structs, then validated once into [`Settings`].
//!
//! Everything inner code relies on is checked here: names are URL-safe, every parent region and
//! every category or region a custom feed names exists, the region tree has no cycle, the time
//! zone is known, URLs are absolute. A problem is reported with the file, line and column of the
//! offending value, and the service does not start.

mod raw;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use toml::Spanned;
use url::Url;

use crate::model::{
    Catalog, Category, CategorySlug, CustomFeed, FeedSlug, InvalidName, Region, RegionCode,
};

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending value.
        line: usize,
        /// 1-based column (in characters) of the offending value.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The portal and how its feeds present themselves.
    pub site: Site,
    /// Categories, regions and custom feeds.
    pub catalog: Catalog,
    /// Item counts.
    pub limits: Limits,
    /// The rendered-feed cache.
    pub cache: CacheSettings,
    /// How long others may cache what feedcast serves.
    pub caching: Caching,
    /// WebSub hubs to notify of changes.
    pub websub: WebSub,
    /// Bounds on the requests feedcast sends to others.
    pub outbound: Outbound,
    /// The headers that name each feed response's cache tags.
    pub cache_tags: CacheTags,
    /// The CDNs and caches told to purge what changed.
    pub purgers: Vec<Purger>,
    /// Largest admin API request body, in bytes (default 16 MiB).
    pub admin_max_body_bytes: usize,
    /// Failed admin authentications one client address may make in a minute before it gets 429
    /// for the rest of the minute (default 10).
    pub admin_max_failed_auth_per_minute: u32,
    /// Proxies (load balancer, CDN) whose `X-Forwarded-For` names the client (default none).
    pub trusted_proxies: TrustedProxies,
    /// Bound on one store operation; past it the store counts as unavailable (default 2 s).
    pub store_query_timeout: std::time::Duration,
    /// Hosts whose https pages article content may embed in an iframe (default none).
    pub iframe_hosts: Vec<String>,
    /// Bounds on what a client may cost the server.
    pub http: HttpLimits,
    /// How long takedowns are announced.
    pub tombstones: Tombstones,
    /// feedcast's own WebSub hub (`[hub]`).
    pub hub: Hub,
    /// Subscriber statistics (`[stats]`).
    pub stats: Stats,
}

/// Subscriber statistics (`[stats]`): who polls each feed, tallied in memory and written to the
/// store in batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Whether polls are counted at all (default true).
    pub enabled: bool,
    /// For how many days the per-day figures are kept (default 400: a year and its
    /// comparison month).
    pub retention_days: u32,
    /// How often each replica writes what it tallied (default 5 s): a crash or a restart loses
    /// at most this much.
    pub flush_interval: Duration,
}

/// Longest `stats.retention_days` accepted: ten years.
pub const MAX_STATS_RETENTION_DAYS: u32 = 3650;

/// Bounds of `stats.flush_interval_ms`: below a tenth of a second the store would be written
/// more often than it is read; above a minute a restart loses too much.
pub const STATS_FLUSH_MS: std::ops::RangeInclusive<i64> = 100..=60_000;

/// feedcast's own WebSub hub (`[hub]`): subscriptions kept in the store, so every replica is
/// the same hub, and content pushed to subscribers on every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hub {
    /// Whether the hub takes subscriptions and is advertised (default true).
    pub enabled: bool,
    /// Its public URL, advertised first in every feed (default `<site.base_url>websub`).
    pub url: Url,
    /// Lease of a subscription that asks for none (default 864,000 s: ten days).
    pub default_lease: Duration,
    /// Shortest lease granted (default 3,600 s); a shorter request gets this.
    pub min_lease: Duration,
    /// Longest lease granted (default 2,592,000 s: thirty days).
    pub max_lease: Duration,
    /// Subscriptions (active or awaiting verification) one callback host may hold (default
    /// 1,000).
    pub max_subscriptions_per_host: u64,
    /// Subscription requests awaiting verification at once, in all (default 10,000): past it,
    /// 503, so that requests for ever new hosts cannot fill the store.
    pub max_pending: u64,
    /// Of those, from one callback host (default 100): one host cannot fill the verification
    /// queue for every other.
    pub max_pending_per_host: u64,
    /// Whether callbacks on loopback, private and other non-public addresses are allowed
    /// (default false: for tests and private networks only).
    pub allow_private_callbacks: bool,
    /// Deliveries in flight at once per replica (default 64), and to one callback host (4).
    pub max_in_flight: usize,
    /// See `max_in_flight`.
    pub max_per_host: usize,
    /// How a failed delivery is retried: 10 s, doubling to 1 h, 32 attempts (about a day).
    pub retry: Retry,
}

/// Takedowns announced to readers (RFC 6721 tombstones, `[tombstones]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstones {
    /// For how many days after a takedown the feeds that held the article, and its month's
    /// archive, carry its tombstone (default 30; 0: none is shown). A takedown forgets older ones.
    pub days: u32,
}

/// Longest `tombstones.days` accepted: ten years. More is surely a mistake (milliseconds or
/// seconds meant as days), and would keep tombstones past any reader's memory of the article.
pub const MAX_TOMBSTONE_DAYS: u32 = 3650;

impl Tombstones {
    /// How long after a takedown its tombstone is shown.
    pub fn shown_for(&self) -> Duration {
        Duration::from_secs(u64::from(self.days) * 86_400)
    }
}

/// Bounds on what a client may cost the server, each with a default and a key in `[http]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A connection must send a request's headers within this (default 10 s), so a slow
    /// client cannot hold a connection forever.
    pub header_read_timeout: Duration,
    /// A request is answered within this or gets 503 (default 15 s).
    pub request_timeout: Duration,
    /// On SIGTERM or SIGINT, in-flight requests get this long to finish (default 10 s).
    pub shutdown_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog (default 10,000).
    pub max_connections: usize,
    /// Longest accepted query string, in bytes; longer gets 414 (default 1,024).
    pub max_query_bytes: usize,
    /// A connection whose socket accepts no byte of a pending response for this long is closed
    /// (default 30 s), so a client that sends requests and never reads the answers cannot hold
    /// its connection forever.
    pub write_timeout: Duration,
    /// Connections one client address may hold at once; more are closed at once (default 256).
    /// Trusted proxies are exempt: every client behind them shares their address.
    pub max_connections_per_address: usize,
}

/// The proxies in front of feedcast (`http.trusted_proxies`): connections from them carry the
/// client's address in `X-Forwarded-For`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Whether `ip` is one of the proxies.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        // An IPv4 peer may show as an IPv4-mapped IPv6 address on a dual-stack socket.
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether any proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The admin API's bearer token (from `FEEDCAST_ADMIN_TOKEN`, never from a file that might be
/// committed). Never printed.
#[derive(Clone)]
pub struct AdminToken(String);

/// Shortest admin token accepted, in bytes: 32 random bytes (or 32 hex digits, 128 bits) are
/// beyond guessing even at the rate limit's ten tries a minute; a short word is not.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 32;

/// An admin token that is too short to be safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "FEEDCAST_ADMIN_TOKEN is {length} bytes long; it must be at least {MIN_ADMIN_TOKEN_BYTES} (e.g. `openssl rand -hex 32`)"
)]
pub struct TokenTooShort {
    /// The given token's length.
    pub length: usize,
}

impl AdminToken {
    /// A token from `value`: `None` if it is empty (the admin API stays off), an error if it is
    /// shorter than [`MIN_ADMIN_TOKEN_BYTES`].
    pub fn new(value: &str) -> Result<Option<Self>, TokenTooShort> {
        let value = value.trim();
        match value.len() {
            0 => Ok(None),
            length if length < MIN_ADMIN_TOKEN_BYTES => Err(TokenTooShort { length }),
            _ => Ok(Some(AdminToken(value.to_owned()))),
        }
    }

    /// Whether `presented` is this token, compared in constant time so the comparison does
    /// not reveal how much of a guess was right.
    pub fn verify(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// How long others may cache each kind of document, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caching {
    /// `Cache-Control: max-age` (default 300 for feeds, 86400 for archives of months that have
    /// ended; the month in progress is cached like its feed). RSS `ttl` and
    /// `sy:updateFrequency` are derived from the same numbers so they never disagree.
    pub max_age: PerKind,
    /// `stale-while-revalidate` (RFC 5861) per kind (default 60 each; 0 leaves it out): how long
    /// past `max-age` a cache may answer while it fetches a fresh copy.
    pub stale_while_revalidate: PerKind,
    /// `stale-if-error` (RFC 5861) per kind (default 86400 each; 0 leaves it out): how long past
    /// `max-age` a cache may answer while feedcast cannot.
    pub stale_if_error: PerKind,
}

/// Seconds for each kind of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerKind {
    /// Category feeds.
    pub category: u32,
    /// Region feeds.
    pub region: u32,
    /// Custom feeds.
    pub custom: u32,
    /// Archives of months that have ended.
    pub archive: u32,
}

impl PerKind {
    fn or(raw: raw::PerKind, default: u32) -> Self {
        PerKind {
            category: raw.category.unwrap_or(default),
            region: raw.region.unwrap_or(default),
            custom: raw.custom.unwrap_or(default),
            archive: raw.archive.unwrap_or(default),
        }
    }
}

/// WebSub (W3C) publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSub {
    /// Hubs every feed advertises and that are notified when a feed changes.
    pub hubs: Vec<Url>,
    /// How failed notifications are retried (default: 5 attempts, 1 s then doubling).
    pub retry: Retry,
}

/// Bounds on the requests feedcast sends to others (`[outbound]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outbound {
    /// Requests in flight at once, in all (default 16).
    pub max_in_flight: usize,
    /// Requests in flight at once to one host (default 4).
    pub max_per_host: usize,
    /// How long a replica's claim on a queued request holds (default 60 s): if it dies
    /// mid-request, another sends the request once this has passed.
    pub lease: Duration,
}

/// `[cache_tags]`: which headers name a feed response's cache tags, for CDNs that purge by tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheTags {
    /// Each header and its separator (default `Surrogate-Key` with spaces, `Cache-Tag` with
    /// commas); none turns tags off.
    pub headers: Vec<TagHeader>,
    /// The longest value of one header, in bytes (default 8,000: Varnish's default
    /// `http_resp_hdr_len` is 8 KiB). Article tags that do not fit are left out.
    pub max_bytes: usize,
}

/// One header naming cache tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagHeader {
    /// The header's name.
    pub name: axum::http::HeaderName,
    /// Between two tags: a space or a comma.
    pub separator: char,
}

/// One CDN or cache told to purge by tag (`[[purgers]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purger {
    /// Its name, unique: what its queued purges are kept under.
    pub name: String,
    /// Where purges are sent.
    pub url: Url,
    /// Tags one request carries at most.
    pub max_tags_per_request: usize,
    /// Headers sent with each request; `{tags}` and `{tags_json}` in a value are replaced.
    pub headers: Vec<(axum::http::HeaderName, String)>,
    /// How it is asked.
    pub request: PurgeRequest,
}

/// How a purger is asked to purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeRequest {
    /// Varnish with the shipped VCL: `PURGE` with the tags, separated by spaces, in one header
    /// (default `xkey-purge`), which the VCL hands to `xkey.purge()`.
    Varnish {
        /// The header holding the tags.
        tags_header: axum::http::HeaderName,
    },
    /// Any purge-by-tag API: this method, and a body in which `{tags}` (separated by spaces),
    /// `{tags_comma}` and `{tags_json}` (a JSON array of strings) are replaced.
    Http {
        /// The request's method (default POST).
        method: axum::http::Method,
        /// The body template, if any.
        body: Option<String>,
    },
}

/// How failed outgoing requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts per target and topic, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each further one …
    pub first_delay: Duration,
    /// … up to this.
    pub max_delay: Duration,
}

/// The portal, as its feeds present it.
#[derive(Debug, Clone)]
pub struct Site {
    /// The portal's name, used in every feed's title.
    pub title: String,
    /// A sentence describing the portal.
    pub description: String,
    /// The portal's home page.
    pub link: Url,
    /// Where feedcast itself is reached, ending in `/`; self links are built from it.
    pub base_url: Url,
    /// Default language of articles and feeds, e.g. `zh-CN`.
    pub language: String,
    /// Time zone in which dates are shown and bare dates are read.
    pub time_zone: Tz,
    /// Copyright statement of the feeds.
    pub copyright: Option<String>,
    /// Sentence added after a reprint's source line, e.g. that copyright stays with the source.
    pub reprint_notice: Option<String>,
    /// Label before a reprint's source name (default `来源`).
    pub source_label: String,
    /// Label before a reprint's original author (default `原作者`).
    pub author_label: String,
    /// Label before a reprint's original title (default `原题`).
    pub original_title_label: String,
    /// Label before the editor who filed the article (default `编辑`).
    pub editor_label: String,
    /// Prefix of every item and feed id; never change it once feeds are published.
    pub id_prefix: String,
    /// The site icon, served at `/favicon.ico` and at [`Icon::path`], and named by every feed
    /// and page.
    pub icon: Icon,
}

/// Largest icon file accepted: an icon is a few kilobytes, and it is held in memory.
const MAX_ICON_BYTES: usize = 1 << 20;

/// The site icon: the image file `[site] icon` names, or the small one shipped with feedcast.
/// Only image formats every browser and reader shows as an icon are accepted, told by their
/// first bytes rather than by the file's name; SVG is not among them, since an SVG served from
/// the site's own origin is a document that can run script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icon {
    bytes: bytes::Bytes,
    media_type: &'static str,
}

impl Icon {
    /// The icon shipped with feedcast (64×64 PNG).
    fn shipped() -> Icon {
        Icon {
            bytes: bytes::Bytes::from_static(include_bytes!("../../assets/icon.png")),
            media_type: "image/png",
        }
    }

    /// An icon of these bytes, if they are an image of a format icons come in.
    fn from_bytes(bytes: Vec<u8>) -> Option<Icon> {
        let media_type = match bytes.as_slice() {
            [0x89, b'P', b'N', b'G', ..] => "image/png",
            [b'G', b'I', b'F', b'8', ..] => "image/gif",
            [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
            [0, 0, 1, 0, ..] => "image/x-icon",
            [
                b'R',
                b'I',
                b'F',
                b'F',
                _,
                _,
                _,
                _,
                b'W',
                b'E',
                b'B',
                b'P',
                ..,
            ] => "image/webp",
            _ => return None,
        };
        Some(Icon {
            bytes: bytes.into(),
            media_type,
        })
    }

    /// The image itself.
    pub fn bytes(&self) -> &bytes::Bytes {
        &self.bytes
    }

    /// Its media type.
    pub fn media_type(&self) -> &'static str {
        self.media_type
    }

    /// Whether RSS's `<image>` may name it: RSS allows GIF, JPEG and PNG only.
    pub fn fits_rss(&self) -> bool {
        matches!(self.media_type, "image/png" | "image/gif" | "image/jpeg")
    }

    /// The file extension of its media type.
    pub fn extension(&self) -> &'static str {
        match self.media_type {
            "image/png" => "png",
            "image/gif" => "gif",
            "image/jpeg" => "jpg",
            "image/webp" => "webp",
            _ => "ico",
        }
    }

    /// The path it is also served at, with the extension of its type (`/icon.png`): RSS
    /// readers and validators judge a channel image by its URL's extension, and warn about
    /// `/favicon.ico` (where browsers look, whatever the icon's type).
    pub fn path(&self) -> String {
        format!("/icon.{}", self.extension())
    }
}

/// `[site] icon`: a path relative to the configuration file's directory.
fn icon(raw: Option<&Spanned<String>>, dir: &Path, at: At<'_>) -> Result<Icon, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Icon::shipped());
    };
    let path = dir.join(raw.get_ref());
    let fail = |why: String| at(raw.span(), format!("site.icon `{}`: {why}", path.display()));
    let file = std::fs::File::open(&path).map_err(|e| fail(format!("cannot open it: {e}")))?;
    let mut bytes = Vec::new();
    // One byte more than allowed tells a file that is too large without reading all of it.
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_ICON_BYTES as u64 + 1),
        &mut bytes,
    )
    .map_err(|e| fail(format!("cannot read it: {e}")))?;
    if bytes.len() > MAX_ICON_BYTES {
        return Err(fail(format!(
            "larger than {MAX_ICON_BYTES} bytes: an icon is a small image"
        )));
    }
    Icon::from_bytes(bytes).ok_or_else(|| {
        fail("not a PNG, GIF, JPEG, WebP or ICO image (SVG is not accepted)".to_owned())
    })
}

/// How many items a feed holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Items in a feed requested without `?limit=` (default 20).
    pub default_items: u32,
    /// Largest accepted `?limit=` (default 100).
    pub max_items: u32,
}

/// The rendered-feed cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Upper bound of the cached bytes (default 64 MiB).
    pub max_bytes: u64,
}

impl Settings {
    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The tests' configuration (`tests/fixtures/feeds.toml`), for the unit tests.
    #[cfg(test)]
    #[allow(clippy::expect_used)]
    pub(crate) fn test_fixture() -> Self {
        Self::parse(
            include_str!("../../tests/fixtures/feeds.toml"),
            Path::new("tests/fixtures/feeds.toml"),
        )
        .expect("tests/fixtures/feeds.toml is valid")
    }

    /// Validates configuration text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_column(text, span.start);
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let raw: raw::Config = toml::from_str(text)
            .map_err(|e| at(e.span().unwrap_or(0..0), e.message().trim_end().to_owned()))?;
        validate(raw, path.parent().unwrap_or(Path::new(".")), &at)
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

type At<'a> = &'a dyn Fn(std::ops::Range<usize>, String) -> ConfigError;

/// A name no feed may end in: `<name>.wechat.json` is a feed's WeChat profile, so a feed named
/// `x.wechat` would make `x.wechat.json` mean two documents.
const RESERVED_SUFFIX: &str = ".wechat";

fn name<T>(
    parse: fn(&str) -> Result<T, InvalidName>,
    value: &Spanned<String>,
    at: At<'_>,
) -> Result<T, ConfigError> {
    if value.get_ref().ends_with(RESERVED_SUFFIX) {
        return Err(at(
            value.span(),
            format!(
                "`{}` ends in `{RESERVED_SUFFIX}`, which names a feed's WeChat profile \
                 (`<name>{RESERVED_SUFFIX}.json`): choose another name",
                value.get_ref()
            ),
        ));
    }
    parse(value.get_ref()).map_err(|e| at(value.span(), e.to_string()))
}

fn url(value: &Spanned<String>, field: &str, at: At<'_>) -> Result<Url, ConfigError> {
    match Url::parse(value.get_ref()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(u),
        _ => Err(at(
            value.span(),
            format!(
                "{field} must be an absolute http(s) URL, not `{}`",
                value.get_ref()
            ),
        )),
    }
}

fn non_empty(value: &Spanned<String>, field: &str, at: At<'_>) -> Result<String, ConfigError> {
    let v = value.get_ref().trim();
    if v.is_empty() {
        Err(at(value.span(), format!("{field} must not be empty")))
    } else {
        Ok(v.to_owned())
    }
}

/// `dir` is the configuration file's directory: files it names are found from there.
fn validate(raw: raw::Config, dir: &Path, at: At<'_>) -> Result<Settings, ConfigError> {
    let site = site(raw.site, dir, at)?;
    let hub = hub(raw.hub, &site.base_url, at)?;
    let cache_tags = cache_tags(&raw.cache_tags, at)?;
    let purgers = purgers(&raw.purgers, at)?;
    check_varnish_tags(&raw.purgers, &cache_tags, &raw.cache_tags, at)?;
    Ok(Settings {
        site,
        hub,
        catalog: catalog(raw.categories, raw.regions, raw.feeds, raw.gone, at)?,
        limits: limits(raw.limits, at)?,
        cache: CacheSettings {
            max_bytes: raw.cache.max_bytes,
        },
        caching: Caching {
            max_age: PerKind {
                category: raw.caching.category,
                region: raw.caching.region,
                custom: raw.caching.custom,
                archive: raw.caching.archive,
            },
            stale_while_revalidate: PerKind::or(raw.caching.stale_while_revalidate, 60),
            stale_if_error: PerKind::or(raw.caching.stale_if_error, 86_400),
        },
        websub: websub(raw.websub, at)?,
        outbound: Outbound {
            max_in_flight: raw.outbound.max_in_flight.max(1),
            max_per_host: raw.outbound.max_per_host.max(1),
            lease: positive_ms(&raw.outbound.lease_ms, "outbound.lease_ms", at)?,
        },
        cache_tags,
        purgers,
        admin_max_body_bytes: raw.admin.max_body_bytes,
        admin_max_failed_auth_per_minute: raw.admin.max_failed_auth_per_minute.max(1),
        trusted_proxies: trusted_proxies(&raw.http.trusted_proxies, at)?,
        http: http_limits(&raw.http, at)?,
        iframe_hosts: iframe_hosts(raw.sanitize, at)?,
        store_query_timeout: Duration::from_millis(raw.store.query_timeout_ms),
        tombstones: tombstones(&raw.tombstones, at)?,
        stats: stats(&raw.stats, at)?,
    })
}

/// `[stats]`: retention from 1 to [`MAX_STATS_RETENTION_DAYS`] days, a flush interval within
/// [`STATS_FLUSH_MS`].
fn stats(raw: &raw::Stats, at: At<'_>) -> Result<Stats, ConfigError> {
    let retention_days = match u32::try_from(*raw.retention_days.get_ref()) {
        Ok(days) if (1..=MAX_STATS_RETENTION_DAYS).contains(&days) => days,
        _ => {
            return Err(at(
                raw.retention_days.span(),
                format!(
                    "stats.retention_days must be a whole number of days from 1 to \
                     {MAX_STATS_RETENTION_DAYS}, not {}",
                    raw.retention_days.get_ref()
                ),
            ));
        }
    };
    let ms = *raw.flush_interval_ms.get_ref();
    if !STATS_FLUSH_MS.contains(&ms) {
        return Err(at(
            raw.flush_interval_ms.span(),
            format!(
                "stats.flush_interval_ms must be from {} to {} milliseconds, not {ms}",
                STATS_FLUSH_MS.start(),
                STATS_FLUSH_MS.end()
            ),
        ));
    }
    Ok(Stats {
        enabled: raw.enabled,
        retention_days,
        flush_interval: Duration::from_millis(ms.unsigned_abs()),
    })
}

/// `[tombstones]`: days from 0 to [`MAX_TOMBSTONE_DAYS`].
fn tombstones(raw: &raw::Tombstones, at: At<'_>) -> Result<Tombstones, ConfigError> {
    match u32::try_from(*raw.days.get_ref()) {
        Ok(days) if days <= MAX_TOMBSTONE_DAYS => Ok(Tombstones { days }),
        _ => Err(at(
            raw.days.span(),
            format!(
                "tombstones.days must be a whole number of days from 0 to {MAX_TOMBSTONE_DAYS}, \
                 not {}",
                raw.days.get_ref()
            ),
        )),
    }
}

/// `[site]`.
fn site(s: raw::Site, dir: &Path, at: At<'_>) -> Result<Site, ConfigError> {
    let link = url(&s.link, "site.link", at)?;
    let mut base_url = url(&s.base_url, "site.base_url", at)?;
    if !base_url.path().ends_with('/') {
        let path = format!("{}/", base_url.path());
        base_url.set_path(&path);
    }
    let time_zone: Tz = s.time_zone.get_ref().parse().map_err(|_| {
        at(
            s.time_zone.span(),
            format!(
                "unknown time zone `{}`: use an IANA name such as `Asia/Shanghai`",
                s.time_zone.get_ref()
            ),
        )
    })?;
    let id_prefix = match &s.id_prefix {
        Some(p) => non_empty(p, "site.id_prefix", at)?,
        None => format!("tag:{},2021:", link.host_str().unwrap_or("localhost")),
    };
    let title = non_empty(&s.title, "site.title", at)?;
    Ok(Site {
        description: s.description.unwrap_or_else(|| title.clone()),
        title,
        link,
        base_url,
        language: non_empty(&s.language, "site.language", at)?,
        time_zone,
        copyright: s.copyright,
        reprint_notice: s.reprint_notice,
        source_label: s.source_label.unwrap_or_else(|| "来源".to_owned()),
        author_label: s.author_label.unwrap_or_else(|| "原作者".to_owned()),
        original_title_label: s.original_title_label.unwrap_or_else(|| "原题".to_owned()),
        editor_label: s.editor_label.unwrap_or_else(|| "编辑".to_owned()),
        id_prefix,
        icon: icon(s.icon.as_ref(), dir, at)?,
    })
}

/// `[limits]`: item counts, checked against each other.
fn limits(raw: Option<Spanned<raw::Limits>>, at: At<'_>) -> Result<Limits, ConfigError> {
    let Some(l) = raw else {
        let d = raw::Limits::default();
        return Ok(Limits {
            default_items: d.default_items,
            max_items: d.max_items,
        });
    };
    let span = l.span();
    let l = l.into_inner();
    if l.max_items == 0 || l.default_items == 0 || l.default_items > l.max_items {
        return Err(at(
            span,
            format!(
                "limits: need 1 <= default_items ({}) <= max_items ({})",
                l.default_items, l.max_items
            ),
        ));
    }
    Ok(Limits {
        default_items: l.default_items,
        max_items: l.max_items,
    })
}

/// `[websub]`: the hubs are absolute URLs.
fn websub(raw_websub: raw::WebSub, at: At<'_>) -> Result<WebSub, ConfigError> {
    let mut websub = WebSub {
        hubs: Vec::new(),
        retry: Retry {
            attempts: raw_websub.attempts.max(1),
            first_delay: std::time::Duration::from_millis(raw_websub.first_retry_ms),
            max_delay: Duration::from_secs(600), // outbound::MAX_BACKOFF
        },
    };
    for hub in &raw_websub.hubs {
        websub.hubs.push(url(hub, "websub.hubs", at)?);
    }
    Ok(websub)
}

/// A time in milliseconds that must not be zero.
fn positive_ms(value: &Spanned<u64>, field: &str, at: At<'_>) -> Result<Duration, ConfigError> {
    match *value.get_ref() {
        0 => Err(at(value.span(), format!("{field} must be at least 1"))),
        ms => Ok(Duration::from_millis(ms)),
    }
}

/// `[cache_tags]`: valid, distinct header names; a space or a comma between tags.
fn cache_tags(raw: &raw::CacheTags, at: At<'_>) -> Result<CacheTags, ConfigError> {
    let mut headers: Vec<TagHeader> = Vec::new();
    for header in &raw.headers {
        let h = header.get_ref();
        let name = axum::http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
            at(
                header.span(),
                format!("cache_tags.headers: `{}` is not a header name", h.name),
            )
        })?;
        if headers.iter().any(|t| t.name == name) {
            return Err(at(
                header.span(),
                format!("cache_tags.headers: `{}` is named twice", h.name),
            ));
        }
        let separator = match h.separator.as_str() {
            " " => ' ',
            "," => ',',
            other => {
                return Err(at(
                    header.span(),
                    format!(
                        "cache_tags.headers: the separator of `{}` must be \" \" or \",\", not {other:?}",
                        h.name
                    ),
                ));
            }
        };
        headers.push(TagHeader { name, separator });
    }
    let max_bytes = *raw.max_bytes.get_ref();
    if !(100..=65_536).contains(&max_bytes) {
        return Err(at(
            raw.max_bytes.span(),
            format!("cache_tags.max_bytes must be from 100 to 65536, not {max_bytes}"),
        ));
    }
    Ok(CacheTags {
        headers,
        max_bytes: usize::try_from(max_bytes).unwrap_or(65_536),
    })
}

/// Replaces each `${NAME}` in a purger's header value with the environment variable NAME, so
/// that an API token need not be written in feeds.toml.
fn expand_env(value: &Spanned<String>, field: &str, at: At<'_>) -> Result<String, ConfigError> {
    let mut out = String::new();
    let mut rest = value.get_ref().as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(at(value.span(), format!("{field}: `${{` without `}}`")));
        };
        let name = &after[..end];
        let expanded = std::env::var(name).map_err(|_| {
            at(
                value.span(),
                format!("{field}: the environment variable `{name}` is not set"),
            )
        })?;
        out.push_str(&expanded);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Largest purge body template, in bytes.
const MAX_PURGE_BODY: usize = 16 * 1024;

/// `[[purgers]]`: a known kind, a unique name, an http(s) URL, valid headers.
fn purgers(raw: &[Spanned<raw::Purger>], at: At<'_>) -> Result<Vec<Purger>, ConfigError> {
    let mut purgers: Vec<Purger> = Vec::new();
    for (i, spanned) in raw.iter().enumerate() {
        let p = spanned.get_ref();
        let kind = p.kind.get_ref().as_str();
        let name = match &p.name {
            Some(n) => {
                let v = n.get_ref();
                let valid = !v.is_empty()
                    && v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !valid {
                    return Err(at(
                        n.span(),
                        format!("purgers.name: `{v}` must be 1 to 64 letters, digits, `-` or `_`"),
                    ));
                }
                v.clone()
            }
            None => format!("{kind}-{}", i + 1),
        };
        if purgers.iter().any(|q| q.name == name) {
            return Err(at(
                spanned.span(),
                format!("purgers: two purgers are named `{name}`; give each its own `name`"),
            ));
        }
        let url = url(&p.url, "purgers.url", at)?;
        let max_tags = match &p.max_tags_per_request {
            None => 100,
            Some(m) if (1..=10_000).contains(m.get_ref()) => *m.get_ref(),
            Some(m) => {
                return Err(at(
                    m.span(),
                    format!(
                        "purgers.max_tags_per_request must be from 1 to 10000, not {}",
                        m.get_ref()
                    ),
                ));
            }
        };
        let mut headers = Vec::new();
        for (header, value) in &p.headers {
            let name = axum::http::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                at(
                    value.span(),
                    format!("purgers.headers: `{header}` is not a header name"),
                )
            })?;
            // The client writes these from the request itself; set by hand they would frame it
            // wrongly or send it elsewhere.
            let framing = [
                "host",
                "content-length",
                "transfer-encoding",
                "connection",
                "te",
                "upgrade",
            ];
            if framing.contains(&name.as_str()) {
                return Err(at(
                    value.span(),
                    format!("purgers.headers: `{header}` is set by feedcast itself"),
                ));
            }
            let value = expand_env(value, "purgers.headers", at)?;
            if axum::http::HeaderValue::from_str(&value).is_err() {
                return Err(at(
                    p.headers[header].span(),
                    format!("purgers.headers: the value of `{header}` is not a valid header value"),
                ));
            }
            headers.push((name, value));
        }
        let request = match kind {
            "varnish" => {
                if let Some(extra) = p
                    .method
                    .as_ref()
                    .map(Spanned::span)
                    .or(p.body.as_ref().map(Spanned::span))
                {
                    return Err(at(
                        extra,
                        "purgers: a varnish purger sends PURGE with no body; `method` and `body` are for kind = \"http\"".to_owned(),
                    ));
                }
                let tags_header = match &p.tags_header {
                    None => axum::http::HeaderName::from_static("xkey-purge"),
                    Some(h) => axum::http::HeaderName::from_bytes(h.get_ref().as_bytes()).map_err(
                        |_| {
                            at(
                                h.span(),
                                format!(
                                    "purgers.tags_header: `{}` is not a header name",
                                    h.get_ref()
                                ),
                            )
                        },
                    )?,
                };
                PurgeRequest::Varnish { tags_header }
            }
            "http" => {
                if let Some(h) = &p.tags_header {
                    return Err(at(
                        h.span(),
                        "purgers.tags_header is for kind = \"varnish\"; put the tags in `headers` or `body` with {tags}".to_owned(),
                    ));
                }
                let method = match &p.method {
                    None => axum::http::Method::POST,
                    Some(m) => {
                        axum::http::Method::from_bytes(m.get_ref().as_bytes()).map_err(|_| {
                            at(
                                m.span(),
                                format!("purgers.method: `{}` is not a method", m.get_ref()),
                            )
                        })?
                    }
                };
                let body = match &p.body {
                    Some(b) if b.get_ref().len() > MAX_PURGE_BODY => {
                        return Err(at(
                            b.span(),
                            format!("purgers.body is longer than {MAX_PURGE_BODY} bytes"),
                        ));
                    }
                    Some(b) => Some(b.get_ref().clone()),
                    None => None,
                };
                PurgeRequest::Http { method, body }
            }
            other => {
                return Err(at(
                    p.kind.span(),
                    format!("purgers.kind must be \"varnish\" or \"http\", not `{other}`"),
                ));
            }
        };
        purgers.push(Purger {
            name,
            url,
            max_tags_per_request: usize::try_from(max_tags).unwrap_or(100),
            headers,
            request,
        });
    }
    Ok(purgers)
}

/// Varnish reads its purge tags from `Surrogate-Key` (the shipped VCL) and refuses a response
/// header much over 8 KiB: a Varnish purger needs that header, no longer than that.
fn check_varnish_tags(
    raw_purgers: &[Spanned<raw::Purger>],
    tags: &CacheTags,
    raw: &raw::CacheTags,
    at: At<'_>,
) -> Result<(), ConfigError> {
    // Errors point at the varnish purger: the `[cache_tags]` lines may be defaults, not written.
    let Some(varnish) = raw_purgers
        .iter()
        .find(|p| p.get_ref().kind.get_ref() == "varnish")
    else {
        return Ok(());
    };
    let span = varnish.get_ref().kind.span();
    if !tags.headers.iter().any(|h| h.name == "surrogate-key") {
        return Err(at(
            span,
            "a varnish purger needs `Surrogate-Key` among cache_tags.headers: the shipped VCL \
             hands it to xkey"
                .to_owned(),
        ));
    }
    if tags.max_bytes > 8000 {
        let written = raw.max_bytes.span();
        return Err(at(
            if written.is_empty() { span } else { written },
            format!(
                "cache_tags.max_bytes is {}, but Varnish refuses a response header over 8 KiB \
                 by default: at most 8000 with a varnish purger",
                tags.max_bytes
            ),
        ));
    }
    Ok(())
}

/// A count or time of `[hub]` that must lie within `range`.
fn within(
    value: &Spanned<u64>,
    field: &str,
    range: std::ops::RangeInclusive<u64>,
    at: At<'_>,
) -> Result<u64, ConfigError> {
    let v = *value.get_ref();
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(at(
            value.span(),
            format!(
                "{field} must be from {} to {}, not {v}",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// `[hub]`: its URL absolute, its leases ordered, its bounds positive.
fn hub(raw: raw::Hub, base_url: &Url, at: At<'_>) -> Result<Hub, ConfigError> {
    let url = match &raw.url {
        Some(u) => url(u, "hub.url", at)?,
        // The base URL ends in `/` and is absolute: joining a plain name cannot fail.
        None => base_url.join("websub").unwrap_or_else(|_| base_url.clone()),
    };
    const DAY: u64 = 86_400;
    let min = within(
        &raw.min_lease_seconds,
        "hub.min_lease_seconds",
        1..=365 * DAY,
        at,
    )?;
    let max = within(
        &raw.max_lease_seconds,
        "hub.max_lease_seconds",
        min..=365 * DAY,
        at,
    )?;
    let default = within(
        &raw.default_lease_seconds,
        "hub.default_lease_seconds",
        min..=max,
        at,
    )?;
    let count = |v: &Spanned<u64>, field: &str| within(v, field, 1..=10_000_000, at);
    let first_retry_ms = within(
        &raw.first_retry_ms,
        "hub.first_retry_ms",
        1..=DAY * 1000,
        at,
    )?;
    let max_retry_ms = within(
        &raw.max_retry_ms,
        "hub.max_retry_ms",
        first_retry_ms..=DAY * 1000,
        at,
    )?;
    Ok(Hub {
        enabled: raw.enabled,
        url,
        default_lease: Duration::from_secs(default),
        min_lease: Duration::from_secs(min),
        max_lease: Duration::from_secs(max),
        max_subscriptions_per_host: count(
            &raw.max_subscriptions_per_host,
            "hub.max_subscriptions_per_host",
        )?,
        max_pending: count(&raw.max_pending, "hub.max_pending")?,
        max_pending_per_host: count(&raw.max_pending_per_host, "hub.max_pending_per_host")?,
        allow_private_callbacks: raw.allow_private_callbacks,
        max_in_flight: usize::try_from(within(
            &raw.max_in_flight,
            "hub.max_in_flight",
            1..=4096,
            at,
        )?)
        .unwrap_or(64),
        max_per_host: usize::try_from(within(&raw.max_per_host, "hub.max_per_host", 1..=4096, at)?)
            .unwrap_or(4),
        retry: Retry {
            attempts: u32::try_from(within(&raw.attempts, "hub.attempts", 1..=1000, at)?)
                .unwrap_or(32),
            first_delay: Duration::from_millis(first_retry_ms),
            max_delay: Duration::from_millis(max_retry_ms),
        },
    })
}

/// `[sanitize]`: iframe hosts are host names, lowercased.
fn iframe_hosts(raw: raw::Sanitize, at: At<'_>) -> Result<Vec<String>, ConfigError> {
    let mut iframe_hosts = Vec::new();
    for host in raw.iframe_hosts {
        let h = host.get_ref().trim().to_ascii_lowercase();
        if h.is_empty() || h.contains(['/', ':', ' ']) {
            return Err(at(
                host.span(),
                format!(
                    "sanitize.iframe_hosts: `{}` is not a host name",
                    host.get_ref()
                ),
            ));
        }
        iframe_hosts.push(h);
    }
    Ok(iframe_hosts)
}

/// `[http]`, in durations. A time limit of zero would fail every connection or request at once,
/// so it is refused rather than taken.
fn http_limits(raw: &raw::Http, at: At<'_>) -> Result<HttpLimits, ConfigError> {
    let ms = |value: &Spanned<u64>, key: &str| match *value.get_ref() {
        0 => Err(at(value.span(), format!("http.{key} must be at least 1"))),
        n => Ok(Duration::from_millis(n)),
    };
    Ok(HttpLimits {
        header_read_timeout: ms(&raw.header_read_timeout_ms, "header_read_timeout_ms")?,
        request_timeout: ms(&raw.request_timeout_ms, "request_timeout_ms")?,
        shutdown_timeout: ms(&raw.shutdown_timeout_ms, "shutdown_timeout_ms")?,
        max_connections: raw.max_connections.max(1),
        max_query_bytes: raw.max_query_bytes,
        write_timeout: ms(&raw.write_timeout_ms, "write_timeout_ms")?,
        max_connections_per_address: raw.max_connections_per_address.max(1),
    })
}

/// `[[categories]]`, `[[regions]]`, `[[feeds]]` and `[[gone]]`: names URL-safe and declared
/// once, every parent declared, no region its own ancestor, every category and region a feed
/// names declared, every former or gone name used nowhere else.
fn catalog(
    categories: Vec<raw::Category>,
    regions: Vec<raw::Region>,
    feeds: Vec<raw::Feed>,
    gone: Vec<raw::Gone>,
    at: At<'_>,
) -> Result<Catalog, ConfigError> {
    let mut catalog = Catalog::default();
    let mut category_formerly = Vec::new();
    for c in categories {
        let slug = name(CategorySlug::parse, &c.slug, at)?;
        if catalog.category_index.contains_key(slug.as_str()) {
            return Err(at(
                c.slug.span(),
                format!("category `{slug}` is declared twice"),
            ));
        }
        let display = non_empty(&c.name, "category name", at)?;
        catalog
            .category_index
            .insert(slug.as_str().to_owned(), catalog.categories.len());
        catalog.categories.push(Category {
            slug,
            name: display,
            formerly: Vec::new(),
        });
        category_formerly.push(c.formerly);
    }
    for (i, formerly) in category_formerly.into_iter().enumerate() {
        for f in &formerly {
            let old = name(CategorySlug::parse, f, at)?;
            let names = |j: usize| catalog.categories[j].slug.to_string();
            let known = Names {
                kind: "category",
                live: &catalog.category_index,
                former: &catalog.former_category_index,
            };
            known.check_former(old.as_str(), i, names, f, at)?;
            catalog
                .former_category_index
                .insert(old.as_str().to_owned(), i);
            catalog.categories[i].formerly.push(old);
        }
    }

    for r in &regions {
        let code = name(RegionCode::parse, &r.code, at)?;
        if catalog.region_index.contains_key(code.as_str()) {
            return Err(at(
                r.code.span(),
                format!("region `{code}` is declared twice"),
            ));
        }
        catalog
            .region_index
            .insert(code.as_str().to_owned(), catalog.regions.len());
        catalog.regions.push(Region {
            code,
            name: non_empty(&r.name, "region name", at)?,
            parent: None,
            lineage: Vec::new(),
            formerly: Vec::new(),
        });
    }
    for (i, r) in regions.iter().enumerate() {
        for f in &r.formerly {
            let old = name(RegionCode::parse, f, at)?;
            let names = |j: usize| catalog.regions[j].code.to_string();
            let known = Names {
                kind: "region",
                live: &catalog.region_index,
                former: &catalog.former_region_index,
            };
            known.check_former(old.as_str(), i, names, f, at)?;
            catalog
                .former_region_index
                .insert(old.as_str().to_owned(), i);
            catalog.regions[i].formerly.push(old);
        }
    }
    for (i, r) in regions.iter().enumerate() {
        if let Some(parent) = &r.parent {
            let Some(&p) = catalog.region_index.get(parent.get_ref().as_str()) else {
                return Err(at(
                    parent.span(),
                    format!(
                        "region `{}` names parent `{}`, which is not declared",
                        r.code.get_ref(),
                        parent.get_ref()
                    ),
                ));
            };
            catalog.regions[i].parent = Some(catalog.regions[p].code.clone());
        }
    }
    for (i, r) in regions.iter().enumerate() {
        let mut lineage = vec![catalog.regions[i].code.clone()];
        let mut next = catalog.regions[i].parent.clone();
        while let Some(code) = next {
            if lineage.contains(&code) {
                return Err(at(
                    r.code.span(),
                    format!("region `{}` is its own ancestor", r.code.get_ref()),
                ));
            }
            next = catalog.region(code.as_str()).and_then(|p| p.parent.clone());
            lineage.push(code);
        }
        catalog.regions[i].lineage = lineage;
    }

    let mut feed_formerly = Vec::new();
    for f in feeds {
        let slug = name(FeedSlug::parse, &f.slug, at)?;
        if catalog.feed_index.contains_key(slug.as_str()) {
            return Err(at(
                f.slug.span(),
                format!("feed `{slug}` is declared twice"),
            ));
        }
        let mut categories = Vec::new();
        for c in &f.categories {
            let found = catalog.category_slug(c.get_ref()).ok_or_else(|| {
                at(
                    c.span(),
                    format!(
                        "feed `{slug}` names category `{}`, which is not declared",
                        c.get_ref()
                    ),
                )
            })?;
            categories.push(found.clone());
        }
        let mut regions = Vec::new();
        for r in &f.regions {
            let found = catalog.region(r.get_ref()).ok_or_else(|| {
                at(
                    r.span(),
                    format!(
                        "feed `{slug}` names region `{}`, which is not declared",
                        r.get_ref()
                    ),
                )
            })?;
            regions.push(found.code.clone());
        }
        if categories.is_empty() && regions.is_empty() {
            return Err(at(
                f.slug.span(),
                format!("feed `{slug}` needs at least one category or region"),
            ));
        }
        let title = non_empty(&f.title, "feed title", at)?;
        catalog
            .feed_index
            .insert(slug.as_str().to_owned(), catalog.feeds.len());
        catalog.feeds.push(CustomFeed {
            slug,
            title,
            description: f.description,
            categories,
            regions,
            formerly: Vec::new(),
        });
        feed_formerly.push(f.formerly);
    }
    for (i, formerly) in feed_formerly.into_iter().enumerate() {
        for f in &formerly {
            let old = name(FeedSlug::parse, f, at)?;
            let names = |j: usize| catalog.feeds[j].slug.to_string();
            let known = Names {
                kind: "feed",
                live: &catalog.feed_index,
                former: &catalog.former_feed_index,
            };
            known.check_former(old.as_str(), i, names, f, at)?;
            catalog.former_feed_index.insert(old.as_str().to_owned(), i);
            catalog.feeds[i].formerly.push(old);
        }
    }
    for g in gone {
        let path = gone_path(&catalog, &g.path, at)?;
        if !catalog.gone.insert(path.clone()) {
            return Err(at(
                g.path.span(),
                format!("gone.path `{path}` is listed twice in [[gone]]"),
            ));
        }
    }
    Ok(catalog)
}

/// The names of one kind (categories, regions or custom feeds) declared so far.
struct Names<'a> {
    kind: &'static str,
    live: &'a std::collections::HashMap<String, usize>,
    former: &'a std::collections::HashMap<String, usize>,
}

impl Names<'_> {
    /// Refuses a former name of entry `i` that is live or already listed: an old URL must lead
    /// to exactly one place, and never shadow a feed that is served.
    fn check_former(
        &self,
        old: &str,
        i: usize,
        names: impl Fn(usize) -> String,
        value: &Spanned<String>,
        at: At<'_>,
    ) -> Result<(), ConfigError> {
        let kind = self.kind;
        let current = names(i);
        if self.live.contains_key(old) {
            return Err(at(
                value.span(),
                format!(
                    "{kind} `{current}` lists `{old}` in formerly, but `{old}` is a live {kind}: \
                     a name is either served or redirected, not both"
                ),
            ));
        }
        if let Some(&j) = self.former.get(old) {
            return Err(at(
                value.span(),
                format!(
                    "{kind} `{current}` lists `{old}` in formerly, which is listed twice (also in \
                     formerly of `{}`): an old URL must lead to one place",
                    names(j)
                ),
            ));
        }
        Ok(())
    }
}

/// A `[[gone]]` path: `category/SLUG`, `region/CODE` or a custom feed's slug, as under `/feeds/`
/// without extension, naming no feed that is served or redirected.
fn gone_path(
    catalog: &Catalog,
    value: &Spanned<String>,
    at: At<'_>,
) -> Result<String, ConfigError> {
    let path = value.get_ref().trim();
    let invalid = |why: String| at(value.span(), format!("gone.path `{path}` {why}"));
    if let Some((_, ext)) = path.rsplit_once('.') {
        // The feed formats' extensions (`feed::Format`, which comes after config).
        if ["rss", "atom", "json", "html"].contains(&ext) {
            return Err(invalid(format!(
                "ends in `.{ext}`: write the path without extension, e.g. `category/old`; it is \
                 gone in every format"
            )));
        }
    }
    let name_error = |e: InvalidName| invalid(format!("is not a feed path: {e}"));
    let (live, renamed) = match path.split_once('/') {
        Some(("category", slug)) => {
            CategorySlug::parse(slug).map_err(name_error)?;
            (
                catalog.category(slug).is_some(),
                catalog.renamed_category(slug).map(|c| c.slug.to_string()),
            )
        }
        Some(("region", code)) => {
            RegionCode::parse(code).map_err(name_error)?;
            (
                catalog.region(code).is_some(),
                catalog.renamed_region(code).map(|r| r.code.to_string()),
            )
        }
        Some(_) => {
            return Err(invalid(
                "must be `category/SLUG`, `region/CODE` or a custom feed's slug, as under \
                 /feeds/ without extension"
                    .to_owned(),
            ));
        }
        None => {
            FeedSlug::parse(path).map_err(name_error)?;
            (
                catalog.feed(path).is_some(),
                catalog.renamed_feed(path).map(|f| f.slug.to_string()),
            )
        }
    };
    if live {
        return Err(invalid(
            "is a live feed: remove it from [[gone]], or the feed from feeds.toml".to_owned(),
        ));
    }
    if let Some(current) = renamed {
        return Err(invalid(format!(
            "is a former name of `{current}`, which its old URLs are redirected to: remove it \
             from [[gone]] or from that formerly"
        )));
    }
    Ok(path.to_owned())
}

/// `http.trusted_proxies`: CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses.
fn trusted_proxies(entries: &[Spanned<String>], at: At<'_>) -> Result<TrustedProxies, ConfigError> {
    let mut nets = Vec::new();
    for entry in entries {
        let text = entry.get_ref().trim();
        let net = text
            .parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                at(
                    entry.span(),
                    format!(
                        "http.trusted_proxies: `{text}` is not an address or a CIDR such as `10.0.0.0/8`"
                    ),
                )
            })?;
        nets.push(net.trunc());
    }
    Ok(TrustedProxies(nets))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = r#"
[site]
title = "测试门户"
link = "https://www.example.cn/"
base_url = "https://feeds.example.cn"
language = "zh-CN"
time_zone = "Asia/Shanghai"
"#;

    fn parse(extra: &str) -> Result<Settings, ConfigError> {
        Settings::parse(&format!("{SITE}{extra}"), Path::new("feeds.toml"))
    }

    fn error_at(extra: &str) -> (usize, String) {
        match parse(extra).unwrap_err() {
            ConfigError::Invalid { line, message, .. } => (line, message),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn credit_labels_default_to_the_reprint_rules_wording_and_can_be_set() {
        let labels = |s: Settings| {
            let site = s.site;
            [
                site.source_label,
                site.author_label,
                site.original_title_label,
                site.editor_label,
            ]
        };
        assert_eq!(
            labels(parse("").unwrap()),
            ["来源", "原作者", "原题", "编辑"]
        );
        let set = parse(
            "source_label = \"稿源\"\nauthor_label = \"作者\"\n\
             original_title_label = \"原标题\"\neditor_label = \"责任编辑\"\n",
        )
        .unwrap();
        assert_eq!(labels(set), ["稿源", "作者", "原标题", "责任编辑"]);
    }

    #[test]
    fn can_parse_a_region_tree_with_lineage() {
        let s = parse(
            r#"
[[regions]]
code = "320000"
name = "江苏省"
[[regions]]
code = "320200"
name = "无锡市"
parent = "320000"
[[regions]]
code = "320281"
name = "江阴市"
parent = "320200"
"#,
        )
        .unwrap();
        let county = s.catalog.region("320281").unwrap();
        let lineage: Vec<&str> = county.lineage.iter().map(RegionCode::as_str).collect();
        assert_eq!(lineage, ["320281", "320200", "320000"]);
        assert_eq!(s.site.base_url.as_str(), "https://feeds.example.cn/");
        assert_eq!(s.limits.default_items, 20);
        assert_eq!(s.site.id_prefix, "tag:www.example.cn,2021:");
    }

    #[test]
    fn errors_name_the_line_of_an_unknown_parent() {
        let (line, message) =
            error_at("\n[[regions]]\ncode = \"320200\"\nname = \"无锡市\"\nparent = \"999\"\n");
        assert_eq!(line, 12);
        assert!(message.contains("parent `999`"), "{message}");
    }

    #[test]
    fn errors_on_a_name_that_would_shadow_a_wechat_profile() {
        for extra in [
            "[[categories]]\nslug = \"news.wechat\"\nname = \"新闻\"\n",
            "[[regions]]\ncode = \"32.wechat\"\nname = \"江苏\"\n",
        ] {
            let (_, message) = error_at(extra);
            assert!(message.contains(".wechat"), "{message}");
        }
        assert!(parse("[[categories]]\nslug = \"wechat\"\nname = \"微信\"\n").is_ok());
    }

    #[test]
    fn errors_on_a_region_cycle() {
        let (_, message) = error_at(
            "[[regions]]\ncode = \"a\"\nname = \"A\"\nparent = \"b\"\n[[regions]]\ncode = \"b\"\nname = \"B\"\nparent = \"a\"\n",
        );
        assert!(message.contains("its own ancestor"), "{message}");
    }

    #[test]
    fn errors_on_unknown_fields_and_bad_time_zones() {
        let (line, message) =
            error_at("[[categories]]\nslug = \"parks\"\nname = \"园区\"\ncolour = \"red\"\n");
        assert_eq!(line, 11);
        assert!(message.contains("colour"), "{message}");
        let err = Settings::parse(
            &SITE.replace("Asia/Shanghai", "Mars/Olympus"),
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("x.toml:7:"), "{err}");
        assert!(err.contains("Mars/Olympus"), "{err}");
    }

    #[test]
    fn errors_when_a_custom_feed_names_an_unknown_category() {
        let (line, message) = error_at(
            "[[categories]]\nslug = \"parks\"\nname = \"园区\"\n[[feeds]]\nslug = \"mix\"\ntitle = \"混合\"\ncategories = [\"parks\", \"nope\"]\n",
        );
        assert_eq!(line, 14);
        assert!(message.contains("`nope`"), "{message}");
    }

    const RENAMED: &str = "[[categories]]\nslug = \"hydrogen\"\nname = \"氢能\"\n\
                           formerly = [\"h2\", \"new-energy\"]\n\
                           [[categories]]\nslug = \"parks\"\nname = \"园区\"\n\
                           [[regions]]\ncode = \"320281\"\nname = \"江阴市\"\nformerly = [\"320200\"]\n\
                           [[feeds]]\nslug = \"h2-news\"\ntitle = \"氢能\"\n\
                           categories = [\"hydrogen\"]\nformerly = [\"hydrogen-news\"]\n";

    #[test]
    fn former_names_lead_to_the_current_ones_oldest_first() {
        let s = parse(&format!("{RENAMED}[[gone]]\npath = \"category/events\"\n")).unwrap();
        let c = &s.catalog;
        assert_eq!(c.current_category("h2").unwrap().slug.as_str(), "hydrogen");
        assert_eq!(
            c.renamed_category("new-energy").unwrap().slug.as_str(),
            "hydrogen"
        );
        assert!(
            c.renamed_category("hydrogen").is_none(),
            "a live name is not renamed"
        );
        assert_eq!(c.category("hydrogen").unwrap().formerly[0].as_str(), "h2");
        assert_eq!(c.current_region("320200").unwrap().code.as_str(), "320281");
        assert_eq!(
            c.renamed_feed("hydrogen-news").unwrap().slug.as_str(),
            "h2-news"
        );
        assert!(c.is_gone("category/events"));
        assert!(!c.is_gone("category/parks"));
    }

    #[test]
    fn a_former_or_gone_name_that_is_live_or_listed_twice_is_refused_naming_its_line() {
        for (extra, at, says) in [
            (
                "[[categories]]\nslug = \"a\"\nname = \"A\"\n\
                 [[categories]]\nslug = \"b\"\nname = \"B\"\nformerly = [\"a\"]\n",
                "formerly",
                "`a` is a live category",
            ),
            (
                "[[categories]]\nslug = \"a\"\nname = \"A\"\nformerly = [\"old\"]\n\
                 [[categories]]\nslug = \"b\"\nname = \"B\"\nformerly = [\"old\"]\n",
                "formerly",
                "listed twice (also in formerly of `a`)",
            ),
            (
                "[[regions]]\ncode = \"1\"\nname = \"A\"\nformerly = [\"0\", \"0\"]\n",
                "formerly",
                "listed twice",
            ),
            (
                "[[categories]]\nslug = \"a\"\nname = \"A\"\n\
                 [[feeds]]\nslug = \"f\"\ntitle = \"F\"\ncategories = [\"a\"]\nformerly = [\"f\"]\n",
                "formerly",
                "`f` is a live feed",
            ),
            (
                "[[categories]]\nslug = \"a\"\nname = \"A\"\n[[gone]]\npath = \"category/a\"\n",
                "path",
                "is a live feed",
            ),
            (
                "[[categories]]\nslug = \"a\"\nname = \"A\"\nformerly = [\"old\"]\n\
                 [[gone]]\npath = \"category/old\"\n",
                "path",
                "is a former name of `a`",
            ),
            (
                "[[gone]]\npath = \"region/9\"\n[[gone]]\npath = \"region/9\"\n",
                "path",
                "listed twice in [[gone]]",
            ),
            (
                "[[gone]]\npath = \"category/old.rss\"\n",
                "path",
                "without extension",
            ),
            (
                "[[gone]]\npath = \"tag/old\"\n",
                "path",
                "must be `category/SLUG`",
            ),
            (
                "[[gone]]\npath = \"category/a b\"\n",
                "path",
                "not a feed path",
            ),
        ] {
            let (line, message) = error_at(extra);
            // The last entry that names it is the one refused.
            let last = &extra[..extra.rfind(at).unwrap()];
            let expected = 1 + SITE.matches('\n').count() + last.matches('\n').count();
            assert_eq!(line, expected, "{extra}: {message}");
            assert!(message.contains(says), "{extra}: {message}");
        }
    }

    #[test]
    fn errors_on_inconsistent_limits() {
        let (_, message) = error_at("[limits]\ndefault_items = 50\nmax_items = 10\n");
        assert!(message.contains("default_items"), "{message}");
    }

    #[test]
    fn the_shipped_feeds_toml_is_valid() {
        let text = include_str!("../../feeds.toml");
        let s = Settings::parse(text, Path::new("feeds.toml")).unwrap();
        assert!(s.catalog.categories().len() >= 3);
        assert!(s.catalog.regions().iter().any(|r| r.lineage.len() >= 3));
        // It shows a renamed feed and a feed removed for good.
        assert!(s.catalog.former_count() >= 1 && s.catalog.gone_count() >= 1);
    }

    #[test]
    fn errors_name_the_line_of_a_trusted_proxy_that_is_no_address() {
        let (line, message) =
            error_at("[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"lb.internal\"]\n");
        assert_eq!(line, 9);
        assert!(
            message.contains("`lb.internal` is not an address or a CIDR"),
            "{message}"
        );
        let s = parse("[http]\ntrusted_proxies = [\"10.1.2.3/8\", \"2001:db8::1\"]\n").unwrap();
        assert!(s.trusted_proxies.contains("10.200.0.1".parse().unwrap()));
        assert!(s.trusted_proxies.contains("2001:db8::1".parse().unwrap()));
        assert!(!s.trusted_proxies.contains("2001:db8::2".parse().unwrap()));
    }

    #[test]
    fn errors_name_the_line_of_a_time_limit_of_zero() {
        let (line, message) = error_at("[http]\nrequest_timeout_ms = 100\nwrite_timeout_ms = 0\n");
        assert_eq!(line, 10);
        assert!(
            message.contains("http.write_timeout_ms must be at least 1"),
            "{message}"
        );
    }

    #[test]
    fn errors_name_the_line_of_tombstone_days_out_of_range() {
        for bad in ["-1", "3651", "99999999999"] {
            let (line, message) = error_at(&format!("[tombstones]\ndays = {bad}\n"));
            assert_eq!(line, 9, "{bad}");
            assert!(
                message.contains("tombstones.days must be a whole number of days from 0 to 3650"),
                "{message}"
            );
        }
        for bad in ["1.5", "\"30\""] {
            let (line, _) = error_at(&format!("[tombstones]\ndays = {bad}\n"));
            assert_eq!(line, 9, "{bad}");
        }
        let s = parse("[tombstones]\ndays = 0\n").unwrap();
        assert_eq!(s.tombstones.days, 0);
        assert_eq!(s.tombstones.shown_for(), Duration::ZERO);
        let s = parse("[tombstones]\ndays = 3650\n").unwrap();
        assert_eq!(s.tombstones.days, MAX_TOMBSTONE_DAYS);
    }

    #[test]
    fn errors_name_the_line_of_stats_bounds_out_of_range() {
        for bad in ["0", "-1", "3651", "99999999999"] {
            let (line, message) = error_at(&format!("[stats]\nretention_days = {bad}\n"));
            assert_eq!(line, 9, "{bad}");
            assert!(
                message
                    .contains("stats.retention_days must be a whole number of days from 1 to 3650"),
                "{message}"
            );
        }
        for bad in ["0", "99", "60001", "-5000"] {
            let (line, message) = error_at(&format!("[stats]\nflush_interval_ms = {bad}\n"));
            assert_eq!(line, 9, "{bad}");
            assert!(
                message.contains("stats.flush_interval_ms must be from 100 to 60000 milliseconds"),
                "{message}"
            );
        }
        for bad in ["[stats]\nenabled = \"yes\"\n", "[stats]\nkeep = 1\n"] {
            let (line, _) = error_at(bad);
            assert_eq!(line, 9, "{bad}");
        }
        let s = parse("[stats]\nenabled = false\nretention_days = 1\nflush_interval_ms = 100\n")
            .unwrap();
        assert_eq!(
            s.stats,
            Stats {
                enabled: false,
                retention_days: 1,
                flush_interval: Duration::from_millis(100),
            }
        );
        let s = parse("").unwrap();
        assert_eq!(
            s.stats,
            Stats {
                enabled: true,
                retention_days: 400,
                flush_interval: Duration::from_secs(5),
            }
        );
    }

    #[test]
    fn every_section_has_its_defaults_when_left_out() {
        let s = parse("").unwrap();
        assert_eq!((s.limits.default_items, s.limits.max_items), (20, 100));
        assert_eq!(s.cache.max_bytes, 64 * 1024 * 1024);
        assert_eq!(
            (s.caching.max_age.category, s.caching.max_age.archive),
            (300, 86_400)
        );
        assert_eq!(s.websub.retry.attempts, 10);
        assert_eq!((s.outbound.max_in_flight, s.outbound.max_per_host), (16, 4));
        assert_eq!(s.outbound.lease, Duration::from_secs(60));
        let tag_headers: Vec<(&str, char)> = s
            .cache_tags
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.separator))
            .collect();
        assert_eq!(tag_headers, [("surrogate-key", ' '), ("cache-tag", ',')]);
        assert_eq!(s.cache_tags.max_bytes, 8000);
        assert!(s.purgers.is_empty());
        assert_eq!(s.admin_max_body_bytes, 16 * 1024 * 1024);
        assert_eq!(s.admin_max_failed_auth_per_minute, 10);
        assert_eq!(s.store_query_timeout, Duration::from_secs(2));
        assert_eq!(s.http.write_timeout, Duration::from_secs(30));
        assert_eq!(s.http.max_connections_per_address, 256);
        assert!(s.trusted_proxies.is_empty() && s.iframe_hosts.is_empty());
        assert_eq!(s.tombstones.days, 30);
        // A section given in part keeps the defaults of the rest.
        let s = parse("[http]\nmax_connections = 5\n").unwrap();
        assert_eq!((s.http.max_connections, s.http.max_query_bytes), (5, 1024));
    }

    /// The line, in the whole file, of the first line of `extra` that holds `needle`.
    fn line_of(extra: &str, needle: &str) -> usize {
        let before = &extra[..extra.find(needle).unwrap()];
        1 + SITE.matches('\n').count() + before.matches('\n').count()
    }

    #[test]
    fn broken_cache_tags_purgers_and_hub_settings_are_refused_naming_their_line() {
        let varnish = "[[purgers]]\nkind = \"varnish\"\nurl = \"http://127.0.0.1:6081/\"\n";
        for (extra, at, says) in [
            (
                "[cache_tags]\nheaders = [{ name = \"Surrogate-Key\", separator = \";\" }]\n",
                "headers",
                "separator",
            ),
            (
                "[cache_tags]\nheaders = [{ name = \"Bad Name\", separator = \" \" }]\n",
                "headers",
                "not a header name",
            ),
            (
                "[cache_tags]\nmax_bytes = 99\n",
                "max_bytes",
                "from 100 to 65536",
            ),
            (
                "[[purgers]]\nkind = \"squid\"\nurl = \"http://x/\"\n",
                "kind",
                "varnish",
            ),
            (
                "[[purgers]]\nkind = \"http\"\nurl = \"ftp://x/\"\n",
                "url",
                "http(s)",
            ),
            (
                "[[purgers]]\nkind = \"http\"\nurl = \"http://x/\"\nheaders = { Host = \"evil\" }\n",
                "headers",
                "set by feedcast itself",
            ),
            (
                "[[purgers]]\nkind = \"http\"\nurl = \"http://x/\"\n\
                 headers = { Authorization = \"${FEEDCAST_NO_SUCH_VARIABLE}\" }\n",
                "headers",
                "FEEDCAST_NO_SUCH_VARIABLE",
            ),
            (
                "[[purgers]]\nkind = \"http\"\nurl = \"http://x/\"\nmax_tags_per_request = 0\n",
                "max_tags_per_request",
                "from 1 to 10000",
            ),
            (
                "[[purgers]]\nkind = \"varnish\"\nurl = \"http://x/\"\nmethod = \"POST\"\n",
                "method",
                "PURGE",
            ),
            (
                &format!(
                    "{varnish}\n[cache_tags]\nheaders = [{{ name = \"Cache-Tag\", separator = \",\" }}]\n"
                ),
                "kind = \"varnish\"",
                "Surrogate-Key",
            ),
            (
                &format!("{varnish}\n[cache_tags]\nmax_bytes = 16000\n"),
                "max_bytes",
                "at most 8000",
            ),
            (
                "[hub]\nmin_lease_seconds = 0\n",
                "min_lease_seconds",
                "from 1",
            ),
            (
                "[hub]\nmin_lease_seconds = 7200\nmax_lease_seconds = 3600\n",
                "max_lease_seconds",
                "from 7200",
            ),
            (
                "[hub]\nmax_per_host = 0\n",
                "max_per_host",
                "from 1 to 4096",
            ),
            ("[hub]\nurl = \"websub\"\n", "url", "hub.url"),
        ] {
            let (line, message) = error_at(extra);
            assert_eq!(line, line_of(extra, at), "{extra}: {message}");
            assert!(message.contains(says), "{extra}: {message}");
        }
        // Two purgers of one name: the second is refused, and `name` must be a plain name.
        let twice = "[[purgers]]\nkind = \"varnish\"\nurl = \"http://a/\"\nname = \"edge\"\n\
                     [[purgers]]\nkind = \"http\"\nurl = \"http://b/\"\nname = \"edge\"\n";
        assert!(error_at(twice).1.contains("two purgers are named `edge`"));
        let (_, message) =
            error_at("[[purgers]]\nkind = \"http\"\nurl = \"http://b/\"\nname = \"a b\"\n");
        assert!(message.contains("letters, digits"), "{message}");
    }
}
