//! WebSub publishing: tells the configured hubs which feed topics changed (`hub.mode=publish`),
//! as one kind of [`outbound`](crate::outbound) request, so pings are bounded, coalesced and
//! retried like every other request feedcast sends.

use std::time::Duration;

use url::Url;

use crate::config::Retry;
use crate::outbound::{Delivery, Sending};

/// The kind of request, as queued.
pub const KIND: &str = "websub";

/// How long one publish request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `hub.mode=publish` for a topic to a hub (the queue's target: the hub's URL).
pub struct PublishPing {
    client: reqwest::Client,
    retry: Retry,
}

impl PublishPing {
    /// Pings retried as `retry` says.
    pub fn new(retry: Retry) -> Self {
        PublishPing {
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .user_agent(crate::GENERATOR)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            retry,
        }
    }
}

impl Delivery for PublishPing {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn send<'a>(&'a self, hub: &'a str, topics: &'a [String]) -> Sending<'a> {
        Box::pin(async move {
            let hub = Url::parse(hub).map_err(|e| format!("not a hub URL: {e}"))?;
            let mut form = vec![("hub.mode", "publish")];
            form.extend(topics.iter().map(|t| ("hub.url", t.as_str())));
            let sent = self
                .client
                .post(hub)
                .form(&form)
                .send()
                .await
                .map_err(|e| format!("unreachable: {e}"))?;
            if sent.status().is_success() {
                Ok(())
            } else {
                Err(format!("refused: {}", sent.status()))
            }
        })
    }

    fn host(&self, hub: &str) -> String {
        crate::outbound::host_of(hub)
    }

    fn retry(&self) -> Retry {
        self.retry
    }
}
