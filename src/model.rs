//! The neutral article types: no format, SQL or HTTP concerns.
//!
//! Input arrives as [`ArticleInput`] (the JSON of the import format, later of the admin API) and is
//! validated once, at the edge, into an [`Article`]: its names are checked against the catalog,
//! its dates are instants, its URLs absolute and its text sanitized. Inner code takes an
//! `Article` as proof of all that and never re-checks.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

use crate::config::Settings;
use crate::sanitize;

/// Longest accepted name (slug, region code, article id), in bytes.
const MAX_NAME_LEN: usize = 128;

/// Longest summary kept, in characters; longer ones are cut with an ellipsis so a bridge that
/// shows the summary as a preview gets a preview, not the article.
pub const MAX_SUMMARY_CHARS: usize = 300;

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

/// The original publisher of a reprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The publisher's name, plain text, never empty.
    pub name: String,
    /// The original report's (or the publisher's) absolute http(s) URL.
    pub url: String,
}

/// A validated, sanitized article. Only [`ArticleInput::validate`] and the store make one.
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
    /// Plain-text lead, at most [`MAX_SUMMARY_CHARS`] characters.
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
    /// The original publisher, for a reprint.
    pub fn source(&self) -> Option<&Source> {
        self.source.as_ref()
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
    /// Language tag (e.g. `zh-CN`).
    pub fn language(&self) -> &str {
        &self.language
    }
}

/// An article as it arrives in the import format (and later the admin API), not yet checked.
///
/// Every field is optional at this stage so that validation can report every missing field at
/// once instead of stopping at the first; only unknown fields and wrong JSON types fail parsing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ArticleInput {
    pub id: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub content_html: Option<String>,
    pub url: Option<String>,
    pub published_at: Option<String>,
    pub updated_at: Option<String>,
    pub author: Option<String>,
    #[serde(default, deserialize_with = "object_or_null")]
    pub source: Option<SourceInput>,
    #[serde(default)]
    pub categories: Vec<String>,
    pub region: Option<String>,
    pub image: Option<String>,
    pub language: Option<String>,
}

/// The `source` object of [`ArticleInput`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SourceInput {
    pub name: Option<String>,
    pub url: Option<String>,
}

/// A value that must be a JSON object. serde's derived structs also accept an array of their
/// fields in order, which would make `["id", "title", …]` an article; the import format names
/// every field, so an object is the only form it takes.
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl JsonObject<()> {
    /// What an error says was expected (so that callers can tell this error apart).
    pub const EXPECTED: &'static str = "expected a JSON object";
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Visitor(std::marker::PhantomData))
            .map(JsonObject)
    }
}

/// `source`: an object, or null or absent for none.
fn object_or_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SourceInput>, D::Error> {
    Ok(Option::<JsonObject<SourceInput>>::deserialize(deserializer)?.map(|o| o.0))
}

/// One problem with one field of an article.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The JSON field, e.g. `published_at` or `source.url`.
    pub field: &'static str,
    /// What is wrong, in words a CMS editor can act on.
    pub message: String,
}

/// Every problem found in one article; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ArticleErrors(pub Vec<FieldError>);

impl fmt::Display for ArticleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

/// Collects field errors while validating, so every problem is reported at once.
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(FieldError {
            field,
            message: message.into(),
        });
    }

    fn required<'a>(&mut self, field: &'static str, value: &'a Option<String>) -> Option<&'a str> {
        match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Some(v),
            _ => {
                self.add(field, "is required");
                None
            }
        }
    }
}

