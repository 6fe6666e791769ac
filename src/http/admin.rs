//! The admin API: publish, correct and take down articles.
//!
//! Off (404) unless a token is configured; then every request needs it as a bearer token, and
//! a client address that fails to give it `admin.max_failed_auth_per_minute` times gets 429
//! for the rest of that minute. Bodies are bounded (413, before any of the body is read when
//! its length is declared), validated whole before anything is stored (422 listing the first
//! problems by field, and by line or item for a batch, with their count), and answers are JSON.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::{post, put};
use serde_json::json;

use super::client::{ClientAddr, limit_key};
use super::error::ApiError;
use crate::app::App;
use crate::import;
use crate::model::ArticleId;

/// The admin routes, under `/api`.
pub(super) fn routes(max_body_bytes: usize, max_failed_auth_per_minute: u32) -> Router<Arc<App>> {
    Router::new()
        .route("/api/articles", post(batch))
        .route("/api/articles/{id}", put(upsert).delete(take_down))
        .route("/api/stats", axum::routing::get(super::stats::report))
        .route("/api/stats/flush", post(super::stats::flush))
        .route("/admin/stats", axum::routing::get(super::stats::page))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(Arc::new(AuthLimiter::new(
            max_failed_auth_per_minute,
        ))))
}

/// Client addresses the failed-authentication limiter remembers; past that the least recently
/// seen are forgotten, so a flood of addresses costs bounded memory.
const TRACKED_ADDRESSES: u64 = 10_000;

/// The window failed authentications are counted in.
const AUTH_WINDOW: Duration = Duration::from_secs(60);

/// Failed authentications of one client address in its current window.
struct Failures {
    since: Instant,
    count: AtomicU32,
}

/// Counts failed authentications per client address and minute, and says when an address has
/// had its share: a token cannot be guessed faster than that from one address.
struct AuthLimiter {
    failures: moka::future::Cache<IpAddr, Arc<Failures>>,
    max_per_minute: u32,
}

impl AuthLimiter {
    fn new(max_per_minute: u32) -> Self {
        AuthLimiter {
            failures: moka::future::Cache::builder()
                .max_capacity(TRACKED_ADDRESSES)
                // The window starts at an address's first failure and ends a minute later.
                .time_to_live(AUTH_WINDOW)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build(),
            max_per_minute,
        }
    }

    /// How long `client` must wait, if it has failed its share this minute.
    async fn wait(&self, client: IpAddr) -> Option<Duration> {
        let failures = self.failures.get(&client).await?;
        (failures.count.load(Ordering::Relaxed) >= self.max_per_minute)
            .then(|| AUTH_WINDOW.saturating_sub(failures.since.elapsed()))
    }

    async fn failed(&self, client: IpAddr) {
        let failures = self
            .failures
            .entry(client)
            .or_insert_with(async {
                Arc::new(Failures {
                    since: Instant::now(),
                    count: AtomicU32::new(0),
                })
            })
            .await
            .into_value();
        failures.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Proof that a request carries the admin token, as a bearer token (the API).
pub(super) struct Admin;

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token)
            .trim()
            .to_owned();
        authorize(parts, app, &presented)
            .await
            .map(|()| Admin)
            .map_err(|e| e.unwrap_or(ApiError::Unauthorized))
    }
}

/// Proof that a request carries the admin token as the password of HTTP Basic authentication
/// (any user name): what a browser can send, for the pages editors open.
pub(super) struct AdminPage;

impl FromRequestParts<Arc<App>> for AdminPage {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        use base64::Engine;
        if app.admin_token().is_none() {
            return Err(ApiError::Off);
        }
        // A browser asks first without credentials, to be told the scheme: that is no guess
        // at the token, and must not count against the address (an office behind one NAT
        // would lock its CMS out of the API by opening the page a few times).
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(ApiError::UnauthorizedPage);
        }
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, credentials)| {
                base64::engine::general_purpose::STANDARD
                    .decode(credentials.trim())
                    .ok()
            })
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|pair| {
                pair.split_once(':')
                    .map(|(_, password)| password.to_owned())
            })
            .unwrap_or_default();
        authorize(parts, app, &presented)
            .await
            .map(|()| AdminPage)
            .map_err(|e| e.unwrap_or(ApiError::UnauthorizedPage))
    }
}

