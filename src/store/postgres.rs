//! PostgreSQL, for when one machine is not enough: many stateless replicas share one database.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Deserialize;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::backend::{Backend, Embedded, Op, Transaction, Tx, read_articles, read_number};
use super::sql::{self, Statement};
use super::{Change, Filing, StoreError, StoredArticle};
use crate::model::{Catalog, CategorySlug, RegionCode};

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
    (
        4,
        "change times",
        include_str!("../../migrations/postgres/0004_change_times.sql"),
    ),
]);

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

impl Backend for PgStore {
    /// The database files articles, in a trigger, so that rows other programs write (the CMS,
    /// in SQL) are filed too.
    fn files_in_code(&self) -> bool {
        false
    }

    /// A transaction whose writes are marked as feedcast's own.
    fn begin_write(&self) -> Op<'_, Box<dyn Transaction>> {
        Box::pin(async move {
            let mut tx = Tx::<Postgres>::begin(&self.pool, sql::POSTGRES_BEGIN_WRITE).await?;
            tx.execute(&sql::postgres_mark_writer()).await?;
            Ok(Box::new(tx) as Box<dyn Transaction>)
        })
    }

    fn articles<'a>(&'a self, statement: &'a Statement<'a>) -> Op<'a, Vec<StoredArticle>> {
        read_articles(&self.pool, statement)
    }

    fn number<'a>(&'a self, statement: &'a Statement<'a>) -> Op<'a, Option<i64>> {
        read_number(&self.pool, statement)
    }

    fn before_refile<'a>(&self, catalog: &'a Catalog) -> Vec<Statement<'a>> {
        let mut statements = vec![sql::postgres_lock_for_refile()];
        statements.extend(sql::postgres_store_region_tree(catalog));
        statements
    }

    fn after_refile(&self) -> Vec<Statement<'static>> {
        vec![
            sql::postgres_stamp_everything(),
            sql::postgres_announce_refile(),
        ]
    }

    fn listen(&self) -> Option<(mpsc::UnboundedReceiver<Change>, JoinHandle<()>)> {
        Some(self.listen_forever())
    }

    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.pool.close())
    }
}

impl PgStore {
    /// Listens for the filing trigger's notifications on a connection of its own, forever:
    /// after the connection drops it listens again and reports [`Change::Missed`], since
    /// notifications sent meanwhile are lost.
    fn listen_forever(&self) -> (mpsc::UnboundedReceiver<Change>, JoinHandle<()>) {
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
                if let Err(e) = listener.listen(sql::POSTGRES_CHANNEL).await {
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
