//! feedcast's own WebSub hub (W3C WebSub, sections 5–8): subscribers subscribe at `POST
//! /websub`, are verified with a challenge, and get each changed document pushed to their
//! callback, signed when they gave a secret.
//!
//! Everything lives in the store, so every replica is the same hub: a request is recorded with
//! its verification queued; a change-log entry becomes one fan-out entry per changed document
//! (`<path>.<ext>`, whatever its `?limit`), which becomes one delivery per active subscriber,
//! each on the durable outbound queue. A delivery carries the document as it is when it is made
//! (never a copy from when it was queued), so a retry after a takedown never carries the
//! taken-down item. Every request to a callback is made by a client that connects only to
//! public addresses, checked in its resolver (so the address checked is the address connected
//! to) and for addresses written in the URL, unless `hub.allow_private_callbacks`.
//!
//! Feed URLs never break, and neither do subscriptions: a renamed feed's old topic is the
//! current feed's (a request for it is stored under the current document, the topic as sent
//! echoed), subscriptions stored under a former name are moved to the current one at start
//! (`Store::open`), and those of a feed removed for good are ended there, their subscribers
//! told with `hub.mode=denied` through the outbound queue ([`EndGone`]).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::Url;

use crate::config::{Hub, Retry, Settings};
use crate::feed::{FeedKey, KeyError, View};
use crate::outbound::{Delivery, Sending};
use crate::store::{Claimed, Store, SubscriptionRequest, Verified, subscription_id};

/// The kind of queued request that verifies a subscription request.
pub const VERIFY: &str = "hub-verify";
/// The kind that expands a changed document into its subscribers' deliveries.
pub const FAN_OUT: &str = "hub-fan-out";
/// A fan-out entry for every document at once (everything changed).
pub const EVERY_FEED: &str = "*";
/// The kind that pushes a document to one subscriber.
pub const DELIVER: &str = "hub-deliver";
/// The kind that tells a subscriber of a feed removed for good that its subscription ended.
pub use crate::store::END_GONE;

/// Largest `POST /websub` body.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Longest `hub.topic` and `hub.callback`.
const MAX_URL_BYTES: usize = 2048;
/// `hub.secret` must be shorter than this.
const MAX_SECRET_BYTES: usize = 200;
/// How long a verification or a delivery may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a verification answer is read (the challenge is far shorter).
const MAX_ANSWER_BYTES: usize = 1024;

/// What a subscriber asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `hub.mode=subscribe`.
    Subscribe,
    /// `hub.mode=unsubscribe`.
    Unsubscribe,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Subscribe => "subscribe",
            Mode::Unsubscribe => "unsubscribe",
        }
    }
}

/// A `POST /websub` that is well formed: what it asks, of which topic, for which callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// A topic feedcast serves: to be verified.
    Request(SubscriptionRequest),
    /// A topic feedcast does not serve: the subscriber is told so (`hub.mode=denied`).
    Deny {
        /// The callback to tell.
        callback: Url,
        /// `hub.topic` as sent.
        topic: String,
        /// Why.
        reason: String,
    },
}

/// Why a `POST /websub` is refused (400, with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

fn bad(why: impl Into<String>) -> BadRequest {
    BadRequest(why.into())
}

/// Why a topic URL names no document this hub pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unserved {
    /// The feed was removed for good (`[[gone]]`).
    Gone,
    /// Anything else: another site, not a feed, an archive, the HTML view, the WeChat profile.
    NotATopic,
}

