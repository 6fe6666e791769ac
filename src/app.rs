//! The service core: the stages wired together. Reading a feed goes cache → (assembly → render
//! → compression); writing articles goes store → cache invalidation → WebSub notification. The
//! HTTP layer and the CLI both call this, so a feed is built the same way whether it is served
//! or printed.

use std::collections::BTreeSet;
use std::sync::Arc;
#[cfg(feature = "testing")]
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::{Encoded, Encoding, FeedCache, Invalidation, Rendered, Served};
use crate::config::{AdminToken, Settings};
use crate::feed::tags::CacheTag;
use crate::feed::{self, FeedId, FeedKey, Format, Month};
use crate::hub;
use crate::import::{self, ImportFailure, Imported};
use crate::model::{Article, ArticleId, Bucket};
use crate::outbound::{self, Delivery, Outbound};
use crate::purge::{self, Purge};
use crate::render::{self, RenderError};
use crate::stats::{LogImport, Poll, Report, Stats, StatsError};
use crate::store::{Change, Outgoing, RequestLimits, RequestRefused, Store, StoreError};
use crate::websub::{self, PublishPing};

/// Why a feed could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The renderer failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The archive asked for does not exist.
    #[error(transparent)]
    NoArchive(feed::NoArchive),
}

impl From<feed::SelectError> for FeedError {
    fn from(e: feed::SelectError) -> Self {
        match e {
            feed::SelectError::Store(e) => FeedError::Store(e),
            feed::SelectError::NoArchive(no) => FeedError::NoArchive(no),
        }
    }
}

/// The WebSub topics of these feeds: each one's newest-items URL, in every feed format.
fn topics(settings: &Settings, feeds: Vec<FeedId>) -> impl Iterator<Item = String> + '_ {
    feeds.into_iter().flat_map(move |feed| {
        Format::FEEDS.map(|format| FeedKey::latest(feed.clone(), format, settings).topic(settings))
    })
}

/// How many times each purge is sent, [`outbound::ROUND_GAP`] apart. Once is not enough: a CDN
/// may fetch a document again while the purge is on its way, from a replica that has not yet
/// heard of the change or from a request that was answered from the cache just before the
/// change, and then keep that copy for its `max-age`; the second round removes it.
const PURGE_ROUNDS: u8 = 2;

/// The requests that change-log entries call for: a WebSub ping for each feed topic that
/// changed, to each hub, and a purge of each cache tag that changed, at each purger, sent in
/// [`PURGE_ROUNDS`] rounds.
fn plan(settings: &Settings, changes: Vec<Change>) -> Vec<Outgoing> {
    let catalog = &settings.catalog;
    let mut feeds = BTreeSet::new();
    let mut tags = BTreeSet::new();
    for change in changes {
        match change {
            Change::Article { id, before, after } => {
                let buckets: Vec<Bucket> = before
                    .iter()
                    .chain(after.iter())
                    .flat_map(|f| catalog.buckets_of(&f.categories, f.region.as_ref()))
                    .collect();
                let months: BTreeSet<Month> = before
                    .iter()
                    .chain(after.iter())
                    .filter_map(|f| f.published_at)
                    .map(|t| Month::of(t, settings.site.time_zone))
                    .collect();
                for feed in FeedId::touched_by(catalog, &buckets) {
                    tags.insert(CacheTag::feed(&feed));
                    tags.extend(months.iter().map(|&m| CacheTag::month(&feed, m)));
                    feeds.insert(feed);
                }
                // Cached documents may hold it: any of them, whichever feed. Only a valid id
                // was ever served (the intake skips rows with others), and only a valid one is
                // fit for a header: one the CMS wrote with a space or a control character in it
                // would split the tag or spoil the purge of every tag sent with it.
                if before.is_some() && ArticleId::parse(&id).is_ok() {
                    tags.insert(CacheTag::article(&id));
                }
            }
            // Everything changed (a refile, a write of many articles).
            _ => {
                feeds.extend(FeedId::all(catalog));
                tags.insert(CacheTag::everything());
            }
        }
    }
    let mut out = Vec::new();
    if settings.hub.enabled {
        let fan_out = |topic| Outgoing {
            kind: hub::FAN_OUT,
            target: "hub".to_owned(),
            topic,
            rounds: 1,
        };
        if tags.contains(&CacheTag::everything()) {
            // One entry, not one per document of every feed.
            out.push(fan_out(hub::EVERY_FEED.to_owned()));
        } else {
            for feed in &feeds {
                out.extend(Format::FEEDS.map(|format| {
                    fan_out(hub::feed_of(&FeedKey::latest(
                        feed.clone(),
                        format,
                        settings,
                    )))
                }));
            }
        }
    }
    if !settings.websub.hubs.is_empty() {
        let topics: BTreeSet<String> = topics(settings, feeds.into_iter().collect()).collect();
        for hub in &settings.websub.hubs {
            out.extend(topics.iter().map(|topic| Outgoing {
                kind: websub::KIND,
                target: hub.to_string(),
                topic: topic.clone(),
                rounds: 1,
            }));
        }
    }
    for purger in &settings.purgers {
        out.extend(tags.iter().map(|tag| Outgoing {
            kind: purge::KIND,
            target: purger.name.clone(),
            topic: tag.to_string(),
            rounds: PURGE_ROUNDS,
        }));
    }
    out
}

