//! Rendered feeds, cached as ready-to-send bytes in a moka cache bounded by their size.
//!
//! An entry is an [`Encoded`] document: the rendered bytes, their gzip and brotli variants
//! (compressed once, when the document enters the cache, never per request) and the validators
//! (a strong ETag per variant, derived from the bytes so it survives restarts, and
//! Last-Modified). A hit or a 304 touches neither the store nor the renderer; concurrent misses on one key build it once
//! (moka's `try_get_with`). A write drops the feeds it touched: rather than hunting every key
//! (each feed exists in several formats and item counts), the cache keeps a write clock and, per
//! feed, the clock reading of the last write that touched it. An entry records the clock when
//! its build began and is current only if no write touched its feed since; so an entry whose
//! build raced with a write is never served after that write has returned.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::io::Write;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderName, HeaderValue};
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::feed::tags::CacheTag;
use crate::feed::{FeedId, FeedKey, NoArchive};
use crate::model::{Bucket, Catalog};
use crate::render::Links;
use crate::store::{Change, Health};

/// Bytes counted for an entry besides its bodies: the key, the formatted validators, the
/// links, and moka's own node, hash-table and queue entries: about a kilobyte, estimated
/// from the types. Erring low would let a cache of thousands of small feeds outgrow its budget.
const ENTRY_OVERHEAD: u32 = 1024;

/// gzip level: 6 is gzip's own default, close to the best ratio for a fraction of the time.
const GZIP_LEVEL: u32 = 6;
/// brotli quality and window: measured (bench/run's memory sweep), quality 9 with a 4 MiB window
/// held tens of MiB per compression in flight and pushed the process far past the cache budget;
/// quality 6 with a 1 MiB window costs a few MiB and compresses feeds almost as well. A 256 KiB
/// window (18) took another 8 MiB off the sweep's peak and changed a 270 KB feed's brotli size by
/// 2 bytes: feeds repeat themselves at short range (tags, URLs), not across hundreds of KB.
const BROTLI_QUALITY: u32 = 6;
const BROTLI_WINDOW: u32 = 18;

/// A rendered document.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The document.
    pub body: Bytes,
    /// When what it shows last changed (microseconds); `None` for a page of no store data.
    pub last_modified: Option<DateTime<Utc>>,
    /// How far the clock that time is by (the store's) was ahead of this machine's.
    pub store_clock_ahead: chrono::TimeDelta,
    /// The document's links, for its `Link` header (self, hubs), if it has one.
    pub links: Option<Links>,
    /// Its cache tags, most important first (none for a page of no store data).
    pub tags: Vec<CacheTag>,
    /// When it goes out of date without any write (the archive of the month in progress, at
    /// the month's end); `None`: only a write outdates it.
    pub expires: Option<DateTime<Utc>>,
}

/// A content coding feedcast can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Uncompressed.
    Identity,
    /// gzip.
    Gzip,
    /// brotli.
    Brotli,
}

impl Encoding {
    /// The `Content-Encoding` token (`None` for identity, which is not sent).
    pub fn token(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }
}

/// A document ready to send in every encoding, with its validators already written as header
/// values (the quoted ETag, the HTTP date), so that a hit or a 304 formats and checks nothing:
/// a `HeaderValue` is shared bytes, cloned by a reference count. The HTTP layer decides which
/// headers they go in.
#[derive(Debug, Clone)]
pub struct Encoded {
    identity: Bytes,
    gzip: Bytes,
    brotli: Bytes,
    /// Each variant's strong ETag (they differ, since the bytes do), in `Encoding` order.
    etags: [HeaderValue; 3],
    /// When what it shows last changed, to the microsecond: `If-Modified-Since` is compared
    /// with this, so a change within the second of the date a client holds is never a 304.
    pub last_modified: Option<DateTime<Utc>>,
    /// `last_modified` rounded up to the whole second, as an HTTP date (IMF-fixdate), and that
    /// second: to be held back while it is still ahead of the response (see `http`).
    pub last_modified_http: Option<(i64, HeaderValue)>,
    /// How far the store's clock was ahead of this machine's when `last_modified` was read.
    pub store_clock_ahead: chrono::TimeDelta,
    /// The document's links, for its `Link` header, if it has any.
    pub links: Option<Links>,
    /// The `Link` header's value, as the HTTP layer wrote it on first use.
    link_header: std::sync::OnceLock<Option<HeaderValue>>,
    tags: Vec<CacheTag>,
    /// The values of the headers naming `tags`, written once by [`Encoded::tag_headers`].
    tag_headers: std::sync::OnceLock<Vec<(HeaderName, HeaderValue)>>,
    /// When it goes out of date without any write, if it does.
    expires: Option<DateTime<Utc>>,
    /// Set for an archive that does not exist: the answer is cached like a document, so that
    /// asking again costs no store read, and dropped like one when a write could make it.
    absent: Option<NoArchive>,
}

