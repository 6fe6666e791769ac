//! WebSub publishing: tells the configured hubs which feed topics changed (`hub.mode=publish`),
//! as one kind of [`outbound`](crate::outbound) request, so pings are bounded, coalesced and
//! retried like every other request feedcast sends.

use std::time::Duration;

use url::Url;

use crate::outbound::{Delivery, Sending};

/// How long one publish request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `hub.mode=publish` for a topic to a hub.
pub struct PublishPing {
    client: reqwest::Client,
    /// Every feed topic: what "everything changed" is sent as.
    every_topic: Vec<String>,
}

impl PublishPing {
    /// Pings for these topics (every feed's newest-items URL, in every format).
    pub fn new(every_topic: Vec<String>) -> Self {
        PublishPing {
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .user_agent(crate::GENERATOR)
                .build()
                .unwrap_or_default(),
            every_topic,
        }
    }
}

impl Delivery for PublishPing {
    fn send<'a>(&'a self, hub: &'a Url, topic: &'a str) -> Sending<'a> {
        Box::pin(async move {
            let sent = self
                .client
                .post(hub.clone())
                .form(&[("hub.mode", "publish"), ("hub.url", topic)])
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

    fn every_topic(&self) -> Vec<String> {
        self.every_topic.clone()
    }

    fn kind(&self) -> &'static str {
        "websub"
    }
}