/// CPU work that did not finish: its task panicked (a bug) or the runtime is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("CPU work failed: {0}")]
pub struct CpuWorkFailed(String);

impl CpuWorkFailed {
    /// As the error of rendering `key`'s document.
    fn of(self, key: &FeedKey, doing: &str) -> RenderError {
        RenderError {
            format: key.format,
            path: key.url_path(),
            message: format!("{doing} failed: {}", self.0),
        }
    }
}

/// Builds in flight per core. A build is mostly CPU (rendering, compressing) after a short
/// store read. Measured with bench/run's sweep of 10,000 cold feeds: two per core finished the
/// sweep ~10% sooner but peaked ~10 MiB higher; the hot path is the cache, so memory wins.
const BUILDS_PER_CORE: usize = 1;

/// What builds feeds: the store, the cache and the bounds on building, shared by the service and
/// the hub's deliveries (which push a document as it is when they are made).
struct Builder {
    settings: Arc<Settings>,
    store: Store,
    cache: Arc<FeedCache>,
    /// Feeds built from the store so far (for the tests).
    #[cfg(feature = "testing")]
    builds: AtomicU64,
    /// Feeds being built (read, rendered, compressed) at once. Each holds megabytes while it
    /// is built, so a sweep of cold feeds would otherwise grow memory with its concurrency.
    building: tokio::sync::Semaphore,
    /// CPU tasks on the blocking pool at once (see [`Builder::off_async`]).
    cpu: Arc<tokio::sync::Semaphore>,
}

impl Builder {
    /// A feed as served: from the cache, or built, compressed and cached once; an outdated
    /// copy if the store fails and no takedown forbids it.
    pub async fn feed(&self, key: &FeedKey) -> Result<Served, Arc<FeedError>> {
        let served = self
            .cache
            .get_or_build(key, || async {
                let _slot = self.building.acquire().await;
                let rendered = match self.build(key).await {
                    Ok(rendered) => rendered,
                    // Cached too: asked again, it costs no store read until a write.
                    Err(FeedError::NoArchive(no)) => return Ok(Encoded::absent(no)),
                    Err(e) => return Err(e),
                };
                self.off_async(move || Encoded::new(rendered))
                    .await
                    .map_err(|cause| FeedError::Render(cause.of(key, "compressing")))
            })
            .await?;
        match served.entry().doc.absent_because() {
            Some(no) => Err(Arc::new(FeedError::NoArchive(no.clone()))),
            None => Ok(served),
        }
    }