/// The feed document a topic URL names, if feedcast serves it as a topic: an RSS, Atom or JSON
/// Feed self URL under `site.base_url` (not an HTML view, not the WeChat profile, not an
/// archive), with `?limit=N` kept (other parameters are dropped). A feed's former name
/// (`formerly`) names the feed as it is now, whose URL answers the old one with a 301: a
/// subscription to the old topic is one to the current feed (`follow`: one such step is taken).
fn resolve(topic: &Url, settings: &Settings, follow: bool) -> Result<FeedKey, Unserved> {
    use Unserved::NotATopic;
    let base = &settings.site.base_url;
    if topic.scheme() != base.scheme() || topic.host_str() != base.host_str() {
        return Err(NotATopic);
    }
    if topic.port_or_known_default() != base.port_or_known_default() {
        return Err(NotATopic);
    }
    let rest = topic.path().strip_prefix(base.path()).ok_or(NotATopic)?;
    let path = rest.strip_prefix("feeds/").ok_or(NotATopic)?;
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| NotATopic)?;
    let limit = topic
        .query_pairs()
        .find(|(k, _)| k == "limit")
        .map(|(_, v)| format!("limit={v}"));
    let key = match FeedKey::parse(&path, limit.as_deref(), settings) {
        Ok(key) => key,
        // The URL the old one moved to names a live feed: one step, never a loop.
        Err(KeyError::Moved(to)) if follow => {
            let to = Url::parse(&to).map_err(|_| NotATopic)?;
            return resolve(&to, settings, false);
        }
        Err(KeyError::Gone(_)) => return Err(Unserved::Gone),
        Err(_) => return Err(NotATopic),
    };
    let served = key.format.is_feed() && matches!(key.view, View::Latest { .. });
    served.then_some(key).ok_or(NotATopic)
}

/// Why a subscription to a feed removed for good is denied, or was ended.
const GONE_REASON: &str = "the feed was removed for good; its URL answers 410 Gone";

impl Intent {
    /// Parses a form-encoded `POST /websub` body.
    pub fn parse(body: &[u8], settings: &Settings) -> Result<Intent, BadRequest> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(bad(format!(
                "a request is at most {MAX_REQUEST_BYTES} bytes"
            )));
        }
        let (mut mode, mut topic, mut callback, mut lease, mut secret) =
            (None, None, None, None, None);
        for (name, value) in url::form_urlencoded::parse(body) {
            let slot = match name.as_ref() {
                "hub.mode" => &mut mode,
                "hub.topic" => &mut topic,
                "hub.callback" => &mut callback,
                "hub.lease_seconds" => &mut lease,
                "hub.secret" => &mut secret,
                _ => continue,
            };
            if slot.is_some() {
                return Err(bad(format!("{name} is given twice")));
            }
            *slot = Some(value.into_owned());
        }
        let mode = match mode.as_deref() {
            Some("subscribe") => Mode::Subscribe,
            Some("unsubscribe") => Mode::Unsubscribe,
            Some("publish") => {
                return Err(bad(
                    "hub.mode=publish is not taken: feedcast publishes its own feeds",
                ));
            }
            Some(_) => return Err(bad("hub.mode must be subscribe or unsubscribe")),
            None => return Err(bad("hub.mode is missing")),
        };
        let topic = topic.ok_or_else(|| bad("hub.topic is missing"))?;
        let callback = callback.ok_or_else(|| bad("hub.callback is missing"))?;
        for (name, value) in [("hub.topic", &topic), ("hub.callback", &callback)] {
            if value.len() > MAX_URL_BYTES {
                return Err(bad(format!("{name} is longer than {MAX_URL_BYTES} bytes")));
            }
        }
        // Echoed in the Link header of every delivery: nothing there may end the header or
        // the link (URL parsers drop tabs and newlines silently, the header would not).
        if topic
            .chars()
            .any(|c| c.is_control() || c == '<' || c == '>')
        {
            return Err(bad("hub.topic must not hold control characters, < or >"));
        }
        let mut callback_url = Url::parse(&callback)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| bad("hub.callback must be an absolute http or https URL"))?;
        // The hub adds these to the callback's query: given there already, a subscriber reading
        // the first would confirm what it was not asked.
        if callback_url
            .query_pairs()
            .any(|(k, _)| k.starts_with("hub."))
        {
            return Err(bad(
                "hub.callback must not carry hub.* parameters of its own",
            ));
        }
        callback_url.set_fragment(None);
        if callback_url.username() != "" || callback_url.password().is_some() {
            return Err(bad("hub.callback must not hold a user name or password"));
        }
        if let Some(ip) = literal_ip(&callback_url) {
            if !settings.hub.allow_private_callbacks && !is_public(ip) {
                return Err(bad("hub.callback is not a public address"));
            }
        }
        let hub = &settings.hub;
        let lease = match lease.as_deref() {
            None | Some("") => hub.default_lease,
            Some(v) => {
                let seconds: u64 = v
                    .parse()
                    .map_err(|_| bad("hub.lease_seconds must be a whole number of seconds"))?;
                Duration::from_secs(seconds).clamp(hub.min_lease, hub.max_lease)
            }
        };
        if let Some(s) = &secret {
            if s.len() >= MAX_SECRET_BYTES {
                return Err(bad(format!(
                    "hub.secret must be shorter than {MAX_SECRET_BYTES} bytes"
                )));
            }
        }
        let resolved = Url::parse(&topic)
            .map_err(|_| Unserved::NotATopic)
            .and_then(|t| resolve(&t, settings, true));
        let key = match resolved {
            Ok(key) => key,
            Err(unserved) => {
                let reason = match unserved {
                    Unserved::Gone => GONE_REASON,
                    Unserved::NotATopic => {
                        "not a feed this hub serves: subscribe to an RSS, Atom or JSON Feed \
                         URL of this site (not an archive, not the HTML view)"
                    }
                };
                return Ok(Intent::Deny {
                    callback: callback_url,
                    topic,
                    reason: reason.to_owned(),
                });
            }
        };
        let canonical = key.url(settings);
        let callback = callback_url.to_string();
        Ok(Intent::Request(SubscriptionRequest {
            id: subscription_id(&canonical, &callback),
            feed: feed_of(&key),
            topic: canonical,
            callback_host: crate::outbound::host_of(callback_url.as_str()),
            callback,
            mode: mode.as_str(),
            lease,
            secret: secret.filter(|s| !s.is_empty()),
            topic_as_sent: topic,
        }))
    }
}

