//! The one place that sets the headers of a response. A feed's: ETag, Last-Modified,
//! Cache-Control, Vary, Link, Content-Type, Content-Encoding and, for an outdated stand-in,
//! Age and Warning; a page's Content-Security-Policy and Referrer-Policy; short answers' types
//! ([`text`], [`json`]), `Retry-After` and `WWW-Authenticate`; and those every response carries
//! ([`every_response`]: the request id and `nosniff`). A feed's validators were formatted when
//! it entered the cache; its Link header (RFC 8288) is written here, once per cached document,
//! from the links render gave.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::{conditional, negotiate};
use crate::app::App;
use crate::cache::Encoded;
use crate::config::CacheTags;
use crate::feed::tags::CacheTag;
use crate::render::Links;

/// How far behind the store's clock a `Last-Modified` is held: longer than a write takes from
/// stamping its change times to committing them.
const HELD_BACK: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// `max-age` of a stale stand-in: others should come back soon for the real thing.
pub(super) const STALE_MAX_AGE: u32 = 5;

/// How a document is to be sent.
pub(super) struct Policy<'a> {
    /// The time of the answer (the one clock reading of a request's answer).
    pub now: chrono::DateTime<chrono::Utc>,
    pub content_type: &'static str,
    /// Which headers name the document's cache tags.
    pub cache_tags: &'a CacheTags,
    pub max_age: u32,
    /// `stale-while-revalidate` and `stale-if-error` (RFC 5861), each left out at 0.
    pub stale: (u32, u32),
    /// Request headers the choice of representation depends on.
    pub vary: &'static str,
    /// For a page for people (HTML), its Content-Security-Policy.
    pub page_policy: Option<HeaderValue>,
}

