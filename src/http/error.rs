//! The one place that maps errors to HTTP answers. Internals are logged once, here, and never
//! sent to the client.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::app::FeedError;
use crate::feed::KeyError;

/// An error on its way to becoming a response.
#[derive(Debug)]
pub enum AppError {
    /// 404 with a short reason.
    NotFound(String),
    /// 400 with a short reason.
    BadRequest(String),
    /// 503: the store is failing; the cause was logged.
    Unavailable(String),
    /// 500: a bug or an unexpected failure; the cause was logged.
    Internal(String),
}

impl From<KeyError> for AppError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::NotFound(why) => AppError::NotFound(why),
            KeyError::BadRequest(why) => AppError::BadRequest(why),
        }
    }
}

impl From<Arc<FeedError>> for AppError {
    fn from(e: Arc<FeedError>) -> Self {
        match &*e {
            FeedError::Store(cause) => AppError::Unavailable(cause.to_string()),
            FeedError::Render(cause) => AppError::Internal(cause.to_string()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            AppError::NotFound(why) => (StatusCode::NOT_FOUND, format!("not found: {why}\n")),
            AppError::BadRequest(why) => (StatusCode::BAD_REQUEST, format!("bad request: {why}\n")),
            AppError::Unavailable(cause) => {
                tracing::error!(%cause, "store unavailable");
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the article store is unavailable; try again shortly\n",
                )
                    .into_response();
                r.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("5"),
                );
                return r;
            }
            AppError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error\n".to_owned(),
                )
            }
        };
        let mut r = (status, body).into_response();
        r.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    }
}
