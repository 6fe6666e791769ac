//! Checks that a rendered document is well-formed: for XML, parseable to the end with every
//! element closed, every namespace prefix declared, every entity defined and no character XML
//! forbids; for JSON Feed, valid JSON. The renderers are built to make this true for any
//! article; the conformance tests, the property tests and the fuzz targets hold them to it.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::feed::Format;
use crate::sanitize::is_xml_char;

/// `Ok` when `body` is a well-formed document of `format`, else what is wrong and where.
pub fn well_formed(format: Format, body: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    if let Some(c) = text.chars().find(|&c| !is_xml_char(c)) {
        return Err(format!("forbidden character U+{:04X}", c as u32));
    }
    match format {
        Format::Json | Format::Wechat => serde_json::from_str::<serde_json::Value>(text)
            .map(|_| ())
            .map_err(|e| format!("not JSON: {e}")),
        Format::Html => Ok(()),
        Format::Rss | Format::Atom => xml(text),
    }
}

fn xml(text: &str) -> Result<(), String> {
    let mut reader = NsReader::from_str(text);
    let mut depth = 0usize;
    let mut roots = 0usize;
    loop {
        let at = reader.buffer_position();
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("at byte {at}: {e}"))?;
        let element = match &event {
            Event::Start(e) | Event::Empty(e) => Some(e.clone()),
            _ => None,
        };
        if let Some(e) = element {
            if matches!(ns, ResolveResult::Unknown(_)) {
                return Err(format!(
                    "at byte {at}: undeclared prefix on <{}>",
                    String::from_utf8_lossy(e.name().as_ref())
                ));
            }
            if depth == 0 {
                roots += 1;
            }
            for attribute in e.attributes() {
                let attribute = attribute.map_err(|e| format!("at byte {at}: {e}"))?;
                attribute
                    .unescape_value()
                    .map_err(|e| format!("at byte {at}: attribute: {e}"))?;
            }
        }
        match event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) => {
                t.unescape()
                    .map_err(|e| format!("at byte {at}: text: {e}"))?;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match (roots, depth) {
        (1, 0) => Ok(()),
        (n, 0) => Err(format!("{n} root elements")),
        (_, d) => Err(format!("{d} elements left open")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_on_broken_xml() {
        let ok = r#"<?xml version="1.0"?><rss xmlns:a="urn:a"><a:b x="&amp;">t &lt; u</a:b></rss>"#;
        assert_eq!(well_formed(Format::Rss, ok.as_bytes()), Ok(()));
        for bad in [
            "<rss><a></rss>",
            "<rss>&nbsp;</rss>",
            "<rss><x:y/></rss>",
            "<rss/><rss/>",
            "<rss>\u{1}</rss>",
            "<rss a=\"&bogus;\"/>",
            "<rss><a>",
        ] {
            assert!(well_formed(Format::Atom, bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(well_formed(Format::Json, b"{\"a\":").is_err());
    }
}
