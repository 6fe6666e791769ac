//! PostgreSQL, for when one machine is not enough: many stateless replicas share one database.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use super::shared::{self, Embedded, store_queries};
use chrono::{DateTime, Utc};

use super::{Edge, Selection, StoreError, Window};
use crate::config::Catalog;
use crate::model::{Article, Bucket};

const MIGRATIONS: Embedded = Embedded(&[(
    1,
    "articles",
    include_str!("../../migrations/postgres/0001_articles.sql"),
)]);

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

store_queries!(PgStore);
