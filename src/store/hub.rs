//! The store's side of feedcast's WebSub hub: subscriptions and the requests awaiting their
//! verification, one row per (canonical topic, callback) that every replica reads, and the
//! fan-out of a change to every active subscriber as rows of the outbound queue.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::backend::Transaction;
use super::{Store, StoreError, failed, sql};
use crate::model::Catalog;

/// The kind of queued request that tells a subscriber its subscription ended because the feed
/// was removed for good (`[[gone]]`): a `hub.mode=denied` request to its callback. Its target is
/// the callback's host; its topic the callback and the topic as sent, a newline between (the
/// subscription itself is gone by then).
pub const END_GONE: &str = "hub-end-gone";

/// The key of the subscription of `callback` to `topic` (the canonical topic): the sha256 (hex)
/// of the two, a newline between, a short key however long they are.
pub fn subscription_id(topic: &str, callback: &str) -> String {
    let digest = Sha256::digest(format!("{topic}\n{callback}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The canonical topic of a subscription whose document `<old>` is now `<new>` (both
/// `<path>.<ext>`): the same URL with the document's path replaced, its `?limit` kept; `None` if
/// the topic does not end in that document's path, as a canonical topic does.
fn moved_topic(topic: &str, old: &str, new: &str) -> Option<String> {
    let old_path = format!("/feeds/{old}");
    let at = topic.rfind(&old_path)?;
    let rest = &topic[at + old_path.len()..];
    (rest.is_empty() || rest.starts_with('?'))
        .then(|| format!("{}/feeds/{new}{rest}", &topic[..at]))
}

/// A subscription as stored: active (`expires_at` set), awaiting verification (`pending`), or
/// both (a renewal or an unsubscribe of an active one).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
#[allow(missing_docs)]
pub struct StoredSubscription {
    pub id: String,
    pub topic: String,
    /// `<path>.<ext>` of the topic's document: what a change fans out by.
    pub feed: String,
    pub callback: String,
    pub callback_host: String,
    pub topic_as_sent: String,
    pub secret: Option<String>,
    /// Microseconds since the epoch; `None`: not active yet.
    pub expires_at: Option<i64>,
    pub pending_mode: Option<String>,
    pub pending_lease: Option<i64>,
    pub pending_secret: Option<String>,
    pub pending_as_sent: Option<String>,
    pub pending_since: Option<i64>,
}

impl StoredSubscription {
    /// Whether it receives deliveries at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t > sql::micros(now))
    }

    /// When its lease ends, if it is active.
    pub fn expires(&self) -> Option<DateTime<Utc>> {
        self.expires_at.and_then(DateTime::from_timestamp_micros)
    }
}

/// A subscription request, validated (see `hub`), to be verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRequest {
    /// The subscription's key (see `hub`).
    pub id: String,
    /// The canonical topic.
    pub topic: String,
    /// `<path>.<ext>` of the topic's document.
    pub feed: String,
    /// The callback URL.
    pub callback: String,
    /// The callback's host (see `outbound::host_of`).
    pub callback_host: String,
    /// `subscribe` or `unsubscribe`.
    pub mode: &'static str,
    /// The lease to grant.
    pub lease: Duration,
    /// The subscriber's secret, if any.
    pub secret: Option<String>,
    /// `hub.topic` as sent.
    pub topic_as_sent: String,
}

/// Bounds on subscription requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Subscriptions (active or awaiting verification) one callback host may hold.
    pub per_host: u64,
    /// Requests awaiting verification, in all.
    pub pending: u64,
    /// Requests awaiting verification from one callback host.
    pub pending_per_host: u64,
}

