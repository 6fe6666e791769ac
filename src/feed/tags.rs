//! Cache tags: the names by which a CDN purges what it holds of feedcast's feeds. Every feed
//! document (any format, any `?limit`, the HTML view too) is tagged with its feed's or archive
//! month's tag and with each article it holds, and every change is purged by the same names, so
//! serving and purging agree because both are built here.
//!
//! Tags are ASCII without spaces or commas (feed paths, months and article ids are made of
//! letters, digits, `-`, `_`, `.` and `/`), so any CDN's separator works.

use std::fmt;

use super::{FeedId, FeedKey, Month, View};

/// One cache tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CacheTag(String);

impl CacheTag {
    /// Every feed document: what "everything changed" (a refile) purges.
    pub fn everything() -> Self {
        CacheTag("feeds".to_owned())
    }

    /// A feed's newest items, in every format and item count: `feed:<path>`.
    pub fn feed(feed: &FeedId) -> Self {
        CacheTag(format!("feed:{}", feed.path()))
    }

    /// One archive month of a feed: `feed:<path>/<YYYY-MM>`.
    pub fn month(feed: &FeedId, month: Month) -> Self {
        CacheTag(format!("feed:{}/{month}", feed.path()))
    }

    /// Every document holding an article: `a:<id>`.
    pub fn article(id: &str) -> Self {
        CacheTag(format!("a:{id}"))
    }

    /// The tag of what a key shows (not counting its articles' tags).
    pub fn of_view(key: &FeedKey) -> Self {
        match key.view {
            View::Latest { .. } => CacheTag::feed(&key.feed),
            View::Archive(month) => CacheTag::month(&key.feed, month),
        }
    }

    /// The tag as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A document's tags, most important first: everything, its view, then its articles. A header
/// too small for all leaves out the last ones, the articles, which the purge of a change
/// covers anyway through the feed and month tags.
pub fn of_document<'a>(key: &FeedKey, article_ids: impl Iterator<Item = &'a str>) -> Vec<CacheTag> {
    let mut tags = vec![CacheTag::everything(), CacheTag::of_view(key)];
    tags.extend(article_ids.map(CacheTag::article));
    tags
}
