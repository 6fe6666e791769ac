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
    if has_forbidden_char(s) {
        Cow::Owned(s.chars().filter(|&c| is_xml_char(c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// [`xml_chars`] of a string already owned: itself, not a copy, when it has nothing to remove
/// (the bodies a cold build reads back are hundreds of kilobytes).
pub fn xml_chars_owned(s: String) -> String {
    if has_forbidden_char(&s) {
        s.chars().filter(|&c| is_xml_char(c)).collect()
    } else {
        s
    }
}

/// Whether `s` holds a character [`is_xml_char`] refuses, found in its bytes: each such
/// character's UTF-8 form starts with a C0 control byte, DEL, 0xC2 (the C1 controls but NEL)
/// or 0xEF 0xBF (U+FFFE and U+FFFF), so no character need be decoded. The scan takes 32 bytes
/// at a time without a branch (which the compiler turns into vector instructions) and looks
/// closer only at a block that holds a suspect pair. Decoding every character had been a tenth
/// of a cold build's CPU on Chinese text, where no character is one byte.
fn has_forbidden_char(s: &str) -> bool {
    const BLOCK: usize = 32;
    let bytes = s.as_bytes();
    // A pair that may start a forbidden character (0xC2 0x85, NEL, is let through later).
    let suspect = |a: u8, b: u8| {
        ((a < 0x20) & (a != b'\t') & (a != b'\n') & (a != b'\r'))
            | (a == 0x7F)
            | ((a == 0xC2) & (b < 0xA0))
            | ((a == 0xEF) & (b == 0xBF))
    };
    let forbidden_at = |i: usize| match bytes[i] {
        b'\t' | b'\n' | b'\r' => false,
        0..=0x1F | 0x7F => true,
        0xC2 => bytes
            .get(i + 1)
            .is_some_and(|&next| (0x80..=0x9F).contains(&next) && next != 0x85),
        0xEF => bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)),
        _ => false,
    };
    // Each byte of a block is paired with the next, which may be the next block's first.
    let mut start = 0;
    while let Some(block) = bytes
        .get(start..=start + BLOCK)
        .and_then(|b| <&[u8; BLOCK + 1]>::try_from(b).ok())
    {
        let suspect = (0..BLOCK).fold(false, |any, i| any | suspect(block[i], block[i + 1]));
        if suspect && (start..start + BLOCK).any(forbidden_at) {
            return true;
        }
        start += BLOCK;
    }
    (start..bytes.len()).any(forbidden_at)
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
    // Filtered before parsing (so the parser sees what the shortcut sees) and after: a
    // character reference such as `&#1;` decodes to a character XML forbids.
    let text_only = TEXT_ONLY.clean(&xml_chars(s)).to_string();
    // ammonia's serializer escapes exactly these in text nodes; reversing them decodes every
    // entity of the input exactly once (the parser already decoded the input's own entities).
    let decoded = text_only
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{A0}")
        .replace("&amp;", "&");
    fold_white_space(&xml_chars(&decoded))
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
    // The serializer writes decoded character references (`&#1;`, `&#x7F;`) as the characters
    // themselves, so the filter runs on what it wrote; removing a control character cannot
    // make markup.
    xml_chars(&builder.clean(&xml_chars(s)).to_string()).into_owned()
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

/// WeChat takes a draft's `content` only under 20,000 characters (Unicode scalar values of the
/// HTML, markup included)...
pub const WECHAT_MAX_CHARS: usize = 20_000;
/// ...and under 1 MB. 20,000 scalar values are at most 80,000 bytes of UTF-8, so the character
/// limit binds first; both are checked, so neither can be broken by a change of the other.
pub const WECHAT_MAX_BYTES: usize = 1_000_000;

/// Article HTML as WeChat takes it in a draft, made by [`wechat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WechatContent {
    /// The HTML: no script, style, form or iframe; every link but to another WeChat article
    /// turned into its text and a numbered footnote; under [`WECHAT_MAX_CHARS`] and
    /// [`WECHAT_MAX_BYTES`].
    pub html: String,
    /// Every image URL the HTML uses, once each, in order of first use: what a bridge
    /// re-uploads (WeChat shows no image from elsewhere).
    pub images: Vec<String>,
    /// Whether part of the body was left out to stay under the limits.
    pub was_cut: bool,
}

/// Drops what WeChat refuses in a draft (with what is inside it: an iframe's fallback text, a
/// form's labels) and every URL that is not absolute.
static WECHAT_CLEAN: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut builder = Builder::default();
    builder
        .add_clean_content_tags(["iframe", "form"])
        .url_relative(UrlRelative::Deny)
        .link_rel(None);
    builder
});