impl Encoded {
    /// Compresses a rendered document once, in every encoding.
    pub fn new(rendered: Rendered) -> Self {
        let body = rendered.body;
        let digest = Sha256::digest(&body);
        let digest: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let etag = |suffix: &str| wire(format!("\"{digest}{suffix}\""));
        Encoded {
            etags: [etag(""), etag("-gzip"), etag("-br")],
            gzip: gzip(&body),
            brotli: brotli(&body),
            identity: body,
            // The IMF-fixdate, by chrono rather than httpdate: httpdate cannot write dates
            // before 1970, and articles reach back to 1900.
            last_modified_http: rendered.last_modified.map(|t| {
                let second = crate::render::whole_second_up(t);
                let http = second.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                (second.timestamp(), wire(http))
            }),
            last_modified: rendered.last_modified,
            store_clock_ahead: rendered.store_clock_ahead,
            links: rendered.links,
            link_header: std::sync::OnceLock::new(),
            tags: rendered.tags,
            tag_headers: std::sync::OnceLock::new(),
            expires: rendered.expires,
            absent: None,
        }
    }

    /// What stands in the cache for an archive that does not exist.
    pub fn absent(no: NoArchive) -> Self {
        let mut doc = Encoded::new(Rendered {
            body: Bytes::new(),
            last_modified: None,
            store_clock_ahead: chrono::TimeDelta::zero(),
            links: None,
            tags: Vec::new(),
            expires: no.until,
        });
        doc.absent = Some(no);
        doc
    }

    /// Why there is no such archive, if this stands for one that does not exist.
    pub fn absent_because(&self) -> Option<&NoArchive> {
        self.absent.as_ref()
    }

    /// The bytes and strong ETag of one variant. Each variant has its own ETag, since their
    /// bytes differ.
    pub fn variant(&self, encoding: Encoding) -> (&Bytes, &HeaderValue) {
        match encoding {
            Encoding::Identity => (&self.identity, &self.etags[0]),
            Encoding::Gzip => (&self.gzip, &self.etags[1]),
            Encoding::Brotli => (&self.brotli, &self.etags[2]),
        }
    }

    /// The document's `Link` header value, if it has links: made by `write` (the HTTP layer
    /// knows the syntax) on first use and kept, so that a hit formats nothing.
    pub fn link_header(&self, write: impl FnOnce(&Links) -> String) -> Option<&HeaderValue> {
        let links = self.links.as_ref()?;
        self.link_header
            .get_or_init(|| HeaderValue::try_from(write(links)).ok())
            .as_ref()
    }

    /// The headers naming the document's cache tags, as `write` makes them the first time;
    /// `None` for a document without tags.
    pub fn tag_headers(
        &self,
        write: impl FnOnce(&[CacheTag]) -> Vec<(HeaderName, HeaderValue)>,
    ) -> Option<&[(HeaderName, HeaderValue)]> {
        if self.tags.is_empty() {
            return None;
        }
        Some(self.tag_headers.get_or_init(|| write(&self.tags)))
    }

