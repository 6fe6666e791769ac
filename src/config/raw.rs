//! The shape of `feeds.toml` as serde reads it, before validation. Values whose errors must
//! point at a line are kept [`Spanned`].

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Config {
    pub site: Site,
    pub limits: Option<Spanned<Limits>>,
    pub cache: Option<Cache>,
    pub caching: Option<Caching>,
    pub websub: Option<WebSub>,
    pub admin: Option<Admin>,
    pub store: Option<Store>,
    pub sanitize: Option<Sanitize>,
    pub http: Option<Http>,
    pub outbound: Option<Outbound>,
    #[serde(default)]
    pub categories: Vec<Category>,
    #[serde(default)]
    pub regions: Vec<Region>,
    #[serde(default)]
    pub feeds: Vec<Feed>,
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
    pub id_prefix: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Limits {
    #[serde(default = "default_items")]
    pub default_items: u32,
    #[serde(default = "max_items")]
    pub max_items: u32,
}

fn default_items() -> u32 {
    20
}

fn max_items() -> u32 {
    100
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Cache {
    pub max_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Category {
    pub slug: Spanned<String>,
    pub name: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Region {
    pub code: Spanned<String>,
    pub name: Spanned<String>,
    pub parent: Option<Spanned<String>>,
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
}

/// Seconds; see `config::Caching` for what each means.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Caching {
    #[serde(default = "feed_max_age")]
    pub category: u32,
    #[serde(default = "feed_max_age")]
    pub region: u32,
    #[serde(default = "feed_max_age")]
    pub custom: u32,
    #[serde(default = "archive_max_age")]
    pub archive: u32,
}

pub(super) fn feed_max_age() -> u32 {
    300
}

pub(super) fn archive_max_age() -> u32 {
    86_400
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WebSub {
    #[serde(default)]
    pub hubs: Vec<Spanned<String>>,
    #[serde(default = "websub_attempts")]
    pub attempts: u32,
    #[serde(default = "websub_first_retry_ms")]
    pub first_retry_ms: u64,
}

pub(super) fn websub_attempts() -> u32 {
    5
}

pub(super) fn websub_first_retry_ms() -> u64 {
    1000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Admin {
    pub max_body_bytes: Option<usize>,
    pub max_failed_auth_per_minute: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Store {
    pub query_timeout_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sanitize {
    #[serde(default)]
    pub iframe_hosts: Vec<Spanned<String>>,
}

/// Counts; see `config::Outbound` for what each means.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Outbound {
    pub max_in_flight: Option<usize>,
    pub max_per_host: Option<usize>,
}

/// Milliseconds and counts; see `config::HttpLimits` for what each means.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Http {
    pub header_read_timeout_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub shutdown_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_query_bytes: Option<usize>,
    pub write_timeout_ms: Option<u64>,
    pub max_connections_per_address: Option<usize>,
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
}