/// The Content-Security-Policy header of `app`'s pages. The policy is built from validated
/// configuration (host names), so it is always a valid header value; were it not, the
/// strictest policy stands in.
pub(super) fn page_policy(app: &App) -> HeaderValue {
    HeaderValue::from_str(&app.page_policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

pub(super) fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Sends `doc` in the encoding the client accepts, or `304 Not Modified` when the client's
/// copy is current. Both carry the same validators and caching headers. Every value but
/// Cache-Control was made when the document entered the cache, so a hit clones reference
/// counts rather than formatting and checking bytes (measured with callgrind: 7,900
/// instructions a 304 before, most of them re-checking a kilobyte of cache tags).
pub(super) fn respond(request: &HeaderMap, doc: &Encoded, policy: Policy<'_>) -> Response {
    let encoding = negotiate::encoding(header_str(request, header::ACCEPT_ENCODING));
    let (body, etag) = doc.variant(encoding);
    let fresh = conditional::not_modified(
        header_str(request, header::IF_NONE_MATCH),
        header_str(request, header::IF_MODIFIED_SINCE),
        std::str::from_utf8(etag.as_bytes()).unwrap_or_default(),
        doc.last_modified,
    );
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(body.clone()))
    };
    let headers = response.headers_mut();
    // Room for every header set here and by the middleware, so the map grows once.
    headers.reserve(16);
    if !etag.is_empty() {
        headers.insert(header::ETAG, etag.clone());
    }
    if let Some((second, http_date)) = &doc.last_modified_http {
        let now = policy.now;
        // A change stamped up to a second before it committed may still be unseen: the date
        // given is at least that far behind the store's clock, so that such a change is after
        // it (a 200, never a wrong 304). Nor is it ever after Date (RFC 9110).
        let settled = (now + doc.store_clock_ahead - HELD_BACK).timestamp();
        let limit = settled.min(now.timestamp());
        if *second <= limit {
            if !http_date.is_empty() {
                headers.insert(header::LAST_MODIFIED, http_date.clone());
            }
        } else if let Some(held) = chrono::DateTime::from_timestamp(limit, 0) {
            let held = held.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            if let Ok(held) = HeaderValue::from_str(&held) {
                headers.insert(header::LAST_MODIFIED, held);
            }
        }
    }
    headers.insert(header::CACHE_CONTROL, cache_control(&policy));
    headers.insert(header::VARY, HeaderValue::from_static(policy.vary));
    // A 304 carries what a cache needs to freshen its copy (RFC 9110 §15.4.5), not the
    // representation's other metadata: the copy's Link and cache tags are those of this very
    // ETag, and a cache keeps the stored ones a 304 leaves out (RFC 9111 §4.3.4). They were
    // two thirds of a 304's bytes.
    if !fresh {
        if let Some(link) = doc.link_header(link_value) {
            headers.insert(header::LINK, link.clone());
        }
        if let Some(tag_headers) = doc.tag_headers(|tags| tag_values(tags, policy.cache_tags)) {
            for (name, tags) in tag_headers {
                headers.insert(name.clone(), tags.clone());
            }
        }
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

/// The Cache-Control value of `policy`, written without `fmt` (it is per request: max-age
/// depends on the time for some feeds).
fn cache_control(policy: &Policy<'_>) -> HeaderValue {
    let mut numbers = itoa::Buffer::new();
    let mut value = Vec::with_capacity(96);
    value.extend_from_slice(b"public, max-age=");
    value.extend_from_slice(numbers.format(policy.max_age).as_bytes());
    let (while_revalidate, if_error) = policy.stale;
    if while_revalidate > 0 {
        value.extend_from_slice(b", stale-while-revalidate=");
        value.extend_from_slice(numbers.format(while_revalidate).as_bytes());
    }
    if if_error > 0 {
        value.extend_from_slice(b", stale-if-error=");
        value.extend_from_slice(numbers.format(if_error).as_bytes());
    }
    // ASCII letters, digits and punctuation only: always a valid value.
    HeaderValue::from_maybe_shared(Bytes::from(value))
        .unwrap_or_else(|_| HeaderValue::from_static("no-store"))
}

/// A document's `Link` header value (RFC 8288): its WebSub hubs and itself, so that a
/// subscriber finds both without parsing the document. Written once per cached document. The
/// URLs are absolute and validated; were one not a valid header value, the cache keeps no
/// value ([`Encoded::link_header`]) and the header is left out rather than the answer failing.
fn link_value(links: &Links) -> String {
    let mut value = String::with_capacity(128);
    for hub in &links.hubs {
        value.push_str(&format!("<{hub}>; rel=\"hub\", "));
    }
    value.push_str(&format!("<{}>; rel=\"self\"", links.self_url));
    value
}

/// Each cache-tag header with its value: as many tags, in order, as fit in `max_bytes` with
/// the header's separator. The document's own tags come first and always fit (a feed path is
/// short); the article tags after them that do not fit are left out (a purge of a change also
/// names the feed and month tags, which cover them). Written once per cached document; tags
/// are validated names, so a value that is not a valid header (never seen) is left out.
fn tag_values(tags: &[CacheTag], config: &CacheTags) -> Vec<(HeaderName, HeaderValue)> {
    config
        .headers
        .iter()
        .filter_map(|h| {
            let mut value = String::with_capacity(config.max_bytes.min(tags.len() * 24));
            for tag in tags {
                let extra = usize::from(!value.is_empty()) + tag.as_str().len();
                if value.len() + extra > config.max_bytes {
                    break;
                }
                if !value.is_empty() {
                    value.push(h.separator);
                }
                value.push_str(tag.as_str());
            }
            let value = HeaderValue::try_from(value).ok()?;
            Some((h.name.clone(), value))
        })
        .collect()
}

/// Marks a response as an outdated stand-in of `age`, served while the store is down.
pub(super) fn mark_stale(response: &mut Response, age: Duration) {
    let headers = response.headers_mut();
    headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
    headers.insert(
        header::WARNING,
        HeaderValue::from_static("110 feedcast \"Response is Stale\""),
    );
}

/// The headers every response carries, whatever produced it: its request id, and `nosniff`
/// so that no browser takes a feed or an error for something to run.
pub(super) fn every_response(headers: &mut HeaderMap, request_id: HeaderValue) {
    headers.insert(&super::observe::REQUEST_ID, request_id);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// A short answer of `content_type` (errors, health, metrics).
pub(super) fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A short answer in plain text.
pub(super) fn plain(status: StatusCode, body: impl Into<String>) -> Response {
    text(status, "text/plain; charset=utf-8", body.into())
}

/// A JSON answer (the admin API's).
pub(super) fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    text(status, "application/json", body.to_string())
}

/// `301 Moved Permanently` to `location` (an absolute URL), which others may keep for
/// `max_age` seconds. A location that is no valid header value (it cannot be: it is built from
/// the base URL, a validated name and the request's own query) gets a plain 404 instead.
pub(super) fn moved(location: &str, max_age: u32) -> Response {
    let Ok(value) = HeaderValue::from_str(location) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    // The body does not echo the location: it holds the request's query.
    let mut response = plain(
        StatusCode::MOVED_PERMANENTLY,
        "moved permanently: see Location\n",
    );
    response.headers_mut().insert(header::LOCATION, value);
    cached_for(response, max_age)
}

/// Lets others keep a short answer for `seconds`.
pub(super) fn cached_for(mut response: Response, seconds: u32) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={seconds}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    response
}

/// Asks the client to come back in `seconds`.
pub(super) fn retry_after(mut response: Response, seconds: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Names the authentication scheme a 401 wants.
pub(super) fn bearer_challenge(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Asks a browser for a user name and password (the admin token), for the pages editors open.
pub(super) fn basic_challenge(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"feedcast\", charset=\"UTF-8\""),
    );
    response
}

/// An answer only its authenticated asker may see: no cache keeps it.
pub(super) fn private(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}

/// A page for the site's own staff (the statistics report): HTML under its own
/// Content-Security-Policy, kept by no cache.
pub(super) fn private_page(body: String, content_security_policy: &str) -> Response {
    let mut response = text(StatusCode::OK, "text/html; charset=utf-8", body);
    if let Ok(policy) = HeaderValue::from_str(content_security_policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    private(response)
}
