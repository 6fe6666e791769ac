//! One assembly path for every feed: select, order, limit, compute last-updated.

use chrono::{DateTime, Utc};

use super::{FeedId, FeedKey};
use crate::config::Settings;
use crate::model::Article;
use crate::store::{Store, StoreError};

/// A feed ready to render: format-neutral.
#[derive(Debug, Clone)]
pub struct Feed {
    /// What was asked for.
    pub key: FeedKey,
    /// Display title, e.g. `科创产业网 · 氢能科技`.
    pub title: String,
    /// One sentence about the feed.
    pub description: String,
    /// Newest first (ties: greater id first), at most `key.limit`.
    pub items: Vec<Article>,
    /// The latest publication or edit among the items; the Unix epoch for an empty feed, so
    /// that an unchanged feed always renders to the same bytes.
    pub updated: DateTime<Utc>,
}

/// Reads a feed's items from the store and describes the feed.
pub async fn assemble(
    settings: &Settings,
    store: &Store,
    key: &FeedKey,
) -> Result<Feed, StoreError> {
    let items = store
        .latest(&key.feed.selection(&settings.catalog), key.limit)
        .await?;
    Ok(describe(settings, key, items))
}

/// Titles a feed and computes its last-updated time; separate from the store so it is tested
/// on its own.
pub fn describe(settings: &Settings, key: &FeedKey, items: Vec<Article>) -> Feed {
    let site = &settings.site;
    let catalog = &settings.catalog;
    let (name, description) = match &key.feed {
        FeedId::Category(slug) => {
            let name = catalog
                .category(slug.as_str())
                .map_or(slug.as_str(), |c| &c.name);
            (
                name.to_owned(),
                format!("{}「{name}」栏目的最新文章", site.title),
            )
        }
        FeedId::Region(code) => {
            let name = catalog
                .region(code.as_str())
                .map_or(code.as_str(), |r| &r.name);
            (
                name.to_owned(),
                format!("{}关于{name}及其下辖地区的最新文章", site.title),
            )
        }
        FeedId::Custom(slug) => match catalog.feed(slug.as_str()) {
            Some(f) => (
                f.title.clone(),
                f.description
                    .clone()
                    .unwrap_or_else(|| format!("{}：{}", site.title, f.title)),
            ),
            None => (slug.to_string(), site.description.clone()),
        },
    };
    let updated = items
        .iter()
        .map(Article::modified_at)
        .max()
        .unwrap_or(DateTime::UNIX_EPOCH);
    Feed {
        key: key.clone(),
        title: format!("{} · {name}", site.title),
        description,
        items,
        updated,
    }
}
