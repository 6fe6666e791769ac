//! PostgreSQL, for when one machine is not enough: many stateless replicas share one database.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::shared::{self, Embedded, store_queries};
use super::{Change, Edge, Filing, Selection, StoreError, Window};
use crate::model::Catalog;
use crate::model::{Article, Bucket, CategorySlug, RegionCode};

const MIGRATIONS: Embedded = Embedded(&[
    (
        1,
        "articles",
        include_str!("../../migrations/postgres/0001_articles.sql"),
    ),
    (
        2,
        "file in database",
        include_str!("../../migrations/postgres/0002_file_in_database.sql"),
    ),
    (
        3,
        "sanitized",
        include_str!("../../migrations/postgres/0003_sanitized.sql"),
    ),
]);

/// The channel the filing trigger notifies (see the migrations).
const CHANNEL: &str = "feedcast_articles";

/// Wait before listening again after the listening connection failed.
const RELISTEN_DELAY: Duration = Duration::from_millis(500);

/// A notification's payload: from the filing trigger, or from a replica that refiled.
#[derive(Deserialize)]
#[serde(untagged)]
enum Notice {
    Article(Payload),
    Refiled {
        #[allow(dead_code)]
        refiled: bool,
    },
}

/// An article change, as the filing trigger describes it.
#[derive(Deserialize)]
struct Payload {
    id: String,
    before: Option<PayloadFiling>,
    after: Option<PayloadFiling>,
}

#[derive(Deserialize)]
struct PayloadFiling {
    categories: String,
    region: Option<String>,
}

impl From<PayloadFiling> for Filing {
    fn from(f: PayloadFiling) -> Self {
        Filing {
            categories: f
                .categories
                .split_whitespace()
                .filter_map(|c| CategorySlug::parse(c).ok())
                .collect(),
            region: f.region.as_deref().and_then(|r| RegionCode::parse(r).ok()),
        }
    }
}

/// Advisory lock key that serializes refiling when several replicas start at once.
const REFILE_LOCK: i64 = 0x6665_6564_6361_7374; // "feedcast"

/// How long a request waits for a free connection before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per replica; many replicas share one server, so keep it modest.
const MAX_CONNECTIONS: u32 = 10;

/// The article store on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
}

impl PgStore {
    /// Connects and migrates the schema. `shown` is the URL with its password hidden.
    pub async fn open(url: &str, shown: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                url: shown.to_owned(),
                source,
            })?;
        Migrator::new(MIGRATIONS).await?.run(&pool).await?;
        Ok(PgStore { pool })
    }
}

impl PgStore {
    /// Where writes go: the one pool.
    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// A plain transaction: row locks order concurrent writers.
    const BEGIN_WRITE: &str = "BEGIN";

    /// Nothing to give back.
    pub(super) async fn after_write(&self) {}

    /// Closes the pool.
    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    /// Marks this transaction's writes as feedcast's own, hence sanitized (see migration 3).
    async fn mark_writer(tx: &mut shared::Tx<Postgres>) -> Result<(), StoreError> {
        let query = sqlx::query("SELECT set_config('feedcast.writer', 'feedcast', true)");
        run_in(tx, query, "marking a write").await
    }

    /// Tells every replica that the feed index was rebuilt, so they drop their caches.
    async fn announce_refile(tx: &mut shared::Tx<Postgres>) -> Result<(), StoreError> {
        let query = sqlx::query("SELECT pg_notify($1, '{\"refiled\": true}')").bind(CHANNEL);
        run_in(tx, query, "announcing a refile").await
    }

    async fn lock_for_refile(tx: &mut shared::Tx<Postgres>) -> Result<(), StoreError> {
        let query = sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(REFILE_LOCK);
        run_in(tx, query, "waiting for another replica's refile").await
    }

    async fn store_region_tree(
        tx: &mut shared::Tx<Postgres>,
        catalog: &Catalog,
    ) -> Result<(), StoreError> {
        let q = |doing: &'static str| move |source| StoreError::Query { doing, source };
        sqlx::query("DELETE FROM regions")
            .execute(&mut **tx)
            .await
            .map_err(q("clearing the region tree"))?;
        let codes: Vec<&str> = catalog.regions().iter().map(|r| r.code.as_str()).collect();
        let parents: Vec<Option<&str>> = catalog
            .regions()
            .iter()
            .map(|r| r.parent.as_ref().map(|p| p.as_str()))
            .collect();
        sqlx::query(
            "INSERT INTO regions (code, parent) SELECT * FROM UNNEST($1::text[], $2::text[])",
        )
        .bind(codes)
        .bind(parents)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(q("storing the region tree"))
    }
}

impl PgStore {
    /// Listens for the filing trigger's notifications on a connection of its own, forever:
    /// after the connection drops it listens again and reports [`Change::Missed`], since
    /// notifications sent meanwhile are lost.
    pub(super) fn listen(&self) -> (mpsc::UnboundedReceiver<Change>, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pool = self.pool.clone();
        let task = tokio::spawn(async move {
            loop {
                let mut listener = match PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(cause = %e, "cannot listen for store changes; retrying");
                        tokio::time::sleep(RELISTEN_DELAY).await;
                        continue;
                    }
                };
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(cause = %e, "cannot listen for store changes; retrying");
                    tokio::time::sleep(RELISTEN_DELAY).await;
                    continue;
                }
                // Listening (again): whatever was built before may have missed changes.
                if tx.send(Change::Missed).is_err() {
                    return;
                }
                loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) => match serde_json::from_str::<Notice>(n.payload()) {
                            Ok(Notice::Refiled { .. }) => {
                                if tx.send(Change::Missed).is_err() {
                                    return;
                                }
                            }
                            Ok(Notice::Article(p)) => {
                                let change = Change::Article {
                                    id: p.id,
                                    before: p.before.map(Filing::from),
                                    after: p.after.map(Filing::from),
                                };
                                if tx.send(change).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(cause = %e, payload = n.payload(), "unreadable store notification");
                                if tx.send(Change::Missed).is_err() {
                                    return;
                                }
                            }
                        },
                        // The connection dropped; sqlx re-listens on the next call.
                        Ok(None) => {
                            tracing::warn!(
                                "store change listener reconnected; changes may have been missed"
                            );
                            if tx.send(Change::Missed).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(cause = %e, "store change listener lost its connection");
                            if tx.send(Change::Lost).is_err() {
                                return;
                            }
                            break;
                        }
                    }
                }
                tokio::time::sleep(RELISTEN_DELAY).await;
            }
        });
        (rx, task)
    }
}

/// Runs one statement in `tx`, naming what it was for if it fails.
async fn run_in(
    tx: &mut shared::Tx<Postgres>,
    query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    doing: &'static str,
) -> Result<(), StoreError> {
    query
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(|source| StoreError::Query { doing, source })
}

store_queries!(PgStore, Postgres, files_in_code: false);
