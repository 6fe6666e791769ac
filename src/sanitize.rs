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

/// Where [`shorten`] may end a cut, besides between two grapheme clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stops {
    /// After a sentence or clause: `。！？；…`, or `.`, `!`, `?`, `;` before white space (an
    /// ASCII full stop elsewhere is a decimal point or a domain name). For summaries.
    Sentences,
    /// Those, and after a phrase: `，、：`, `,` or `:` before white space, or before white
    /// space. For titles, which rarely hold a whole sentence.
    Phrases,
}

/// Text cut to a length by [`shorten`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortened {
    /// The text, ending with `…` when it was cut.
    pub text: String,
    /// Whether anything was left out.
    pub was_cut: bool,
}

/// Punctuation that closes what a stop ends (`“好。”`): kept with the stop, so a cut does not
/// leave a quotation or a bracket open.
const CLOSERS: &str = "”’」』）)》】〉\"'";

/// Fits `s` into `max` Unicode scalar values (the unit WeChat, Telegram and most bridges count
/// in). Text that fits is kept whole; longer text is cut after the last of `stops` within the
/// limit when there is one, else at the last grapheme boundary, never inside a character, a
/// grapheme cluster (an emoji with its modifiers, a letter with its combining marks) or
/// something that reads as a character reference (`&amp;`, which a reader that decodes twice
/// would otherwise show half of), and ends with an ellipsis, which counts toward `max`.
pub fn shorten(s: &str, max: usize, stops: Stops) -> Shortened {
    use unicode_segmentation::UnicodeSegmentation;

    if s.chars().count() <= max {
        return Shortened {
            text: s.to_owned(),
            was_cut: false,
        };
    }
    // What fits beside the ellipsis, in whole grapheme clusters.
    let budget = max.saturating_sub(1);
    let (mut end, mut count) = (0, 0);
    for (at, grapheme) in s.grapheme_indices(true) {
        count += grapheme.chars().count();
        if count > budget {
            break;
        }
        end = at + grapheme.len();
    }
    let kept = last_stop(s, end, stops).unwrap_or_else(|| before_reference(s, end));
    let mut text = s[..kept].trim_end().to_owned();
    if max > 0 && !text.ends_with('…') {
        text.push('…');
    }
    Shortened {
        text,
        was_cut: true,
    }
}

/// The end of the last stop in `s[..end]` (with the closers after it), if there is one.
fn last_stop(s: &str, end: usize, stops: Stops) -> Option<usize> {
    use unicode_segmentation::UnicodeSegmentation;

    let head = &s[..end];
    let mut found = None;
    let mut graphemes = head.grapheme_indices(true).peekable();
    while let Some((at, grapheme)) = graphemes.next() {
        let after = at + grapheme.len();
        let spaced = s[after..].starts_with(char::is_whitespace);
        let stop = match grapheme {
            "。" | "！" | "？" | "；" | "…" => true,
            "." | "!" | "?" | ";" => spaced,
            "，" | "、" | "：" => stops == Stops::Phrases,
            "," | ":" => stops == Stops::Phrases && spaced,
            g if stops == Stops::Phrases && g.chars().all(char::is_whitespace) => {
                // Before the space: the cut trims it anyway.
                if at > 0 {
                    found = Some(at);
                }
                continue;
            }
            _ => false,
        };
        if stop {
            let mut close = after;
            while let Some((at, g)) = graphemes.next_if(|(_, g)| CLOSERS.contains(g)) {
                close = at + g.len();
            }
            found = Some(close);
        }
    }
    // A phrase may also end right at the limit, where a space follows it.
    if stops == Stops::Phrases && end > 0 && s[end..].starts_with(char::is_whitespace) {
        found = Some(end);
    }
    found
}

