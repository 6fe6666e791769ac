//! Arbitrary text in every field of an article (fields split at 0xFF bytes): validation never
//! panics, and an accepted article renders well-formed in every format.
#![no_main]

use feedcast::import::{ArticleInput, SourceInput};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let mut fields = data
        .split(|&b| b == 0xFF)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let mut next = || fields.next();
    let input = ArticleInput {
        id: next(),
        title: next(),
        summary: next(),
        content_html: next(),
        url: next().map(|u| format!("https://www.kechuang.example.cn/{u}")),
        published_at: next(),
        updated_at: next(),
        author: next(),
        source: next().map(|name| SourceInput {
            name: Some(name),
            url: Some("https://src.example.com/a?b=1&c=<d>".to_owned()),
            author: next(),
            title: next(),
            published_at: next(),
        }),
        editor: next(),
        short_title: next(),
        categories: next().map(|c| c.split(',').map(String::from).collect()).unwrap_or_default(),
        region: next(),
        image: next(),
        language: next(),
    };
    if let Ok(article) = input.validate(&common::SETTINGS) {
        common::check_renders(&[article]);
    }
});
