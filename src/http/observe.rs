//! Around every request: a request id, the query-string bound (414), the request timeout (503),
//! one log line (id, method, path, status, bytes, latency) and the request metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The route kind a path belongs to, as metrics label it (a bounded set, unlike paths).
fn route_kind(path: &str) -> &'static str {
    match path {
        "/" => "index",
        "/feeds.opml" => "opml",
        "/healthz" | "/readyz" => "health",
        "/metrics" => "metrics",
        p if p.starts_with("/api/") => "admin",
        p if p.contains("/archive/") => "archive",
        p if p.starts_with("/feeds/") => "feed",
        _ => "other",
    }
}

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
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(
            || format!("{:x}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            str::to_owned,
        );
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let kind = route_kind(&path);

    let too_long = request
        .uri()
        .query()
        .is_some_and(|q| q.len() > limits.max_query_bytes);
    let mut response = if too_long {
        plain(StatusCode::URI_TOO_LONG, "query string too long\n")
    } else {
        match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                tracing::warn!(request_id = %id, %path, "request timed out");
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the request took too long; try again\n",
                )
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    let status = response.status().as_u16();
    let bytes = response_bytes(response.body());
    let latency = started.elapsed();
    ::metrics::counter!(metrics::REQUESTS, "route" => kind, "status" => status_label(status))
        .increment(1);
    ::metrics::counter!(metrics::RESPONSE_BYTES, "route" => kind).increment(bytes);
    ::metrics::histogram!(metrics::REQUEST_SECONDS, "route" => kind).record(latency.as_secs_f64());
    tracing::info!(
        request_id = %id,
        %method,
        path,
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

/// A status as a metric label, without allocating for the common ones.
fn status_label(status: u16) -> ::metrics::SharedString {
    match status {
        200 => "200".into(),
        304 => "304".into(),
        400 => "400".into(),
        404 => "404".into(),
        503 => "503".into(),
        other => other.to_string().into(),
    }
}