/// Checks a presented token against the admin token, within the failed-authentication
/// limit: `Err(None)` for a wrong token (the caller names its challenge), `Err(Some(_))` for
/// any other refusal.
async fn authorize(parts: &Parts, app: &App, presented: &str) -> Result<(), Option<ApiError>> {
    let Some(token) = app.admin_token() else {
        return Err(Some(ApiError::Off));
    };
    let client = parts
        .extensions
        .get::<ClientAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| limit_key(c.0));
    let limiter = parts.extensions.get::<Arc<AuthLimiter>>().cloned();
    if let Some(limiter) = &limiter {
        // Checked before the token, so that a right guess after the limit is no signal.
        if let Some(wait) = limiter.wait(client).await {
            return Err(Some(ApiError::TooManyFailures {
                retry_after: wait.as_secs().max(1),
            }));
        }
    }
    if token.verify(presented) {
        Ok(())
    } else {
        if let Some(limiter) = &limiter {
            limiter.failed(client).await;
        }
        Err(None)
    }
}

/// Proof that a request's declared length is within `admin.max_body_bytes`. Checked before any
/// of the body is read, so a client announcing a gigabyte is answered at once; a body without a
/// length (chunked) is cut off by the body limit as soon as it passes it.
struct WithinLimit;

impl FromRequestParts<Arc<App>> for WithinLimit {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let limit = app.settings.admin_max_body_bytes;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(length) if length > limit as u64 => Err(ApiError::TooLarge { limit }),
            _ => Ok(WithinLimit),
        }
    }
}

/// The buffered body, or why there is none.
fn buffered(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::TooLarge { limit }
        }
        other => ApiError::BadRequest(other.body_text()),
    })
}

/// The body as text, borrowed from the buffered bytes (a 16 MiB body is not copied).
fn text(body: &Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body is not UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })
}

/// Validates a body (CPU work: parsing, sanitizing up to 16 MiB of HTML) off the async
/// workers, with `check` turning its text into articles.
async fn validated<T: Send + 'static>(
    app: &App,
    body: Bytes,
    check: impl FnOnce(&str, &crate::config::Settings) -> Result<T, import::ImportError>
    + Send
    + 'static,
) -> Result<T, ApiError> {
    let settings = app.settings.clone();
    app.off_async(move || check(text(&body)?, &settings).map_err(ApiError::from))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// `PUT /api/articles/{id}`: stores one article, replacing any with the same id.
async fn upsert(
    _: Admin,
    _: WithinLimit,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = buffered(body, app.settings.admin_max_body_bytes)?;
    let for_url = id.clone();
    let article = validated(&app, body, move |text, settings| {
        import::parse_one(text, &for_url, settings)
    })
    .await?;
    app.write(std::slice::from_ref(&article)).await?;
    Ok(super::error::json_response(
        axum::http::StatusCode::OK,
        &json!({ "id": article.id().as_str(), "status": "stored" }),
    ))
}

/// `POST /api/articles`: stores a batch (NDJSON, or a JSON array), all of it or none.
async fn batch(
    _: Admin,
    _: WithinLimit,
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = buffered(body, app.settings.admin_max_body_bytes)?;
    // The declared type decides; without one, a body that opens with `[` is a JSON array.
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let is_array = match declared.as_deref() {
        Some("application/json") => true,
        Some("application/x-ndjson" | "application/ndjson" | "application/jsonl") => false,
        // Sniffed from the first bytes: the whole body is checked as UTF-8 once, off the
        // async workers, with the rest of it.
        _ => body
            .strip_prefix("\u{FEFF}".as_bytes())
            .unwrap_or(&body)
            .trim_ascii_start()
            .starts_with(b"["),
    };
    let articles = validated(&app, body, move |text, settings| {
        if is_array {
            import::parse_json_array(text, settings)
        } else {
            import::parse_ndjson(text, settings)
        }
    })
    .await?;
    app.write(&articles).await?;
    Ok(super::error::json_response(
        axum::http::StatusCode::OK,
        &json!({ "stored": articles.len() }),
    ))
}

/// `DELETE /api/articles/{id}`: takes an article down from every feed, archive and format.
async fn take_down(
    _: Admin,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::NoArticle(id.clone());
    let parsed = ArticleId::parse(&id).map_err(|_| missing())?;
    if !app.take_down(&parsed).await? {
        return Err(missing());
    }
    Ok(super::error::json_response(
        axum::http::StatusCode::OK,
        &json!({ "id": id, "status": "taken down" }),
    ))
}
