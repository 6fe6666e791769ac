//! The metrics feedcast exposes at `/metrics`, in the Prometheus text format, through the
//! `metrics` facade and its Prometheus exporter. Every metric name is defined here, once.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by route kind and status.
pub const REQUESTS: &str = "feedcast_http_requests_total";
/// Response body bytes sent, by route kind.
pub const RESPONSE_BYTES: &str = "feedcast_http_response_bytes_total";
/// Request latency in seconds, by route kind.
pub const REQUEST_SECONDS: &str = "feedcast_http_request_duration_seconds";
/// Feed lookups answered from the cache with a current entry.
pub const CACHE_HITS: &str = "feedcast_cache_hits_total";
/// Feed lookups that built the feed.
pub const CACHE_MISSES: &str = "feedcast_cache_misses_total";
/// Feed lookups answered with an outdated stand-in or a copy that could not vouch for itself.
pub const CACHE_STALE: &str = "feedcast_cache_stale_total";
/// Bytes held by the feed cache.
pub const CACHE_BYTES: &str = "feedcast_cache_bytes";
/// Time to build a feed from the store (query and rendering), in seconds.
pub const BUILD_SECONDS: &str = "feedcast_feed_build_duration_seconds";
/// Time of one store operation, in seconds, by operation.
pub const STORE_SECONDS: &str = "feedcast_store_query_duration_seconds";
/// Outgoing requests, by kind (`websub`, `purge`) and outcome (`delivered`, `retried`,
/// `given_up`).
pub const OUTBOUND: &str = "feedcast_outbound_requests_total";
/// The hub's verifications of subscription requests, by outcome (`subscribed`,
/// `unsubscribed`, `refused`, `denied`), and the subscriptions of feeds removed for good whose
/// subscribers were told they ended (`ended_gone`).
pub const HUB_VERIFICATIONS: &str = "feedcast_hub_verifications_total";
/// The hub's deliveries that ended a subscription (`gone`); the others are counted in
/// [`OUTBOUND`] under kind `hub-deliver`.
pub const HUB_DELIVERIES: &str = "feedcast_hub_deliveries_total";
/// Time from a change to the request it called for being sent, in seconds, by kind.
pub const OUTBOUND_LATENCY: &str = "feedcast_outbound_latency_seconds";
/// Rounds of the outbound queue's dispatcher that panicked (a bug; the next round runs).
pub const OUTBOUND_ROUND_PANICS: &str = "feedcast_outbound_round_panics_total";
/// Requests queued (due, waiting to be retried, or in flight), by kind.
pub const OUTBOUND_QUEUED: &str = "feedcast_outbound_queued";
/// Active subscriptions of the hub, by feed kind.
pub const HUB_SUBSCRIPTIONS: &str = "feedcast_hub_subscriptions";
/// Cache tags a purger confirmed purged, by purger.
pub const PURGED_TAGS: &str = "feedcast_purged_tags_total";
/// Open connections, by edge (the thread per core that serves them, see `http`).
pub const EDGE_CONNECTIONS: &str = "feedcast_http_edge_connections";
/// Connections closed for a limit, by reason (`per_address`, `write_timeout`).
pub const CONNECTIONS_CLOSED: &str = "feedcast_http_connections_closed_total";
/// Stored articles left out of a feed because their id, title, url or publication time
/// cannot be fixed (rows written by something other than feedcast).
pub const STORED_ARTICLES_SKIPPED: &str = "feedcast_stored_articles_skipped_total";
/// Fields of stored articles left out because they cannot be fixed.
pub const STORED_FIELDS_DROPPED: &str = "feedcast_stored_article_fields_dropped_total";
/// Writes (upserts, imports, takedowns) the store failed.
pub const STORE_WRITE_FAILURES: &str = "feedcast_store_write_failures_total";
/// Log lines dropped because the log could not keep up (the `logs` module).
pub const LOG_LINES_DROPPED: &str = "feedcast_log_lines_dropped_total";
/// Subscribers of every feed by feed kind (`category`, `region`, `custom`) and source (each
/// known aggregator, `other-aggregator`, `direct`, `push`).
pub const SUBSCRIBERS: &str = "feedcast_subscribers";
/// Subscribers of the top feeds, by feed path; the rest summed as `feed="other"`.
pub const FEED_SUBSCRIBERS: &str = "feedcast_feed_subscribers";
/// Aggregator reports ignored as implausible (a count above a million, more feed ids or
/// aggregators for one feed than believable).
pub const STATS_SUSPECT_REPORTS: &str = "feedcast_stats_suspect_reports_total";
/// New (client, User-Agent) pairs not counted because the tally between two flushes was full.
pub const STATS_PAIRS_DROPPED: &str = "feedcast_stats_pairs_dropped_total";
/// Times the PostgreSQL change listener lost its connection.
pub const NOTIFY_DISCONNECTS: &str = "feedcast_notify_disconnects_total";

/// Latency buckets from 100 µs to 10 s: the hot path lives at the bottom, store outages at the top.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often the recorder's histograms are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds the recorder's histogram samples into their buckets every [`UPKEEP_INTERVAL`]. The
/// recorder keeps every sample until then (the latency of every request, 8 bytes each), and
/// without upkeep only a scrape of `/metrics` did it: a replica nobody scraped grew by the
/// megabyte every few seconds under load. A thread of its own, so that it runs whatever
/// runtime (or none) installed the recorder; it sleeps between rounds.
fn start_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("feedcast-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(e) = started {
        tracing::warn!(cause = %e, "metrics upkeep not started: histograms drain only when scraped");
    }
}

/// Installs the process-wide recorder on first use and returns the handle that renders it;
/// `None` if another recorder was installed first (metrics then go there).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    start_upkeep(handle.clone());
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(cause = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}
