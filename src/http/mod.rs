//! The HTTP edge: hyper's connections (`serve`), every request observed and the feeds' GETs
//! and HEADs answered directly (`observe`: the hot path, which axum's routing and layers
//! cost as much as the answer), and an axum router over [`App`] for the rest. Handlers are
//! thin: they turn a request into a [`FeedKey`], ask the app, and hand the document to
//! `representation`, the one place that sets the headers of a response (content negotiation,
//! conditional requests, caching, security). Every error becomes an answer in one place
//! ([`error::AppError`]).

mod admin;
mod client;
mod conditional;
mod error;
mod negotiate;
mod observe;
mod representation;
mod serve;
mod stats;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use chrono::Utc;
use tokio::net::TcpListener;

use crate::app::App;
use crate::feed::{FeedKey, Format};
use crate::stats::Poll;
use representation::{Policy, STALE_MAX_AGE, header_str, page_policy, respond};

pub use error::{ApiError, AppError};

/// Content type of the OPML list.
const OPML_TYPE: &str = "text/x-opml; charset=utf-8";

/// How long the site icon may be kept (a day).
const ICON_MAX_AGE: u32 = 86_400;

/// The service's routes: everything but the feeds' GET and HEAD, which the edge answers
/// itself ([`observe`]).
fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/feeds.opml", get(opml))
        .route("/favicon.ico", get(icon))
        .route(&app.settings.site.icon.path(), get(icon))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/feeds/{*path}", get(feed))
        .route(
            "/websub",
            axum::routing::post(websub).layer(axum::extract::DefaultBodyLimit::max(
                crate::hub::MAX_REQUEST_BYTES,
            )),
        )
        .merge(admin::routes(
            app.settings.admin_max_body_bytes,
            app.settings.admin_max_failed_auth_per_minute,
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
    let routes = router(app.clone());
    serve::run(listener, app, routes, limits, trusted, shutdown).await
}

/// The feed route for the router. No request reaches this handler today: the edge
/// ([`observe`]) answers every GET or HEAD under `/feeds/` whose path decodes, without the
/// router's matching, extractors and layers. The route stays so that what the edge leaves to
/// the router is answered as before: a path that is not UTF-8 once decoded (the extractor's
/// 400), another method (405 with `Allow`).
async fn feed(
    State(app): State<Arc<App>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, AppError> {
    let client = request
        .extensions()
        .get::<client::ClientAddr>()
        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| {
            c.0
        });
    feed_answer(
        &app,
        &path,
        query.as_deref(),
        request.method(),
        request.headers(),
        client,
    )
    .await
}

/// The answer to a request for the feed at `path` (below `/feeds/`, percent-decoded) with
/// `query`, from `client`.
async fn feed_answer(
    app: &App,
    path: &str,
    query: Option<&str>,
    method: &axum::http::Method,
    request: &axum::http::HeaderMap,
    client: std::net::IpAddr,
) -> Result<Response, AppError> {
    let is_get = method == axum::http::Method::GET;
    let settings = &app.settings;
    let mut key = FeedKey::parse(path, query, settings)?;
    // A feed URL opened in a browser shows the page for people; every feed client, and any
    // request without that explicit preference, gets the feed. The WeChat profile is for
    // bridges only: whatever they send, they get what they asked for.
    let negotiable = key.format.is_feed();
    if negotiable && negotiate::prefers_html(header_str(request, header::ACCEPT)) {
        key.format = Format::Html;
    }
    let served = app.feed(&key).await?;
    let now = Utc::now();
    let policy = Policy {
        now,
        content_type: key.format.content_type(),
        cache_tags: &settings.cache_tags,
        // An outdated copy stands in only until the store is back: others should not keep it.
        max_age: if served.is_stale() {
            STALE_MAX_AGE
        } else {
            key.max_age(settings, now)
        },
        // Nor keep serving it once it is past its age: it may hold what was since taken down.
        stale: if served.is_stale() {
            (0, 0)
        } else {
            key.stale_for(settings, now)
        },
        vary: if negotiable {
            "Accept, Accept-Encoding"
        } else {
            "Accept-Encoding"
        },
        page_policy: (key.format == Format::Html).then(|| page_policy(app)),
    };
    let mut response = respond(request, &served.entry().doc, policy);
    if served.is_stale() {
        representation::mark_stale(&mut response, served.entry().age());
    }
    app.record_poll(Poll {
        key: &key,
        is_get,
        status: response.status().as_u16(),
        bytes: axum::body::HttpBody::size_hint(response.body())
            .exact()
            .unwrap_or(0),
        client,
        user_agent: request
            .get(header::USER_AGENT)
            .map_or(&b""[..], |v| v.as_bytes()),
    });
    Ok(response)
}

async fn index(State(app): State<Arc<App>>, request: Request) -> Response {
    let policy = Policy {
        now: Utc::now(),
        content_type: Format::Html.content_type(),
        cache_tags: &app.settings.cache_tags,
        max_age: app.settings.caching.max_age.category,
        stale: (0, 0),
        vary: "Accept-Encoding",
        page_policy: Some(page_policy(&app)),
    };
    respond(request.headers(), &app.index, policy)
}

async fn opml(State(app): State<Arc<App>>, request: Request) -> Response {
    let policy = Policy {
        now: Utc::now(),
        content_type: OPML_TYPE,
        cache_tags: &app.settings.cache_tags,
        max_age: app.settings.caching.max_age.category,
        stale: (0, 0),
        vary: "Accept-Encoding",
        page_policy: None,
    };
    respond(request.headers(), &app.opml, policy)
}

/// The site icon, where browsers and feed readers look for it (`/favicon.ico`) and where the
/// RSS channel image names it, at a path with its type's extension.
async fn icon(State(app): State<Arc<App>>, request: Request) -> Response {
    let policy = Policy {
        now: Utc::now(),
        content_type: app.settings.site.icon.media_type(),
        cache_tags: &app.settings.cache_tags,
        // It changes only with the configuration, and a stale icon harms no one.
        max_age: ICON_MAX_AGE,
        stale: (0, 0),
        vary: "Accept-Encoding",
        page_policy: None,
    };
    respond(request.headers(), &app.icon, policy)
}

/// feedcast's WebSub hub: a subscription request, answered 202 and verified later.
async fn websub(State(app): State<Arc<App>>, body: bytes::Bytes) -> Result<Response, AppError> {
    app.websub_request(&body).await?;
    Ok(representation::plain(
        axum::http::StatusCode::ACCEPTED,
        "accepted: the callback will be asked to confirm\n".to_owned(),
    ))
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The Prometheus text exposition of every metric.
async fn metrics(State(app): State<Arc<App>>) -> Response {
    ::metrics::gauge!(crate::metrics::CACHE_BYTES).set(app.cache_bytes_now() as f64);
    ::metrics::counter!(crate::metrics::LOG_LINES_DROPPED).absolute(crate::logs::dropped());
    app.measure_queue().await;
    app.measure_stats().await;
    let body = crate::metrics::handle().map_or_else(String::new, |h| h.render());
    representation::text(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        body,
    )
}

/// Ready when the store answers within its query timeout and its last write did not fail: an
/// instance that cannot write cannot take an article down, though it still serves reads.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let not_ready = match app.ready().await {
        Err(cause) => {
            tracing::warn!(%cause, "not ready");
            "not ready: the article store is unavailable\n".to_owned()
        }
        Ok(()) => match app.store.health().write_failure() {
            Some(reason) => format!("not ready: the store cannot write: {reason}\n"),
            None => return representation::plain(StatusCode::OK, "ready\n"),
        },
    };
    representation::retry_after(
        representation::plain(StatusCode::SERVICE_UNAVAILABLE, not_ready),
        5,
    )
}
