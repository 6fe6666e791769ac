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

use std::io::Write;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::feed::{FeedId, FeedKey};

/// Bytes counted for an entry besides its body: key, validators and bookkeeping.
const ENTRY_OVERHEAD: u32 = 256;

/// gzip level: 6 is gzip's own default, close to the best ratio for a fraction of the time.
const GZIP_LEVEL: u32 = 6;
/// brotli quality: beyond 9 the time grows steeply for little gain on feed-sized documents.
const BROTLI_QUALITY: u32 = 9;
const BROTLI_WINDOW: u32 = 22;

/// A rendered document.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The document.
    pub body: Bytes,
    /// The latest publication or edit among its items; `None` when it has none.
    pub last_modified: Option<DateTime<Utc>>,
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

/// A document ready to send in every encoding, with its validators.
#[derive(Debug, Clone)]
pub struct Encoded {
    identity: Bytes,
    gzip: Bytes,
    brotli: Bytes,
    /// Hex digest of the uncompressed bytes; each variant's ETag derives from it.
    digest: String,
    /// The latest publication or edit among its items.
    pub last_modified: Option<DateTime<Utc>>,
}

impl Encoded {
    /// Compresses a rendered document once, in every encoding.
    pub fn new(rendered: Rendered) -> Self {
        let body = rendered.body;
        let digest = Sha256::digest(&body);
        let digest: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Encoded {
            gzip: gzip(&body),
            brotli: brotli(&body),
            identity: body,
            digest,
            last_modified: rendered.last_modified,
        }
    }

    /// The bytes and strong ETag of one variant. Each variant has its own ETag, since their
    /// bytes differ.
    pub fn variant(&self, encoding: Encoding) -> (&Bytes, String) {
        match encoding {
            Encoding::Identity => (&self.identity, format!("\"{}\"", self.digest)),
            Encoding::Gzip => (&self.gzip, format!("\"{}-gzip\"", self.digest)),
            Encoding::Brotli => (&self.brotli, format!("\"{}-br\"", self.digest)),
        }
    }

    /// Bytes held, all variants together.
    pub fn size(&self) -> usize {
        self.identity.len() + self.gzip.len() + self.brotli.len() + self.digest.len()
    }
}

fn gzip(body: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::new(GZIP_LEVEL),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    Bytes::from(encoder.finish().unwrap_or_default())
}

fn brotli(body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() / 4);
    {
        let mut writer =
            brotli::CompressorWriter::new(&mut out, 4096, BROTLI_QUALITY, BROTLI_WINDOW);
        let _ = writer.write_all(body);
    }
    Bytes::from(out)
}

/// A cached document with the write-clock reading at which its build began.
#[derive(Debug)]
pub struct Cached {
    /// The document.
    pub doc: Encoded,
    built_after: u64,
}

/// The rendered-feed cache.
pub struct FeedCache {
    entries: Cache<FeedKey, Arc<Cached>>,
    /// Incremented by every write.
    clock: AtomicU64,
    /// Per feed, the clock reading of the last write that touched it.
    touched: HashMap<FeedId, AtomicU64>,
    /// The clock reading of the last "drop everything".
    all_dropped: AtomicU64,
}

