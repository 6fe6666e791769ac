//! The WeChat-ready profile (`.wechat.json`): each item fitted to what an official account's
//! `draft/add` takes, so that every bridge fits them the same way and none has to guess. Titles
//! and digests are cut where a phrase or sentence ends, never mid-word where one can be helped;
//! the content loses what WeChat refuses and keeps its links as footnotes (see
//! [`sanitize::wechat`]); the cover image and every image of the content are listed for the
//! bridge to re-upload. Every field that was cut says so, for a bridge that would rather have
//! an editor look first.

use serde::Serialize;

use super::{Links, credit_line, credited_authors, deleted_when, id_of, item_id, local};
use crate::config::Settings;
use crate::feed::Feed;
use crate::model::Article;
use crate::sanitize::{self, Shortened, Stops};

/// WeChat's limit for a draft's title, in Unicode scalar values.
pub const MAX_TITLE_CHARS: usize = 32;
/// The profile's limit for a digest: WeChat takes 128; a little less leaves room for a bridge
/// that adds a mark of its own.
pub const MAX_DIGEST_CHARS: usize = 120;

/// What a cut content ends with, before the credit line: the whole article is behind the
/// draft's 阅读原文 link, its `content_source_url`.
const CUT_NOTICE: &str = "（篇幅所限，全文请点击“阅读原文”）";

#[derive(Serialize)]
struct Profile<'a> {
    /// The document's own URL.
    feed: String,
    items: Vec<Item<'a>>,
    /// Items taken down lately, for a bridge to delete the drafts it made of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deleted: Vec<Deleted>,
}

#[derive(Serialize)]
struct Deleted {
    id: String,
    when: String,
}

#[derive(Serialize)]
struct Item<'a> {
    id: String,
    title: String,
    title_cut: bool,
    digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<&'a str>,
    /// The article's own page: the draft's 阅读原文, the one outside link WeChat allows.
    content_source_url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    thumb_url: Option<&'a str>,
    content: String,
    content_cut: bool,
    images: Vec<String>,
    /// When the article was published and last edited, so a bridge can tell an edit (and
    /// update its draft) from an item it has already made.
    date_published: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_modified: Option<String>,
}

pub(super) fn render(feed: &Feed, settings: &Settings) -> Result<Vec<u8>, String> {
    let doc = Profile {
        feed: Links::of(feed, settings).self_url,
        items: feed.items.iter().map(|a| item(settings, a)).collect(),
        deleted: feed
            .tombstones
            .iter()
            .map(|t| Deleted {
                id: id_of(settings, &t.id),
                when: deleted_when(settings, t),
            })
            .collect(),
    };
    serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())
}

fn item<'a>(settings: &Settings, a: &'a Article) -> Item<'a> {
    let title = title(a.title(), a.short_title());
    let lead = Some(a.summary())
        .filter(|s| !s.is_empty())
        .unwrap_or(a.title());
    // The credit line the feeds add after the body, kept whatever is cut.
    let credit = credit_line(settings, a).unwrap_or_default();
    let content = sanitize::wechat(a.content_html(), &credit, CUT_NOTICE);
    Item {
        id: item_id(settings, a),
        title: title.text,
        title_cut: title.was_cut,
        digest: sanitize::shorten(lead, MAX_DIGEST_CHARS, Stops::Sentences).text,
        // The one credited first, as every format credits it: for a reprint its original
        // author or else its publisher, never the portal.
        author: credited_authors(a).first().map(|(name, _)| *name),
        content_source_url: a.url(),
        thumb_url: a.image(),
        content: content.html,
        content_cut: content.was_cut,
        images: content.images,
        date_published: local(settings, a.published_at()).to_rfc3339(),
        date_modified: a.updated_at().map(|t| local(settings, t).to_rfc3339()),
    }
}

/// A draft's title: the editor's short title when there is one (cut too, should it still be
/// too long), else the title when it fits, else the title cut after its last phrase within
/// the limit, where cutting it changes least what it says.
fn title(title: &str, short_title: Option<&str>) -> Shortened {
    let chosen = short_title.filter(|t| !t.is_empty()).unwrap_or(title);
    sanitize::shorten(chosen, MAX_TITLE_CHARS, Stops::Phrases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_title_wins_and_a_long_title_is_cut_after_a_phrase() {
        let long = "江阴高新区氢能产业园今日开工，总投资五十亿元，将建设全国规模最大的加氢站网络";
        assert!(long.chars().count() > MAX_TITLE_CHARS);
        let cut = title(long, None);
        assert_eq!(cut.text, "江阴高新区氢能产业园今日开工，总投资五十亿元，…");
        assert!(cut.was_cut);
        let short = title(long, Some("江阴氢能产业园开工"));
        assert_eq!(
            (short.text.as_str(), short.was_cut),
            ("江阴氢能产业园开工", false)
        );
        let fits = title("江阴氢能产业园开工", Some(""));
        assert_eq!(
            (fits.text.as_str(), fits.was_cut),
            ("江阴氢能产业园开工", false)
        );
    }
}