/// Fits article HTML to WeChat's rules for a draft's `content`.
///
/// `body` is the article's HTML, `credit` what must end it whatever is cut (the reprint credit
/// line) and `cut_notice` the plain text that says, when part of the body is left out, where
/// the whole article is (WeChat's 阅读原文 link). Cuts fall between blocks: between top-level
/// ones, and when one does not fit whole, between the blocks inside it (a `<div>` that wraps
/// the whole body, a quotation, a list, a table's rows), as deep as it takes, with the
/// elements the cut leaves open closed after what is kept. No paragraph ends mid-sentence: a block with no block
/// inside it (a paragraph, a heading) that alone does not fit is left out whole.
///
/// Links: WeChat lets a draft link to other WeChat articles only, so every other link, the
/// portal's own included (its pages are outside WeChat as much as anyone's), becomes its text
/// followed by a numbered footnote marker, and the footnotes after the content list the URLs,
/// one number per URL. The article's own URL is the draft's `content_source_url`, not a footnote.
pub fn wechat(body: &str, credit: &str, cut_notice: &str) -> WechatContent {
    let body = nodes(body);
    let credit = nodes(credit);
    let notice = format!("<p class=\"feedcast-cut\">{}</p>", escape_html(cut_notice));
    // Most articles fit whole; only those that do not are cut.
    let mut whole = Assembly::default();
    for node in &body {
        whole.push_node(node);
    }
    if whole.fits_with(&credit, None, &[]) {
        return whole.finish(&credit, None);
    }
    let mut cut = Assembly::default();
    cut.fill(&body, &mut Vec::new(), &credit, &notice);
    if !cut.fits_with(&credit, Some(&notice), &[]) {
        // Only a credit longer than the limit itself could get here: nothing of it is worth
        // more than a draft WeChat takes.
        return Assembly::default().finish(&[], Some(&notice));
    }
    cut.finish(&credit, Some(&notice))
}

/// A piece of a run of content.
#[derive(Debug)]
enum Piece {
    /// Markup or text, as written.
    Html(String),
    /// An image: its tag, and its URL for the list.
    Image { html: String, url: String },
    /// Where a link ended: its footnote marker, numbered once the content is assembled.
    Note(String),
}

/// Content as the cut sees it: runs it never cuts inside, and blocks it may cut between the
/// children of.
#[derive(Debug)]
enum Node {
    /// Text and inline markup (a paragraph's words, a link, an image): kept whole or not at
    /// all.
    Run(Vec<Piece>),
    /// A block element: kept whole when it fits, else cut between its children.
    Block {
        /// Its start tag, as written.
        open: String,
        children: Vec<Node>,
        /// Its end tag.
        close: String,
    },
}

/// The content of `html` after [`WECHAT_CLEAN`], as a tree of blocks and runs.
fn nodes(html: &str) -> Vec<Node> {
    use html5ever::tendril::StrTendril;
    use html5ever::tokenizer::{BufferQueue, Tokenizer, TokenizerOpts};

    let cleaned = WECHAT_CLEAN.clean(html).to_string();
    let queue = BufferQueue::default();
    queue.push_back(StrTendril::from(cleaned.as_str()));
    let tokenizer = Tokenizer::new(Walker::default(), TokenizerOpts::default());
    // The sink never asks the tokenizer to stop for a script, so one feed reads everything.
    let _ = tokenizer.feed(&queue);
    tokenizer.end();
    tokenizer.sink.0.into_inner().nodes
}

/// Elements without an end tag.
const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Elements that hold blocks or are blocks themselves, between whose children a cut may fall
/// when one does not fit whole. A cut between a table's rows or a list's items still leaves a
/// table or a list; any other element is inline and stays whole inside its run.
const BLOCKS: [&str; 36] = [
    "address",
    "article",
    "aside",
    "blockquote",
    "caption",
    "center",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "thead",
    "tr",
];

/// Whether a link may stay a link in a WeChat draft: to another WeChat article.
fn wechat_link(href: &str) -> bool {
    Url::parse(href)
        .is_ok_and(|u| u.scheme() == "https" && u.host_str() == Some("mp.weixin.qq.com"))
}

