//! Around every request: a request id, the query-string bound (414), the request timeout (503),
//! one log line (id, method, path, status, bytes, latency) and the request metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::metrics;

/// Header carrying the request id, taken from the client (a load balancer's) when present.
const REQUEST_ID: &str = "x-request-id";

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The route kinds, as metrics label them (a bounded set, unlike paths).
const KINDS: [&str; 8] = [
    "index", "opml", "health", "metrics", "admin", "archive", "feed", "other",
];

/// The index in [`KINDS`] of the route kind a path belongs to.
fn route_kind(path: &str) -> usize {
    match path {
        "/" => 0,
        "/feeds.opml" => 1,
        "/healthz" | "/readyz" => 2,
        "/metrics" => 3,
        p if p.starts_with("/api/") => 4,
        p if p.contains("/archive/") => 5,
        p if p.starts_with("/feeds/") => 6,
        _ => 7,
    }
}

/// One route kind's metric handles, looked up once: finding a labelled metric in the
/// registry on every request cost more than answering a cached feed.
struct RouteMetrics {
    ok: ::metrics::Counter,
    not_modified: ::metrics::Counter,
    not_found: ::metrics::Counter,
    bytes: ::metrics::Counter,
    seconds: ::metrics::Histogram,
}

/// Registered on the first request, after the app installed the recorder.
static ROUTES: LazyLock<[RouteMetrics; 8]> = LazyLock::new(|| {
    KINDS.map(|kind| RouteMetrics {
        ok: ::metrics::counter!(metrics::REQUESTS, "route" => kind, "status" => "200"),
        not_modified: ::metrics::counter!(metrics::REQUESTS, "route" => kind, "status" => "304"),
        not_found: ::metrics::counter!(metrics::REQUESTS, "route" => kind, "status" => "404"),
        bytes: ::metrics::counter!(metrics::RESPONSE_BYTES, "route" => kind),
        seconds: ::metrics::histogram!(metrics::REQUEST_SECONDS, "route" => kind),
    })
});

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [("content-type", "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The middleware.
pub(super) async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let limits = app.settings.http;
    let id = request
        .headers()
        .get(REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.to_str().is_ok())
        .cloned()
        .unwrap_or_else(|| HeaderValue::from(NEXT_ID.fetch_add(1, Ordering::Relaxed)));
    // Cheap copies (shared bytes) for the log line, taken before the request moves on.
    let method = request.method().clone();
    let uri = request.uri().clone();
    let kind = route_kind(uri.path());

    let too_long = uri
        .query()
        .is_some_and(|q| q.len() > limits.max_query_bytes);
    let mut response = if too_long {
        plain(StatusCode::URI_TOO_LONG, "query string too long\n")
    } else {
        match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                tracing::warn!(
                    request_id = id.to_str().unwrap_or_default(),
                    path = uri.path(),
                    "request timed out"
                );
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the request took too long; try again\n",
                )
            }
        }
    };
    response.headers_mut().insert(REQUEST_ID, id.clone());
    let status = response.status().as_u16();
    let bytes = response_bytes(response.body());
    let latency = started.elapsed();
    let route = &ROUTES[kind];
    match status {
        200 => route.ok.increment(1),
        304 => route.not_modified.increment(1),
        // Scanners probe for what is not there: as cheap as a hit.
        404 => route.not_found.increment(1),
        other => ::metrics::counter!(metrics::REQUESTS, "route" => KINDS[kind], "status" => other.to_string())
            .increment(1),
    }
    route.bytes.increment(bytes);
    route.seconds.record(latency.as_secs_f64());
    tracing::info!(
        request_id = id.to_str().unwrap_or_default(),
        %method,
        path = uri.path(),
        status,
        bytes,
        latency_us = latency.as_micros() as u64,
        "request"
    );
    response
}

fn response_bytes(body: &Body) -> u64 {
    body.size_hint().exact().unwrap_or(0)
}
