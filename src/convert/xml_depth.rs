//! How deeply an XML part nests its elements, measured while streaming it (quick-xml).
//!
//! LibreOffice's parser gives up past its depth limit and silently renders the part empty; a
//! document nested that deep is hostile (or broken), so the pre-flight check refuses it with a
//! reason instead of producing a blank PDF. Only depth is this check's business: a part that
//! is not well-formed XML is left for LibreOffice to judge.

use std::io::{BufReader, Read};

use quick_xml::Reader;
use quick_xml::events::Event;

/// Streams `reader`; `Some(depth)` as soon as nesting exceeds `limit`, `None` if it never does
/// (or the part stops being XML first).
pub fn exceeds(reader: impl Read, limit: usize) -> std::io::Result<Option<usize>> {
    let mut xml = Reader::from_reader(BufReader::with_capacity(64 * 1024, reader));
    let config = xml.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    let mut buf = Vec::new();
    let mut depth = 0usize;
    loop {
        match xml.read_event_into(&mut buf) {
            Ok(Event::Start(_)) => {
                depth += 1;
                if depth > limit {
                    return Ok(Some(depth));
                }
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Eof) => return Ok(None),
            Ok(_) => {}
            Err(quick_xml::Error::Io(e)) => {
                return Err(std::io::Error::new(e.kind(), e.to_string()));
            }
            Err(_) => return Ok(None),
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::exceeds;

    fn depth_over(xml: &str, limit: usize) -> Option<usize> {
        exceeds(xml.as_bytes(), limit).unwrap()
    }

    #[test]
    fn counts_open_elements_only() {
        let xml = r#"<?xml version="1.0"?><!-- <a><b><c> --><a x="1>2" y='/'><b/><b /><c><![CDATA[<d><e>]]></c></a>"#;
        assert_eq!(depth_over(xml, 2), None, "a > c is two deep");
        assert_eq!(depth_over(xml, 1), Some(2));
    }

    #[test]
    fn a_deep_document_is_caught_early() {
        let xml = "<p>".repeat(100_000);
        assert_eq!(depth_over(&xml, 256), Some(257));
        let flat = "<p></p>".repeat(100_000);
        assert_eq!(depth_over(&flat, 1), None);
    }
}