/// An open `<a>`.
#[derive(Debug)]
enum OpenLink {
    /// Kept as a link.
    Kept,
    /// Becomes its text and this footnote.
    Note(String),
    /// Has no `href`: only its text.
    Bare,
}

/// A block element whose end tag the walk has not reached yet.
#[derive(Debug)]
struct OpenBlock {
    name: String,
    open: String,
    children: Vec<Node>,
}

/// The state of the walk over sanitized HTML's tokens.
#[derive(Debug, Default)]
struct WalkState {
    /// Inline elements open in the current run (a block inside one is part of the run).
    inline_depth: usize,
    links: Vec<OpenLink>,
    /// The run being read.
    run: Vec<Piece>,
    /// The blocks being read, outermost first.
    open: Vec<OpenBlock>,
    /// The top-level nodes read so far.
    nodes: Vec<Node>,
}

impl WalkState {
    fn write(&mut self, html: &str) {
        match self.run.last_mut() {
            Some(Piece::Html(last)) => last.push_str(html),
            _ => self.run.push(Piece::Html(html.to_owned())),
        }
    }

    /// Where a node read now belongs: in the innermost open block, or at the top.
    fn add(&mut self, node: Node) {
        match self.open.last_mut() {
            Some(block) => block.children.push(node),
            None => self.nodes.push(node),
        }
    }

    fn end_run(&mut self) {
        if !self.run.is_empty() {
            let run = std::mem::take(&mut self.run);
            self.add(Node::Run(run));
        }
    }

    /// At the end of the content: what is still open ends there (sanitized HTML leaves
    /// nothing open, but the walk does not rely on it).
    fn end(&mut self) {
        while !self.open.is_empty() {
            self.end_block();
        }
        self.end_run();
    }

    fn end_block(&mut self) {
        self.end_run();
        if let Some(block) = self.open.pop() {
            let close = format!("</{}>", block.name);
            self.add(Node::Block {
                open: block.open,
                children: block.children,
                close,
            });
        }
    }

    fn tag(&mut self, tag: html5ever::tokenizer::Tag) {
        use html5ever::tokenizer::TagKind;

        let name: &str = &tag.name;
        let attr = |wanted: &str| {
            tag.attrs
                .iter()
                .find(|a| &*a.name.local == wanted)
                .map(|a| a.value.to_string())
        };
        let block = BLOCKS.contains(&name) && self.inline_depth == 0;
        match (tag.kind, name) {
            (TagKind::StartTag, "a") => {
                self.inline_depth += 1;
                let link = match attr("href") {
                    Some(href) if wechat_link(&href) => {
                        self.write(&format!("<a href=\"{}\">", escape_html(&href)));
                        OpenLink::Kept
                    }
                    Some(href) => OpenLink::Note(href),
                    None => OpenLink::Bare,
                };
                self.links.push(link);
            }
            (TagKind::EndTag, "a") => {
                self.inline_depth = self.inline_depth.saturating_sub(1);
                match self.links.pop() {
                    Some(OpenLink::Kept) => self.write("</a>"),
                    Some(OpenLink::Note(url)) => self.run.push(Piece::Note(url)),
                    Some(OpenLink::Bare) | None => {}
                }
            }
            (TagKind::StartTag, "img") => {
                // WeChat fetches no image itself: one a bridge cannot download is only a gap.
                let Some(url) =
                    attr("src").filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                else {
                    return;
                };
                let html = open_tag(&tag);
                self.run.push(Piece::Image { html, url });
            }
            (TagKind::StartTag, _) if block => {
                self.end_run();
                self.open.push(OpenBlock {
                    name: name.to_owned(),
                    open: open_tag(&tag),
                    children: Vec::new(),
                });
            }
            (TagKind::StartTag, _) => {
                self.write(&open_tag(&tag));
                if !VOID.contains(&name) {
                    self.inline_depth += 1;
                }
            }
            (TagKind::EndTag, _) if VOID.contains(&name) => return,
            (TagKind::EndTag, _) if block && self.open.last().is_some_and(|b| b.name == name) => {
                self.end_block();
            }
            (TagKind::EndTag, _) => {
                self.write(&format!("</{name}>"));
                self.inline_depth = self.inline_depth.saturating_sub(1);
            }
        }
        // At the top, each element is a unit of its own, as a block is: an article of bare
        // images or of text broken by `<br>` may still be cut between them.
        if self.open.is_empty() && self.inline_depth == 0 {
            self.end_run();
        }
    }
}

