//! Pages for people: the index of every feed, and a readable view of any feed for a browser
//! that opens a feed URL. Browsers are dropping XSLT, so a feed URL does not rely on an
//! `xml-stylesheet`; the HTTP layer negotiates on `Accept` and serves this page instead.
//! maud escapes every interpolated value.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::local;
use crate::config::Settings;
use crate::feed::{Feed, FeedId, FeedKey, Format, View};
use crate::model::Region;

const STYLE: &str = "body{font-family:system-ui,'PingFang SC','Noto Sans CJK SC',sans-serif;\
max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.6;color:#222}\
a{color:#0b5cad}h1{font-size:1.6rem;margin-bottom:.2rem}article{border-top:1px solid #ddd;padding:.6rem 0}\
article h2{font-size:1.1rem;margin:.2rem 0}.meta{color:#666;font-size:.9rem;margin:0}\
.subscribe{background:#f4f7fb;border:1px solid #d7e3f1;padding:.6rem 1rem;border-radius:6px}\
code{word-break:break-all}ul.formats{padding-left:1.2rem}nav a{margin-right:1rem}\
article img{max-width:100%;height:auto;display:block;margin:.4rem 0}";

/// The Content-Security-Policy of every page feedcast serves, built here because this module
/// knows what its pages hold: no script at all; the one inline stylesheet, by its hash; images
/// from anywhere, since articles embed them; frames only from `sanitize.iframe_hosts`, whose
/// players articles may embed; and nothing may frame a page, change its base or submit a form.
/// A feature that adds to the pages extends the policy here.
pub fn content_security_policy(settings: &Settings) -> String {
    use base64::Engine;
    use sha2::Digest;
    let style = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE));
    let mut policy =
        format!("default-src 'none'; img-src http: https: data:; style-src 'sha256-{style}'");
    if !settings.iframe_hosts.is_empty() {
        let hosts: Vec<String> = settings
            .iframe_hosts
            .iter()
            .map(|h| format!("https://{h}"))
            .collect();
        policy.push_str(&format!("; frame-src {}", hosts.join(" ")));
    }
    policy.push_str("; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    policy
}