    /// Bytes held, all variants together.
    pub fn size(&self) -> usize {
        // The tags, and the header values written from them (one or two).
        let tags: usize = self.tags.iter().map(|t| t.as_str().len() + 1).sum();
        self.identity.len() + self.gzip.len() + self.brotli.len() + 3 * 40 + 3 * tags
    }
}

/// A header value of text the cache wrote itself (hex digits and quotes, an HTTP date), which
/// is always valid; were it not, an empty value stands in, which the HTTP layer leaves out.
fn wire(text: String) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn gzip(body: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::new(GZIP_LEVEL),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    // Exactly sized (see `render::render`): the cache weighs entries by their length.
    Bytes::from(encoder.finish().unwrap_or_default().into_boxed_slice())
}

fn brotli(body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() / 4);
    {
        let mut writer =
            brotli::CompressorWriter::new(&mut out, 4096, BROTLI_QUALITY, BROTLI_WINDOW);
        let _ = writer.write_all(body);
    }
    Bytes::from(out.into_boxed_slice())
}

/// A cached document with the write-clock reading at which its build began.
#[derive(Debug)]
pub struct Cached {
    /// The document.
    pub doc: Encoded,
    built_after: u64,
    built_at: Instant,
    /// When its build began, by this machine's clock: what it shows is from after this.
    pub began: DateTime<Utc>,
}

impl Cached {
    /// How long ago the document was built.
    pub fn age(&self) -> Duration {
        self.built_at.elapsed()
    }
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Served {
    /// The current document.
    Fresh(Arc<Cached>),
    /// An outdated document, served because rebuilding it failed (the store is down).
    Stale(Arc<Cached>),
}

impl Served {
    /// The document, fresh or stale.
    pub fn entry(&self) -> &Arc<Cached> {
        match self {
            Served::Fresh(c) | Served::Stale(c) => c,
        }
    }

    /// Whether it is outdated.
    pub fn is_stale(&self) -> bool {
        matches!(self, Served::Stale(_))
    }
}

fn stale(entry: Arc<Cached>) -> Served {
    metrics::counter!(crate::metrics::CACHE_STALE).increment(1);
    Served::Stale(entry)
}

/// Why feeds are being dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// Articles were added or edited: an outdated copy may still stand in while the store is
    /// down.
    Change,
    /// An article was taken down: no copy from before may be served again, even stale.
    Takedown,
}

/// Per feed, clock readings of the last write that touched it and of the last takedown.
#[derive(Default)]
struct Marks {
    changed: AtomicU64,
    taken_down: AtomicU64,
}

/// How many builds one request tries when writes keep outdating them as they finish.
const MAX_BUILDS: u32 = 3;

/// After a failed build, how long outdated entries are served as they are before the store is
/// tried again, so a failing store is not hammered by every request.
const RETRY_BUILD_AFTER: Duration = Duration::from_secs(1);

/// The keys' hasher: every hit hashes its key twice (the entry, its feed's marks), and SipHash
/// was a fifth of a hit's cache lookup (callgrind). Keys are feeds the catalog declares, never
/// a client's free choice, so a fast seeded hash is as safe here.
type Hasher = foldhash::fast::RandomState;

/// The rendered-feed cache.
pub struct FeedCache {
    entries: Cache<FeedKey, Arc<Cached>, Hasher>,
    /// Incremented by every write.
    clock: AtomicU64,
    marks: HashMap<FeedId, Marks, Hasher>,
    /// The clock reading of the last "drop everything".
    all_dropped: AtomicU64,
    /// The store's health, shared with the store and readiness: while reads fail or changes
    /// cannot be heard, even current entries are served as stale, since changes to them may
    /// have gone unheard.
    health: Health,
    /// Looked up once: a hit is cheap enough that a registry lookup would be most of it.
    hits: metrics::Counter,
}

