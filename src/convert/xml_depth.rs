//! How deeply an XML part nests its elements, measured while streaming it.
//!
//! LibreOffice's parser gives up past its depth limit and silently renders the part empty; a
//! document nested that deep is hostile (or broken), so the pre-flight check refuses it with a
//! reason instead of producing a blank PDF. The scan is a small tokenizer, not a parser: it
//! only needs to tell opening, closing and self-closing tags apart, and skips comments,
//! processing instructions, declarations and CDATA.

use std::io::Read;

#[derive(Clone, Copy)]
enum State {
    Text,
    /// Just after `<`.
    Open,
    /// Inside an opening tag; `slash` when the last significant byte was `/`.
    Tag {
        quote: Option<u8>,
        slash: bool,
    },
    /// Inside a closing tag, until `>`.
    Close,
    /// Inside `<!...>` or `<?...?>`: `tail` holds the last bytes, to find `-->` or `]]>`.
    Other {
        comment_or_cdata: bool,
        tail: [u8; 2],
    },
}

/// Streams `reader`; `Some(depth)` as soon as nesting exceeds `limit`, `None` if it never does.
pub fn exceeds(mut reader: impl Read, limit: usize) -> std::io::Result<Option<usize>> {
    let mut state = State::Text;
    let mut depth = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        for &b in &buf[..n] {
            state = step(state, b, &mut depth);
            if depth > limit {
                return Ok(Some(depth));
            }
        }
    }
}

fn step(state: State, b: u8, depth: &mut usize) -> State {
    match state {
        State::Text if b == b'<' => State::Open,
        State::Text => State::Text,
        State::Open => match b {
            b'/' => State::Close,
            b'!' | b'?' => State::Other {
                comment_or_cdata: b == b'!',
                tail: [0; 2],
            },
            _ => {
                *depth += 1;
                State::Tag {
                    quote: None,
                    slash: false,
                }
            }
        },
        State::Tag { quote: Some(q), .. } => State::Tag {
            quote: (b != q).then_some(q),
            slash: false,
        },
        State::Tag { quote: None, slash } => match b {
            b'"' | b'\'' => State::Tag {
                quote: Some(b),
                slash: false,
            },
            b'>' => {
                if slash {
                    *depth = depth.saturating_sub(1);
                }
                State::Text
            }
            b'/' => State::Tag {
                quote: None,
                slash: true,
            },
            _ => State::Tag {
                quote: None,
                slash: slash && b.is_ascii_whitespace(),
            },
        },
        State::Close if b == b'>' => {
            *depth = depth.saturating_sub(1);
            State::Text
        }
        State::Close => State::Close,
        State::Other {
            comment_or_cdata,
            tail,
        } => {
            // `<!--x-->` and `<![CDATA[x]]>` may hold `>`; `<!DOCTYPE>` and `<?pi?>` end at it
            // (an internal DTD subset is not something office documents carry).
            let closes = b == b'>' && (!comment_or_cdata || tail == *b"--" || tail == *b"]]");
            if closes {
                State::Text
            } else {
                State::Other {
                    comment_or_cdata,
                    tail: [tail[1], b],
                }
            }
        }
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