impl FeedCache {
    /// A cache of at most `max_bytes` for the given feeds (every feed the catalog declares).
    pub fn new(max_bytes: u64, feeds: Vec<FeedId>) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &FeedKey, value: &Arc<Cached>| {
                u32::try_from(value.doc.size())
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            })
            .build();
        FeedCache {
            entries,
            clock: AtomicU64::new(0),
            touched: feeds.into_iter().map(|f| (f, AtomicU64::new(0))).collect(),
            all_dropped: AtomicU64::new(0),
        }
    }

    fn is_current(&self, key: &FeedKey, entry: &Cached) -> bool {
        let feed_touched = self
            .touched
            .get(&key.feed)
            .map_or(0, |t| t.load(Ordering::SeqCst));
        entry.built_after >= feed_touched.max(self.all_dropped.load(Ordering::SeqCst))
    }

    /// The cached rendering of `key`, or the result of `build`, which runs at most once at a
    /// time per key however many requests miss together.
    pub async fn get_or_build<E, Fut>(
        &self,
        key: &FeedKey,
        build: impl FnOnce() -> Fut,
    ) -> Result<Arc<Cached>, Arc<E>>
    where
        Fut: Future<Output = Result<Encoded, E>>,
        E: Send + Sync + 'static,
    {
        if let Some(hit) = self.entries.get(key).await {
            if self.is_current(key, &hit) {
                return Ok(hit);
            }
            self.entries.invalidate(key).await;
        }
        let built_after = self.clock.load(Ordering::SeqCst);
        self.entries
            .try_get_with(key.clone(), async move {
                let doc = build().await?;
                Ok(Arc::new(Cached { doc, built_after }))
            })
            .await
    }

    /// Marks `feeds` as changed by a write that has been committed.
    pub fn drop_feeds(&self, feeds: &[FeedId]) {
        let now = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        for feed in feeds {
            if let Some(t) = self.touched.get(feed) {
                t.store(now, Ordering::SeqCst);
            }
        }
    }

    /// Marks every feed as changed (e.g. after missing change notifications).
    pub fn drop_all(&self) {
        let now = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        self.all_dropped.store(now, Ordering::SeqCst);
        self.entries.invalidate_all();
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
            .doc
            .variant(Encoding::Identity)
            .0
            .clone()
    }

    #[tokio::test]
    async fn can_serve_a_hit_without_building() {
        let (a, builds) = (key("a"), AtomicUsize::new(0));
        let cache = FeedCache::new(1 << 20, vec![a.feed.clone()]);
        assert_eq!(get(&cache, &a, &builds, "one").await, "one");
        assert_eq!(get(&cache, &a, &builds, "two").await, "one");
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_write_drops_only_the_feeds_it_touched() {
        let (a, b, builds) = (key("a"), key("b"), AtomicUsize::new(0));
        let cache = FeedCache::new(1 << 20, vec![a.feed.clone(), b.feed.clone()]);
        get(&cache, &a, &builds, "a1").await;
        get(&cache, &b, &builds, "b1").await;
        cache.drop_feeds(std::slice::from_ref(&a.feed));
        assert_eq!(get(&cache, &a, &builds, "a2").await, "a2");
        assert_eq!(get(&cache, &b, &builds, "b2").await, "b1");
        cache.drop_all();
        assert_eq!(get(&cache, &b, &builds, "b3").await, "b3");
    }

    #[tokio::test]
    async fn a_build_that_raced_with_a_write_is_not_served_after_it() {
        let (a, builds) = (key("a"), AtomicUsize::new(0));
        let cache = FeedCache::new(1 << 20, vec![a.feed.clone()]);
        let stale = cache
            .get_or_build::<(), _>(&a, || async {
                // The write commits and drops the feed while this build is under way.
                cache.drop_feeds(std::slice::from_ref(&a.feed));
                Ok(rendered("old"))
            })
            .await
            .unwrap();
        assert_eq!(stale.doc.variant(Encoding::Identity).0, "old");
        assert_eq!(get(&cache, &a, &builds, "new").await, "new");
    }

    #[tokio::test]
    async fn concurrent_misses_build_once() {
        let (a, builds) = (key("a"), AtomicUsize::new(0));
        let cache = FeedCache::new(1 << 20, vec![a.feed.clone()]);
        let gets = (0..16).map(|_| get(&cache, &a, &builds, "x"));
        let bodies = futures::future::join_all(gets).await;
        assert!(bodies.iter().all(|b| b == "x"));
        assert_eq!(builds.load(Ordering::SeqCst), 1);
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
        let cache = FeedCache::new(64 * 1024, keys.iter().map(|k| k.feed.clone()).collect());
        let body = "x".repeat(4096);
        for k in &keys {
            get(&cache, k, &builds, &body).await;
        }
        assert!(cache.weighted_size().await <= 64 * 1024);
    }
}