/// Why a subscription request was not taken.
#[derive(Debug, thiserror::Error)]
pub enum RequestRefused {
    /// The callback's host holds as many subscriptions as it may.
    #[error("the callback's host already holds {0} subscriptions, the most it may")]
    TooManyForHost(u64),
    /// Too many requests await verification.
    #[error("too many subscription requests await verification; try again later")]
    Busy,
    /// Too many requests of the callback's host await verification.
    #[error("{0} requests of the callback's host await verification already; try again later")]
    HostBusy(u64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a verification ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The subscriber confirmed: the request takes effect.
    Confirmed,
    /// It did not: the request is dropped.
    Refused,
}

/// Requests awaiting verification for longer than this are forgotten.
const PENDING_KEPT: Duration = Duration::from_secs(3600);

impl Store {
    /// Brings the hub's subscriptions in line with the catalog, within a refile (every start):
    /// a subscription to a document under a former name is moved to the current one (key,
    /// canonical topic and `feed`; the topic as sent is kept, and echoed as before), so that
    /// fan-out, which goes by the current names, reaches it; one to a feed removed for good is
    /// ended, and a denial queued to tell its subscriber. Idempotent: once done, a start finds
    /// nothing to do.
    pub(super) async fn refile_subscriptions(
        &self,
        tx: &mut dyn Transaction,
        catalog: &Catalog,
    ) -> Result<(), StoreError> {
        let moved: std::collections::HashMap<String, String> =
            catalog.former_paths().into_iter().collect();
        let gone: Vec<&str> = catalog.gone_paths().collect();
        if moved.is_empty() && gone.is_empty() {
            return Ok(());
        }
        let paths: Vec<&str> = moved
            .keys()
            .map(String::as_str)
            .chain(gone.iter().copied())
            .collect();
        let found = tx
            .subscription_rows(&sql::subscriptions_of_feeds(&paths))
            .await
            .map_err(failed("finding subscriptions under former or gone names"))?;
        let now = sql::micros(Utc::now());
        let (mut refiled, mut ended) = (0usize, 0usize);
        for sub in found {
            let Some((path, extension)) = sub.feed.rsplit_once('.') else {
                continue;
            };
            if let Some(current) = moved.get(path) {
                let feed = format!("{current}.{extension}");
                let topic = moved_topic(&sub.topic, &sub.feed, &feed).unwrap_or(sub.topic);
                let id = subscription_id(&topic, &sub.callback);
                for statement in sql::move_subscription(&sub.id, &id, &topic, &feed) {
                    tx.execute(&statement)
                        .await
                        .map_err(failed("moving subscriptions to current names"))?;
                }
                refiled += 1;
            } else if gone.contains(&path) {
                let request = format!("{}\n{}", sub.callback, sub.topic_as_sent);
                let denial = [(END_GONE, sub.callback_host.as_str(), request.as_str(), 1)];
                for statement in sql::end_gone_subscription(&sub.id, &denial, now) {
                    tx.execute(&statement)
                        .await
                        .map_err(failed("ending subscriptions of feeds removed for good"))?;
                }
                ended += 1;
            }
        }
        if refiled + ended > 0 {
            tracing::info!(
                refiled,
                ended,
                "subscriptions under former names moved to the current ones; those of feeds \
                 removed for good ended"
            );
        }
        Ok(())
    }

    /// Ends a subscription whose feed was removed for good and queues (kind [`END_GONE`]) the
    /// denial that tells its subscriber: for one found when a change is delivered to it (made
    /// through a replica whose feeds.toml still had the feed).
    pub async fn end_gone_subscription(&self, sub: &StoredSubscription) -> Result<(), StoreError> {
        let request = format!("{}\n{}", sub.callback, sub.topic_as_sent);
        let denial = [(END_GONE, sub.callback_host.as_str(), request.as_str(), 1)];
        let statements = sql::end_gone_subscription(&sub.id, &denial, sql::micros(Utc::now()));
        self.bookkeep(
            "ending a subscription of a feed removed for good",
            &statements,
        )
        .await
    }

    /// A count the statement reads.
    async fn count_of(
        &self,
        statement: sql::Statement<'_>,
        doing: &'static str,
    ) -> Result<u64, StoreError> {
        let n = self
            .backend
            .number(&statement)
            .await
            .map_err(failed(doing))?;
        Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
    }

