//! CDN purges: on every change, the cache tags it changed (see `feed::tags`) are purged at
//! each configured purger, as one kind of [`outbound`](crate::outbound) request, so purges are
//! durable, bounded, coalesced and retried like every other request feedcast sends, and a write
//! never waits for one.
//!
//! Two kinds: Varnish with the shipped VCL (`deploy/varnish.vcl`), asked with `PURGE` and the
//! tags in one header, which the VCL hands to xkey's hard purge; and any purge-by-tag API
//! over HTTP (Fastly, Cloudflare, …) from a method, headers and a body template.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::{PurgeRequest, Purger, Retry};
use crate::outbound::{Delivery, Sending, host_of};

/// The kind of request, as queued.
pub const KIND: &str = "purge";

/// How long one purge request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How a failed purge is retried: 1 s, doubling, for about ten minutes in all.
const RETRY: Retry = Retry {
    attempts: 10,
    first_delay: Duration::from_secs(1),
    max_delay: crate::outbound::MAX_BACKOFF,
};

/// Sends purges to the configured purgers (the queue's target: a purger's name).
pub struct Purge {
    client: reqwest::Client,
    purgers: HashMap<String, Purger>,
}

impl Purge {
    /// Purges at these purgers.
    pub fn new(purgers: &[Purger]) -> Self {
        Purge {
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .user_agent(crate::GENERATOR)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            purgers: purgers
                .iter()
                .map(|p| (p.name.clone(), p.clone()))
                .collect(),
        }
    }
}

/// A template with the tags filled in, in one pass (a tag is never read as a placeholder):
/// `{tags}` separated by spaces, `{tags_comma}` by commas, `{tags_json}` as a JSON array of
/// strings.
fn fill(template: &str, tags: &[String]) -> String {
    const PLACEHOLDERS: [&str; 3] = ["{tags_json}", "{tags_comma}", "{tags}"];
    let mut out = String::with_capacity(template.len() + tags.len() * 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let here = &rest[start..];
        let Some(placeholder) = PLACEHOLDERS.iter().find(|p| here.starts_with(**p)) else {
            out.push('{');
            rest = &here[1..];
            continue;
        };
        match *placeholder {
            "{tags_json}" => out.push_str(&serde_json::Value::from(tags.to_vec()).to_string()),
            "{tags_comma}" => out.push_str(&tags.join(",")),
            _ => out.push_str(&tags.join(" ")),
        }
        rest = &here[placeholder.len()..];
    }
    out.push_str(rest);
    out
}

/// Tags of one request at most this many bytes together, whatever `max_tags_per_request`
/// allows: Varnish refuses a request header much over 8 KiB, Fastly one over 16 KiB.
const MAX_TAG_BYTES_PER_REQUEST: usize = 7 * 1024;

/// The tags in parts that each fit [`MAX_TAG_BYTES_PER_REQUEST`] (a tag longer than that on its
/// own goes alone).
fn by_bytes(tags: &[String]) -> Vec<&[String]> {
    let mut parts = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, tag) in tags.iter().enumerate() {
        let more = tag.len() + 1;
        if i > start && bytes + more > MAX_TAG_BYTES_PER_REQUEST {
            parts.push(&tags[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += more;
    }
    if start < tags.len() {
        parts.push(&tags[start..]);
    }
    parts
}

impl Purge {
    /// One purge request for these tags.
    async fn purge(&self, target: &str, purger: &Purger, tags: &[String]) -> Result<(), String> {
        let mut request = match &purger.request {
            PurgeRequest::Varnish { tags_header } => self
                .client
                .request(
                    reqwest::Method::from_bytes(b"PURGE").map_err(|e| e.to_string())?,
                    purger.url.clone(),
                )
                .header(tags_header.as_str(), tags.join(" ")),
            PurgeRequest::Http { method, body } => {
                let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
                    .map_err(|e| e.to_string())?;
                let request = self.client.request(method, purger.url.clone());
                match body {
                    Some(body) => request.body(fill(body, tags)),
                    None => request,
                }
            }
        };
        for (name, value) in &purger.headers {
            request = request.header(name.as_str(), fill(value, tags));
        }
        let answer = request
            .send()
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        if answer.status().is_success() {
            metrics::counter!(crate::metrics::PURGED_TAGS, "purger" => target.to_owned())
                .increment(tags.len() as u64);
            Ok(())
        } else {
            Err(format!("refused: {}", answer.status()))
        }
    }
}

impl Delivery for Purge {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn send<'a>(&'a self, target: &'a str, tags: &'a [String]) -> Sending<'a> {
        Box::pin(async move {
            // A purger removed from feeds.toml: nothing to send to; retried until given up,
            // in case another replica still has it.
            let purger = self
                .purgers
                .get(target)
                .ok_or_else(|| format!("no purger named `{target}` here"))?;
            for part in by_bytes(tags) {
                self.purge(target, purger, part).await?;
            }
            Ok(())
        })
    }

    fn per_request(&self, target: &str) -> usize {
        self.purgers
            .get(target)
            .map_or(1, |p| p.max_tags_per_request)
    }

    fn host(&self, target: &str) -> String {
        self.purgers
            .get(target)
            .map_or_else(|| target.to_owned(), |p| host_of(p.url.as_str()))
    }

    fn retry(&self) -> Retry {
        RETRY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_gets_the_tags_in_the_form_it_names() {
        let tags = ["feed:category/parks".to_owned(), "a:x\"y".to_owned()];
        assert_eq!(
            fill(r#"{"tags": {tags_json}}"#, &tags),
            r#"{"tags": ["feed:category/parks","a:x\"y"]}"#
        );
        assert_eq!(
            fill("{tags}|{tags_comma}", &tags),
            "feed:category/parks a:x\"y|feed:category/parks,a:x\"y"
        );
    }
}
