//! The article intake: the one place that makes an [`Article`], whatever its path.
//!
//! What arrives (a line of an import, an admin API body) is an [`ArticleInput`], checked
//! strictly by [`ArticleInput::validate`]: every problem is reported by field and nothing bad is
//! stored. What is read back from the store is a [`StoredArticle`], checked leniently by
//! [`stored`]: a row may have been written by the CMS in SQL, so nothing in it is trusted, but
//! one bad value must not take a feed down for every subscriber. A field it cannot fix is
//! dropped (logged once per row, with the id and the fields, and counted in `/metrics`); the
//! row is skipped only when its id, title, url or publication time cannot be fixed. Both paths
//! apply the same rules: the same sanitizer with the same iframe hosts, images resolved against
//! the article's URL, language tags checked.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

use crate::config::Settings;
use crate::model::{
    Article, ArticleId, CategorySlug, MAX_CREDIT_CHARS, MAX_SHORT_TITLE_CHARS, MAX_SUMMARY_CHARS,
    RegionCode, Source,
};
use crate::sanitize;
use crate::store::StoredArticle;

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
    pub editor: Option<String>,
    pub short_title: Option<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    pub region: Option<String>,
    pub image: Option<String>,
    pub language: Option<String>,
}

/// The `source` object of [`ArticleInput`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SourceInput {
    pub name: Option<String>,
    pub url: Option<String>,
    pub author: Option<String>,
    pub title: Option<String>,
    pub published_at: Option<String>,
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

    /// An optional credit (a name or a title): plain text, none when it has no text, and a
    /// problem when it is longer than `max` characters. Refused rather than cut: a cut name
    /// credits someone else.
    fn credit(&mut self, field: &'static str, value: Option<&str>, max: usize) -> Option<String> {
        let text = value.map(sanitize::plain_text).filter(|t| !t.is_empty())?;
        let length = text.chars().count();
        if length > max {
            self.add(
                field,
                format!("is {length} characters long: at most {max} are allowed"),
            );
            return None;
        }
        Some(text)
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
        let summary = summary_of(
            self.summary.as_deref().map(sanitize::plain_text),
            &content_html,
        );

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
            let author = p.credit("source.author", s.author.as_deref(), MAX_CREDIT_CHARS);
            let title = p.credit("source.title", s.title.as_deref(), MAX_CREDIT_CHARS);
            let original = s
                .published_at
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .and_then(|v| {
                    let original = parse_date(v, tz)
                        .map_err(|m| p.add("source.published_at", m))
                        .ok()?;
                    // A reprint cannot come before its original; such a date is a typo.
                    match published_at {
                        Some(reprinted) if original > reprinted => {
                            p.add(
                                "source.published_at",
                                format!("`{v}` is after the article's published_at"),
                            );
                            None
                        }
                        _ => Some(original),
                    }
                });
            Some(Source {
                name: name?,
                url: url?.to_string(),
                author,
                title,
                published_at: original,
            })
        });
        let editor = p.credit("editor", self.editor.as_deref(), MAX_CREDIT_CHARS);
        let short_title = p.credit(
            "short_title",
            self.short_title.as_deref(),
            MAX_SHORT_TITLE_CHARS,
        );

        let mut categories: Vec<CategorySlug> = Vec::with_capacity(self.categories.len());
        // A former name is taken for the current one: the CMS may go on sending it a while.
        for raw in &self.categories {
            match catalog.current_category(raw.trim()).map(|c| &c.slug) {
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
            .and_then(|raw| match catalog.current_region(raw) {
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

        let language = language_of(self.language.as_deref(), &site.language)
            .map_err(|m| p.add("language", m))
            .unwrap_or_default();

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
                    editor,
                    short_title,
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

/// An article's language: a BCP 47 tag, by a pragmatic check (subtags of 1 to 8 ASCII
/// alphanumerics joined by `-`), or the site's when none is given.
fn language_of(given: Option<&str>, site: &str) -> Result<String, String> {
    match given.map(str::trim) {
        None | Some("") => Ok(site.to_owned()),
        Some(tag)
            if tag.split('-').all(|s| {
                (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
            }) =>
        {
            Ok(tag.to_owned())
        }
        Some(tag) => Err(format!("`{tag}` is not a language tag such as `zh-CN`")),
    }
}

/// An article's summary: the plain text given, or else its content's text, cut to
/// [`MAX_SUMMARY_CHARS`] after a sentence or clause where one ends within the limit, so a
/// bridge that shows it as a preview shows whole sentences.
fn summary_of(given: Option<String>, content_html: &str) -> String {
    let summary = match given {
        Some(s) if !s.is_empty() => s,
        _ => sanitize::plain_text(content_html),
    };
    sanitize::shorten(&summary, MAX_SUMMARY_CHARS, sanitize::Stops::Sentences).text
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

/// A stored time, within the years every feed format can write. 1899 and 9999 in UTC may be
/// 1900 and 10000 in the site's zone; import keeps dates within 1900..=9999 there, and the
/// renderer never panics on the edges.
fn stored_instant(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
        .filter(|t| (1899..=9999).contains(&chrono::Datelike::year(t)))
}

/// Turns a stored row back into an article, leniently (see the module doc): `None` when its
/// id, title, url or publication time cannot be fixed.
pub fn stored(mut row: StoredArticle, settings: &Settings) -> Option<Article> {
    let skip = |id: &str, why: &str| {
        tracing::warn!(
            id,
            cause = why,
            "skipping a stored article that cannot be fixed"
        );
        metrics::counter!(crate::metrics::STORED_ARTICLES_SKIPPED).increment(1);
        None
    };
    let Ok(id) = ArticleId::parse(&row.id) else {
        return skip(&row.id, "its id is not a valid id");
    };
    let Ok(url) = absolute_http_url(&row.url, None) else {
        return skip(&row.id, "its url is not an absolute http(s) URL");
    };
    let Some(published_at) = stored_instant(row.published_at) else {
        return skip(
            &row.id,
            "its published_at is not a time between 1899 and 9999",
        );
    };
    // feedcast's own rows were sanitized when written: only characters XML forbids are
    // dropped (cheaply) again. Anyone else's are cleaned as on import.
    let trusted = row.sanitized;
    let text = |s: &str| {
        if trusted {
            sanitize::xml_chars(s).into_owned()
        } else {
            sanitize::plain_text(s)
        }
    };
    let title = text(&row.title);
    if title.is_empty() {
        return skip(&row.id, "its title has no text");
    }

    let mut dropped: Vec<&'static str> = Vec::new();
    let updated_at = match row.updated_at.map(stored_instant) {
        None => None,
        Some(Some(t)) => Some(t.max(published_at)),
        Some(None) => {
            dropped.push("updated_at");
            None
        }
    };
    let content_html = if trusted {
        // Taken, not copied: a body is most of a row.
        sanitize::xml_chars_owned(std::mem::take(&mut row.content_html))
    } else {
        sanitize::html(&row.content_html, &url, &settings.iframe_hosts)
    };
    // feedcast's own rows hold the summary it made on import.
    let summary = match text(&row.summary) {
        s if trusted => s,
        s => summary_of(Some(s), &content_html),
    };
    // Longer credits than import accepts are dropped, not cut: a cut name credits someone else.
    let credit =
        |dropped: &mut Vec<&'static str>, field, value: Option<&str>, max: usize| match value
            .map(text)
            .filter(|t| !t.is_empty())
        {
            Some(t) if t.chars().count() > max => {
                dropped.push(field);
                None
            }
            t => t,
        };
    let has_source = row.source_name.is_some()
        || row.source_url.is_some()
        || row.source_author.is_some()
        || row.source_title.is_some()
        || row.source_published_at.is_some();
    let source = if has_source {
        let name = row
            .source_name
            .as_deref()
            .map(text)
            .filter(|n| !n.is_empty());
        let link = row
            .source_url
            .as_deref()
            .and_then(|u| absolute_http_url(u, None).ok());
        match (name, link) {
            (Some(name), Some(link)) => {
                let author = credit(
                    &mut dropped,
                    "source.author",
                    row.source_author.as_deref(),
                    MAX_CREDIT_CHARS,
                );
                let title = credit(
                    &mut dropped,
                    "source.title",
                    row.source_title.as_deref(),
                    MAX_CREDIT_CHARS,
                );
                let original = match row.source_published_at.map(stored_instant) {
                    None => None,
                    Some(Some(t)) if t <= published_at => Some(t),
                    Some(_) => {
                        dropped.push("source.published_at");
                        None
                    }
                };
                Some(Source {
                    name,
                    url: link.to_string(),
                    author,
                    title,
                    published_at: original,
                })
            }
            // Credits without the publisher they belong to are dropped with it.
            _ => {
                dropped.push("source");
                None
            }
        }
    } else {
        None
    };
    let editor = credit(
        &mut dropped,
        "editor",
        row.editor.as_deref(),
        MAX_CREDIT_CHARS,
    );
    let short_title = credit(
        &mut dropped,
        "short_title",
        row.short_title.as_deref(),
        MAX_SHORT_TITLE_CHARS,
    );
    // A name that is no longer declared (feeds.toml changed since the row was written) is kept:
    // it is shown by its slug, as before. Only a name that cannot be one is dropped. A former
    // name (a row the CMS wrote since the start refiled the others) is read as the current one.
    let catalog = &settings.catalog;
    let mut categories: Vec<CategorySlug> = Vec::new();
    for raw in row.categories.split_whitespace() {
        let current = CategorySlug::parse(raw).map(|slug| {
            catalog
                .renamed_category(slug.as_str())
                .map_or(slug, |c| c.slug.clone())
        });
        match current {
            Ok(slug) if !categories.contains(&slug) => categories.push(slug),
            Ok(_) => {}
            Err(_) if !dropped.contains(&"categories") => dropped.push("categories"),
            Err(_) => {}
        }
    }
    let region = row
        .region
        .as_deref()
        .and_then(|raw| match RegionCode::parse(raw) {
            Ok(code) => Some(
                catalog
                    .renamed_region(code.as_str())
                    .map_or(code, |r| r.code.clone()),
            ),
            Err(_) => {
                dropped.push("region");
                None
            }
        });
    let image = row
        .image
        .as_deref()
        .and_then(|raw| match absolute_http_url(raw, Some(&url)) {
            Ok(u) => Some(String::from(u)),
            Err(_) => {
                dropped.push("image");
                None
            }
        });
    let language = language_of(Some(&row.language), &settings.site.language).unwrap_or_else(|_| {
        dropped.push("language");
        settings.site.language.clone()
    });
    if !dropped.is_empty() {
        tracing::warn!(
            id = row.id,
            fields = dropped.join(", "),
            "a stored article had fields that cannot be fixed: left out"
        );
        metrics::counter!(crate::metrics::STORED_FIELDS_DROPPED).increment(dropped.len() as u64);
    }
    Some(Article {
        id,
        title,
        summary,
        content_html,
        url: url.to_string(),
        published_at,
        updated_at,
        author: row.author.as_deref().map(text).filter(|a| !a.is_empty()),
        source,
        editor,
        short_title,
        categories,
        region,
        image,
        language,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reprint as it arrives, with these `source` fields and these top-level ones added.
    fn reprint(source: serde_json::Value, extra: serde_json::Value) -> ArticleInput {
        let mut v = serde_json::json!({
            "id": "r1", "title": "转载", "url": "https://www.kechuang.example.cn/n/r1.html",
            "published_at": "2024-05-18T09:30:00+08:00",
            "source": {"name": "江阴日报", "url": "https://www.jyrb.example.com/a/1.html"}
        });
        v["source"]
            .as_object_mut()
            .unwrap()
            .extend(source.as_object().unwrap().clone());
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    fn fields(input: ArticleInput) -> Vec<&'static str> {
        match input.validate(&Settings::test_fixture()) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|p| p.field).collect(),
        }
    }

    #[test]
    fn credits_are_plain_text_and_none_when_they_have_no_text() {
        let input = reprint(
            serde_json::json!({"author": " 王明 <b>&amp;</b>\u{1} 李四 ", "title": "<i>原题</i>\n ]]>"}),
            serde_json::json!({"editor": "<br>", "short_title": "短 &lt;题&gt;"}),
        );
        let a = input.validate(&Settings::test_fixture()).unwrap();
        let source = a.source().unwrap();
        assert_eq!(source.author.as_deref(), Some("王明 & 李四"));
        assert_eq!(source.title.as_deref(), Some("原题 ]]>"));
        assert_eq!(a.editor(), None, "markup alone credits no one");
        assert_eq!(a.short_title(), Some("短 <题>"));
    }

    #[test]
    fn credits_longer_than_their_bound_in_characters_are_refused_naming_the_field() {
        // Counted in characters, not bytes: 200 Chinese characters are 600 bytes.
        let at_bound = "长".repeat(MAX_CREDIT_CHARS);
        let over = "长".repeat(MAX_CREDIT_CHARS + 1);
        let ok = reprint(
            serde_json::json!({"author": at_bound, "title": at_bound}),
            serde_json::json!({"editor": at_bound, "short_title": "短".repeat(MAX_SHORT_TITLE_CHARS)}),
        );
        assert_eq!(fields(ok), Vec::<&str>::new());
        let bad = reprint(
            serde_json::json!({"author": over, "title": over}),
            serde_json::json!({"editor": over, "short_title": "短".repeat(MAX_SHORT_TITLE_CHARS + 1)}),
        );
        assert_eq!(
            fields(bad),
            ["source.author", "source.title", "editor", "short_title"]
        );
        // The bound is on the text shown, not on the markup around it.
        let wrapped = reprint(
            serde_json::json!({"author": format!("<span class=\"name\">{at_bound}</span>")}),
            serde_json::json!({}),
        );
        assert_eq!(fields(wrapped), Vec::<&str>::new());
    }

    #[test]
    fn an_original_is_published_no_later_than_its_reprint() {
        let at = |when: &str| {
            reprint(
                serde_json::json!({"published_at": when}),
                serde_json::json!({}),
            )
        };
        let settings = Settings::test_fixture();
        let same = at("2024-05-18T09:30:00+08:00").validate(&settings).unwrap();
        assert_eq!(
            same.source().unwrap().published_at,
            Some(same.published_at())
        );
        // A bare date is midnight of that day in the site's zone: the same day is earlier.
        assert!(at("2024-05-18").validate(&settings).is_ok());
        assert_eq!(
            fields(at("2024-05-18T09:30:01+08:00")),
            ["source.published_at"]
        );
        assert_eq!(fields(at("昨天")), ["source.published_at"]);
        assert_eq!(fields(at(" ")), Vec::<&str>::new(), "blank is none");
    }

    fn row() -> StoredArticle {
        StoredArticle {
            id: "r1".into(),
            title: "转载".into(),
            summary: String::new(),
            content_html: "<p>x</p>".into(),
            url: "https://www.kechuang.example.cn/n/r1.html".into(),
            published_at: 1_716_000_000_000_000,
            updated_at: None,
            author: None,
            source_name: Some("江阴日报".into()),
            source_url: Some("https://www.jyrb.example.com/a/1.html".into()),
            source_author: Some("王明".into()),
            source_title: Some("原题".into()),
            source_published_at: Some(1_715_990_000_000_000),
            editor: Some("李华".into()),
            short_title: Some("短题".into()),
            categories: String::new(),
            region: None,
            image: None,
            language: "zh-CN".into(),
            sanitized: false,
        }
    }

    #[test]
    fn stored_credits_are_read_back_and_those_import_would_refuse_left_out() {
        let settings = Settings::test_fixture();
        let a = stored(row(), &settings).unwrap();
        let source = a.source().unwrap();
        assert_eq!(
            (source.author.as_deref(), source.title.as_deref()),
            (Some("王明"), Some("原题"))
        );
        assert_eq!(
            source.published_at.map(|t| t.timestamp()),
            Some(1_715_990_000)
        );
        assert_eq!((a.editor(), a.short_title()), (Some("李华"), Some("短题")));

        let over = "长".repeat(MAX_CREDIT_CHARS + 1);
        let bad = StoredArticle {
            source_author: Some(over.clone()),
            source_title: Some(over.clone()),
            source_published_at: Some(1_716_000_000_000_001),
            editor: Some(over),
            short_title: Some("短".repeat(MAX_SHORT_TITLE_CHARS + 1)),
            ..row()
        };
        let a = stored(bad, &settings).expect("the row is kept");
        let source = a.source().expect("the publisher is kept");
        assert_eq!(
            (&source.author, &source.title, source.published_at),
            (&None, &None, None)
        );
        assert_eq!((a.editor(), a.short_title()), (None, None));

        // Credits without the publisher they belong to go with it.
        let orphan = StoredArticle {
            source_name: None,
            source_url: None,
            ..row()
        };
        assert_eq!(stored(orphan, &settings).unwrap().source(), None);
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
