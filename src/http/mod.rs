//! The HTTP edge: an axum router over [`App`]. Handlers are thin: they turn a request into a
//! [`FeedKey`], ask the app, and turn the answer into a response; every error becomes an
//! answer in one place ([`error::AppError`]).

mod error;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::app::App;
use crate::feed::{FeedId, FeedKey, Format};
use crate::render::self_url;

pub use error::AppError;

/// The service's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/feeds/{*path}", get(feed))
        .with_state(app)
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn feed(
    State(app): State<Arc<App>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let key = FeedKey::parse(&path, query.as_deref(), &app.settings)?;
    let cached = app.feed(&key).await?;
    let rendered = &cached.rendered;
    let last_modified = rendered
        .last_modified
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let mut response = rendered.body.clone().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(key.format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&last_modified) {
        headers.insert(header::LAST_MODIFIED, v);
    }
    Ok(response)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// A plain list of every feed URL, so a newcomer finds them.
async fn index(State(app): State<Arc<App>>) -> Response {
    let settings = &app.settings;
    let mut text = format!("{}: feeds\n\n", settings.site.title);
    for feed in FeedId::all(&settings.catalog) {
        for format in Format::ALL {
            let key = FeedKey {
                feed: feed.clone(),
                format,
                limit: settings.limits.default_items,
            };
            text.push_str(&self_url(settings, &key));
            text.push('\n');
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}
