//! WebSub publishing: tells the configured hubs which feed topics changed.
//!
//! A write only enqueues its topics; delivery happens in the background, one task per hub and
//! topic, retried with exponential backoff, so a slow or failing hub never delays a write or
//! another hub.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use url::Url;

use crate::config::Retry;

/// How long one publish request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends publish notifications to hubs. Cheap to call; never blocks.
#[derive(Debug)]
pub struct Publisher {
    queue: Mutex<Option<mpsc::UnboundedSender<BTreeSet<String>>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Publisher {
    /// A publisher for `hubs`; with none, publishing does nothing. Must be called within a
    /// Tokio runtime when there are hubs.
    pub fn start(hubs: Vec<Url>, retry: Retry) -> Self {
        if hubs.is_empty() {
            return Publisher {
                queue: Mutex::new(None),
                worker: Mutex::new(None),
            };
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<BTreeSet<String>>();
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(crate::GENERATOR)
            .build()
            .unwrap_or_default();
        let worker = tokio::spawn(async move {
            let mut deliveries = JoinSet::new();
            while let Some(topics) = rx.recv().await {
                for hub in &hubs {
                    for topic in &topics {
                        deliveries.spawn(deliver(
                            client.clone(),
                            hub.clone(),
                            topic.clone(),
                            retry,
                        ));
                    }
                }
                // Reap finished deliveries so the set does not grow for the process's life.
                while deliveries.try_join_next().is_some() {}
            }
            while deliveries.join_next().await.is_some() {}
        });
        Publisher {
            queue: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
        }
    }

    /// Stops taking notifications and waits until those queued are delivered or given up.
    pub async fn close(&self) {
        drop(self.queue.lock().ok().and_then(|mut q| q.take()));
        let worker = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(worker) = worker {
            let _ = worker.await;
        }
    }

    /// Queues a notification that these topics (feed URLs) changed.
    pub fn publish(&self, topics: BTreeSet<String>) {
        if topics.is_empty() {
            return;
        }
        // No queue: no hubs are configured, or the publisher was closed at shutdown.
        let queue = self.queue.lock().ok().and_then(|q| q.clone());
        if let Some(queue) = queue {
            if queue.send(topics).is_err() {
                tracing::warn!("websub publisher has stopped; notification dropped");
            }
        }
    }
}

async fn deliver(client: reqwest::Client, hub: Url, topic: String, retry: Retry) {
    let mut delay = retry.first_delay;
    for attempt in 1..=retry.attempts {
        let sent = client
            .post(hub.clone())
            .form(&[("hub.mode", "publish"), ("hub.url", topic.as_str())])
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(%hub, %topic, attempt, "websub hub notified");
                metrics::counter!(crate::metrics::WEBSUB, "outcome" => "delivered").increment(1);
                return;
            }
            Ok(r) => {
                tracing::warn!(%hub, %topic, attempt, status = %r.status(), "websub hub refused")
            }
            Err(e) => tracing::warn!(%hub, %topic, attempt, cause = %e, "websub hub unreachable"),
        }
        if attempt < retry.attempts {
            metrics::counter!(crate::metrics::WEBSUB, "outcome" => "retried").increment(1);
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
    }
    metrics::counter!(crate::metrics::WEBSUB, "outcome" => "given_up").increment(1);
    tracing::error!(%hub, %topic, attempts = retry.attempts, "websub notification given up");
}
