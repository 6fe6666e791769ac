//! The admin API: publish, correct and take down articles.
//!
//! Off (404) unless a token is configured; then every request needs it as a bearer token.
//! Bodies are bounded (413), validated whole before anything is stored (422 listing every
//! problem by field, and by line or item for a batch), and answers are JSON.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::{post, put};
use serde_json::json;

use super::error::ApiError;
use crate::app::App;
use crate::import;
use crate::model::ArticleId;

/// The admin routes, under `/api`.
pub(super) fn routes(max_body_bytes: usize) -> Router<Arc<App>> {
    Router::new()
        .route("/api/articles", post(batch))
        .route("/api/articles/{id}", put(upsert).delete(take_down))
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

/// Proof that a request carries the admin token.
struct Admin;

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let Some(token) = app.admin_token() else {
            return Err(ApiError::Off);
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token);
        if token.verify(presented.trim()) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        }
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

/// The body as text, borrowed from the buffered bytes (a 16 MiB body is not copied).
fn text(body: &Result<Bytes, BytesRejection>, limit: usize) -> Result<&str, ApiError> {
    let body = body.as_ref().map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::TooLarge { limit }
        }
        other => ApiError::BadRequest(other.body_text()),
    })?;
    std::str::from_utf8(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body is not UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })
}

/// `PUT /api/articles/{id}`: stores one article, replacing any with the same id.
async fn upsert(
    _: Admin,
    _: WithinLimit,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = text(&body, app.settings.admin_max_body_bytes)?;
    let article = import::parse_one(body, &id, &app.settings)?;
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
    let body = text(&body, app.settings.admin_max_body_bytes)?;
    let is_array = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"))
        || body
            .trim_start_matches('\u{FEFF}')
            .trim_start()
            .starts_with('[');
    let articles = if is_array {
        import::parse_json_array(body, &app.settings)?
    } else {
        import::parse_ndjson(body, &app.settings)?
    };
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