impl FeedCache {
    /// A cache of at most `max_bytes` for the given feeds (every feed the catalog declares).
    pub fn new(max_bytes: u64, feeds: Vec<FeedId>, health: Health) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &FeedKey, value: &Arc<Cached>| {
                u32::try_from(value.doc.size())
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            })
            .build_with_hasher(Hasher::default());
        FeedCache {
            entries,
            clock: AtomicU64::new(0),
            marks: feeds.into_iter().map(|f| (f, Marks::default())).collect(),
            all_dropped: AtomicU64::new(0),
            health,
            hits: metrics::counter!(crate::metrics::CACHE_HITS),
        }
    }

    fn is_current(&self, key: &FeedKey, entry: &Cached) -> bool {
        let changed = self
            .marks
            .get(&key.feed)
            .map_or(0, |m| m.changed.load(Ordering::SeqCst));
        let expired = entry.doc.expires.is_some_and(|t| t <= Utc::now());
        !expired && entry.built_after >= changed.max(self.all_dropped.load(Ordering::SeqCst))
    }

    fn may_stand_in(&self, key: &FeedKey, entry: &Cached) -> bool {
        let taken_down = self
            .marks
            .get(&key.feed)
            .map_or(0, |m| m.taken_down.load(Ordering::SeqCst));
        entry.built_after >= taken_down
    }

    fn failed_recently(&self) -> bool {
        self.health.read_failed_within(RETRY_BUILD_AFTER)
    }

    /// Serves a current entry as fresh, unless the store is failing or changes cannot be
    /// heard: then no entry can vouch for itself.
    fn label(&self, entry: Arc<Cached>) -> Served {
        if self.health.reads_failing() || !self.health.is_listening() {
            stale(entry)
        } else {
            Served::Fresh(entry)
        }
    }

    /// The current document of `key`, or the result of `build`, which runs at most once at a
    /// time per key however many requests miss together. A build that raced with a write is
    /// not served as current: it is built again. When the build fails and an outdated copy
    /// may stand in (no takedown since it was built), that copy is served, marked stale.
    pub async fn get_or_build<E, Fut>(
        &self,
        key: &FeedKey,
        build: impl Fn() -> Fut,
    ) -> Result<Served, Arc<E>>
    where
        Fut: Future<Output = Result<Encoded, E>>,
        E: Send + Sync + 'static,
    {
        let mut stand_in: Option<Arc<Cached>> = None;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.entries.get(key).await {
                Some(hit) if self.is_current(key, &hit) => {
                    self.hits.increment(1);
                    return Ok(self.label(hit));
                }
                Some(hit) => {
                    self.entries.invalidate(key).await;
                    stand_in = Some(hit);
                }
                None => {}
            }
            stand_in = stand_in.filter(|old| self.may_stand_in(key, old));
            if let Some(old) = &stand_in {
                if self.failed_recently() {
                    self.entries.insert(key.clone(), old.clone()).await;
                    return Ok(stale(old.clone()));
                }
            }
            metrics::counter!(crate::metrics::CACHE_MISSES).increment(1);
            let built_after = self.clock.load(Ordering::SeqCst);
            let began = Utc::now();
            let built = self
                .entries
                .try_get_with(key.clone(), async {
                    let doc = build().await?;
                    Ok(Arc::new(Cached {
                        doc,
                        built_after,
                        built_at: Instant::now(),
                        began,
                    }))
                })
                .await;
            match built {
                Ok(entry) if self.is_current(key, &entry) => {
                    self.health.read_worked();
                    // moka evicts in batches; without this, a burst of cold builds holds
                    // hundreds of inserted-but-not-yet-weighed entries beyond the budget.
                    self.entries.run_pending_tasks().await;
                    return Ok(self.label(entry));
                }
                // Writes keep racing the builds: serve the latest build, honestly labelled.
                Ok(entry) if attempts >= MAX_BUILDS => return Ok(stale(entry)),
                // The build (maybe another request's) began before a write: build again.
                Ok(_) => continue,
                Err(e) => {
                    self.health.read_failed();
                    return match stand_in.filter(|old| self.may_stand_in(key, old)) {
                        Some(old) => {
                            // Keep it as the stand-in for the next requests.
                            self.entries.insert(key.clone(), old.clone()).await;
                            Ok(stale(old))
                        }
                        None => Err(e),
                    };
                }
            }
        }
    }

    /// Marks `feeds` as changed by a write that has been committed.
    pub fn drop_feeds(&self, feeds: &[FeedId], why: Invalidation) {
        let now = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        for feed in feeds {
            if let Some(m) = self.marks.get(feed) {
                m.changed.store(now, Ordering::SeqCst);
                if why == Invalidation::Takedown {
                    m.taken_down.store(now, Ordering::SeqCst);
                }
            }
        }
    }

    /// Applies a change the database announced (another replica's write, or the CMS's in
    /// SQL): drops the feeds it touched, or on a lost or regained listening connection, marks
    /// the cache as unable to vouch for itself, then outdated.
    pub fn apply(&self, catalog: &Catalog, change: Change) {
        match change {
            Change::Article { id, before, after } => {
                let why = if after.is_none() {
                    Invalidation::Takedown
                } else {
                    Invalidation::Change
                };
                let buckets: Vec<Bucket> = before
                    .iter()
                    .chain(after.iter())
                    .flat_map(|f| catalog.buckets_of(&f.categories, f.region.as_ref()))
                    .collect();
                tracing::debug!(article = %id, feeds = buckets.len(), "store change");
                self.drop_feeds(&FeedId::touched_by(catalog, &buckets), why);
            }
            Change::Resumed => {
                tracing::info!("reading store changes again; replaying those missed meanwhile");
                self.health.set_listening(true);
            }
            Change::Lost => {
                metrics::counter!(crate::metrics::NOTIFY_DISCONNECTS).increment(1);
                self.health.set_listening(false);
            }
            Change::Missed => {
                tracing::info!(
                    "listening for store changes; cached feeds built before are outdated"
                );
                self.drop_all();
                self.health.set_listening(true);
            }
        }
    }

    /// Marks every feed as changed (e.g. after missing change notifications). The entries stay
    /// as stand-ins in case the store is down.
    pub fn drop_all(&self) {
        let now = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        self.all_dropped.store(now, Ordering::SeqCst);
    }

    /// The bytes accounted, without waiting for pending maintenance.
    pub fn weighted_size_now(&self) -> u64 {
        self.entries.weighted_size()
    }

    /// The bytes currently accounted, after pending maintenance.
    pub async fn weighted_size(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::feed::Format;
    use crate::model::CategorySlug;

    fn key(slug: &str) -> FeedKey {
        FeedKey {
            feed: FeedId::Category(CategorySlug::parse(slug).unwrap()),
            format: Format::Rss,
            view: crate::feed::View::Latest { limit: 20 },
        }
    }

    fn rendered(body: &str) -> Encoded {
        Encoded::new(Rendered {
            body: Bytes::from(body.to_owned()),
            last_modified: None,
            store_clock_ahead: chrono::TimeDelta::zero(),
            links: None,
            tags: Vec::new(),
            expires: None,
        })
    }

    async fn get(cache: &FeedCache, k: &FeedKey, builds: &AtomicUsize, body: &str) -> Bytes {
        cache
            .get_or_build::<(), _>(k, || async {
                builds.fetch_add(1, Ordering::SeqCst);
                Ok(rendered(body))
            })
            .await
            .unwrap()
            .entry()
            .doc
            .variant(Encoding::Identity)
            .0
            .clone()
    }

    #[tokio::test]
    async fn can_serve_a_hit_without_building() {
        let (a, builds) = (key("a"), AtomicUsize::new(0));
        let cache = FeedCache::new(1 << 20, vec![a.feed.clone()], Health::default());
        assert_eq!(get(&cache, &a, &builds, "one").await, "one");
        assert_eq!(get(&cache, &a, &builds, "two").await, "one");
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_document_past_its_expiry_is_built_again_without_any_write() {
        // The archive of a month that has just ended was built while it was in progress.
        let (a, builds) = (key("a"), AtomicUsize::new(0));
        let cache = FeedCache::new(1 << 20, vec![a.feed.clone()], Health::default());
        let expiring = |body: &str, expires| {
            let mut doc = rendered(body);
            doc.expires = Some(expires);
            doc
        };
        let ended = Utc::now() - chrono::TimeDelta::seconds(1);
        let served = cache
            .get_or_build::<(), _>(&a, || async { Ok(expiring("open", ended)) })
            .await
            .unwrap();
        assert_eq!(served.entry().doc.variant(Encoding::Identity).0, "open");
        assert_eq!(get(&cache, &a, &builds, "closed").await, "closed");
        let later = Utc::now() + chrono::TimeDelta::days(1);
        let b = key("b");
        cache
            .get_or_build::<(), _>(&b, || async { Ok(expiring("open", later)) })
            .await
            .unwrap();
        assert_eq!(get(&cache, &b, &builds, "closed").await, "open", "not yet");
    }

    #[tokio::test]
    async fn a_write_drops_only_the_feeds_it_touched() {
        let (a, b, builds) = (key("a"), key("b"), AtomicUsize::new(0));
        let cache = FeedCache::new(
            1 << 20,
            vec![a.feed.clone(), b.feed.clone()],
            Health::default(),
        );
        get(&cache, &a, &builds, "a1").await;
        get(&cache, &b, &builds, "b1").await;
        cache.drop_feeds(std::slice::from_ref(&a.feed), Invalidation::Change);
        assert_eq!(get(&cache, &a, &builds, "a2").await, "a2");
        assert_eq!(get(&cache, &b, &builds, "b2").await, "b1");
        cache.drop_all();
        assert_eq!(get(&cache, &b, &builds, "b3").await, "b3");
    }

    #[tokio::test]
    async fn a_build_that_raced_with_a_write_is_not_served_after_it() {
        let (a, builds) = (key("a"), AtomicUsize::new(0));
        let cache = FeedCache::new(1 << 20, vec![a.feed.clone()], Health::default());
        let stale = cache
            .get_or_build::<(), _>(&a, || async {
                // The write commits and drops the feed while this build is under way.
                cache.drop_feeds(std::slice::from_ref(&a.feed), Invalidation::Change);
                Ok(rendered("old"))
            })
            .await
            .unwrap();
        assert_eq!(stale.entry().doc.variant(Encoding::Identity).0, "old");
        assert_eq!(get(&cache, &a, &builds, "new").await, "new");
    }

    #[tokio::test]
    async fn entries_are_stale_while_changes_cannot_be_heard() {
        let (a, builds) = (key("a"), AtomicUsize::new(0));
        let cache = FeedCache::new(1 << 20, vec![a.feed.clone()], Health::default());
        get(&cache, &a, &builds, "x").await;
        cache.health.set_listening(false);
        let served = cache
            .get_or_build::<(), _>(&a, || async { Ok(rendered("y")) })
            .await
            .unwrap();
        assert!(served.is_stale());
        cache.health.set_listening(true);
        let served = cache
            .get_or_build::<(), _>(&a, || async { Ok(rendered("y")) })
            .await
            .unwrap();
        assert!(!served.is_stale());
    }

    async fn failing(cache: &FeedCache, k: &FeedKey) -> Result<Served, Arc<&'static str>> {
        cache.get_or_build(k, || async { Err("store down") }).await
    }

    #[tokio::test]
    async fn an_outdated_copy_stands_in_while_builds_fail_but_never_after_a_takedown() {
        let (a, b, builds) = (key("a"), key("b"), AtomicUsize::new(0));
        let cache = FeedCache::new(
            1 << 20,
            vec![a.feed.clone(), b.feed.clone()],
            Health::default(),
        );
        get(&cache, &a, &builds, "a1").await;
        get(&cache, &b, &builds, "b1").await;
        cache.drop_all();
        let served = failing(&cache, &a).await.unwrap();
        assert!(served.is_stale());
        assert_eq!(served.entry().doc.variant(Encoding::Identity).0, "a1");
        // Within the retry delay the stand-in is served without trying the store again.
        let again = cache
            .get_or_build::<&str, _>(&a, || async { panic!("must not build") })
            .await
            .unwrap();
        assert!(again.is_stale());

        // While the store is down, even a current entry cannot vouch for itself.
        let c = key("c2");
        cache.health.read_worked();
        get(&cache, &c, &builds, "c").await;
        cache.health.read_failed();
        assert!(
            cache
                .get_or_build::<&str, _>(&c, || async { Err("x") })
                .await
                .unwrap()
                .is_stale()
        );
        cache.health.read_worked();

        cache.drop_feeds(std::slice::from_ref(&b.feed), Invalidation::Takedown);
        assert!(
            failing(&cache, &b).await.is_err(),
            "a taken-down item is never served"
        );
        // A never-cached feed has nothing to stand in.
        assert!(failing(&cache, &key("c")).await.is_err());
    }

    #[tokio::test]
    async fn concurrent_misses_build_once() {
        let (a, builds) = (key("a"), AtomicUsize::new(0));
        let cache = FeedCache::new(1 << 20, vec![a.feed.clone()], Health::default());
        // The build waits until every request has been polled once, so all 16 are in flight.
        let gate = tokio::sync::Notify::new();
        let gets = (0..16).map(|_| {
            cache.get_or_build::<(), _>(&a, || async {
                builds.fetch_add(1, Ordering::SeqCst);
                gate.notified().await;
                Ok(rendered("x"))
            })
        });
        let (served, ()) = futures::join!(futures::future::join_all(gets), async {
            gate.notify_one();
        });
        assert!(
            served
                .iter()
                .all(|s| s.as_ref().is_ok_and(|s| !s.is_stale()))
        );
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_request_joining_a_build_that_raced_a_write_builds_again() {
        let (a, builds) = (key("a"), AtomicUsize::new(0));
        let cache = FeedCache::new(1 << 20, vec![a.feed.clone()], Health::default());
        let gate = tokio::sync::Notify::new();
        let first = cache.get_or_build::<(), _>(&a, || async {
            let n = builds.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                gate.notified().await;
                Ok(rendered("before the write"))
            } else {
                Ok(rendered("after the write"))
            }
        });
        let (served, ()) = futures::join!(first, async {
            // The write commits while the first build is under way.
            cache.drop_feeds(std::slice::from_ref(&a.feed), Invalidation::Takedown);
            gate.notify_one();
        });
        let served = served.unwrap();
        assert_eq!(
            served.entry().doc.variant(Encoding::Identity).0,
            "after the write"
        );
        assert_eq!(builds.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn every_variant_decodes_to_the_document_and_has_its_own_etag() {
        use std::io::Read;
        let doc = rendered(&"氢能产业园 hydrogen ".repeat(200));
        let (identity, plain_tag) = doc.variant(Encoding::Identity);
        let (gz, gz_tag) = doc.variant(Encoding::Gzip);
        let (br, br_tag) = doc.variant(Encoding::Brotli);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(&out[..], &identity[..]);
        out.clear();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(&out[..], &identity[..]);
        assert!(gz.len() < identity.len() && br.len() < identity.len());
        assert_eq!(
            [plain_tag.len(), gz_tag.len() - 5, br_tag.len() - 3],
            [34, 34, 34]
        );
        assert_ne!(plain_tag, gz_tag);
        // Derived from the bytes alone: the same document has the same validators.
        assert_eq!(
            rendered(&"氢能产业园 hydrogen ".repeat(200))
                .variant(Encoding::Gzip)
                .1,
            gz_tag
        );
    }

    #[tokio::test]
    async fn stays_within_its_byte_budget() {
        let builds = AtomicUsize::new(0);
        let keys: Vec<FeedKey> = (0..100).map(|i| key(&format!("k{i}"))).collect();
        let cache = FeedCache::new(
            64 * 1024,
            keys.iter().map(|k| k.feed.clone()).collect(),
            Health::default(),
        );
        let body = "x".repeat(4096);
        for k in &keys {
            get(&cache, k, &builds, &body).await;
        }
        assert!(cache.weighted_size().await <= 64 * 1024);
    }
}
