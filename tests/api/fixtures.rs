//! Documents built by the tests themselves: hostile, broken or slow on purpose.

use std::io::{Cursor, Read, Write};
use std::path::PathBuf;

use zip::write::SimpleFileOptions;

use crate::helpers::sample;

fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)
}

/// deck5.pptx with one more picture on slide 1 whose image is *linked* (not embedded) to `url`.
pub fn deck_linking_image(url: &str) -> Vec<u8> {
    let mut src = zip::ZipArchive::new(std::fs::File::open(sample("deck5.pptx")).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..src.len() {
        let mut entry = src.by_index(i).unwrap();
        let name = entry.name().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let mut text = String::from_utf8_lossy(&data).into_owned();
        if name == "ppt/slides/slide1.xml" {
            let pic = r#"<p:pic><p:nvPicPr><p:cNvPr id="99" name="Linked"/><p:cNvPicPr/><p:nvPr/></p:nvPicPr><p:blipFill><a:blip r:link="rIdExt"/><a:stretch><a:fillRect/></a:stretch></p:blipFill><p:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="1000000" cy="1000000"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr></p:pic>"#;
            text = text.replace("</p:spTree>", &format!("{pic}</p:spTree>"));
            data = text.into_bytes();
        } else if name == "ppt/slides/_rels/slide1.xml.rels" {
            let rel = format!(
                r#"<Relationship Id="rIdExt" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image" Target="{url}" TargetMode="External"/>"#
            );
            text = text.replace("</Relationships>", &format!("{rel}</Relationships>"));
            data = text.into_bytes();
        }
        out.start_file(name, deflated()).unwrap();
        out.write_all(&data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

fn minimal_docx(document_xml: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let parts: [(&str, &str); 2] = [
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#,
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#,
        ),
    ];
    for (name, text) in parts {
        out.start_file(name, deflated()).unwrap();
        out.write_all(text.as_bytes()).unwrap();
    }
    out.start_file("word/document.xml", deflated()).unwrap();
    out.write_all(document_xml.as_bytes()).unwrap();
    for (name, data) in extra {
        out.start_file(*name, deflated()).unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// A valid docx of `paragraphs` paragraphs: 20,000 take LibreOffice several seconds.
pub fn long_docx(paragraphs: usize) -> Vec<u8> {
    let body: String = (0..paragraphs)
        .map(|i| format!("<w:p><w:r><w:t>Paragraph {i} of a long generated document, long enough to take a while.</w:t></w:r></w:p>"))
        .collect();
    let doc = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    );
    minimal_docx(&doc, &[])
}

/// A small docx carrying a part that inflates 1000:1 to 64 MiB of zeros.
pub fn zip_bomb_docx() -> Vec<u8> {
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let doc = r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>hi</w:t></w:r></w:p></w:body></w:document>"#;
    minimal_docx(doc, &[("word/media/padding.bin", &zeros)])
}

/// A docx whose paragraphs nest `depth` levels deep.
pub fn deep_docx(depth: usize) -> Vec<u8> {
    let doc = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{}<w:r><w:t>deep</w:t></w:r>{}</w:body></w:document>"#,
        "<w:p>".repeat(depth),
        "</w:p>".repeat(depth)
    );
    minimal_docx(&doc, &[])
}

const HELLO: &str = r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>hello</w:t></w:r></w:p></w:body></w:document>"#;

/// A docx holding `word/document.xml` twice, with different text (the zip writer refuses a
/// second entry of one name, so the second is written under another name of the same length
/// and renamed in the bytes).
pub fn docx_with_a_part_twice() -> Vec<u8> {
    let other = HELLO.replace("hello", "other");
    let bytes = minimal_docx(HELLO, &[("word/documenX.xml", other.as_bytes())]);
    let (from, to) = (b"word/documenX.xml", b"word/document.xml");
    let mut out = bytes.clone();
    for i in 0..bytes.len().saturating_sub(from.len()) {
        if &bytes[i..i + from.len()] == from {
            out[i..i + to.len()].copy_from_slice(to);
        }
    }
    out
}

/// A docx with a symbolic link to `target` stored among its parts.
pub fn docx_with_a_symlink(target: &str) -> Vec<u8> {
    let bytes = minimal_docx(HELLO, &[]);
    let mut archive = zip::ZipWriter::new_append(Cursor::new(bytes)).unwrap();
    archive
        .add_symlink(
            "word/media/image1.png",
            target,
            SimpleFileOptions::default(),
        )
        .unwrap();
    archive.finish().unwrap().into_inner()
}

/// A docx whose main part, word/document.xml, is 0 bytes.
pub fn hollow_docx() -> Vec<u8> {
    minimal_docx("", &[])
}

/// The Python of the test virtualenv that scripts/test prepares.
pub fn test_python() -> PathBuf {
    let python = std::env::var_os("OFFLOAD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python")
        });
    assert!(
        python.is_file(),
        "the test Python {} is missing: run scripts/test, which creates it",
        python.display()
    );
    python
}

/// report3.docx encrypted with a password by msoffcrypto-tool (a real Agile-encrypted package).
pub fn encrypted_docx() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("encrypted.docx");
    let status = std::process::Command::new(test_python())
        .args(["-m", "msoffcrypto", "-e", "-p", "Secret123"])
        .arg(sample("report3.docx"))
        .arg(&out)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "msoffcrypto-tool failed (is it installed in the test venv?)"
    );
    std::fs::read(out).unwrap()
}