    /// Runs CPU work (sanitizing, rendering, compressing, validating) on Tokio's blocking pool,
    /// one task per core at most, so that it never holds up the threads that serve cached feeds
    /// and 304s, and a burst of it holds a bounded amount of memory.
    pub async fn off_async<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CpuWorkFailed> {
        // The permit goes with the task: if the caller is cancelled (a client gone, a request
        // timed out), the work runs on, and still counts against the bound until it ends.
        let slot = self.cpu.clone().acquire_owned().await;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|e| CpuWorkFailed(e.to_string()))
    }

    /// Builds a feed from the store, bypassing the cache.
    pub async fn build(&self, key: &FeedKey) -> Result<Rendered, FeedError> {
        #[cfg(feature = "testing")]
        self.builds.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let selected = feed::select(&self.settings, &self.store, key).await?;
        let (settings, owned_key) = (self.settings.clone(), key.clone());
        let rendered = self
            .off_async(move || -> Result<Rendered, RenderError> {
                let feed = feed::finish(&settings, &owned_key, selected);
                let body = render::render(&feed, &settings)?;
                let links =
                    (owned_key.format != Format::Html).then(|| render::Links::of(&feed, &settings));
                Ok(Rendered {
                    body,
                    last_modified: (feed.updated > chrono::DateTime::UNIX_EPOCH)
                        .then_some(feed.updated),
                    store_clock_ahead: feed.store_clock_ahead,
                    links,
                    tags: feed::tags::of_document(
                        &owned_key,
                        feed.items.iter().map(|a| a.id().as_str()),
                    ),
                    expires: feed.open_until,
                })
            })
            .await
            .map_err(|cause| cause.of(key, "rendering"))??;
        metrics::histogram!(crate::metrics::BUILD_SECONDS).record(started.elapsed().as_secs_f64());
        Ok(rendered)
    }
}

impl hub::Documents for Builder {
    fn document<'a>(
        &'a self,
        key: &'a FeedKey,
        not_before: chrono::DateTime<chrono::Utc>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<hub::Document, String>> + Send + 'a>,
    > {
        Box::pin(async move {
            let mut served = self.feed(key).await.map_err(|e| e.to_string())?;
            // Built before the change was queued: this replica may not have heard of it yet (a
            // takedown by another replica, a notification still on its way). Built anew from the
            // store, once for all the deliveries waiting for it (a few tries: a build that began
            // earlier may land in the cache first).
            for _ in 0..3 {
                if served.entry().began >= not_before {
                    break;
                }
                self.cache
                    .drop_feeds(std::slice::from_ref(&key.feed), Invalidation::Takedown);
                served = self.feed(key).await.map_err(|e| e.to_string())?;
            }
            // An outdated copy may hold what was since taken down: wait for the store.
            if served.is_stale() || served.entry().began < not_before {
                return Err("no copy built since the change".to_owned());
            }
            let (body, _) = served.entry().doc.variant(Encoding::Identity);
            Ok((body.clone(), key.format.content_type()))
        })
    }
}

/// Denials of subscription requests in flight at once; more are not sent.
const MAX_DENIALS: usize = 64;