    /// Records a subscription request and queues its verification (`verify_kind`), in one
    /// transaction; refused when the callback's host holds as many subscriptions as it may
    /// already (a renewal of one of them excepted), or too many requests await verification, in
    /// all or from that host.
    pub async fn request_subscription(
        &self,
        request: &SubscriptionRequest,
        verify_kind: &str,
        limits: RequestLimits,
    ) -> Result<(), RequestRefused> {
        let (max_per_host, max_pending) = (limits.per_host, limits.pending);
        let existing = self.subscription(&request.id).await?;
        let now = sql::micros(Utc::now());
        if existing.is_none() {
            let held = self
                .count_of(
                    sql::count_host_subscriptions(&request.callback_host, now),
                    "counting a host's subscriptions",
                )
                .await?;
            if held >= max_per_host {
                return Err(RequestRefused::TooManyForHost(max_per_host));
            }
        }
        // One host cannot fill the verification queue for everyone else.
        let waiting = self
            .count_of(
                sql::count_host_pending(&request.callback_host),
                "counting a host's requests",
            )
            .await?;
        if waiting >= limits.pending_per_host {
            return Err(RequestRefused::HostBusy(limits.pending_per_host));
        }
        let pending = self
            .backend
            .number(&sql::count_pending_subscriptions())
            .await
            .map_err(failed("counting subscription requests"))?
            .unwrap_or(0);
        if u64::try_from(pending).unwrap_or(0) >= max_pending {
            return Err(RequestRefused::Busy);
        }
        let now = sql::micros(Utc::now());
        let requested = sql::Requested {
            id: &request.id,
            topic: &request.topic,
            feed: &request.feed,
            callback: &request.callback,
            callback_host: &request.callback_host,
            mode: request.mode,
            lease_seconds: i64::try_from(request.lease.as_secs()).unwrap_or(i64::MAX),
            secret: request.secret.as_deref(),
            topic_as_sent: &request.topic_as_sent,
            since: now,
        };
        let verify = [(
            verify_kind,
            request.callback_host.as_str(),
            request.id.as_str(),
            1,
        )];
        let statements = [
            sql::request_subscription(&requested),
            sql::enqueue(&verify, now),
        ];
        self.bookkeep("recording a subscription request", &statements)
            .await?;
        Ok(())
    }

    /// One subscription by id.
    pub async fn subscription(&self, id: &str) -> Result<Option<StoredSubscription>, StoreError> {
        self.bounded("reading a subscription", async {
            let rows = self
                .backend
                .subscriptions(&sql::subscription(id))
                .await
                .map_err(failed("reading a subscription"))?;
            Ok(rows.into_iter().next())
        })
        .await
    }

    /// Every active subscription, by topic.
    pub async fn active_subscriptions(&self) -> Result<Vec<StoredSubscription>, StoreError> {
        self.bounded("listing subscriptions", async {
            self.backend
                .subscriptions(&sql::active_subscriptions(sql::micros(Utc::now())))
                .await
                .map_err(failed("listing subscriptions"))
        })
        .await
    }

    /// Applies the outcome of verifying the request made at `since`: a confirmed subscribe
    /// becomes active for `lease`, a confirmed unsubscribe removes the subscription, a refused
    /// one is dropped. Nothing if a newer request came meanwhile (its own verification follows).
    pub async fn verified(
        &self,
        id: &str,
        since: i64,
        mode: &str,
        lease: Duration,
        outcome: Verified,
    ) -> Result<(), StoreError> {
        let expires =
            sql::micros(Utc::now() + chrono::TimeDelta::from_std(lease).unwrap_or_default());
        let statements: Vec<sql::Statement<'_>> = match (outcome, mode) {
            (Verified::Confirmed, "subscribe") => {
                vec![sql::activate_subscription(id, since, expires)]
            }
            (Verified::Confirmed, _) => vec![sql::remove_subscription_verified(id, since)],
            (Verified::Refused, _) => sql::drop_subscription_request(id, since).into(),
        };
        self.bookkeep("recording a verification", &statements).await
    }

