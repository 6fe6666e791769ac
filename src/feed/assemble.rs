//! One assembly path for every feed and view: select, order, limit (or bound by month),
//! find the neighbouring archives, compute last-updated. It comes in two halves, so that the
//! caller can run the second off the async workers: [`select`] reads the store (I/O), and
//! [`finish`] puts the rows through the intake and describes the feed (CPU).

use chrono::{DateTime, Utc};

use super::{FeedId, FeedKey, Format, Month, View};
use crate::config::Settings;
use crate::import;
use crate::model::{Article, ArticleId};
use crate::store::{
    Changed, Edge, Shows, Store, StoreError, StoredArticle, StoredTombstone, Window,
};

/// Most tombstones one document carries: the newest takedowns. A reader polls far more often
/// than a hundred takedowns happen in one feed; one that polls less still drops what it holds
/// when the item is gone from the feed's newest items anyway.
pub const MAX_TOMBSTONES: u32 = 100;

/// A feed ready to render: format-neutral.
#[derive(Debug, Clone)]
pub struct Feed {
    /// What was asked for.
    pub key: FeedKey,
    /// Display title, e.g. `科创产业网 · 氢能科技`.
    pub title: String,
    /// One sentence about the feed.
    pub description: String,
    /// Newest first (ties: greater id first).
    pub items: Vec<Article>,
    /// The articles taken down from this feed lately (RFC 6721), newest takedown first: for
    /// Atom and JSON Feed, which can say so (RSS cannot), never more than [`MAX_TOMBSTONES`].
    pub tombstones: Vec<Tombstone>,
    /// When what the feed shows last changed: the store's change time for a feed read from the
    /// store; for one [`describe`]d from given items, the latest publication or edit among them
    /// (the Unix epoch for none, so that an unchanged feed always renders to the same bytes).
    pub updated: DateTime<Utc>,
    /// Links to the monthly archives (RFC 5005).
    pub archive: Archive,
    /// How far the clock `updated` was taken by (the store's) was ahead of this machine's.
    pub store_clock_ahead: chrono::TimeDelta,
    /// Whether it is the archive of a month that has ended (RFC 5005 `fh:archive`).
    pub closed: bool,
    /// When the document goes out of date without any write: for the archive of the month in
    /// progress, when that month ends (it is then a closed archive, and this one, unmarked, is
    /// outdated); for a feed whose newest item is dated later, when its link to the month in
    /// progress should move on.
    pub open_until: Option<DateTime<Utc>>,
}

/// A month that has no archive: one after the month in progress, or one before the feed's
/// oldest item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{why}")]
pub struct NoArchive {
    /// Why, for the reader.
    pub why: String,
    /// When the month may have an archive without any write: its start, for a month to come.
    pub until: Option<DateTime<Utc>>,
}

/// Why a feed's document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The archive asked for does not exist.
    #[error(transparent)]
    NoArchive(NoArchive),
}

/// What a feed says of an article taken down from it: its id and when, nothing of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The article's id (its items' ids derive from it).
    pub id: ArticleId,
    /// When it was taken down.
    pub deleted_at: DateTime<Utc>,
}

/// Where a document stands among the monthly archives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Archive {
    /// The next older month that has items: for the newest-items view, the month of its newest
    /// item, so that walking back from the feed visits every item.
    pub prev: Option<Month>,
    /// The next newer month that has items (archives only).
    pub next: Option<Month>,
}

/// What the store holds for a feed: its rows, not yet through the intake, and its neighbouring
/// archives.
#[derive(Debug, Clone)]
pub struct Selected {
    rows: Vec<StoredArticle>,
    tombstones: Vec<StoredTombstone>,
    archive: Archive,
    /// When what the feed shows last changed, read with the rows (or before them).
    changed: Changed,
}

