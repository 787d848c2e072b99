//! Reading the PDFs the service makes with independent tools: poppler's `pdfinfo` and
//! `pdffonts`, pypdf (text, including watermarks, which `pdftotext` skips) and lopdf (the
//! document's objects).

use std::process::Command;

use crate::fixtures::test_python;

/// `bytes` in a temporary file, for the command-line tools.
fn on_disk(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".pdf").tempfile().unwrap();
    std::io::Write::write_all(&mut file, bytes).unwrap();
    file
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .expect("run a PDF tool (poppler-utils, the test venv)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `pdfinfo`'s value of `field` (`Pages`, `Tagged`, `Encrypted`, `Page size`, …).
pub fn info(bytes: &[u8], field: &str) -> String {
    let file = on_disk(bytes);
    let text = run(Command::new("pdfinfo").arg(file.path()));
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("pdfinfo says nothing of {field}: {text}"))
}

/// The first page's width and height in points.
pub fn page_size(bytes: &[u8]) -> (f64, f64) {
    let size = info(bytes, "Page size"); // "612 x 792 pts (letter)"
    let mut numbers = size
        .split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

/// Each font `pdffonts` lists, with whether it is embedded.
pub fn fonts(bytes: &[u8]) -> Vec<(String, bool)> {
    let file = on_disk(bytes);
    let text = run(Command::new("pdffonts").arg(file.path()));
    // name type encoding emb sub uni object ID; the type may be two words ("Type 1C").
    text.lines()
        .skip(2)
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let emb = words[words.len() - 5] == "yes";
            (words[0].to_string(), emb)
        })
        .collect()
}

/// All text pypdf extracts, page after page.
pub fn text(bytes: &[u8]) -> String {
    let file = on_disk(bytes);
    run(Command::new(test_python())
        .arg("-c")
        .arg("import sys, pypdf; print('\\n'.join(p.extract_text() for p in pypdf.PdfReader(sys.argv[1]).pages))")
        .arg(file.path()))
}

/// The catalog's entry `key` exists (`StructTreeRoot`, `OutputIntents`, `Outlines`).
pub fn catalog_has(bytes: &[u8], key: &str) -> bool {
    let doc = lopdf::Document::load_mem(bytes).expect("a parsable PDF");
    doc.catalog()
        .expect("a catalog")
        .get(key.as_bytes())
        .is_ok()
}

/// How many annotations of `subtype` (`Text`: comments) the pages hold.
pub fn annotations(bytes: &[u8], subtype: &str) -> usize {
    let doc = lopdf::Document::load_mem(bytes).expect("a parsable PDF");
    let mut n = 0;
    for page in doc.get_pages().values() {
        for annot in doc.get_page_annotations(*page).unwrap_or_default() {
            if annot.get(b"Subtype").ok().and_then(|s| s.as_name().ok()) == Some(subtype.as_bytes())
            {
                n += 1;
            }
        }
    }
    n
}

/// The XMP metadata's `pdfaid:part` and `pdfaid:conformance`, as written.
pub fn pdf_a_claim(bytes: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let field = |name: &str| {
        let element = format!("<pdfaid:{name}>");
        let attribute = format!("pdfaid:{name}=\"");
        if let Some(at) = text.find(&element) {
            let rest = &text[at + element.len()..];
            return rest.split('<').next().map(str::to_string);
        }
        let at = text.find(&attribute)?;
        text[at + attribute.len()..]
            .split('"')
            .next()
            .map(str::to_string)
    };
    Some((field("part")?, field("conformance")?))
}
