//! Every request's way in: its client address, a request id, the Host check (400), the
//! query-string bound (414), the request timeout (503), the way to its answer (a feed's GET
//! or HEAD straight to the feed handler on the edge's thread, the rest through the router in
//! a task of the main runtime), the headers every response carries, one log line (id,
//! client, method, path, status, bytes, latency) and the request metrics.
//! Requests hyper refuses before routing, and connections closed for a limit, are logged and
//! counted here too, so every refusal shows in the same place.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::Poll;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;

use super::client::{ClientAddr, client_address};
use super::error::AppError;
use super::representation::plain;
use crate::app::App;
use crate::logs::RequestLine;
use crate::metrics;
use crate::task::AbortOnDrop;

/// Header carrying the request id, taken from the client (a load balancer's) when present.
/// A name made once rather than a string: looking a header up by a string parses the name on
/// every request.
pub(super) static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
fn host_problem(version: Version, headers: &HeaderMap) -> Option<&'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::HTTP_11 => {
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

/// What one connection's requests are answered with.
pub(super) struct Edge {
    /// The service, for the feeds and the settings.
    pub app: Arc<App>,
    /// Every route but the feeds' GET and HEAD.
    pub router: Router,
    /// The runtime the service's own work runs on (see [`on_main`]).
    pub main: tokio::runtime::Handle,
    /// The connection's other end (a client, or a trusted proxy).
    pub peer: SocketAddr,
}

pin_project_lite::pin_project! {
    /// A request's work, polled on the edge's thread but, like its drop, in the context of
    /// the main runtime: whatever it creates (a connection to the store, a timer, a task, CPU
    /// work on the blocking pool, the return of a connection to the pool when a client leaves
    /// mid-build) belongs to the main runtime, which outlives the edges and bounds the
    /// blocking pool for all of them. The async part of a cold build (its store reads,
    /// decoding their rows) is polled on the edge; rendering and compressing run on the
    /// blocking pool. A cached feed creates nothing.
    struct OnMain<'m, F> {
        main: &'m tokio::runtime::Handle,
        #[pin]
        work: Option<F>,
    }

    impl<'m, F> PinnedDrop for OnMain<'m, F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // Dropped already if it finished: then entering would only cost the handle's count.
            if this.work.is_some() {
                let _main = this.main.enter();
                this.work.set(None);
            }
        }
    }
}

impl<F: Future> Future for OnMain<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let _main = this.main.enter();
        let Some(work) = this.work.as_mut().as_pin_mut() else {
            // Polled again after it was ready, which a `Future`'s contract rules out.
            return Poll::Pending;
        };
        let answer = work.poll(cx);
        if answer.is_ready() {
            // Its state goes as it was made: in the main runtime's context.
            this.work.set(None);
        }
        answer
    }
}

/// `work`, run in the main runtime's context (see [`OnMain`]).
fn on_main<F: Future>(main: &tokio::runtime::Handle, work: F) -> OnMain<'_, F> {
    OnMain {
        main,
        work: Some(work),
    }
}