fn page(settings: &Settings, title: &str, head: Markup, body: Markup) -> Vec<u8> {
    html! {
        (DOCTYPE)
        html lang=(settings.site.language) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="icon" type=(settings.site.icon.media_type()) href=(super::icon_url(settings));
                (head)
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
    .into_string()
    .into_bytes()
}

/// `<link rel="alternate">` tags so browsers and readers discover a view's feeds.
fn autodiscovery(settings: &Settings, key: &FeedKey, title: &str) -> Markup {
    html! {
        @for format in Format::FEEDS {
            link rel="alternate" type=(format.media_type())
                title=(format!("{title} ({})", format.label()))
                href=(key.with_format(format).url(settings));
        }
    }
}

/// The subscribe links of a feed: one per format, relative so they work wherever the page is
/// served from.
fn format_links(key: &FeedKey) -> Markup {
    html! {
        @for (i, format) in Format::FEEDS.into_iter().enumerate() {
            @if i > 0 { " · " }
            a href=(key.with_format(format).url_path()) { (format.label()) }
        }
    }
}

/// The readable view of a feed.
pub(super) fn feed_page(feed: &Feed, settings: &Settings) -> Vec<u8> {
    let key = &feed.key;
    let archive_link = |month| FeedKey {
        view: View::Archive(month),
        ..key.clone()
    };
    let body = html! {
        p { a href="/" { (settings.site.title) } }
        h1 { (feed.title) }
        p { (feed.description) }
        div.subscribe {
            p { "这是一个订阅源（feed）。把下面任一地址复制到 RSS 阅读器中即可订阅，有新文章时会自动送达：" }
            ul.formats {
                @for format in Format::FEEDS {
                    @let url = key.with_format(format).url(settings);
                    li { (format.label()) "： " a href=(url) { code { (url) } } }
                }
            }
        }
        main {
            @if feed.items.is_empty() {
                p { "暂无文章。" }
            }
            @for a in &feed.items {
                article {
                    h2 { a href=(a.url()) { (a.title()) } }
                    p.meta {
                        @let published = local(settings, a.published_at());
                        time datetime=(published.to_rfc3339()) { (published.format("%Y-%m-%d %H:%M")) }
                        @if let Some(author) = a.author() { " · " (author) }
                        @if let Some(source) = a.source() {
                            " · " (settings.site.source_label) "：" a href=(source.url) { (source.name) }
                        }
                    }
                    @if let Some(image) = a.image() {
                        // No referrer: image hosts that refuse other sites' pages (WeChat's
                        // among them) still serve a request that names none.
                        img src=(image) alt="" loading="lazy" referrerpolicy="no-referrer";
                    }
                    p { (a.summary()) }
                }
            }
        }
        nav {
            @if let View::Archive(_) = key.view {
                a href=(FeedKey::latest(key.feed.clone(), Format::Html, settings).url_path()) { "最新文章" }
            }
            @if let Some(m) = feed.archive.next {
                a href=(archive_link(m).url_path()) { "较新存档（" (m) "）" }
            }
            @if let Some(m) = feed.archive.prev {
                a href=(archive_link(m).url_path()) { "较早存档（" (m) "）" }
            }
        }
    };
    let head = autodiscovery(settings, key, &feed.title);
    page(settings, &feed.title, head, body)
}

fn region_tree(settings: &Settings, parent: Option<&Region>) -> Markup {
    let children: Vec<&Region> = settings.catalog.children(parent.map(|p| &p.code)).collect();
    html! {
        @if !children.is_empty() {
            ul {
                @for r in children {
                    @let key = FeedKey::latest(FeedId::Region(r.code.clone()), Format::Html, settings);
                    li {
                        a href=(key.url_path()) { (r.name) } " — " (format_links(&key))
                        (region_tree(settings, Some(r)))
                    }
                }
            }
        }
    }
}

/// The index page: every feed, grouped by category, region (as a tree) and custom feed.
pub fn index_page(settings: &Settings) -> Vec<u8> {
    let site = &settings.site;
    let catalog = &settings.catalog;
    let latest = |feed: FeedId| FeedKey::latest(feed, Format::Html, settings);
    let categories: Vec<(String, FeedKey)> = catalog
        .categories()
        .iter()
        .map(|c| (c.name.clone(), latest(FeedId::Category(c.slug.clone()))))
        .collect();
    let custom: Vec<(String, FeedKey)> = catalog
        .feeds()
        .iter()
        .map(|f| (f.title.clone(), latest(FeedId::Custom(f.slug.clone()))))
        .collect();
    let head = html! {
        @for (name, key) in categories.iter().chain(&custom) {
            (autodiscovery(settings, key, &format!("{} · {name}", site.title)))
        }
    };
    let body = html! {
        h1 { (site.title) }
        p { (site.description) }
        p.subscribe {
            "每个栏目、地区和专题都有自己的订阅源，提供 RSS、Atom 和 JSON Feed 三种格式。"
            "点击名称可在浏览器中阅读，复制格式链接可在阅读器中订阅；"
            a href="/feeds.opml" { "OPML 文件" } "可一次导入全部订阅。"
        }
        section {
            h2 { "栏目" }
            ul {
                @for (name, key) in &categories {
                    li { a href=(key.url_path()) { (name) } " — " (format_links(key)) }
                }
            }
        }
        section {
            h2 { "地区" }
            (region_tree(settings, None))
        }
        @if !custom.is_empty() {
            section {
                h2 { "专题" }
                ul {
                    @for (name, key) in &custom {
                        li { a href=(key.url_path()) { (name) } " — " (format_links(key)) }
                    }
                }
            }
        }
    };
    page(settings, &site.title, head, body)
}