/// `<path>.<ext>` of a document: what a change to it fans out by, whatever its `?limit`.
pub fn feed_of(key: &FeedKey) -> String {
    format!("{}.{}", key.feed.path(), key.format.extension())
}

// ---------------------------------------------------------------------------------------------
// Public addresses only

/// The address written in a URL's host, if it is one.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || a >= 240; // reserved
    !special
}

/// Whether a callback may be reached at `ip`: not loopback, private, link-local, multicast,
/// unspecified, shared, documentation or otherwise reserved, in either family, nor an IPv6
/// form of such an IPv4 address (mapped, compatible, NAT64, 6to4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only
        || (s[..6] == [0, 0, 0, 0, 0, 0] && !is_public_v4(embedded(s[6], s[7]))) // compatible
        || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && !is_public_v4(embedded(s[6], s[7]))) // NAT64
        || (s[0] == 0x2002 && !is_public_v4(embedded(s[1], s[2]))) // 6to4
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001) // local-use NAT64 (RFC 8215)
        || s[..6] == [0, 0, 0, 0, 0xffff, 0] // IPv4-translated
        || (s[0] == 0x2001 && s[1] == 0); // Teredo
    !special
}

/// Resolves names as the system does, keeping only public addresses: the check is made on the
/// very addresses the client then connects to.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// How long connecting to a callback may take: a host that accepts no connection should not
/// hold a delivery slot for the whole request bound.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The client for callbacks: no redirects, no proxy, a 10 s bound (3 s to connect), and
/// (unless private callbacks are allowed) public addresses only. Should it fail to build, every
/// request fails: never a client without these.
fn callback_client(hub: &Hub) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(crate::GENERATOR)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    let builder = if hub.allow_private_callbacks {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnly))
    };
    builder
        .build()
        .map_err(|e| format!("no HTTP client for callbacks: {e}"))
}

/// Refuses a callback whose URL names a non-public address (names are checked when resolved).
fn check_callback(hub: &Hub, callback: &Url) -> Result<(), String> {
    match literal_ip(callback) {
        Some(ip) if !hub.allow_private_callbacks && !is_public(ip) => {
            Err(format!("{ip} is not a public address"))
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests to subscribers

/// A random `hub.challenge`.
fn challenge() -> Result<String, String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads at most [`MAX_ANSWER_BYTES`] of an answer's body.
async fn read_capped(mut answer: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            body.truncate(MAX_ANSWER_BYTES);
            break;
        }
    }
    Ok(body)
}

/// Tells callbacks that their requests for topics feedcast does not serve are denied.
pub struct Denials {
    hub: Hub,
    client: Result<reqwest::Client, String>,
}

impl Denials {
    /// Denials as `hub` says.
    pub fn new(hub: &Hub) -> Self {
        Denials {
            hub: hub.clone(),
            client: callback_client(hub),
        }
    }

    /// Tells `callback` that its request for `topic` is denied, and why.
    pub async fn deny(&self, callback: &Url, topic: &str, reason: &str) {
        let Ok(client) = &self.client else {
            return;
        };
        if check_callback(&self.hub, callback).is_err() {
            return;
        }
        let sent = send_denial(client, callback, topic, reason).await;
        let outcome = if sent.is_ok() { "sent" } else { "failed" };
        metrics::counter!(crate::metrics::HUB_VERIFICATIONS, "outcome" => "denied", "sent" => outcome)
            .increment(1);
    }
}

/// A `hub.mode=denied` request to `callback` (WebSub 5.2): whatever it answers, it was told.
async fn send_denial(
    client: &reqwest::Client,
    callback: &Url,
    topic: &str,
    reason: &str,
) -> Result<(), String> {
    let mut url = callback.clone();
    url.query_pairs_mut()
        .append_pair("hub.mode", "denied")
        .append_pair("hub.topic", topic)
        .append_pair("hub.reason", reason);
    client
        .get(url)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("unreachable: {e}"))
}

