//! The neutral types: no format, SQL or HTTP concerns.
//!
//! An [`Article`] is made by the intake (in `import`) only, once, at the edge: its names are
//! checked against the [`Catalog`], its dates are instants, its URLs absolute and its text
//! sanitized. Inner code takes an `Article` as proof of all that and never re-checks. The URL-safe
//! names (slugs, region codes, ids) and the feed-index [`Bucket`]s live here too, and the catalog
//! of categories, regions and custom feeds that `feeds.toml` declares.

mod catalog;

use std::fmt;

use chrono::{DateTime, Utc};

pub use catalog::{Catalog, Category, CustomFeed, Region};

/// Longest accepted name (slug, region code, article id), in bytes.
const MAX_NAME_LEN: usize = 128;

/// Longest summary kept, in Unicode scalar values; longer ones are cut after a sentence or
/// clause with an ellipsis, so a bridge that shows the summary as a preview gets a preview, not
/// the article.
pub const MAX_SUMMARY_CHARS: usize = 300;

/// Longest reprint credit kept (original author and title, editor), in characters: a name or a
/// title, never a paragraph, so a bridge can put each on one line of a message.
pub const MAX_CREDIT_CHARS: usize = 200;

/// Longest short title, in characters: what fits a share card or a push notification's first
/// line (WeChat cuts a card title at about 32 Chinese characters).
pub const MAX_SHORT_TITLE_CHARS: usize = 32;

/// A name that appears in URLs and cache keys was not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{value}` is not a valid {what}: use 1 to {MAX_NAME_LEN} ASCII letters, digits, `-`, `_` or `.`, starting with a letter or digit"
)]
pub struct InvalidName {
    /// What kind of name it was meant to be.
    pub what: &'static str,
    /// The rejected text.
    pub value: String,
}

fn check_name(what: &'static str, value: &str) -> Result<(), InvalidName> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NAME_LEN
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(InvalidName {
            what,
            value: value.to_owned(),
        })
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// Always 1 to 128 URL-safe ASCII characters, so it can stand in a path unescaped.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn parse(value: &str) -> Result<Self, InvalidName> {
                check_name($what, value).map(|()| Self(value.to_owned()))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A category's slug, as declared in `feeds.toml` (e.g. `parks`).
    CategorySlug,
    "category slug"
);
name_type!(
    /// A region's code, as declared in `feeds.toml` (e.g. `320281`).
    RegionCode,
    "region code"
);
name_type!(
    /// A custom feed's slug, as declared in `feeds.toml`.
    FeedSlug,
    "feed slug"
);
name_type!(
    /// An article's id: unique, and stable for the article's life, since item ids derive from it.
    ArticleId,
    "article id"
);

/// A bucket of the feed index: one category, or one region together with every region below it.
///
/// An article is filed under each of its categories and under its region and every ancestor of
/// that region, so any category or region feed is one ordered range of one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// Articles of a category.
    Category(CategorySlug),
    /// Articles of a region or of any region below it.
    Region(RegionCode),
}

impl Bucket {
    /// The bucket's key as stored: `c:<slug>` or `r:<code>`.
    pub fn key(&self) -> String {
        match self {
            Bucket::Category(c) => format!("c:{c}"),
            Bucket::Region(r) => format!("r:{r}"),
        }
    }

    /// Reads a stored key back; `None` for anything that is not a valid key.
    pub fn from_key(key: &str) -> Option<Bucket> {
        match key.split_once(':')? {
            ("c", slug) => CategorySlug::parse(slug).ok().map(Bucket::Category),
            ("r", code) => RegionCode::parse(code).ok().map(Bucket::Region),
            _ => None,
        }
    }
}

/// The original publisher of a reprint, and the credits the reprint rules ask for: the source,
/// its original author and its original title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The publisher's name, plain text, never empty.
    pub name: String,
    /// The original report's (or the publisher's) absolute http(s) URL.
    pub url: String,
    /// Who wrote the original report: plain text, 1 to [`MAX_CREDIT_CHARS`] characters.
    pub author: Option<String>,
    /// The original report's title: plain text, 1 to [`MAX_CREDIT_CHARS`] characters.
    pub title: Option<String>,
    /// When the original report was published: never after the reprint.
    pub published_at: Option<DateTime<Utc>>,
}

