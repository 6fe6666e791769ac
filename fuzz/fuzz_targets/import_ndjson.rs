//! Arbitrary bytes as an NDJSON import: never a panic; whatever is accepted renders well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(articles) = feedcast::import::parse_ndjson(&text, &common::SETTINGS) {
        common::check_renders(&articles);
    }
});