/// Answers one request: checks it, answers it (a feed's GET or HEAD directly, the rest
/// through the router) within the request timeout, adds the headers every response carries,
/// logs it and counts it.
pub(super) async fn answer(edge: &Edge, request: hyper::Request<Incoming>) -> Response {
    let started = Instant::now();
    let app = &edge.app;
    let limits = app.settings.http;
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.to_str().is_ok())
        .cloned()
        .unwrap_or_else(next_id);
    let client = client_address(
        edge.peer.ip(),
        request.headers(),
        &app.settings.trusted_proxies,
    );
    // Cheap copies (shared bytes) for the log line, taken before the request moves on.
    let method = request.method().clone();
    let uri = request.uri().clone();
    let kind = route_kind(uri.path());

    let too_long = uri
        .query()
        .is_some_and(|q| q.len() > limits.max_query_bytes);
    let mut response = if let Some(problem) = host_problem(request.version(), request.headers()) {
        plain(StatusCode::BAD_REQUEST, problem)
    } else if too_long {
        plain(StatusCode::URI_TOO_LONG, "query string too long\n")
    } else {
        let mut work = std::pin::pin!(on_main(&edge.main, dispatch(edge, client, request)));
        // A cached feed or a 304 is answered at the first poll: the request timeout's timer is
        // set only for an answer that has to wait (a build, the store), not for every hit.
        match std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await {
            Poll::Ready(response) => response,
            Poll::Pending => {
                match tokio::time::timeout_at((started + limits.request_timeout).into(), work).await
                {
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
            }
        }
    };
    super::representation::every_response(response.headers_mut(), id.clone());
    let status = response.status().as_u16();
    // A HEAD's body is gone by now: it counts the bytes its GET would send, the length it
    // tells (as the log and metrics always have).
    let bytes = if method == Method::HEAD {
        told_length(response.headers())
    } else {
        response_bytes(response.body())
    };
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

/// Sends a request to what answers it. A feed's GET or HEAD goes straight to the feed
/// handler: matching the routing table, running its extractors and layers, and boxing the
/// request's body cost a cached feed as much as answering it (callgrind; docs/BENCHMARKS.md).
/// Everything else goes to the router, with the client's address in its extensions.
async fn dispatch(edge: &Edge, client: IpAddr, request: hyper::Request<Incoming>) -> Response {
    if let Some(path) = feed_path(request.method(), request.uri().path()) {
        let mut response = super::feed_answer(
            &edge.app,
            &path,
            request.uri().query(),
            request.method(),
            request.headers(),
            client,
        )
        .await
        .into_response();
        if request.method() == Method::HEAD {
            without_body(&mut response);
        }
        return response;
    }
    let mut request = request.map(Body::new);
    request.extensions_mut().insert(ClientAddr(client));
    let mut router = edge.router.clone();
    // A task of the main runtime, not this edge's: a handler that takes its time (an import,
    // a report) holds up no other connection of this edge, and runs on whichever core is free.
    let handled = AbortOnDrop(edge.main.spawn(async move {
        let Ok(response) = tower::Service::call(&mut router, request).await;
        response
    }));
    match handled.await {
        Ok(response) => response,
        // A panic (a bug): a 500, where it used to drop the connection with no answer.
        Err(e) => AppError::Internal(format!("a handler failed: {e}")).into_response(),
    }
}

/// The feed path of a GET or HEAD below `/feeds/`, percent-decoded as the router's feed route
/// decodes it; `None` for anything the router is to answer (another method or path, a path
/// that does not decode to UTF-8, which the route refuses in its own words).
fn feed_path<'a>(method: &Method, path: &'a str) -> Option<Cow<'a, str>> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let rest = path
        .strip_prefix("/feeds/")
        .filter(|rest| !rest.is_empty())?;
    percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .ok()
}

/// A HEAD's answer: the GET's headers with its length, and no body. A 304 gets no length:
/// one would have to be the 200's (RFC 9110 §8.6), never the 0 of its own empty body.
fn without_body(response: &mut Response) {
    if response.status() != StatusCode::NOT_MODIFIED
        && !response.headers().contains_key(header::CONTENT_LENGTH)
    {
        if let Some(length) = response_length(response.body()) {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
    }
    *response.body_mut() = Body::empty();
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
    response_length(body).unwrap_or(0)
}

/// The length a response's `Content-Length` tells, 0 when it tells none.
fn told_length(headers: &HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The length of a body, when it is known before it is sent (every answer of feedcast's).
fn response_length(body: &Body) -> Option<u64> {
    body.size_hint().exact()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_tell_the_feed_requests_the_edge_answers_from_those_the_router_does() {
        let cases: [(Method, &str, Option<&str>); 9] = [
            (
                Method::GET,
                "/feeds/category/parks.rss",
                Some("category/parks.rss"),
            ),
            (
                Method::HEAD,
                "/feeds/category/parks.rss",
                Some("category/parks.rss"),
            ),
            // Decoded as the route's extractor decodes: %2E is a dot, %2F a slash in a name.
            (
                Method::GET,
                "/feeds/category/parks%2Erss",
                Some("category/parks.rss"),
            ),
            (Method::GET, "/feeds/a%2Fb.rss", Some("a/b.rss")),
            (Method::GET, "/feeds//x", Some("/x")),
            (Method::GET, "/feeds/%E6%B0%A2.rss", Some("氢.rss")),
            // Left to the router: not UTF-8 once decoded, no feed path, another method.
            (Method::GET, "/feeds/%FF.rss", None),
            (Method::GET, "/feeds/", None),
            (Method::POST, "/feeds/category/parks.rss", None),
        ];
        for (method, path, expected) in cases {
            assert_eq!(
                feed_path(&method, path).as_deref(),
                expected,
                "{method} {path}"
            );
        }
        assert_eq!(feed_path(&Method::GET, "/feeds"), None);
        assert_eq!(feed_path(&Method::GET, "/feeds.opml"), None);
    }

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