/// A start tag as written, its attribute values escaped.
fn open_tag(tag: &html5ever::tokenizer::Tag) -> String {
    let mut html = format!("<{}", &*tag.name);
    for a in &tag.attrs {
        html.push_str(&format!(
            " {}=\"{}\"",
            &*a.name.local,
            escape_html(&a.value)
        ));
    }
    html.push('>');
    html
}

/// The token sink: html5ever hands it tokens by shared reference.
#[derive(Debug, Default)]
struct Walker(std::cell::RefCell<WalkState>);

impl html5ever::tokenizer::TokenSink for Walker {
    type Handle = ();

    fn process_token(
        &self,
        token: html5ever::tokenizer::Token,
        _line: u64,
    ) -> html5ever::tokenizer::TokenSinkResult<()> {
        use html5ever::tokenizer::Token;

        let mut state = self.0.borrow_mut();
        match token {
            Token::TagToken(tag) => state.tag(tag),
            Token::CharacterTokens(text) => state.write(&escape_html(&text)),
            Token::EOFToken => state.end(),
            // Comments are gone already; a doctype or a NUL cannot be in sanitized HTML.
            Token::CommentToken(_)
            | Token::DoctypeToken(_)
            | Token::NullCharacterToken
            | Token::ParseError(_) => {}
        }
        html5ever::tokenizer::TokenSinkResult::Continue
    }
}

/// Content being assembled from runs and blocks, with its footnotes numbered in order of use.
#[derive(Debug, Default)]
struct Assembly {
    html: String,
    chars: usize,
    images: Vec<String>,
    /// Footnoted URLs, the first numbered 1.
    notes: Vec<String>,
    /// What the footnotes' lines add, in characters and bytes.
    notes_size: (usize, usize),
}

/// Where an [`Assembly`] was, to go back to.
struct Mark {
    html: usize,
    chars: usize,
    images: usize,
    notes: usize,
    notes_size: (usize, usize),
}

impl Assembly {
    fn mark(&self) -> Mark {
        Mark {
            html: self.html.len(),
            chars: self.chars,
            images: self.images.len(),
            notes: self.notes.len(),
            notes_size: self.notes_size,
        }
    }

    fn undo(&mut self, mark: Mark) {
        self.html.truncate(mark.html);
        self.chars = mark.chars;
        self.images.truncate(mark.images);
        self.notes.truncate(mark.notes);
        self.notes_size = mark.notes_size;
    }

    fn write(&mut self, html: &str) {
        self.html.push_str(html);
        self.chars += html.chars().count();
    }

    fn push_node(&mut self, node: &Node) {
        match node {
            Node::Run(pieces) => self.push(pieces),
            Node::Block {
                open,
                children,
                close,
            } => {
                self.write(open);
                for child in children {
                    self.push_node(child);
                }
                self.write(close);
            }
        }
    }

    fn push(&mut self, run: &[Piece]) {
        for piece in run {
            match piece {
                Piece::Html(html) => self.write(html),
                Piece::Image { html, url } => {
                    self.write(html);
                    if !self.images.contains(url) {
                        self.images.push(url.clone());
                    }
                }
                Piece::Note(url) => {
                    let n = match self.notes.iter().position(|u| u == url) {
                        Some(i) => i + 1,
                        None => {
                            self.notes.push(url.clone());
                            let line = note_line(self.notes.len(), url);
                            self.notes_size.0 += line.chars().count();
                            self.notes_size.1 += line.len();
                            self.notes.len()
                        }
                    };
                    self.write(&format!("<sup>[{n}]</sup>"));
                }
            }
        }
    }

    /// Whether the content would be under WeChat's limits with the end tags in `closing` (of
    /// the blocks a cut leaves open), `notice` and `credit` added.
    fn fits_with(&mut self, credit: &[Node], notice: Option<&str>, closing: &[&str]) -> bool {
        let mark = self.mark();
        for close in closing {
            self.write(close);
        }
        if let Some(notice) = notice {
            self.write(notice);
        }
        for node in credit {
            self.push_node(node);
        }
        let (chars, bytes) = self.size();
        self.undo(mark);
        chars < WECHAT_MAX_CHARS && bytes < WECHAT_MAX_BYTES
    }