/// A validated, sanitized article. Only the intake (in `import`) makes one: strictly from what
/// arrives, leniently from what is read back from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    pub(crate) id: ArticleId,
    pub(crate) title: String,
    pub(crate) summary: String,
    pub(crate) content_html: String,
    pub(crate) url: String,
    pub(crate) published_at: DateTime<Utc>,
    pub(crate) updated_at: Option<DateTime<Utc>>,
    pub(crate) author: Option<String>,
    pub(crate) source: Option<Source>,
    pub(crate) editor: Option<String>,
    pub(crate) short_title: Option<String>,
    pub(crate) categories: Vec<CategorySlug>,
    pub(crate) region: Option<RegionCode>,
    pub(crate) image: Option<String>,
    pub(crate) language: String,
}

impl Article {
    /// The stable id.
    pub fn id(&self) -> &ArticleId {
        &self.id
    }
    /// Plain-text title, never empty.
    pub fn title(&self) -> &str {
        &self.title
    }
    /// Plain-text lead, at most [`MAX_SUMMARY_CHARS`] Unicode scalar values.
    pub fn summary(&self) -> &str {
        &self.summary
    }
    /// Sanitized HTML body with absolute URLs.
    pub fn content_html(&self) -> &str {
        &self.content_html
    }
    /// Canonical absolute http(s) URL.
    pub fn url(&self) -> &str {
        &self.url
    }
    /// First publication.
    pub fn published_at(&self) -> DateTime<Utc> {
        self.published_at
    }
    /// Last edit, never before publication.
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.updated_at
    }
    /// The latest of publication and last edit.
    pub fn modified_at(&self) -> DateTime<Utc> {
        self.updated_at.unwrap_or(self.published_at)
    }
    /// Plain-text author name.
    pub fn author(&self) -> Option<&str> {
        self.author.as_deref()
    }
    /// The original publisher, for a reprint, with the original author and title.
    pub fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }
    /// Who filed the article on the portal (its editor): plain text, 1 to
    /// [`MAX_CREDIT_CHARS`] characters.
    pub fn editor(&self) -> Option<&str> {
        self.editor.as_deref()
    }
    /// A shorter title for where the full one does not fit (share cards, notifications): plain
    /// text, 1 to [`MAX_SHORT_TITLE_CHARS`] characters.
    pub fn short_title(&self) -> Option<&str> {
        self.short_title.as_deref()
    }
    /// Declared categories, without duplicates, in the order given.
    pub fn categories(&self) -> &[CategorySlug] {
        &self.categories
    }
    /// Declared region.
    pub fn region(&self) -> Option<&RegionCode> {
        self.region.as_ref()
    }
    /// Absolute http(s) URL of the lead image.
    pub fn image(&self) -> Option<&str> {
        self.image.as_deref()
    }
    /// The lead image's media type, when its URL's extension names one readers show.
    pub fn image_type(&self) -> Option<&'static str> {
        self.image.as_deref().and_then(image_type)
    }
    /// Language tag (e.g. `zh-CN`).
    pub fn language(&self) -> &str {
        &self.language
    }
}

/// The media type an image URL's extension names (`.jpg`, `.jpeg`, `.png`, `.gif`, `.webp`,
/// `.avif`, in any case), looked for in the path only: `?` and `#` end it. Nothing else is
/// guessed: a feed that states a wrong type is worse than one that states none.
fn image_type(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    let (_, extension) = name.rsplit_once('.')?;
    Some(match extension.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_type_comes_from_the_path_extension_only() {
        let cases = [
            ("https://x.cn/a/lead.jpg", Some("image/jpeg")),
            ("https://x.cn/a/lead.JPEG?w=600", Some("image/jpeg")),
            ("https://x.cn/a.png#top", Some("image/png")),
            ("https://x.cn/a.gif", Some("image/gif")),
            ("https://x.cn/a.WebP", Some("image/webp")),
            ("https://x.cn/a.avif", Some("image/avif")),
            ("https://x.cn/a.svg", None),
            ("https://x.cn/image", None),
            ("https://x.cn/img.jpg/view", None),
            ("https://x.cn/view?file=a.jpg", None),
            ("https://x.cn/a.", None),
        ];
        for (url, expected) in cases {
            assert_eq!(image_type(url), expected, "{url}");
        }
    }

    #[test]
    fn can_parse_names() {
        assert!(CategorySlug::parse("hydrogen-energy").is_ok());
        assert!(RegionCode::parse("320281").is_ok());
        assert!(CategorySlug::parse("").is_err());
        assert!(CategorySlug::parse("-x").is_err());
        assert!(CategorySlug::parse("a/b").is_err());
        assert!(ArticleId::parse("氢能").is_err());
    }
}