/// Tells the subscribers of a feed removed for good (`[[gone]]`) that their subscriptions
/// ended: WebSub 5.2 lets a hub deny a subscription at any time, with `hub.mode=denied`. Each
/// was removed from the store and its denial queued durably (kind [`END_GONE`]; target: the
/// callback's host; topic: the callback and the topic as sent, a newline between) in the same
/// transaction, so it is told once the queue reaches it, whichever replica or command runs then,
/// and retried if the callback cannot be reached.
pub struct EndGone {
    hub: Hub,
    client: Result<reqwest::Client, String>,
}

impl EndGone {
    /// Denials as `hub` says.
    pub fn new(hub: &Hub) -> Self {
        EndGone {
            hub: hub.clone(),
            client: callback_client(hub),
        }
    }
}

impl Delivery for EndGone {
    fn kind(&self) -> &'static str {
        END_GONE
    }

    fn send<'a>(&'a self, _host: &'a str, requests: &'a [String]) -> Sending<'a> {
        Box::pin(async move {
            let client = self.client.as_ref()?;
            for request in requests {
                let Some((callback, topic)) = request.split_once('\n') else {
                    continue;
                };
                // A callback this hub may not call (any more) is not told: nothing to retry.
                let Ok(callback) = Url::parse(callback) else {
                    continue;
                };
                if check_callback(&self.hub, &callback).is_err() {
                    continue;
                }
                send_denial(client, &callback, topic, GONE_REASON).await?;
                metrics::counter!(crate::metrics::HUB_VERIFICATIONS, "outcome" => "ended_gone")
                    .increment(1);
            }
            Ok(())
        })
    }

    fn host(&self, host: &str) -> String {
        host.to_owned()
    }

    /// As verifications: few per host, so callbacks that never answer hold up only each other.
    fn bounds(&self) -> Option<(usize, usize)> {
        Some((self.hub.max_in_flight, 2))
    }

    fn retry(&self) -> Retry {
        Retry {
            attempts: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// Verifies subscription requests: a GET to the callback with a challenge, which only a 2xx
/// answer echoing it confirms. Its target is the callback's host, its topic the subscription.
pub struct Verify {
    store: Store,
    hub: Hub,
    client: Result<reqwest::Client, String>,
}

impl Verify {
    /// Verifies requests recorded in `store`.
    pub fn new(store: Store, hub: &Hub) -> Self {
        Verify {
            store,
            hub: hub.clone(),
            client: callback_client(hub),
        }
    }

    /// Whether the callback confirms the pending request.
    async fn ask(&self, callback: &str, mode: &str, topic: &str, lease: i64) -> Result<(), String> {
        let callback = Url::parse(callback).map_err(|e| e.to_string())?;
        check_callback(&self.hub, &callback)?;
        let challenge = challenge()?;
        let mut url = callback;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("hub.mode", mode)
                .append_pair("hub.topic", topic)
                .append_pair("hub.challenge", &challenge);
            if mode == "subscribe" {
                query.append_pair("hub.lease_seconds", &lease.to_string());
            }
        }
        let answer = self
            .client
            .as_ref()?
            .get(url)
            .send()
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        if !answer.status().is_success() {
            return Err(format!("answered {}", answer.status()));
        }
        let body = read_capped(answer).await?;
        if body.trim_ascii() == challenge.as_bytes() {
            Ok(())
        } else {
            Err("did not echo the challenge".to_owned())
        }
    }
}

impl Delivery for Verify {
    fn kind(&self) -> &'static str {
        VERIFY
    }

    fn send<'a>(&'a self, _host: &'a str, ids: &'a [String]) -> Sending<'a> {
        Box::pin(async move {
            for id in ids {
                let Some(sub) = self
                    .store
                    .subscription(id)
                    .await
                    .map_err(|e| e.to_string())?
                else {
                    continue;
                };
                let (Some(mode), Some(since)) = (sub.pending_mode.clone(), sub.pending_since)
                else {
                    continue;
                };
                let lease = sub.pending_lease.unwrap_or(0);
                let as_sent = sub.pending_as_sent.as_deref().unwrap_or(&sub.topic_as_sent);
                let asked = self.ask(&sub.callback, &mode, as_sent, lease).await;
                let outcome = match &asked {
                    Ok(()) => Verified::Confirmed,
                    Err(why) => {
                        tracing::info!(callback = %sub.callback_host, %mode, %why, "verification failed");
                        Verified::Refused
                    }
                };
                let label = match (outcome, mode.as_str()) {
                    (Verified::Confirmed, "subscribe") => "subscribed",
                    (Verified::Confirmed, _) => "unsubscribed",
                    (Verified::Refused, _) => "refused",
                };
                metrics::counter!(crate::metrics::HUB_VERIFICATIONS, "outcome" => label)
                    .increment(1);
                let lease = Duration::from_secs(u64::try_from(lease).unwrap_or(0));
                self.store
                    .verified(id, since, &mode, lease, outcome)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }

    fn host(&self, host: &str) -> String {
        host.to_owned()
    }

    /// Verifications have slots of their own, few per host: callbacks that never answer
    /// cannot hold up the verification of others, nor of deliveries.
    fn bounds(&self) -> Option<(usize, usize)> {
        Some((self.hub.max_in_flight, 2))
    }

    fn retry(&self) -> Retry {
        // A verification that could not be recorded is tried again; one the subscriber
        // refused is not (the request is dropped and it may ask again).
        Retry {
            attempts: 3,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// Expands a changed document (`<path>.<ext>`) into one delivery per active subscriber.
pub struct FanOut {
    store: Store,
}

impl FanOut {
    /// Fans out over the subscriptions in `store`.
    pub fn new(store: Store) -> Self {
        FanOut { store }
    }
}

impl Delivery for FanOut {
    fn kind(&self) -> &'static str {
        FAN_OUT
    }

    fn send<'a>(&'a self, _hub: &'a str, feeds: &'a [String]) -> Sending<'a> {
        Box::pin(async move {
            let feeds: Vec<&str> = feeds.iter().map(String::as_str).collect();
            let fanned = if feeds.contains(&EVERY_FEED) {
                self.store.fan_out_everything(DELIVER).await
            } else {
                self.store.fan_out(DELIVER, &feeds).await
            };
            fanned.map_err(|e| e.to_string())
        })
    }

    /// Changed documents one fan-out request expands.
    fn per_request(&self, _hub: &str) -> usize {
        500
    }

    fn host(&self, hub: &str) -> String {
        hub.to_owned()
    }

    fn retry(&self) -> Retry {
        Retry {
            attempts: 10,
            first_delay: Duration::from_secs(1),
            max_delay: crate::outbound::MAX_BACKOFF,
        }
    }
}

/// A document as pushed to subscribers: its bytes and content type.
pub type Document = (Bytes, &'static str);

/// Where deliveries take the documents they carry from: the service's cache, built anew when a
/// change dropped it, so a delivery always carries the document as it is now.
pub trait Documents: Send + Sync + 'static {
    /// The document `key` names, as served now, built no earlier than `not_before` (when the
    /// change it is delivered for was queued).
    fn document<'a>(
        &'a self,
        key: &'a FeedKey,
        not_before: chrono::DateTime<chrono::Utc>,
    ) -> Pin<Box<dyn Future<Output = Result<Document, String>> + Send + 'a>>;
}