impl ArticleInput {
    /// Checks every field against the site and catalog and sanitizes the text, yielding an
    /// [`Article`] or every problem found.
    pub fn validate(self, settings: &Settings) -> Result<Article, ArticleErrors> {
        let (site, catalog) = (&settings.site, &settings.catalog);
        let mut p = Problems(Vec::new());
        let tz = site.time_zone;

        let id = p.required("id", &self.id).and_then(|v| {
            ArticleId::parse(v)
                .map_err(|e| p.add("id", e.to_string()))
                .ok()
        });

        let url = p
            .required("url", &self.url)
            .and_then(|v| match absolute_http_url(v, None) {
                Ok(u) => Some(u),
                Err(m) => {
                    p.add("url", m);
                    None
                }
            });

        let title = p.required("title", &self.title).and_then(|v| {
            let t = sanitize::plain_text(v);
            if t.is_empty() {
                p.add("title", "has no text once markup is removed");
                None
            } else {
                Some(t)
            }
        });

        let published_at = p
            .required("published_at", &self.published_at)
            .and_then(|v| parse_date(v, tz).map_err(|m| p.add("published_at", m)).ok());
        let updated_at = self
            .updated_at
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .and_then(|v| parse_date(v, tz).map_err(|m| p.add("updated_at", m)).ok());

        let content_html = match (&url, self.content_html.as_deref()) {
            (Some(base), Some(html)) => sanitize::html(html, base, &settings.iframe_hosts),
            _ => String::new(),
        };
        let summary = match self.summary.as_deref().map(sanitize::plain_text) {
            Some(s) if !s.is_empty() => s,
            _ => sanitize::plain_text(&content_html),
        };
        let summary = sanitize::truncate(&summary, MAX_SUMMARY_CHARS);

        let author = self
            .author
            .as_deref()
            .map(sanitize::plain_text)
            .filter(|a| !a.is_empty());

        let source = self.source.and_then(|s| {
            let name = p
                .required("source.name", &s.name)
                .map(sanitize::plain_text)
                .filter(|n| !n.is_empty());
            let url = p.required("source.url", &s.url).and_then(|v| {
                absolute_http_url(v, None)
                    .map_err(|m| p.add("source.url", m))
                    .ok()
            });
            Some(Source {
                name: name?,
                url: url?.to_string(),
            })
        });

        let mut categories: Vec<CategorySlug> = Vec::with_capacity(self.categories.len());
        for raw in &self.categories {
            match catalog.category_slug(raw.trim()) {
                Some(slug) if !categories.contains(slug) => categories.push(slug.clone()),
                Some(_) => {}
                None => p.add(
                    "categories",
                    format!("unknown category `{raw}`: declare it in feeds.toml"),
                ),
            }
        }

        let region = self
            .region
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .and_then(|raw| match catalog.region(raw) {
                Some(r) => Some(r.code.clone()),
                None => {
                    p.add(
                        "region",
                        format!("unknown region `{raw}`: declare it in feeds.toml"),
                    );
                    None
                }
            });

        let image = self
            .image
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .and_then(|v| {
                absolute_http_url(v, url.as_ref())
                    .map_err(|m| p.add("image", m))
                    .ok()
            });

        let language = match self.language.as_deref().map(str::trim) {
            None | Some("") => site.language.clone(),
            Some(l) if is_language_tag(l) => l.to_owned(),
            Some(l) => {
                p.add(
                    "language",
                    format!("`{l}` is not a language tag such as `zh-CN`"),
                );
                String::new()
            }
        };

        match (id, title, url, published_at) {
            (Some(id), Some(title), Some(url), Some(published_at)) if p.0.is_empty() => {
                Ok(Article {
                    id,
                    title,
                    summary,
                    content_html,
                    url: url.to_string(),
                    published_at,
                    updated_at: updated_at.map(|u| u.max(published_at)),
                    author,
                    source,
                    categories,
                    region,
                    image: image.map(String::from),
                    language,
                })
            }
            _ => Err(ArticleErrors(p.0)),
        }
    }
}

/// Parses an absolute http(s) URL; with `base`, a relative one is resolved against it.
fn absolute_http_url(value: &str, base: Option<&Url>) -> Result<Url, String> {
    let parsed = match base {
        Some(b) => b.join(value),
        None => Url::parse(value),
    }
    .map_err(|e| format!("`{value}` is not an absolute URL ({e})"))?;
    if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() {
        Ok(parsed)
    } else {
        Err(format!("`{value}` must be an http or https URL"))
    }
}

/// A pragmatic check of a BCP 47 tag: subtags of 1 to 8 ASCII alphanumerics joined by `-`.
fn is_language_tag(tag: &str) -> bool {
    tag.split('-')
        .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Parses an article date: RFC 3339 with an offset; or a local date-time or a bare date
/// (`2021-01-19`, meaning midnight) in the site's time zone.
pub fn parse_date(value: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let value = value.trim();
    let parsed = if let Ok(dt) = DateTime::parse_from_rfc3339(value) {
        Some(dt.with_timezone(&Utc))
    } else if let Ok(naive) = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f"))
    {
        tz.from_local_datetime(&naive)
            .earliest()
            .map(|d| d.with_timezone(&Utc))
    } else if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        date.and_hms_opt(0, 0, 0)
            .and_then(|n| tz.from_local_datetime(&n).earliest())
            .map(|d| d.with_timezone(&Utc))
    } else {
        None
    };
    let dt = parsed.ok_or_else(|| {
        format!("`{value}` is not a date: use RFC 3339 (2021-01-19T08:30:00+08:00) or a bare date (2021-01-19)")
    })?;
    // RSS dates (RFC 2822) and most readers cannot represent years outside this range, in
    // the zone the feeds show them in.
    if !(1900..=9999).contains(&chrono::Datelike::year(&dt.with_timezone(&tz))) {
        return Err(format!("`{value}` is outside the years 1900 to 9999"));
    }
    Ok(dt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_parse_names() {
        assert!(CategorySlug::parse("hydrogen-energy").is_ok());
        assert!(RegionCode::parse("320281").is_ok());
        assert!(CategorySlug::parse("").is_err());
        assert!(CategorySlug::parse("-x").is_err());
        assert!(CategorySlug::parse("a/b").is_err());
        assert!(ArticleId::parse("氢能").is_err());
    }

    #[test]
    fn bare_date_means_midnight_in_the_site_time_zone() {
        let dt = parse_date("2021-01-19", chrono_tz::Asia::Shanghai).unwrap();
        assert_eq!(dt.to_rfc3339(), "2021-01-18T16:00:00+00:00");
    }

    #[test]
    fn offsets_are_kept_as_instants() {
        let dt = parse_date("2021-01-19T10:00:00+08:00", chrono_tz::Asia::Shanghai).unwrap();
        assert_eq!(dt.to_rfc3339(), "2021-01-19T02:00:00+00:00");
        let local = parse_date("2021-01-19 10:00:00", chrono_tz::Asia::Shanghai).unwrap();
        assert_eq!(local, dt);
    }

    #[test]
    fn errors_when_date_is_not_a_date() {
        let err = parse_date("19/01/2021", chrono_tz::Asia::Shanghai).unwrap_err();
        assert!(err.contains("19/01/2021"), "{err}");
        assert!(parse_date("0099-01-01", chrono_tz::Asia::Shanghai).is_err());
    }
}
