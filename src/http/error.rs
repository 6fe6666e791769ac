//! The one place that maps errors to HTTP answers. Internals are logged once, here, and never
//! sent to the client.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::representation;
use crate::app::{FeedError, HubError};
use crate::feed::KeyError;

/// An error on its way to becoming a response.
#[derive(Debug)]
pub enum AppError {
    /// 404 with a short reason.
    NotFound(String),
    /// 301 to this absolute URL: the feed was renamed.
    Moved(String),
    /// 410 with a short reason: the feed was removed for good.
    Gone(String),
    /// 404 for an archive month that has none (yet), with a short reason: cached briefly,
    /// since the month may begin or an older item arrive.
    NoArchive(String),
    /// 400 with a short reason.
    BadRequest(String),
    /// 503: the store is failing; the cause was logged.
    Unavailable(String),
    /// 503 with a short reason: too much is waiting; try again later.
    Busy(String),
    /// 500: a bug or an unexpected failure; the cause was logged.
    Internal(String),
}

impl From<KeyError> for AppError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::NotFound(why) => AppError::NotFound(why),
            KeyError::BadRequest(why) => AppError::BadRequest(why),
            KeyError::Moved(to) => AppError::Moved(to),
            KeyError::Gone(why) => AppError::Gone(why),
        }
    }
}

impl From<HubError> for AppError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::Off => AppError::NotFound("this site's WebSub hub is off".to_owned()),
            HubError::BadRequest(why) => AppError::BadRequest(why),
            HubError::Busy(why) => AppError::Busy(why),
            HubError::Store(cause) => AppError::Unavailable(cause.to_string()),
        }
    }
}

impl From<Arc<FeedError>> for AppError {
    fn from(e: Arc<FeedError>) -> Self {
        match &*e {
            FeedError::Store(cause) => AppError::Unavailable(cause.to_string()),
            FeedError::Render(cause) => AppError::Internal(cause.to_string()),
            FeedError::NoArchive(no) => AppError::NoArchive(no.why.clone()),
        }
    }
}

/// How long others may keep a 301 or a 410 (a day): both are meant for good, but an operator's
/// mistake in feeds.toml should not outlive its correction by long.
const MOVED_MAX_AGE: u32 = 86_400;

/// How long others may keep the 404 of an archive month that has none: it may begin, or an
/// older item arrive, at any time.
const NO_ARCHIVE_MAX_AGE: u32 = 60;

/// Longest reason echoed back, in characters: it may quote the request's path.
const MAX_REASON_CHARS: usize = 200;

/// A reason fit to send back: it quotes the (percent-decoded) path or query, so control
/// characters and markup in it are percent-encoded again, and a long one is cut.
fn printable(why: &str) -> String {
    let mut out = String::with_capacity(why.len());
    for c in why.chars().take(MAX_REASON_CHARS) {
        // Controls, markup, and the invisible format characters that reorder or hide text.
        let unsafe_char = c.is_control()
            || matches!(c, '<' | '>' | '&' | '"' | '\'' | '\u{FEFF}')
            || ('\u{200B}'..='\u{200F}').contains(&c)
            || ('\u{2028}'..='\u{202E}').contains(&c)
            || ('\u{2060}'..='\u{2069}').contains(&c);
        if unsafe_char {
            let mut utf8 = [0; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if why.chars().nth(MAX_REASON_CHARS).is_some() {
        out.push('…');
    }
    out
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            AppError::NotFound(why) => (
                StatusCode::NOT_FOUND,
                format!("not found: {}\n", printable(&why)),
            ),
            AppError::BadRequest(why) => (
                StatusCode::BAD_REQUEST,
                format!("bad request: {}\n", printable(&why)),
            ),
            AppError::Moved(to) => return representation::moved(&to, MOVED_MAX_AGE),
            AppError::Gone(why) => {
                return representation::cached_for(
                    representation::plain(StatusCode::GONE, format!("gone: {}\n", printable(&why))),
                    MOVED_MAX_AGE,
                );
            }
            AppError::NoArchive(why) => {
                return representation::cached_for(
                    representation::plain(
                        StatusCode::NOT_FOUND,
                        format!("not found: {}\n", printable(&why)),
                    ),
                    NO_ARCHIVE_MAX_AGE,
                );
            }
            AppError::Unavailable(cause) => {
                tracing::error!(%cause, "store unavailable");
                return representation::retry_after(
                    representation::plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the article store is unavailable; try again shortly\n",
                    ),
                    RETRY_SECONDS,
                );
            }
            AppError::Busy(why) => {
                return representation::retry_after(
                    representation::plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("busy: {}\n", printable(&why)),
                    ),
                    RETRY_SECONDS,
                );
            }
            AppError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error\n".to_owned(),
                )
            }
        };
        representation::plain(status, body)
    }
}

