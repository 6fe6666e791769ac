//! The service core: the stages wired together. Reading a feed goes cache → (assembly → render);
//! writing articles goes store → cache invalidation. The HTTP layer and the CLI both call this,
//! so a feed is built the same way whether it is served or printed.

use std::sync::Arc;

use crate::cache::{Cached, FeedCache, Rendered};
use crate::config::Settings;
use crate::feed::{self, FeedId, FeedKey};
use crate::import;
use crate::model::Article;
use crate::render::{self, RenderError};
use crate::store::{Store, StoreError};

/// Why a feed could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The renderer failed.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// The running service's shared state.
pub struct App {
    /// The validated configuration.
    pub settings: Arc<Settings>,
    /// The article store.
    pub store: Store,
    cache: FeedCache,
}

impl App {
    /// Wires a store to a fresh cache sized by the settings.
    pub fn new(settings: Settings, store: Store) -> Self {
        let cache = FeedCache::new(settings.cache.max_bytes, FeedId::all(&settings.catalog));
        App {
            settings: Arc::new(settings),
            store,
            cache,
        }
    }

    /// A feed as served: from the cache, or built once and cached.
    pub async fn feed(&self, key: &FeedKey) -> Result<Arc<Cached>, Arc<FeedError>> {
        self.cache.get_or_build(key, || self.build(key)).await
    }

    /// Builds a feed from the store, bypassing the cache.
    pub async fn build(&self, key: &FeedKey) -> Result<Rendered, FeedError> {
        let feed = feed::assemble(&self.settings, &self.store, key).await?;
        let body = render::render(&feed, &self.settings)?;
        Ok(Rendered {
            body,
            last_modified: feed.updated,
        })
    }

    /// Stores articles (all or none) and drops every cached feed they were or are now in.
    pub async fn write(&self, articles: &[Article]) -> Result<(), StoreError> {
        let buckets = self.store.upsert(articles, &self.settings.catalog).await?;
        self.cache
            .drop_feeds(&FeedId::touched_by(&self.settings.catalog, &buckets));
        Ok(())
    }

    /// Fills an empty store with the demo articles; returns how many were added.
    pub async fn load_demo_if_empty(&self) -> Result<usize, DemoError> {
        if self.store.count().await? > 0 {
            return Ok(0);
        }
        let articles = import::parse_ndjson(crate::DEMO_ARTICLES, &self.settings)?;
        self.write(&articles).await?;
        Ok(articles.len())
    }
}

/// The demo articles could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The demo file does not fit the configuration (e.g. a category was renamed).
    #[error("the demo articles do not fit this feeds.toml: {0}")]
    Import(#[from] import::ImportError),
}
