//! The one place that cleans text and HTML before it is stored.
//!
//! Articles come from a CMS and from reprints of other sites, so their text is dirty. Everything
//! an [`Article`](crate::model::Article) holds has passed through here: no character that XML 1.0
//! forbids survives (one would make the whole feed unreadable for every subscriber), content HTML
//! is reduced to an allow-list with absolute URLs, and titles and summaries are plain text with
//! their entities decoded exactly once.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::LazyLock;

use ammonia::{Builder, UrlRelative};
use url::Url;

/// Whether `c` may appear in an XML 1.0 document (and in feeds). C1 controls are allowed by XML but
/// discouraged and never meaningful in an article, so they go too.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r')
        || ('\u{20}'..='\u{7E}').contains(&c)
        || ('\u{A0}'..='\u{D7FF}').contains(&c)
        || ('\u{E000}'..='\u{FFFD}').contains(&c)
        || c >= '\u{10000}'
        || c == '\u{85}'
}

/// The default builder with no tag allowed: keeps text, drops script and style bodies. Built
/// once, since building one costs more than cleaning a title.
static TEXT_ONLY: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut builder = Builder::default();
    builder.tags(HashSet::new());
    builder
});

/// Removes every character that XML 1.0 does not allow.
pub fn xml_chars(s: &str) -> Cow<'_, str> {
    if s.chars().all(is_xml_char) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|&c| is_xml_char(c)).collect())
    }
}

/// Turns a fragment that may contain markup and entities into plain text on one line:
/// tags removed, entities decoded once, runs of white space folded to one space.
pub fn plain_text(s: &str) -> String {
    // Without `<` there is no tag and without `&` no entity: only the white space to fold.
    // Most titles and summaries are like that, and parsing them as HTML is most of their cost.
    if s.contains(['<', '&']) {
        plain_text_parsed(s)
    } else {
        // The parser drops a leading byte-order mark; so does the shortcut.
        let text = xml_chars(s);
        fold_white_space(text.strip_prefix('\u{FEFF}').unwrap_or(&text))
    }
}

fn plain_text_parsed(s: &str) -> String {
    let text_only = TEXT_ONLY.clean(&xml_chars(s)).to_string();
    // ammonia's serializer escapes exactly these in text nodes; reversing them decodes every
    // entity of the input exactly once (the parser already decoded the input's own entities).
    let decoded = text_only
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{A0}")
        .replace("&amp;", "&");
    fold_white_space(&decoded)
}

fn fold_white_space(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Cleans article HTML with an allow-list: no scripts, event handlers, `javascript:` URLs,
/// forms or styles (so no text hidden by them); relative URLs become absolute against the
/// article's own URL; iframes survive only when they embed an https page of one of
/// `iframe_hosts` (a video platform, say).
pub fn html(s: &str, base: &Url, iframe_hosts: &[String]) -> String {
    let mut builder = Builder::default();
    builder.url_relative(UrlRelative::RewriteWithBase(base.clone()));
    if !iframe_hosts.is_empty() {
        let hosts = iframe_hosts.to_vec();
        let base = base.clone();
        builder
            .add_tags(["iframe"])
            .add_tag_attributes(
                "iframe",
                ["src", "width", "height", "title", "allowfullscreen"],
            )
            .attribute_filter(move |element, attribute, value| {
                if element != "iframe" || attribute != "src" {
                    return Some(value.into());
                }
                let allowed = base.join(value).ok().filter(|u| {
                    u.scheme() == "https"
                        && u.host_str().is_some_and(|h| hosts.iter().any(|a| a == h))
                });
                allowed.map(|u| String::from(u).into())
            });
    }
    builder.clean(&xml_chars(s)).to_string()
}

/// Cuts `s` to at most `max` characters, ending with an ellipsis when it was cut.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if s.chars().count() > max => format!("{}…", s[..cut].trim_end()),
        _ => s.to_owned(),
    }
}

