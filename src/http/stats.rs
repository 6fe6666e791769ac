//! Subscriber statistics for the site's staff: `GET /api/stats` (JSON, bearer token),
//! `POST /api/stats/flush` (this replica's tally written now) and `GET /admin/stats`, a page
//! for editors (HTTP Basic, the admin token as password). Answers are kept by no cache.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::admin::{Admin, AdminPage};
use super::error::ApiError;
use super::representation::{json, private, private_page};
use crate::app::App;

/// Feeds the page shows in full (table and chart); the rest are listed.
const PAGE_TOP_FEEDS: usize = 20;

/// `GET /api/stats`: every feed's subscribers by source and its last 30 days.
pub(super) async fn report(_: Admin, State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let report = app.stats_report().await?;
    let body = serde_json::to_value(&report).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(private(json(StatusCode::OK, &body)))
}

/// `POST /api/stats/flush`: writes what this replica tallied now, rather than at its next
/// flush (before a report that must include the latest polls, or a planned stop).
pub(super) async fn flush(_: Admin, State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    app.flush_stats()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(private(json(
        StatusCode::OK,
        &json!({ "status": "flushed" }),
    )))
}

/// `GET /admin/stats`: the report as a page for editors, readable with no script.
pub(super) async fn page(_: AdminPage, State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let report = app.stats_report().await?;
    Ok(private_page(
        crate::stats::html(&report, PAGE_TOP_FEEDS),
        &crate::stats::content_security_policy(),
    ))
}