    /// Adds `nodes` in order while each fits whole beside the end tags in `closing` (of the
    /// blocks they are in), the notice and the credit; of the first that does not, as much as
    /// fits, cut between its children the same way (a block of which nothing fits is left out,
    /// not left empty), and nothing after it.
    fn fill<'a>(
        &mut self,
        nodes: &'a [Node],
        closing: &mut Vec<&'a str>,
        credit: &[Node],
        notice: &str,
    ) {
        for node in nodes {
            let mark = self.mark();
            self.push_node(node);
            if self.fits_with(credit, Some(notice), closing) {
                continue;
            }
            self.undo(mark);
            if let Node::Block {
                open,
                children,
                close,
            } = node
            {
                let mark = self.mark();
                self.write(open);
                let opened = self.html.len();
                closing.push(close);
                self.fill(children, closing, credit, notice);
                closing.pop();
                if self.html.len() == opened {
                    self.undo(mark);
                } else {
                    self.write(close);
                }
            }
            return;
        }
    }

    /// The size of the content as [`Assembly::finish`] would write it.
    fn size(&self) -> (usize, usize) {
        let (mut chars, mut bytes) = (self.chars, self.html.len());
        if !self.notes.is_empty() {
            chars += NOTES_OPEN.chars().count() + NOTES_CLOSE.chars().count() + self.notes_size.0;
            bytes += NOTES_OPEN.len() + NOTES_CLOSE.len() + self.notes_size.1;
        }
        (chars, bytes)
    }

    fn finish(mut self, credit: &[Node], notice: Option<&str>) -> WechatContent {
        if let Some(notice) = notice {
            self.write(notice);
        }
        for node in credit {
            self.push_node(node);
        }
        if !self.notes.is_empty() {
            self.html.push_str(NOTES_OPEN);
            for (i, url) in self.notes.iter().enumerate() {
                self.html.push_str(&note_line(i + 1, url));
            }
            self.html.push_str(NOTES_CLOSE);
        }
        WechatContent {
            html: self.html,
            images: self.images,
            was_cut: notice.is_some(),
        }
    }
}

/// What the footnotes stand in: after a rule, so they read as apart from the article.
const NOTES_OPEN: &str = "<hr><section class=\"feedcast-notes\">";
const NOTES_CLOSE: &str = "</section>";