/// An admin API error; answered as JSON.
#[derive(Debug)]
pub enum ApiError {
    /// No admin token is configured: the API does not exist.
    Off,
    /// The bearer token is missing or wrong.
    Unauthorized,
    /// A page's Basic credentials are missing or wrong (the browser is asked for them).
    UnauthorizedPage,
    /// This client address failed to authenticate too often this minute.
    TooManyFailures {
        /// Seconds until it may try again.
        retry_after: u64,
    },
    /// The body is over the configured limit.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body could not be read as text.
    BadRequest(String),
    /// Articles failed validation; nothing was stored.
    Invalid(crate::import::ImportError),
    /// No article has this id.
    NoArticle(String),
    /// The store failed; nothing may have been stored.
    Store(crate::store::StoreError),
    /// A bug or an unexpected failure; nothing was stored.
    Internal(String),
}

impl From<crate::import::ImportError> for ApiError {
    fn from(e: crate::import::ImportError) -> Self {
        ApiError::Invalid(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Store(e)
    }
}

/// A JSON response.
pub(super) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    representation::json(status, body)
}

/// Seconds a client is asked to wait when the store fails.
const RETRY_SECONDS: u64 = 5;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use serde_json::json;
        let (status, body) = match self {
            ApiError::Off => return representation::plain(StatusCode::NOT_FOUND, "not found\n"),
            ApiError::Unauthorized => {
                return representation::bearer_challenge(json_response(
                    StatusCode::UNAUTHORIZED,
                    &json!({ "error": "a valid bearer token is required" }),
                ));
            }
            ApiError::UnauthorizedPage => {
                return representation::basic_challenge(representation::plain(
                    StatusCode::UNAUTHORIZED,
                    "the admin token is required, as the password (any user name)\n",
                ));
            }
            ApiError::TooManyFailures { retry_after } => {
                return representation::retry_after(
                    json_response(
                        StatusCode::TOO_MANY_REQUESTS,
                        &json!({ "error": format!("too many failed authentications; try again in {retry_after} s") }),
                    ),
                    retry_after,
                );
            }
            ApiError::TooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": format!("the body is over the limit of {limit} bytes") }),
            ),
            ApiError::BadRequest(why) => (StatusCode::BAD_REQUEST, json!({ "error": why })),
            ApiError::Invalid(e) => {
                let problems: Vec<serde_json::Value> = e
                    .problems
                    .iter()
                    .map(|p| json!({ e.unit: p.position, "field": p.field, "message": p.message }))
                    .collect();
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({
                        "error": "invalid articles; nothing was stored",
                        "problems": problems,
                        "problem_count": e.problem_count,
                    }),
                )
            }
            ApiError::NoArticle(id) => (
                StatusCode::NOT_FOUND,
                json!({ "error": format!("no article `{id}`") }),
            ),
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error during an admin request");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "internal error; nothing was stored" }),
                )
            }
            ApiError::Store(cause) => {
                tracing::error!(%cause, "store failed during an admin request");
                return representation::retry_after(
                    json_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({ "error": "the article store is unavailable; try again (writes are idempotent)" }),
                    ),
                    RETRY_SECONDS,
                );
            }
        };
        json_response(status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_never_echoes_control_characters_or_markup() {
        assert_eq!(
            printable("no category `<script>\u{1b}[2J\n`"),
            "no category `%3Cscript%3E%1B[2J%0A`"
        );
        assert_eq!(printable("no region `江阴`"), "no region `江阴`");
        assert_eq!(printable("a\u{202E}b\u{200B}"), "a%E2%80%AEb%E2%80%8B");
        let long = printable(&"x".repeat(5000));
        assert_eq!(long.chars().count(), MAX_REASON_CHARS + 1);
    }
}