    /// Ends a subscription (its subscriber said it is gone).
    pub async fn end_subscription(&self, id: &str) -> Result<(), StoreError> {
        self.bookkeep("ending a subscription", &sql::end_subscription(id))
            .await
    }

    /// Removes lapsed subscriptions and requests never verified; returns how many (about: a
    /// request arriving meanwhile is not told apart).
    pub async fn purge_expired_subscriptions(&self) -> Result<u64, StoreError> {
        let count = || async {
            self.backend
                .number(&sql::count_all_subscriptions())
                .await
                .map_err(failed("counting subscriptions"))
                .map(|n| u64::try_from(n.unwrap_or(0)).unwrap_or(0))
        };
        let before = count().await?;
        let now = Utc::now();
        let stale = now - chrono::TimeDelta::from_std(PENDING_KEPT).unwrap_or_default();
        let purge = sql::purge_expired_subscriptions(sql::micros(now), sql::micros(stale));
        self.bookkeep("purging lapsed subscriptions", &[purge])
            .await?;
        Ok(before.saturating_sub(count().await?))
    }

    /// Queues one `kind` request per active subscriber of any of `feeds` (`<path>.<ext>`): a
    /// change's fan-out to its push subscribers. Queued a page at a time, each page its own
    /// transaction, so a write never waits for more than one page; if a page fails, the
    /// fan-out is retried whole, and pages already queued are coalesced, not doubled.
    pub async fn fan_out(&self, kind: &str, feeds: &[&str]) -> Result<(), StoreError> {
        for feed in feeds {
            self.fan_out_pages(kind, Some(feed)).await?;
        }
        Ok(())
    }

    /// Queues one `kind` request per active subscriber of any document: everything changed.
    pub async fn fan_out_everything(&self, kind: &str) -> Result<(), StoreError> {
        self.fan_out_pages(kind, None).await
    }

    async fn fan_out_pages(&self, kind: &str, feed: Option<&str>) -> Result<(), StoreError> {
        let now = sql::micros(Utc::now());
        let mut after = String::new();
        loop {
            // Read without the write lock; only the queuing takes it.
            let page = self
                .bounded("reading a change's subscribers", async {
                    self.backend
                        .pairs(&sql::subscribers_after(feed, &after, now))
                        .await
                        .map_err(failed("reading a change's subscribers"))
                })
                .await?;
            let Some((_, last)) = page.last() else {
                return Ok(());
            };
            let rows: Vec<(&str, &str, &str, i64)> = page
                .iter()
                .map(|(host, id)| (kind, host.as_str(), id.as_str(), 1))
                .collect();
            let queue: Vec<_> = rows
                .chunks(sql::ENQUEUE_ROWS)
                .map(|part| sql::enqueue(part, now))
                .collect();
            self.bookkeep("fanning a change out", &queue).await?;
            if page.len() < sql::FAN_OUT_ROWS {
                return Ok(());
            }
            after.clone_from(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_move_a_canonical_topic_keeping_its_limit() {
        let moved = |topic: &str| moved_topic(topic, "region/320299.atom", "region/320281.atom");
        assert_eq!(
            moved("https://feeds.example.cn/site/feeds/region/320299.atom?limit=5").as_deref(),
            Some("https://feeds.example.cn/site/feeds/region/320281.atom?limit=5")
        );
        assert_eq!(
            moved("https://feeds.example.cn/feeds/region/320299.atom").as_deref(),
            Some("https://feeds.example.cn/feeds/region/320281.atom")
        );
        // Not a canonical topic of that document: left as it is.
        assert_eq!(
            moved("https://feeds.example.cn/feeds/region/320299.atom.x"),
            None
        );
    }

    #[test]
    fn a_subscription_key_is_the_hex_sha256_of_topic_and_callback() {
        let id = subscription_id("t", "c");
        assert_eq!(id.len(), 64);
        assert_ne!(id, subscription_id("t", "d"));
    }
}
