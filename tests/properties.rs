//! Property tests: for arbitrary articles (arbitrary Unicode in every text field), every
//! rendered document is well-formed and round-trips titles, links and ids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::settings;
use feedcast::feed::{Archive, FeedKey, Format, describe};
use feedcast::import::ArticleInput;
use feedcast::render::{render, verify};
use proptest::prelude::*;

/// Text that mixes markup, entities, CDATA ends, controls and any Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        proptest::collection::vec(
            prop_oneof![
                Just("<b>".to_owned()),
                Just("</p>".to_owned()),
                Just("]]>".to_owned()),
                Just("&amp;".to_owned()),
                Just("&#x0;".to_owned()),
                Just("<script>x()</script>".to_owned()),
                Just("\u{0}\u{1b}\u{fffe}".to_owned()),
                "\\PC{1,8}",
            ],
            0..8
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn input() -> impl Strategy<Value = ArticleInput> {
    (
        (
            "[a-zA-Z0-9][a-zA-Z0-9._-]{0,20}",
            text(),
            text(),
            text(),
            text(),
            text(),
        ),
        (
            "[a-z0-9/._~%-]{0,30}",
            1_900_i32..=2_100,
            1_u32..=12,
            1_u32..=28,
            0_u32..24,
            -12_i32..=14,
        ),
        (
            proptest::option::of(text()),
            proptest::sample::subsequence(
                vec!["parks", "hydrogen", "materials", "reform", "policy"],
                0..3,
            ),
        ),
        proptest::option::of(proptest::sample::select(vec![
            "320000", "320200", "320281", "310115", "440307",
        ])),
        (text(), text(), text(), text()),
    )
        .prop_map(
            |(
                (id, title, summary, content, author, source_name),
                (path, y, m, d, h, offset),
                (image, categories),
                region,
                (original_author, original_title, editor, short_title),
            )| {
                ArticleInput {
                    id: Some(id),
                    title: Some(title),
                    summary: Some(summary),
                    content_html: Some(content),
                    url: Some(format!("https://www.kechuang.example.cn/{path}")),
                    published_at: Some(format!("{y:04}-{m:02}-{d:02}T{h:02}:00:00{offset:+03}:00")),
                    author: Some(author),
                    source: Some(feedcast::import::SourceInput {
                        name: Some(source_name),
                        url: Some(format!("https://src.example.com/{path}?a=1&b=<2>")),
                        author: Some(original_author),
                        title: Some(original_title),
                        published_at: None,
                    }),
                    editor: Some(editor),
                    short_title: Some(short_title),
                    categories: categories.into_iter().map(String::from).collect(),
                    region: region.map(String::from),
                    image: image.map(|i| format!("/img/{}", i.len())),
                    ..ArticleInput::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn every_rendered_feed_is_well_formed_and_round_trips(input in input()) {
        let s = settings();
        // Arbitrary text may leave no title once markup is removed: that is refused, not rendered.
        let Ok(article) = input.validate(&s) else { return Ok(()) };
        let id = format!("{}article/{}", s.site.id_prefix, article.id());
        for format in Format::ALL {
            let key = FeedKey::parse(&format!("region/320000.{}", format.extension()), None, &s).unwrap();
            let body = render(&describe(&s, &key, vec![article.clone()], Archive::default()), &s).unwrap();
            prop_assert_eq!(verify::well_formed(format, &body), Ok(()));
            match format {
                Format::Rss => {
                    let channel = rss::Channel::read_from(&body[..]).unwrap();
                    let item = &channel.items()[0];
                    prop_assert_eq!(item.title(), Some(article.title()));
                    prop_assert_eq!(item.link(), Some(article.url()));
                    prop_assert_eq!(item.guid().map(|g| g.value()), Some(id.as_str()));
                }
                Format::Atom => {
                    let feed = atom_syndication::Feed::read_from(&body[..]).unwrap();
                    let entry = &feed.entries()[0];
                    prop_assert_eq!(entry.title().as_str(), article.title());
                    prop_assert_eq!(entry.links()[0].href(), article.url());
                    prop_assert_eq!(entry.id(), id.as_str());
                }
                Format::Json => {
                    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    prop_assert_eq!(doc["items"][0]["title"].as_str(), Some(article.title()));
                    prop_assert_eq!(doc["items"][0]["url"].as_str(), Some(article.url()));
                    prop_assert_eq!(doc["items"][0]["id"].as_str(), Some(id.as_str()));
                }
                Format::Html => {}
                Format::Wechat => {
                    // Whatever an article holds, the profile keeps to WeChat's limits.
                    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let item = &doc["items"][0];
                    prop_assert_eq!(item["id"].as_str(), Some(id.as_str()));
                    prop_assert_eq!(item["content_source_url"].as_str(), Some(article.url()));
                    prop_assert!(item["title"].as_str().unwrap().chars().count() <= 32);
                    prop_assert!(item["digest"].as_str().unwrap().chars().count() <= 120);
                    let content = item["content"].as_str().unwrap();
                    prop_assert!(content.chars().count() < 20_000 && content.len() < 1_000_000);
                    for banned in ["<script", "<style", "<iframe", "<form", "<a "] {
                        prop_assert!(!content.contains(banned), "{} in {}", banned, content);
                    }
                }
            }
        }
    }
}