/// Pushes a topic's document to one subscriber (target: its callback's host; topic: the
/// subscription's id).
pub struct Deliver {
    store: Store,
    settings: Arc<Settings>,
    documents: Arc<dyn Documents>,
    client: Result<reqwest::Client, String>,
}

impl Deliver {
    /// Delivers documents from `documents` to the subscribers in `store`.
    pub fn new(store: Store, settings: Arc<Settings>, documents: Arc<dyn Documents>) -> Self {
        Deliver {
            client: callback_client(&settings.hub),
            store,
            settings,
            documents,
        }
    }

    async fn deliver(
        &self,
        id: &str,
        queued_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), String> {
        let Some(sub) = self
            .store
            .subscription(id)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let now = chrono::Utc::now();
        if !sub.is_active(now) {
            return Ok(());
        }
        let callback = Url::parse(&sub.callback).map_err(|e| e.to_string())?;
        check_callback(&self.settings.hub, &callback)?;
        let resolved = Url::parse(&sub.topic)
            .map_err(|_| Unserved::NotATopic)
            .and_then(|t| resolve(&t, &self.settings, true));
        let key = match resolved {
            Ok(key) => key,
            // Made through a replica whose feeds.toml still had the feed: ended, and told.
            Err(Unserved::Gone) => {
                return self
                    .store
                    .end_gone_subscription(&sub)
                    .await
                    .map_err(|e| e.to_string());
            }
            Err(Unserved::NotATopic) => return Err(format!("{} is no longer a topic", sub.topic)),
        };
        let (body, content_type) = self.documents.document(&key, queued_at).await?;
        let link = format!(
            "<{}>; rel=\"hub\", <{}>; rel=\"self\"",
            self.settings.hub.url, sub.topic_as_sent
        );
        let mut request = self
            .client
            .as_ref()?
            .post(callback)
            .header("content-type", content_type)
            .header("link", link);
        if let Some(secret) = &sub.secret {
            request = request.header("x-hub-signature", signature(secret, &body));
        }
        let answer = request
            .body(body)
            .send()
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else if status == reqwest::StatusCode::GONE {
            metrics::counter!(crate::metrics::HUB_DELIVERIES, "outcome" => "gone").increment(1);
            self.store
                .end_subscription(id)
                .await
                .map_err(|e| e.to_string())
        } else {
            Err(format!("answered {status}"))
        }
    }
}