/// Reads what a feed holds from the store. A month after the one in progress has no archive,
/// nor has one before the feed's oldest item (the month in progress always has one: the feed
/// links to it).
pub async fn select(
    settings: &Settings,
    store: &Store,
    key: &FeedKey,
) -> Result<Selected, SelectError> {
    let selection = key.feed.selection(&settings.catalog);
    let tz = settings.site.time_zone;
    let current = Month::of(Utc::now(), tz);
    // Only the formats that can carry tombstones read them; the change time, read first,
    // covers them, since a takedown and a store again both stamp the buckets they are in.
    let shown_for = settings.tombstones.shown_for();
    let shows_tombstones =
        !shown_for.is_zero() && matches!(key.format, Format::Atom | Format::Json | Format::Wechat);
    let since = || Utc::now() - chrono::TimeDelta::from_std(shown_for).unwrap_or_default();
    // The change time with the rows, then the tombstones, one after the other on one
    // connection.
    let mut reading = store.reading();
    let (rows, archive, changed, tombstones) = match key.view {
        View::Latest { limit } => {
            let window = Window::newest(limit);
            let (changed, rows) = reading
                .changed_and_articles(&selection, Shows::Newest, window)
                .await?;
            // Whatever `?limit=`: a takedown concerns every reader of the feed.
            let tombstones = if shows_tombstones {
                let window = Window::newest(MAX_TOMBSTONES);
                reading.tombstones(&selection, window, since()).await?
            } else {
                Vec::new()
            };
            (rows, Archive::default(), changed, tombstones)
        }
        View::Archive(month) if month > current => {
            return Err(SelectError::NoArchive(NoArchive {
                why: format!(
                    "no archive of {} for {month}: the month has not begun",
                    key.feed
                ),
                until: Some(month.start(tz)),
            }));
        }
        View::Archive(month) => {
            let window = Window {
                from: Some(month.start(tz)),
                until: Some(month.end(tz)),
                limit: None,
            };
            let (prev, next) = tokio::try_join!(
                store.edge(&selection, Edge::NewestBefore(month.start(tz))),
                store.edge(&selection, Edge::OldestFrom(month.end(tz))),
            )?;
            // With the rows, or before them: a write in between makes the time older than what
            // is shown (a needless 200 later), never newer (a wrong 304). From the neighbours'
            // articles on: one coming or going between them moves this archive's links.
            let shows = Shows::Published {
                from: prev,
                to: next,
            };
            let (changed, rows) = reading
                .changed_and_articles(&selection, shows, window)
                .await?;
            // Before the oldest item: unless a takedown in it is still announced, which only
            // its archive can carry (in every format alike, so RSS is asked too).
            let before_oldest = prev.is_none() && rows.is_empty() && month < current;
            let announced = before_oldest
                && !shown_for.is_zero()
                && !reading
                    .tombstones(
                        &selection,
                        Window {
                            limit: Some(1),
                            ..window
                        },
                        since(),
                    )
                    .await?
                    .is_empty();
            if before_oldest && !announced {
                return Err(SelectError::NoArchive(NoArchive {
                    why: format!(
                        "no archive of {} for {month}: its oldest item is later",
                        key.feed
                    ),
                    until: None,
                }));
            }
            // The month the article was published in, in the site's time zone, as it was
            // archived.
            let tombstones = if shows_tombstones {
                let window = Window {
                    limit: Some(MAX_TOMBSTONES),
                    ..window
                };
                reading.tombstones(&selection, window, since()).await?
            } else {
                Vec::new()
            };
            // An item dated ahead is in no archive until its month comes: the link goes to
            // the month in progress, which is the newest archive there is.
            let archive = Archive {
                prev: prev.map(|t| Month::of(t, tz)),
                next: next
                    .map(|t| Month::of(t, tz).min(current))
                    .filter(|&m| m > month),
            };
            (rows, archive, changed, tombstones)
        }
    };
    Ok(Selected {
        rows,
        tombstones,
        archive,
        changed,
    })
}

/// Puts a feed's rows through the intake and describes the feed: CPU work (a row the CMS wrote
/// is sanitized here).
pub fn finish(settings: &Settings, key: &FeedKey, selected: Selected) -> Feed {
    let Selected {
        rows,
        tombstones,
        mut archive,
        changed,
    } = selected;
    let tz = settings.site.time_zone;
    // Every row goes through the intake, which skips one that cannot be fixed: one bad row
    // must not take the feed down for every subscriber.
    let wanted = match key.view {
        View::Latest { limit } => limit as usize,
        View::Archive(_) => usize::MAX,
    };
    let items: Vec<Article> = rows
        .into_iter()
        .filter_map(|row| import::stored(row, settings))
        .take(wanted)
        .collect();
    let mut open_until = None;
    if let View::Latest { .. } = key.view {
        // The month in progress at the latest, however far ahead the newest item is dated:
        // later months have no archive yet. When it ends, the link moves on.
        let current = Month::of(Utc::now(), tz);
        let newest = items.first().map(|a| Month::of(a.published_at(), tz));
        archive.prev = newest.map(|m| m.min(current));
        if newest.is_some_and(|m| m > current) {
            open_until = Some(current.end(tz));
        }
    }
    let described = describe(settings, key, items, archive);
    Feed {
        // The store's change time, not the newest item's: it moves on an edit of an older
        // item and on a takedown too.
        updated: changed.at,
        store_clock_ahead: changed.clock_ahead,
        tombstones: tombstones.into_iter().filter_map(tombstone).collect(),
        open_until: open_until.or(described.open_until),
        ..described
    }
}

/// A tombstone as read back; one whose id or time cannot be trusted is left out (its article
/// could never have been shown either).
fn tombstone(row: StoredTombstone) -> Option<Tombstone> {
    Some(Tombstone {
        id: ArticleId::parse(&row.article_id).ok()?,
        deleted_at: DateTime::from_timestamp_micros(row.deleted_at)?,
    })
}

/// Titles a feed and computes its last-updated time; separate from the store so it is tested
/// on its own.
pub fn describe(settings: &Settings, key: &FeedKey, items: Vec<Article>, archive: Archive) -> Feed {
    let site = &settings.site;
    let catalog = &settings.catalog;
    let name = key.feed.name(catalog);
    let description = match &key.feed {
        FeedId::Category(_) => format!("{}「{name}」栏目的最新文章", site.title),
        FeedId::Region(_) => format!("{}关于{name}及其下辖地区的最新文章", site.title),
        FeedId::Custom(slug) => match catalog.feed(slug.as_str()) {
            Some(f) => f
                .description
                .clone()
                .unwrap_or_else(|| format!("{}：{}", site.title, f.title)),
            None => site.description.clone(),
        },
    };
    let title = match key.view {
        View::Latest { .. } => format!("{} · {name}", site.title),
        View::Archive(month) => format!("{} · {name}（{month} 存档）", site.title),
    };
    let updated = items
        .iter()
        .map(Article::modified_at)
        .max()
        .unwrap_or(DateTime::UNIX_EPOCH);
    let now = Utc::now();
    let open_until = match key.view {
        View::Archive(month) if !key.is_closed_archive(settings, now) => {
            Some(month.end(site.time_zone))
        }
        _ => None,
    };
    Feed {
        key: key.clone(),
        title,
        description,
        items,
        tombstones: Vec::new(),
        updated,
        archive,
        store_clock_ahead: chrono::TimeDelta::zero(),
        closed: key.is_closed_archive(settings, now),
        open_until,
    }
}