/// `end`, or the start of the character reference (`&name;`, `&#123;`) it falls inside.
fn before_reference(s: &str, end: usize) -> usize {
    let reference_char = |b: u8| b.is_ascii_alphanumeric() || b == b'#';
    let Some(amp) = s[..end].rfind('&') else {
        return end;
    };
    if !s.as_bytes()[amp + 1..end]
        .iter()
        .all(|&b| reference_char(b))
    {
        return end;
    }
    let name = s.as_bytes()[amp + 1..]
        .iter()
        .take_while(|&&b| reference_char(b))
        .count();
    // The longest named reference (`&CounterClockwiseContourIntegral;`) has 31 letters.
    let terminated = s.as_bytes().get(amp + 1 + name) == Some(&b';');
    if name > 0 && name <= 32 && terminated {
        amp
    } else {
        end
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

    fn summary(s: &str, max: usize) -> String {
        shorten(s, max, Stops::Sentences).text
    }

    #[test]
    fn text_that_fits_is_kept_whole() {
        for s in ["", "氢能", "江阴氢能产业园开工。", "abc"] {
            let kept = shorten(s, 10, Stops::Sentences);
            assert_eq!((kept.text.as_str(), kept.was_cut), (s, false));
        }
        // Exactly at the limit: kept, no ellipsis.
        assert_eq!(summary("氢能产业园", 5), "氢能产业园");
        assert_eq!(summary("氢能产业园开", 5), "氢能产业…");
    }

    #[test]
    fn a_cut_ends_after_the_last_sentence_within_the_limit() {
        let s = "江阴氢能产业园开工。总投资五十亿元。预计明年投产并带动就业";
        let cut = shorten(s, 20, Stops::Sentences);
        assert_eq!(cut.text, "江阴氢能产业园开工。总投资五十亿元。…");
        assert!(cut.was_cut);
        // The stop must fit beside the ellipsis: one character less and the first sentence is
        // the last that fits.
        assert_eq!(summary(s, 18), "江阴氢能产业园开工。…");
        assert_eq!(summary("真的吗？是的！还有更多内容", 10), "真的吗？是的！…");
        assert_eq!(
            summary("It works. Then more text follows here", 20),
            "It works.…"
        );
        // A full stop inside a number or a domain name ends nothing.
        assert_eq!(
            summary("增长3.5倍达到example.cn的水平", 12),
            "增长3.5倍达到exa…"
        );
    }

    #[test]
    fn a_cut_ends_after_a_clause_or_an_ellipsis() {
        assert_eq!(
            summary("一是降本；二是增效；三是扩大示范应用规模", 12),
            "一是降本；二是增效；…"
        );
        assert_eq!(summary("他说……然后离开了会场很久很久", 10), "他说……");
    }

    #[test]
    fn a_closing_quote_stays_with_its_sentence() {
        assert_eq!(
            summary("他说：“氢能是未来。”随后介绍了规划细节", 12),
            "他说：“氢能是未来。”…"
        );
    }

    #[test]
    fn without_a_stop_a_cut_ends_at_a_grapheme_boundary() {
        assert_eq!(summary("长长长长长长长长长长", 5), "长长长长…");
        // A family emoji is seven scalar values; it goes whole or not at all.
        let family = "👨\u{200D}👩\u{200D}👧\u{200D}👦";
        assert_eq!(summary(&format!("ab{family}cd"), 8), "ab…");
        assert_eq!(
            summary(&format!("ab{family}cd"), 10),
            format!("ab{family}…")
        );
        // Skin tones and flags are clusters too.
        assert_eq!(summary("氢👩🏽‍🔬🇨🇳能源", 4), "氢…");
        // A letter keeps its combining marks.
        assert_eq!(summary("ae\u{301}\u{302}bcdef", 3), "a…");
        assert_eq!(summary("ae\u{301}\u{302}bcdef", 5), "ae\u{301}\u{302}…");
        // White space before the ellipsis goes.
        assert_eq!(summary("abc   defghij", 6), "abc…");
    }

    #[test]
    fn a_cut_never_splits_a_character_reference() {
        assert_eq!(summary("AT&amp;T 与 R&D 合作研发", 5), "AT…");
        assert_eq!(summary("氢&#27668;能源产业", 5), "氢…");
        // A lone ampersand is a character like any other.
        assert_eq!(summary("R&D 合作研发与示范", 4), "R&D…");
    }

    #[test]
    fn titles_may_also_end_after_a_phrase() {
        let title = "江阴：氢能产业园开工，总投资五十亿元建设全国最大加氢站";
        let cut = shorten(title, 16, Stops::Phrases);
        assert_eq!(cut.text, "江阴：氢能产业园开工，…");
        assert!(cut.was_cut);
        assert_eq!(
            shorten("Hydrogen park opens in Jiangyin today", 20, Stops::Phrases).text,
            "Hydrogen park opens…"
        );
        // Summaries do not stop at a comma.
        assert_eq!(summary(title, 16), "江阴：氢能产业园开工，总投资五…");
    }

    #[test]
    fn no_room_leaves_the_ellipsis_alone() {
        assert_eq!(summary("氢能", 1), "…");
        assert_eq!(summary("氢能", 0), "");
    }

    proptest::proptest! {
        /// Whatever the text, a cut fits the limit, is a prefix of the text up to its
        /// ellipsis, and ends between grapheme clusters.
        #[test]
        fn a_cut_fits_and_is_a_prefix_at_a_grapheme_boundary(
            s in "[a-z &;#。，！？；…”\u{301}\u{200D}👩🏽氢 ]{0,40}",
            max in 1usize..30,
            phrases in proptest::bool::ANY,
        ) {
            use unicode_segmentation::UnicodeSegmentation;
            let stops = if phrases { Stops::Phrases } else { Stops::Sentences };
            let cut = shorten(&s, max, stops);
            proptest::prop_assert!(cut.text.chars().count() <= max);
            if cut.was_cut {
                let kept = cut.text.strip_suffix('…').unwrap_or(&cut.text);
                proptest::prop_assert!(s.starts_with(kept));
                let boundaries: Vec<usize> =
                    s.grapheme_indices(true).map(|(i, _)| i).chain([s.len()]).collect();
                proptest::prop_assert!(boundaries.contains(&kept.len()));
            } else {
                proptest::prop_assert_eq!(&cut.text, &s);
            }
        }
    }
}
