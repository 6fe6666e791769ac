//! The HTTP edge: an axum router over [`App`]. Handlers are thin: they turn a request into a
//! [`FeedKey`], ask the app, and hand the document to `respond`, the one place that applies
//! content negotiation, conditional requests and caching headers. Every error becomes an answer
//! in one place ([`error::AppError`]).

mod admin;
mod client;
mod conditional;
mod error;
mod negotiate;
mod observe;
mod serve;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use tokio::net::TcpListener;

use crate::app::App;
use crate::cache::Encoded;
use crate::feed::{FeedKey, Format};

pub use error::{ApiError, AppError};

/// `max-age` of a stale stand-in: others should come back soon for the real thing.
const STALE_MAX_AGE: u32 = 5;

/// Content type of the OPML list.
const OPML_TYPE: &str = "text/x-opml; charset=utf-8";

/// The service's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/feeds.opml", get(opml))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/feeds/{*path}", get(feed))
        .merge(admin::routes(
            app.settings.admin_max_body_bytes,
            app.settings.admin_max_failed_auth_per_minute,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            observe::observe,
        ))
        .with_state(app)
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests finish
/// within the configured bound.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = app.settings.http;
    let trusted = app.settings.trusted_proxies.clone();
    serve::run(listener, router(app), limits, trusted, shutdown).await
}

/// How a document is to be sent.
struct Policy {
    content_type: &'static str,
    max_age: u32,
    /// Request headers the choice of representation depends on.
    vary: &'static str,
    /// For a page for people (HTML), its Content-Security-Policy.
    page_policy: Option<HeaderValue>,
}

/// The Content-Security-Policy header of `app`'s pages. The policy is built from validated
/// configuration (host names), so it is always a valid header value; were it not, the
/// strictest policy stands in.
fn page_policy(app: &App) -> HeaderValue {
    HeaderValue::from_str(&app.page_policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Sends `doc` in the encoding the client accepts, or `304 Not Modified` when the client's
/// copy is current. Both carry the same validators and caching headers.
fn respond(request: &HeaderMap, doc: &Encoded, policy: Policy) -> Response {
    let encoding = negotiate::encoding(header_str(request, header::ACCEPT_ENCODING));
    let (body, etag) = doc.variant(encoding);
    let fresh = conditional::not_modified(
        header_str(request, header::IF_NONE_MATCH),
        header_str(request, header::IF_MODIFIED_SINCE),
        etag.to_str().unwrap_or_default(),
        doc.last_modified,
    );
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(body.clone()))
    };
    // Everything but Cache-Control was formatted when the document entered the cache.
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.clone());
    if let Some(modified) = &doc.last_modified_header {
        headers.insert(header::LAST_MODIFIED, modified.clone());
    }
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={}", policy.max_age)) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    headers.insert(header::VARY, HeaderValue::from_static(policy.vary));
    if let Some(link) = &doc.link_header {
        headers.insert(header::LINK, link.clone());
    }
    if let Some(page_policy) = policy.page_policy {
        headers.insert(header::CONTENT_SECURITY_POLICY, page_policy);
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        );
    }
    if !fresh {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(policy.content_type),
        );
        if let Some(token) = encoding.token() {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
        }
    }
    response
}

async fn feed(
    State(app): State<Arc<App>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    // The request itself rather than a copy of its headers (the HeaderMap extractor clones).
    request: Request,
) -> Result<Response, AppError> {
    let request = request.headers();
    let settings = &app.settings;
    let mut key = FeedKey::parse(&path, query.as_deref(), settings)?;
    // A feed URL opened in a browser shows the page for people; every feed client, and any
    // request without that explicit preference, gets the feed.
    let negotiable = key.format != Format::Html;
    if negotiable && negotiate::prefers_html(header_str(request, header::ACCEPT), key.format) {
        key.format = Format::Html;
    }
    let served = app.feed(&key).await?;
    let policy = Policy {
        content_type: key.format.content_type(),
        // An outdated copy stands in only until the store is back: others should not keep it.
        max_age: if served.is_stale() {
            STALE_MAX_AGE
        } else {
            key.max_age(settings, Utc::now())
        },
        vary: if negotiable {
            "Accept, Accept-Encoding"
        } else {
            "Accept-Encoding"
        },
        page_policy: (key.format == Format::Html).then(|| page_policy(&app)),
    };
    let mut response = respond(request, &served.entry().doc, policy);
    if served.is_stale() {
        let headers = response.headers_mut();
        headers.insert(
            header::AGE,
            HeaderValue::from(served.entry().age().as_secs()),
        );
        headers.insert(
            header::WARNING,
            HeaderValue::from_static("110 feedcast \"Response is Stale\""),
        );
    }
    Ok(response)
}

async fn index(State(app): State<Arc<App>>, request: Request) -> Response {
    let policy = Policy {
        content_type: Format::Html.content_type(),
        max_age: app.settings.caching.category,
        vary: "Accept-Encoding",
        page_policy: Some(page_policy(&app)),
    };
    respond(request.headers(), &app.index, policy)
}

async fn opml(State(app): State<Arc<App>>, request: Request) -> Response {
    let policy = Policy {
        content_type: OPML_TYPE,
        max_age: app.settings.caching.category,
        vary: "Accept-Encoding",
        page_policy: None,
    };
    respond(request.headers(), &app.opml, policy)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The Prometheus text exposition of every metric.
async fn metrics(State(app): State<Arc<App>>) -> Response {
    ::metrics::gauge!(crate::metrics::CACHE_BYTES).set(app.cache_bytes_now() as f64);
    let body = crate::metrics::handle().map_or_else(String::new, |h| h.render());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Ready when the store answers within its query timeout and its last write did not fail: an
/// instance that cannot write cannot take an article down, though it still serves reads.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let not_ready = match app.ready().await {
        Err(cause) => {
            tracing::warn!(%cause, "not ready");
            "not ready: the article store is unavailable\n".to_owned()
        }
        Ok(()) => match app.store.write_health().failure() {
            Some(reason) => format!("not ready: the store cannot write: {reason}\n"),
            None => return "ready\n".into_response(),
        },
    };
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, not_ready).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}