/// Escapes text for an HTML text node or a double-quoted attribute.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes plain text for an XML text node or double-quoted attribute that some readers decode
/// as HTML (OPML's `text`, RSS's plain-text elements): `&`, `<` and `>` as the hexadecimal
/// character references the RSS Best Practices Profile advises, so the text reads the same
/// whether it is decoded once as XML or again as HTML.
pub fn escape_plain_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&#x26;"),
            '<' => out.push_str("&#x3C;"),
            '>' => out.push_str("&#x3E;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_remove_characters_xml_forbids() {
        assert_eq!(xml_chars("a\u{0}b\u{1b}c\u{FFFF}d\u{8}"), "abcd");
        assert_eq!(xml_chars("氢能\t🚀"), "氢能\t🚀");
    }

    #[test]
    fn plain_text_decodes_entities_exactly_once() {
        assert_eq!(plain_text("A &amp;amp; B"), "A &amp; B");
        assert_eq!(
            plain_text("<b>江阴</b>  &lt;高新区&gt;\n发布"),
            "江阴 <高新区> 发布"
        );
        assert_eq!(plain_text("<script>alert(1)</script>标题"), "标题");
    }

    #[test]
    fn html_drops_scripts_and_makes_links_absolute() {
        let base = Url::parse("https://news.example.cn/a/1.html").unwrap();
        let out = html(
            r#"<p onclick="x()" style="display:none">正文<script>bad()</script><a href="/b/2.html">链接</a><img src="img/1.jpg"><a href="javascript:alert(1)">x</a><form action="/x"><input name="q"></form></p>"#,
            &base,
            &[],
        );
        assert!(!out.contains("style"), "{out}");
        assert!(!out.contains("<form") && !out.contains("<input"), "{out}");
        assert!(!out.contains("script"), "{out}");
        assert!(!out.contains("onclick"), "{out}");
        assert!(!out.contains("javascript:"), "{out}");
        assert!(
            out.contains(r#"href="https://news.example.cn/b/2.html""#),
            "{out}"
        );
        assert!(
            out.contains(r#"src="https://news.example.cn/a/img/1.jpg""#),
            "{out}"
        );
    }

    #[test]
    fn iframes_survive_only_from_allowed_hosts() {
        let base = Url::parse("https://news.example.cn/a/1.html").unwrap();
        let hosts = ["player.video.example.cn".to_owned()];
        let allowed =
            r#"<iframe src="https://player.video.example.cn/embed/9" width="640"></iframe>"#;
        let out = html(allowed, &base, &hosts);
        assert!(
            out.contains(r#"src="https://player.video.example.cn/embed/9""#),
            "{out}"
        );
        let other = r#"<iframe src="https://evil.example.com/x"></iframe><iframe src="http://player.video.example.cn/e"></iframe>"#;
        let out = html(other, &base, &hosts);
        assert!(
            !out.contains("evil") && !out.contains("http://player"),
            "{out}"
        );
        assert!(
            !html(allowed, &base, &[]).contains("iframe"),
            "no hosts, no iframes"
        );
    }

    proptest::proptest! {
        /// The shortcut for text without markup gives what parsing it would.
        #[test]
        fn plain_text_without_markup_is_what_the_parser_makes_of_it(
            s in "[^<&]{0,64}|[\u{0}\u{FEFF} x]{0,8}",
        ) {
            proptest::prop_assert_eq!(plain_text(&s), plain_text_parsed(&s));
        }
    }

    #[test]
    fn text_of_every_script_and_direction_survives() {
        for text in [
            "氢能🚀，“新材料”。",
            "مرحبا بالعالم",
            "e\u{301}\u{302}",
            "Ǆ ﷽ 𝔘𝔫𝔦",
        ] {
            assert_eq!(plain_text(text), text);
        }
    }

    #[test]
    fn truncate_cuts_at_a_character_boundary() {
        assert_eq!(truncate("氢能产业园", 3), "氢能…");
        assert_eq!(truncate("氢能", 3), "氢能");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