/// `X-Hub-Signature` of a body: `sha256=` and the hex HMAC-SHA256 keyed by the secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl Delivery for Deliver {
    fn kind(&self) -> &'static str {
        DELIVER
    }

    fn send<'a>(&'a self, _host: &'a str, ids: &'a [String]) -> Sending<'a> {
        Box::pin(async move {
            for id in ids {
                self.deliver(id, chrono::Utc::now()).await?;
            }
            Ok(())
        })
    }

    /// Each delivery carries a document built after its change was queued.
    fn send_claimed<'a>(&'a self, _host: &'a str, claimed: &'a [Claimed]) -> Sending<'a> {
        Box::pin(async move {
            for c in claimed {
                self.deliver(&c.topic, c.queued_at).await?;
            }
            Ok(())
        })
    }

    fn host(&self, host: &str) -> String {
        host.to_owned()
    }

    fn retry(&self) -> Retry {
        self.settings.hub.retry
    }

    fn bounds(&self) -> Option<(usize, usize)> {
        Some((
            self.settings.hub.max_in_flight,
            self.settings.hub.max_per_host,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_feed_formats_are_topics() {
        let settings = Settings::test_fixture();
        let topic = |path: &str| {
            let url = settings.site.base_url.join(path).unwrap();
            resolve(&url, &settings, true).ok().map(|k| k.format)
        };
        assert_eq!(
            topic("feeds/category/parks.rss"),
            Some(crate::feed::Format::Rss)
        );
        assert_eq!(
            topic("feeds/category/parks.json"),
            Some(crate::feed::Format::Json)
        );
        // A bridge polls the WeChat profile; nobody subscribes to it.
        assert_eq!(topic("feeds/category/parks.wechat.json"), None);
        assert_eq!(topic("feeds/category/parks.html"), None);
    }

    #[test]
    fn only_public_addresses_in_either_family_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "64:ff9b:1::a00:1",
            "::ffff:0:a00:1",
            "2001:0:4136:e378::1",
            "192.88.99.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "1.1.1.1",
            "114.114.114.114",
            "2400:3200::1",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