/// Why a `POST /websub` was not taken.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The hub is off (`hub.enabled = false`).
    #[error("this site's WebSub hub is off")]
    Off,
    /// The request is malformed or not allowed (400).
    #[error("{0}")]
    BadRequest(String),
    /// Too many requests await verification (503).
    #[error("{0}")]
    Busy(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The running service's shared state.
pub struct App {
    /// The validated configuration.
    pub settings: Arc<Settings>,
    /// The article store.
    pub store: Store,
    cache: Arc<FeedCache>,
    core: Arc<Builder>,
    /// The requests owed to others (WebSub pings, CDN purges), from the change log.
    outbound: Arc<Outbound>,
    /// Applies the database's change notifications to the cache (PostgreSQL).
    listener: Option<JoinHandle<()>>,
    /// The index page, built once: it depends on the configuration only.
    pub index: Encoded,
    /// The OPML list of every feed, built once.
    pub opml: Encoded,
    /// The site icon (`/favicon.ico` and `/icon.<extension>`), as configured.
    pub icon: Encoded,
    /// The Content-Security-Policy of the HTML pages, built once from the configuration.
    pub page_policy: String,
    admin_token: Option<AdminToken>,
    heard: watch::Sender<u64>,
    /// Denials of subscription requests in flight (they are not queued: losing one costs
    /// nothing).
    denials: Arc<tokio::sync::Semaphore>,
    denier: Arc<hub::Denials>,
    /// Subscriber statistics (`None` when `[stats]` is off); their flushing task ends at
    /// [`App::close`], which flushes last.
    stats: Option<Arc<Stats>>,
}

impl App {
    /// Wires a store to a fresh cache sized by the settings and to the WebSub hubs. Must be
    /// called within a Tokio runtime.
    pub fn new(settings: Settings, store: Store) -> Self {
        // Install the recorder before anything records.
        let _ = crate::metrics::handle();
        let cache = Arc::new(FeedCache::new(
            settings.cache.max_bytes,
            FeedId::all(&settings.catalog),
            store.health().clone(),
        ));
        let store = store
            .with_query_timeout(settings.store_query_timeout)
            .with_tombstone_retention(settings.tombstones.shown_for());
        let settings = Arc::new(settings);
        let (heard, _) = watch::channel(0);
        let core = Arc::new(Builder {
            settings: settings.clone(),
            store: store.clone(),
            cache: cache.clone(),
            #[cfg(feature = "testing")]
            builds: AtomicU64::new(0),
            building: tokio::sync::Semaphore::new(BUILDS_PER_CORE * crate::shard::cores()),
            cpu: Arc::new(tokio::sync::Semaphore::new(crate::shard::cores())),
        });
        let deliveries: Vec<Arc<dyn Delivery>> = vec![
            Arc::new(PublishPing::new(settings.websub.retry)),
            Arc::new(Purge::new(&settings.purgers)),
            Arc::new(hub::Verify::new(store.clone(), &settings.hub)),
            Arc::new(hub::EndGone::new(&settings.hub)),
            Arc::new(hub::FanOut::new(store.clone())),
            Arc::new(hub::Deliver::new(
                store.clone(),
                settings.clone(),
                core.clone(),
            )),
        ];
        let planned = settings.clone();
        let outbound = Arc::new(Outbound::start(
            store.clone(),
            deliveries,
            Arc::new(move |changes| plan(&planned, changes)),
            outbound::Limits {
                max_in_flight: settings.outbound.max_in_flight,
                max_per_host: settings.outbound.max_per_host,
                lease: settings.outbound.lease,
            },
        ));
        let listener = store.changes().map(|(mut changes, listening)| {
            // Until the first LISTEN is in place, changes go unheard.
            store.health().set_listening(false);
            let (cache, settings, heard) = (cache.clone(), settings.clone(), heard.clone());
            let outbound = outbound.clone();
            tokio::spawn(async move {
                while let Some(change) = changes.recv().await {
                    cache.apply(&settings.catalog, change);
                    // A CMS write's entry is handled by whichever replica claims it first.
                    outbound.wake();
                    heard.send_modify(|n| *n += 1);
                }
                listening.abort();
            })
        });
        let static_doc = |body: Vec<u8>| {
            Encoded::new(Rendered {
                body: body.into(),
                last_modified: None,
                store_clock_ahead: chrono::TimeDelta::zero(),
                links: None,
                tags: Vec::new(),
                expires: None,
            })
        };
        let denier = Arc::new(hub::Denials::new(&settings.hub));
        let stats = settings.stats.enabled.then(|| {
            let stats = Arc::new(Stats::new(settings.clone(), store.clone()));
            tokio::spawn(stats.clone().run());
            stats
        });
        App {
            index: static_doc(render::index_page(&settings)),
            opml: static_doc(render::opml(&settings)),
            icon: static_doc(settings.site.icon.bytes().to_vec()),
            page_policy: render::content_security_policy(&settings),
            settings,
            store,
            cache,
            core,
            outbound,
            listener,
            admin_token: None,
            heard,
            denials: Arc::new(tokio::sync::Semaphore::new(MAX_DENIALS)),
            denier,
            stats,
        }
    }

    /// Counts the database's change notifications applied to this instance's cache, so a
    /// caller (a test, a probe) can wait for one instead of guessing how long it takes.
    pub fn heard(&self) -> watch::Receiver<u64> {
        self.heard.subscribe()
    }

    /// Whether this instance hears the database's change notifications (always true on
    /// SQLite); while it does not, cached feeds are served marked stale.
    pub fn is_listening(&self) -> bool {
        self.store.health().is_listening()
    }

    /// Bytes held by the feed cache, as last accounted (cheap: no pending maintenance).
    pub fn cache_bytes_now(&self) -> u64 {
        self.cache.weighted_size_now()
    }

    /// Bytes held by the feed cache.
    pub async fn cache_bytes(&self) -> u64 {
        self.cache.weighted_size().await
    }

    /// Turns the admin API on, guarded by `token`.
    pub fn with_admin_token(mut self, token: Option<AdminToken>) -> Self {
        self.admin_token = token;
        self
    }

    /// The admin API's token; `None` when the admin API is off.
    pub fn admin_token(&self) -> Option<&AdminToken> {
        self.admin_token.as_ref()
    }

    /// How many feed documents have been built from the store (each is one assembly and one
    /// rendering); a cache hit or a 304 builds nothing.
    #[cfg(feature = "testing")]
    pub fn builds(&self) -> u64 {
        self.core.builds.load(Ordering::Relaxed)
    }

    /// A feed as served: from the cache, or built, compressed and cached once; an outdated
    /// copy if the store fails and no takedown forbids it.
    pub async fn feed(&self, key: &FeedKey) -> Result<Served, Arc<FeedError>> {
        self.core.feed(key).await
    }

    /// Runs CPU work (sanitizing, rendering, compressing, validating) on Tokio's blocking pool,
    /// one task per core at most (see [`Builder::off_async`]).
    pub async fn off_async<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CpuWorkFailed> {
        self.core.off_async(work).await
    }

    /// Builds a feed from the store, bypassing the cache.
    pub async fn build(&self, key: &FeedKey) -> Result<Rendered, FeedError> {
        self.core.build(key).await
    }

    /// Stores articles (all or none), drops every cached feed they were or are now in, and
    /// tells the WebSub hubs which feeds changed.
    pub async fn write(&self, articles: &[Article]) -> Result<(), StoreError> {
        let buckets = self.store.upsert(articles, &self.settings.catalog).await?;
        self.changed(&buckets, Invalidation::Change);
        Ok(())
    }

    /// Imports NDJSON of any length from `reader` in one transaction (see
    /// [`import::import_ndjson`]), then drops the feeds it changed and tells the hubs.
    pub async fn import_ndjson<R>(&self, reader: R) -> Result<Imported, ImportFailure>
    where
        R: std::io::BufRead + Send + 'static,
    {
        let (imported, buckets) =
            import::import_ndjson(&self.store, &self.settings, reader).await?;
        self.changed(&buckets, Invalidation::Change);
        Ok(imported)
    }

    /// Takes an article down everywhere; `false` if there was no such article.
    pub async fn take_down(&self, id: &ArticleId) -> Result<bool, StoreError> {
        let buckets = match self.store.delete(id).await {
            Ok(Some(buckets)) => buckets,
            Ok(None) => return Ok(false),
            Err(e) => {
                // The takedown may have committed before the failure; which feeds held the
                // article is unknown, so none may serve a copy from before it.
                self.cache
                    .drop_feeds(&FeedId::all(&self.settings.catalog), Invalidation::Takedown);
                return Err(e);
            }
        };
        self.changed(&buckets, Invalidation::Takedown);
        Ok(true)
    }

    /// Takes a WebSub subscription request (`POST /websub`, form-encoded): records it and
    /// queues its verification, or, for a topic this hub does not serve, tells the callback it
    /// is denied. Either way the answer is 202: the outcome reaches the subscriber later.
    pub async fn websub_request(&self, body: &[u8]) -> Result<(), HubError> {
        if !self.settings.hub.enabled {
            return Err(HubError::Off);
        }
        let intent = hub::Intent::parse(body, &self.settings)
            .map_err(|e| HubError::BadRequest(e.to_string()))?;
        match intent {
            hub::Intent::Deny {
                callback,
                topic,
                reason,
            } => {
                if let Ok(slot) = self.denials.clone().try_acquire_owned() {
                    let denier = self.denier.clone();
                    tokio::spawn(async move {
                        denier.deny(&callback, &topic, &reason).await;
                        drop(slot);
                    });
                }
                Ok(())
            }
            hub::Intent::Request(request) => {
                let hub = &self.settings.hub;
                self.store
                    .request_subscription(
                        &request,
                        hub::VERIFY,
                        RequestLimits {
                            per_host: hub.max_subscriptions_per_host,
                            pending: hub.max_pending,
                            pending_per_host: hub.max_pending_per_host,
                        },
                    )
                    .await
                    .map_err(|e| match e {
                        RequestRefused::TooManyForHost(_) => HubError::BadRequest(e.to_string()),
                        RequestRefused::Busy | RequestRefused::HostBusy(_) => {
                            HubError::Busy(e.to_string())
                        }
                        RequestRefused::Store(e) => HubError::Store(e),
                    })?;
                self.outbound.wake();
                Ok(())
            }
        }
    }

    /// Sets the gauges of the outbound queue's depth and of the hub's subscriptions, read from
    /// the store (every replica reports the same: they share it). A store that does not answer
    /// leaves them as they were.
    pub async fn measure_queue(&self) {
        let Ok((queued, subscriptions)) = self.store.queue_depths().await else {
            return;
        };
        let kinds = [
            websub::KIND,
            purge::KIND,
            hub::VERIFY,
            hub::FAN_OUT,
            hub::DELIVER,
            hub::END_GONE,
        ];
        for kind in kinds {
            let n = queued
                .iter()
                .find(|(k, _)| k == kind)
                .map_or(0, |(_, n)| *n);
            metrics::gauge!(crate::metrics::OUTBOUND_QUEUED, "kind" => kind).set(n as f64);
        }
        for kind in ["category", "region", "custom"] {
            let n = subscriptions
                .iter()
                .find(|(k, _)| k == kind)
                .map_or(0, |(_, n)| *n);
            metrics::gauge!(crate::metrics::HUB_SUBSCRIPTIONS, "kind" => kind).set(n as f64);
        }
    }

    /// Tallies an answered request for the subscriber statistics, if it is a poll of a feed
    /// (see [`Stats::record`]); nothing when they are off.
    pub fn record_poll(&self, poll: Poll<'_>) {
        if let Some(stats) = &self.stats {
            stats.record(poll);
        }
    }

    /// Writes this replica's tally of polls to the store now, rather than at the next flush.
    pub async fn flush_stats(&self) -> Result<(), StatsError> {
        match &self.stats {
            Some(stats) => stats.flush().await,
            None => Ok(()),
        }
    }

    /// The subscriber statistics of every feed, as the store holds them now (whether or not
    /// this replica counts: another may).
    pub async fn stats_report(&self) -> Result<Report, StoreError> {
        crate::stats::report(&self.settings, &self.store, chrono::Utc::now()).await
    }

    /// Reads an access log (combined format) into the subscriber statistics.
    pub async fn import_log<R>(&self, reader: R) -> Result<LogImport, StatsError>
    where
        R: std::io::BufRead + Send + 'static,
    {
        match &self.stats {
            Some(stats) => stats.import_log(reader).await,
            None => Ok(LogImport::default()),
        }
    }

    /// Sets the subscriber gauges of `/metrics` (from a report at most 30 s old).
    pub async fn measure_stats(&self) {
        if let Some(stats) = &self.stats {
            stats.measure().await;
        }
    }

    /// Whether the store answers (for readiness checks).
    pub async fn ready(&self) -> Result<(), StoreError> {
        let answer = self.store.ping().await;
        match &answer {
            Ok(()) => {
                self.store.health().read_worked();
                self.store.probe_write().await;
            }
            Err(_) => self.store.health().read_failed(),
        }
        answer
    }

    /// How many read queries the store has run.
    #[cfg(feature = "testing")]
    pub fn store_queries(&self) -> u64 {
        self.store.queries()
    }

    /// Drops the cached feeds a committed write changed; the outbound queue then tells others
    /// from the change log, which the write appended to.
    fn changed(&self, buckets: &[Bucket], why: Invalidation) {
        let touched = FeedId::touched_by(&self.settings.catalog, buckets);
        self.cache.drop_feeds(&touched, why);
        self.outbound.wake();
    }

    /// Finishes background work: hands the change log to the outbound queue and waits for the
    /// requests in flight (the rest stays queued in the store), then closes the store.
    pub async fn close(&self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
        if let Some(stats) = &self.stats {
            // Not aborted: a flush cut short would lose its batch. The last one is this.
            stats.stop();
            if let Err(e) = stats.flush().await {
                tracing::warn!(cause = %e, "the last subscriber statistics were not written");
            }
        }
        self.outbound.close().await;
        self.store.close().await;
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

/// Drops the feeds a database change notification says changed. Removals are treated as
/// takedowns, so no outdated copy holding the removed article is served again.
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
