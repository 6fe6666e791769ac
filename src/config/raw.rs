//! The shape of `feeds.toml` as serde reads it, before validation. Values whose errors must
//! point at a line are kept [`Spanned`].

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Config {
    pub site: Site,
    pub limits: Option<Spanned<Limits>>,
    #[serde(default)]
    pub cache: Cache,
    #[serde(default)]
    pub caching: Caching,
    #[serde(default)]
    pub websub: WebSub,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub store: Store,
    #[serde(default)]
    pub sanitize: Sanitize,
    #[serde(default)]
    pub http: Http,
    #[serde(default)]
    pub outbound: Outbound,
    #[serde(default)]
    pub cache_tags: CacheTags,
    #[serde(default)]
    pub purgers: Vec<Spanned<Purger>>,
    #[serde(default)]
    pub tombstones: Tombstones,
    #[serde(default)]
    pub hub: Hub,
    #[serde(default)]
    pub stats: Stats,
    #[serde(default)]
    pub categories: Vec<Category>,
    #[serde(default)]
    pub regions: Vec<Region>,
    #[serde(default)]
    pub feeds: Vec<Feed>,
    #[serde(default)]
    pub gone: Vec<Gone>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Site {
    pub title: Spanned<String>,
    pub description: Option<String>,
    pub link: Spanned<String>,
    pub base_url: Spanned<String>,
    pub language: Spanned<String>,
    pub time_zone: Spanned<String>,
    pub copyright: Option<String>,
    pub reprint_notice: Option<String>,
    pub source_label: Option<String>,
    pub author_label: Option<String>,
    pub original_title_label: Option<String>,
    pub editor_label: Option<String>,
    pub id_prefix: Option<Spanned<String>>,
    pub icon: Option<Spanned<String>>,
}

/// Each section's defaults are its `Default`: the one place they are written.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct Limits {
    pub default_items: u32,
    pub max_items: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_items: 20,
            max_items: 100,
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct Cache {
    pub max_bytes: u64,
}

impl Default for Cache {
    fn default() -> Self {
        // Enough for a few thousand typical feeds.
        Cache {
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Category {
    pub slug: Spanned<String>,
    pub name: Spanned<String>,
    #[serde(default)]
    pub formerly: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Region {
    pub code: Spanned<String>,
    pub name: Spanned<String>,
    pub parent: Option<Spanned<String>>,
    #[serde(default)]
    pub formerly: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Feed {
    pub slug: Spanned<String>,
    pub title: Spanned<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub categories: Vec<Spanned<String>>,
    #[serde(default)]
    pub regions: Vec<Spanned<String>>,
    #[serde(default)]
    pub formerly: Vec<Spanned<String>>,
}

/// `[[gone]]`: a feed removed for good, by its path below `/feeds/` without extension.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Gone {
    pub path: Spanned<String>,
}

/// Seconds; see `config::Caching` for what each means.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct Caching {
    pub category: u32,
    pub region: u32,
    pub custom: u32,
    pub archive: u32,
    pub stale_while_revalidate: PerKind,
    pub stale_if_error: PerKind,
}

impl Default for Caching {
    fn default() -> Self {
        Caching {
            category: 300,
            region: 300,
            custom: 300,
            archive: 86_400,
            stale_while_revalidate: PerKind::default(),
            stale_if_error: PerKind::default(),
        }
    }
}

/// Seconds per kind of feed, each defaulting to its table's default (see `config::Caching`).
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct PerKind {
    pub category: Option<u32>,
    pub region: Option<u32>,
    pub custom: Option<u32>,
    pub archive: Option<u32>,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct WebSub {
    pub hubs: Vec<Spanned<String>>,
    pub attempts: u32,
    pub first_retry_ms: u64,
}

impl Default for WebSub {
    fn default() -> Self {
        WebSub {
            hubs: Vec::new(),
            attempts: 10,
            first_retry_ms: 1000,
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct Admin {
    pub max_body_bytes: usize,
    pub max_failed_auth_per_minute: u32,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            // A large batch of full articles.
            max_body_bytes: 16 * 1024 * 1024,
            // A person mistyping a token is not stopped; a guesser gets ten tries a minute.
            max_failed_auth_per_minute: 10,
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct Store {
    pub query_timeout_ms: u64,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            query_timeout_ms: 2000,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct Sanitize {
    pub iframe_hosts: Vec<Spanned<String>>,
}

/// Milliseconds and counts; see `config::HttpLimits` for what each means.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct Http {
    // Spanned: a zero is refused, naming its line.
    pub header_read_timeout_ms: Spanned<u64>,
    pub request_timeout_ms: Spanned<u64>,
    pub shutdown_timeout_ms: Spanned<u64>,
    pub max_connections: usize,
    pub max_query_bytes: usize,
    pub write_timeout_ms: Spanned<u64>,
    pub max_connections_per_address: usize,
    pub trusted_proxies: Vec<Spanned<String>>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            header_read_timeout_ms: Spanned::new(0..0, 10_000),
            request_timeout_ms: Spanned::new(0..0, 15_000),
            shutdown_timeout_ms: Spanned::new(0..0, 10_000),
            max_connections: 10_000,
            max_query_bytes: 1024,
            write_timeout_ms: Spanned::new(0..0, 30_000),
            max_connections_per_address: 256,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Counts; see `config::Outbound` for what each means.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct Outbound {
    pub max_in_flight: usize,
    pub max_per_host: usize,
    pub lease_ms: Spanned<u64>,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            max_in_flight: 16,
            max_per_host: 4,
            lease_ms: Spanned::new(0..0, 60_000),
        }
    }
}

/// `[cache_tags]`; see `config::CacheTags`.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct CacheTags {
    pub headers: Vec<Spanned<TagHeader>>,
    pub max_bytes: Spanned<u64>,
}

/// One header naming cache tags.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TagHeader {
    pub name: String,
    pub separator: String,
}

impl Default for CacheTags {
    fn default() -> Self {
        let header = |name: &str, separator: &str| {
            Spanned::new(
                0..0,
                TagHeader {
                    name: name.to_owned(),
                    separator: separator.to_owned(),
                },
            )
        };
        CacheTags {
            headers: vec![header("Surrogate-Key", " "), header("Cache-Tag", ",")],
            max_bytes: Spanned::new(0..0, 8000),
        }
    }
}

/// `[[purgers]]`; see `config::Purger`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Purger {
    pub kind: Spanned<String>,
    pub name: Option<Spanned<String>>,
    pub url: Spanned<String>,
    pub method: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Spanned<String>>,
    pub body: Option<Spanned<String>>,
    pub tags_header: Option<Spanned<String>>,
    pub max_tags_per_request: Option<Spanned<u64>>,
}

/// Days; see `config::Tombstones` for what it means.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct Tombstones {
    // Signed and spanned: a negative or absurd number is refused, naming its line.
    pub days: Spanned<i64>,
}

impl Default for Tombstones {
    fn default() -> Self {
        Tombstones {
            days: Spanned::new(0..0, 30),
        }
    }
}

/// `[stats]`; see `config::Stats` for what each means.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct Stats {
    pub enabled: bool,
    // Signed and spanned: a negative or absurd number is refused, naming its line.
    pub retention_days: Spanned<i64>,
    pub flush_interval_ms: Spanned<i64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            enabled: true,
            retention_days: Spanned::new(0..0, 400),
            flush_interval_ms: Spanned::new(0..0, 5_000),
        }
    }
}

/// `[hub]`; see `config::Hub` for what each means.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct Hub {
    pub enabled: bool,
    pub url: Option<Spanned<String>>,
    pub default_lease_seconds: Spanned<u64>,
    pub min_lease_seconds: Spanned<u64>,
    pub max_lease_seconds: Spanned<u64>,
    pub max_subscriptions_per_host: Spanned<u64>,
    pub max_pending: Spanned<u64>,
    pub max_pending_per_host: Spanned<u64>,
    pub allow_private_callbacks: bool,
    pub max_in_flight: Spanned<u64>,
    pub max_per_host: Spanned<u64>,
    pub first_retry_ms: Spanned<u64>,
    pub max_retry_ms: Spanned<u64>,
    pub attempts: Spanned<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        let n = |v| Spanned::new(0..0, v);
        Hub {
            enabled: true,
            url: None,
            default_lease_seconds: n(864_000),
            min_lease_seconds: n(3_600),
            max_lease_seconds: n(2_592_000),
            max_subscriptions_per_host: n(1_000),
            max_pending: n(10_000),
            max_pending_per_host: n(100),
            allow_private_callbacks: false,
            max_in_flight: n(64),
            max_per_host: n(4),
            first_retry_ms: n(10_000),
            max_retry_ms: n(3_600_000),
            attempts: n(32),
        }
    }
}
