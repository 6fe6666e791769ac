//! Around every request: its client address, a request id, the Host check (400), the
//! query-string bound (414), the request timeout (503), the headers every response carries,
//! one log line (id, client, method, path, status, bytes, latency) and the request metrics.
//! Requests hyper refuses before routing, and connections closed for a limit, are logged and
//! counted here too, so every refusal shows in the same place.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::Response;

use super::client::{ClientAddr, client_address};
use super::representation::plain;
use crate::app::App;
use crate::logs::RequestLine;
use crate::metrics;

/// Header carrying the request id, taken from the client (a load balancer's) when present.
pub(super) const REQUEST_ID: &str = "x-request-id";

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

/// Why a request's `Host` is not acceptable (RFC 9112 §3.2: an HTTP/1.1 request has exactly
/// one, and it is a host with an optional port), if it is not.
fn host_problem(request: &Request) -> Option<&'static str> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if request.version() == Version::HTTP_11 => {
            Some("bad request: an HTTP/1.1 request needs a Host header\n")
        }
        (None, _) => None,
        (Some(_), Some(_)) => Some("bad request: more than one Host header\n"),
        (Some(host), None) => {
            let valid = plain_host(host.as_bytes()) || host.to_str().is_ok_and(authority_host);
            (!valid).then_some("bad request: the Host header is not a host name\n")
        }
    }
}

/// Whether `h` is a host and optional port as an authority (RFC 3986) writes them.
fn authority_host(h: &str) -> bool {
    // An authority may hold userinfo and sub-delims; a Host holds neither.
    let forbidden = ['@', ',', ';', '!', '$', '&', '\'', '(', ')', '*', '+', '='];
    if h.is_empty() || h.contains(forbidden) {
        return false;
    }
    // A port, if any, follows the last `:` after an IPv6 literal's `]`.
    let wants_port = h.rsplit_once(']').map_or(h, |(_, rest)| rest).contains(':');
    h.parse::<axum::http::uri::Authority>()
        .is_ok_and(|a| !wants_port || a.port_u16().is_some())
}

/// Whether `host` is a plain DNS name or IPv4 address, with or without a port: what nearly
/// every request carries, told valid without parsing it as an authority (which cost a 304 more
/// than its routing did).
fn plain_host(host: &[u8]) -> bool {
    let (name, port) = match host.iter().rposition(|&b| b == b':') {
        Some(colon) => (&host[..colon], Some(&host[colon + 1..])),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(p).is_ok_and(|p| p.parse::<u16>().is_ok())
    });
    port_ok
        && !name.is_empty()
        && name.len() <= 253
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// A new request id.
fn next_id() -> HeaderValue {
    HeaderValue::from(NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// The middleware.
pub(super) async fn observe(
    State(app): State<Arc<App>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let limits = app.settings.http;
    let id = request
        .headers()
        .get(REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.to_str().is_ok())
        .cloned()
        .unwrap_or_else(next_id);
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let client = client_address(peer, request.headers(), &app.settings.trusted_proxies);
    request.extensions_mut().insert(ClientAddr(client));
    // Cheap copies (shared bytes) for the log line, taken before the request moves on.
    let method = request.method().clone();
    let uri = request.uri().clone();
    let kind = route_kind(uri.path());

    let too_long = uri
        .query()
        .is_some_and(|q| q.len() > limits.max_query_bytes);
    let mut response = if let Some(problem) = host_problem(&request) {
        plain(StatusCode::BAD_REQUEST, problem)
    } else if too_long {
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
    super::representation::every_response(response.headers_mut(), id.clone());
    let status = response.status().as_u16();
    let bytes = response_bytes(response.body());
    let latency = started.elapsed();
    count(kind, status, bytes, latency);
    crate::logs::request(&RequestLine {
        request_id: id.to_str().unwrap_or_default(),
        client,
        method: method.as_str(),
        path: uri.path(),
        status,
        bytes,
        latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
    });
    response
}

/// Counts an answered request in the metrics of its route kind.
fn count(kind: usize, status: u16, bytes: u64, latency: std::time::Duration) {
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
}

/// A request hyper refused before it reached the router (it could not be parsed, or its head
/// was too large): logged and counted like any other, under the route kind `other`, since its
/// path is not known.
pub(super) fn refused_by_hyper(client: IpAddr, status: u16) {
    count(KINDS.len() - 1, status, 0, std::time::Duration::ZERO);
    crate::logs::request(&RequestLine {
        request_id: next_id().to_str().unwrap_or_default(),
        client,
        method: "-",
        path: "-",
        status,
        bytes: 0,
        latency_us: 0,
    });
}

/// A connection closed for a limit (`per_address`: its address held too many already;
/// `write_timeout`: it stopped reading what it asked for).
pub(super) fn connection_refused(client: IpAddr, reason: &'static str) {
    ::metrics::counter!(metrics::CONNECTIONS_CLOSED, "reason" => reason).increment(1);
    tracing::info!(%client, reason, "connection closed");
}

fn response_bytes(body: &Body) -> u64 {
    body.size_hint().exact().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_host_is_one_an_authority_takes_and_anything_else_is_left_to_it() {
        let plain = [
            "example.com",
            "127.0.0.1:8080",
            "news.example.org:443",
            "localhost",
            "a-b.c:0",
            "xn--fiqs8s.cn:65535",
        ];
        for host in plain {
            assert!(plain_host(host.as_bytes()), "{host}");
            assert!(authority_host(host), "{host}");
        }
        let not_plain = [
            "",
            "host:",
            "host:65536",
            "host:123456",
            "host:80a",
            "[::1]:8080",
            "user@host",
            "a b",
            "例子.中国",
            ":80",
        ];
        for host in not_plain {
            assert!(!plain_host(host.as_bytes()), "{host}");
        }
        assert!(authority_host("[::1]:8080"));
        for bad in ["", "host:", "host:65536", "user@host", "a b"] {
            assert!(!authority_host(bad), "{bad}");
        }
    }
}
