//! feedcast turns a news portal's article store into syndication feeds.
//!
//! The portal publishes its own reporting and reprints reports first published by regional media;
//! feedcast serves one feed per category, one per region (a region's feed rolls up every region
//! below it) and custom combinations declared in `feeds.toml`, as RSS 2.0, Atom 1.0 and JSON Feed 1.1, always
//! naming and linking the original publisher of a reprint.
//!
//! # Layout
//!
//! Data flows one way: **config → store → assembly → render → cache → http**. Each module
//! below may name (`crate::…`) only modules listed before it, and the constants of the crate
//! root; `tests/layers.rs` holds the code to that. Modules only the service itself uses
//! (`cache`, `hub`, `outbound`, `purge`, `sanitize`, `shard`, `task`, `websub`) are private.
//!
//! - [`metrics`]: the Prometheus metrics, every name defined once (any layer may count).
//! - [`shard`]: which shard of a per-thread structure (a tally, a log buffer) a thread uses,
//!   and how many cores there are to make shards and threads for.
//! - [`task`]: spawned tasks that end when their handle is dropped.
//! - [`logs`]: where log lines go: writer threads behind bounded buffers, so no request
//!   waits on the log; lines it had to drop are counted.
//! - [`model`]: the neutral types: [`model::Article`] (validated, sanitized), the URL-safe
//!   names, the feed-index buckets, and the [`model::Catalog`] of categories, the region tree
//!   and custom feeds.
//! - [`sanitize`]: the one place that cleans text and HTML.
//! - [`config`]: `feeds.toml` parsed and validated once into [`config::Settings`], with
//!   `file:line:column` errors.
//! - [`store`]: the article store behind one interface, on SQLite or PostgreSQL; rows in and
//!   out ([`store::StoredArticle`]), no sanitizing.
//! - [`import`]: the article intake (strict for what arrives, lenient for rows read back) and
//!   batches: NDJSON or JSON arrays in, every problem counted, the first listed; the streamed
//!   import of a file into the store.
//! - [`feed`]: [`feed::FeedKey`] names a feed, its format and its parameters; [`feed::select`]
//!   and [`feed::finish`] assemble any feed the same way.
//! - [`render`]: one module per format (RSS, Atom, JSON Feed, an HTML page, the WeChat-ready
//!   profile for bridges), each turning a [`feed::Feed`] into bytes; also the index page and
//!   the OPML list.
//! - [`cache`]: rendered bytes, pre-compressed, with their validators, in a byte-bounded moka
//!   cache loaded once per key.
//! - [`outbound`]: one durable, bounded, coalescing queue for every request feedcast sends,
//!   fed from the store's change log and shared by every replica.
//! - [`websub`]: the publish pings that tell WebSub hubs which feeds changed.
//! - [`purge`]: the purges that tell CDNs which cache tags changed.
//! - [`hub`]: feedcast's own WebSub hub: subscriptions verified and kept in the store, and
//!   each changed document pushed to its subscribers, signed.
//! - [`stats`]: subscriber statistics: polls tallied off the hot path, flushed to the store
//!   in batches, and read back as a report (JSON, a table, a page for editors).
//! - [`app`]: the service core that wires the stages together (read a feed, write articles).
//! - [`http`]: hyper under feedcast's limits, the feeds answered at its edge and the rest by
//!   an axum router; handlers are thin and errors become answers in one place.
//! - [`cli`]: the command line (`serve`, `import`, `check`, `render`).

pub mod app;
mod cache;
pub mod cli;
pub mod config;
pub mod feed;
pub mod http;
mod hub;
pub mod import;
pub mod logs;
pub mod metrics;
pub mod model;
mod outbound;
mod purge;
pub mod render;
mod sanitize;
mod shard;
pub mod stats;
pub mod store;
mod task;
mod websub;

/// The generator named in every feed, and the user agent of every request feedcast sends.
pub const GENERATOR: &str = concat!("feedcast ", env!("CARGO_PKG_VERSION"));

/// Where feedcast's README is published: what documents point to for feedcast's own
/// extensions (JSON Feed's `_deleted`, see its "Takedowns" section).
pub const README_URL: &str = "https://github.com/feedcast/feedcast#takedowns";

/// The demo articles shipped with the binary, so `serve --demo` works from any directory.
pub const DEMO_ARTICLES: &str = include_str!("../examples/articles.ndjson");