/// One footnote's line: its number and its URL, as text (WeChat would refuse it as a link).
fn note_line(n: usize, url: &str) -> String {
    format!("<p>[{n}] {}</p>", escape_html(url))
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
        assert_eq!(
            xml_chars_owned("a\u{85}b\u{9f}c\u{FFFE}".into()),
            "a\u{85}bc"
        );
    }

    #[test]
    fn the_byte_scan_finds_a_forbidden_character_wherever_its_bytes_fall() {
        // Every offset around the scan's 32-byte blocks, each character's bytes split across a
        // block's end in every way.
        for pad in 0..70 {
            let before = "a".repeat(pad);
            for c in ['\u{1}', '\u{7F}', '\u{9F}', '\u{FFFE}', '\u{FFFF}'] {
                for after in ["", "b", "氢"] {
                    let text = format!("{before}{c}{after}");
                    assert!(has_forbidden_char(&text), "{text:?}");
                }
            }
            for c in ['\u{85}', '\u{A0}', '\u{FFFD}', '\u{FF0C}', '\n'] {
                let text = format!("{before}{c}b");
                assert!(!has_forbidden_char(&text), "{text:?}");
            }
        }
    }

    #[test]
    fn the_byte_scan_finds_exactly_the_characters_xml_forbids() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            // Alone, and between characters whose forms share its first byte.
            for text in [c.to_string(), format!("\u{A0}{c}\u{FF0C}")] {
                assert_eq!(
                    has_forbidden_char(&text),
                    !is_xml_char(c),
                    "U+{:04X} in {text:?}",
                    c as u32
                );
            }
        }
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
    fn character_references_to_characters_xml_forbids_are_dropped() {
        // Each decodes to a control character; only NUL is replaced by the parser itself.
        for reference in [
            "&#1", "&#1;", "&#x1B;", "&#x7F;", "&#x81;", "&#0;", "&#xFFFF;",
        ] {
            let text = plain_text(&format!("{reference}A"));
            assert!(text.chars().all(is_xml_char), "{reference}: {text:?}");
            let base = Url::parse("https://news.example.cn/a/1.html").unwrap();
            let out = html(
                &format!("<p title=\"{reference}\">{reference}A</p>"),
                &base,
                &[],
            );
            assert!(out.chars().all(is_xml_char), "{reference}: {out:?}");
        }
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

    const CREDIT: &str = "<p class=\"feedcast-source\">来源：<a href=\"https://www.jyrb.example.com/1\">江阴日报</a></p>";

    #[test]
    fn wechat_content_loses_what_wechat_refuses() {
        let body = r#"<p>正文<script>alert(1)</script><style>p{}</style></p><iframe src="https://player.video.example.cn/embed/9">备用</iframe><form><label>表单</label></form><p>文字 &lt;script&gt; 与 AT&amp;T</p>"#;
        let out = wechat(body, "", "未完");
        assert_eq!(
            out.html,
            "<p>正文</p><p>文字 &lt;script&gt; 与 AT&amp;T</p>"
        );
        assert!(!out.was_cut && out.images.is_empty());
    }

    #[test]
    fn wechat_links_become_their_text_and_a_footnote_per_url() {
        let body = r#"<p>据<a href="https://www.jyrb.example.com/a?id=1&amp;b=2">江阴日报</a>，见<a href="https://www.kechuang.example.cn/news/2.html">本站</a>与<a href="https://www.jyrb.example.com/a?id=1&amp;b=2">原文</a>。</p><p><a href="https://mp.weixin.qq.com/s/abc">公众号文章</a><a href="http://mp.weixin.qq.com/s/x">明文</a><a href="mailto:a@b.cn">邮件</a><a>无地址</a></p>"#;
        let out = wechat(body, CREDIT, "未完");
        assert_eq!(
            out.html,
            concat!(
                "<p>据江阴日报<sup>[1]</sup>，见本站<sup>[2]</sup>与原文<sup>[1]</sup>。</p>",
                "<p><a href=\"https://mp.weixin.qq.com/s/abc\">公众号文章</a>明文<sup>[3]</sup>",
                "邮件<sup>[4]</sup>无地址</p>",
                // ammonia keeps no class: WeChat would ignore it anyway.
                "<p>来源：江阴日报<sup>[5]</sup></p>",
                "<hr><section class=\"feedcast-notes\">",
                "<p>[1] https://www.jyrb.example.com/a?id=1&amp;b=2</p>",
                "<p>[2] https://www.kechuang.example.cn/news/2.html</p>",
                "<p>[3] http://mp.weixin.qq.com/s/x</p><p>[4] mailto:a@b.cn</p>",
                "<p>[5] https://www.jyrb.example.com/1</p></section>",
            )
        );
    }

    #[test]
    fn wechat_images_are_listed_once_each_and_relative_ones_dropped() {
        let body = r#"<p><img src="https://x.cn/a.jpg" alt="甲"><img src="https://x.cn/b.png"></p><p><a href="https://x.cn/big"><img src="https://x.cn/a.jpg"></a><img src="rel/c.jpg"><img src="ftp://x.cn/d.jpg"></p>"#;
        let out = wechat(body, "", "未完");
        assert_eq!(out.images, ["https://x.cn/a.jpg", "https://x.cn/b.png"]);
        assert!(
            !out.html.contains("c.jpg") && !out.html.contains("ftp:"),
            "{}",
            out.html
        );
        assert!(
            out.html
                .contains("<img src=\"https://x.cn/a.jpg\"><sup>[1]</sup>"),
            "{}",
            out.html
        );
    }

    #[test]
    fn wechat_content_too_long_is_cut_between_blocks_keeping_the_credit() {
        // Blocks of 1,000 characters with a link each: about 21 fit.
        let block = |i: usize| {
            format!(
                "<div><p>第{i}段<a href=\"https://x.cn/{i}\">链接</a>{}</p></div>",
                "氢".repeat(960)
            )
        };
        let body: String = (0..40).map(block).collect();
        let out = wechat(&body, CREDIT, "全文见阅读原文");
        assert!(out.was_cut);
        let chars = out.html.chars().count();
        assert!(
            chars < WECHAT_MAX_CHARS && out.html.len() < WECHAT_MAX_BYTES,
            "{chars}"
        );
        assert!(
            chars > WECHAT_MAX_CHARS - 1_200,
            "as much as fits is kept: {chars}"
        );
        // Whole blocks, in order, then the notice, the credit, and the footnotes of what is kept.
        let kept = out.html.matches("<div>").count();
        assert_eq!(kept, out.html.matches("</div>").count());
        assert!(out.html.contains(&format!("第{}段", kept - 1)));
        assert!(!out.html.contains(&format!("第{kept}段")));
        let tail = format!(
            "<p class=\"feedcast-cut\">全文见阅读原文</p><p>来源：江阴日报<sup>[{}]</sup></p>",
            kept + 1
        );
        let end: String = out.html.chars().skip(chars - 400).collect();
        assert!(out.html.contains(&tail), "{end}");
        assert!(out.html.ends_with(&format!(
            "<p>[{}] https://www.jyrb.example.com/1</p></section>",
            kept + 1
        )));
        assert!(!out.html.contains(&format!("https://x.cn/{kept}<")));

        // What fits exactly is not cut.
        let fits = wechat(&block(1), "", "未完");
        assert!(!fits.was_cut);
    }

    /// Whether every element of `html` that is opened is closed, in order.
    fn balanced(html: &str) -> bool {
        let mut open = Vec::new();
        for tag in html.split('<').skip(1) {
            let tag = tag.split_once('>').map_or(tag, |(tag, _)| tag);
            let name = |t: &str| {
                t.split(|c: char| c.is_whitespace())
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            };
            match tag.strip_prefix('/') {
                Some(end) => {
                    if open.pop() != Some(name(end)) {
                        return false;
                    }
                }
                None if VOID.contains(&name(tag).as_str()) => {}
                None => open.push(name(tag)),
            }
        }
        open.is_empty()
    }

    #[test]
    fn wechat_content_that_is_one_huge_block_is_cut_between_its_child_blocks() {
        // The whole body in one <div>: five paragraphs of 1,000 characters, then a quotation
        // of thirty-five more, then a paragraph after the div. Nothing fits whole but the
        // first five paragraphs; the cut goes on inside the quotation.
        let para = |i: usize| {
            format!(
                "<p>第{i}段<a href=\"https://x.cn/{i}\">链接</a>{}</p>",
                "氢".repeat(960)
            )
        };
        let first: String = (0..5).map(para).collect();
        let quoted: String = (5..40).map(para).collect();
        let body = format!("<div>{first}<blockquote>{quoted}</blockquote></div><p>之后</p>");
        let out = wechat(&body, CREDIT, "全文见阅读原文");
        assert!(out.was_cut);
        let chars = out.html.chars().count();
        assert!(
            chars < WECHAT_MAX_CHARS && out.html.len() < WECHAT_MAX_BYTES,
            "{chars}"
        );
        assert!(
            chars > WECHAT_MAX_CHARS - 1_200,
            "most of the body is kept: {chars}"
        );
        assert!(balanced(&out.html), "{}", out.html);
        // The first paragraphs, in order, in their div and quotation, both closed before the
        // notice and the credit; then the footnotes of what is kept.
        let kept = out.html.matches("<p>第").count();
        assert!(kept > 15, "{kept}");
        assert!(out.html.starts_with("<div><p>第0段"), "{}", out.html);
        assert!(out.html.contains(&format!("第{}段", kept - 1)));
        assert!(!out.html.contains(&format!("第{kept}段")));
        assert!(
            out.html.contains(&format!(
                "</p></blockquote></div><p class=\"feedcast-cut\">全文见阅读原文</p>\
                 <p>来源：江阴日报<sup>[{}]</sup></p>",
                kept + 1
            )),
            "{}",
            out.html
        );
        assert!(!out.html.contains("之后"));
        assert!(out.html.ends_with(&format!(
            "<p>[{}] https://www.jyrb.example.com/1</p></section>",
            kept + 1
        )));

        // A block with no blocks inside (a paragraph of text alone over the limit) cannot be
        // cut between blocks: it is left out whole, not left open.
        let wall = format!("<div><p>{}</p></div>", "氢".repeat(30_000));
        let out = wechat(&wall, CREDIT, "全文见阅读原文");
        assert!(out.was_cut && balanced(&out.html), "{}", out.html);
        assert!(
            out.html.starts_with("<p class=\"feedcast-cut\">"),
            "{}",
            out.html
        );
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
