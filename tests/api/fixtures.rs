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

/// report3.docx encrypted with `password` by msoffcrypto-tool (a real Agile-encrypted
/// package).
pub fn encrypted_docx(password: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("encrypted.docx");
    let status = std::process::Command::new(test_python())
        .args(["-m", "msoffcrypto", "-e", "-p", password])
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

/// deck5.pptx with slide 2 hidden (`show="0"`): 4 slides print, 5 with hidden slides.
pub fn deck_with_a_hidden_slide() -> Vec<u8> {
    let mut src = zip::ZipArchive::new(std::fs::File::open(sample("deck5.pptx")).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..src.len() {
        let mut entry = src.by_index(i).unwrap();
        let name = entry.name().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if name == "ppt/slides/slide2.xml" {
            let text = String::from_utf8(data).unwrap();
            let hidden = text.replacen("<p:sld ", "<p:sld show=\"0\" ", 1);
            assert_ne!(hidden, text, "slide 2 has a <p:sld> root");
            data = hidden.into_bytes();
        }
        out.start_file(name, deflated()).unwrap();
        out.write_all(&data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

const ODF_NS: &str = r#"xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:dc="http://purl.org/dc/elements/1.1/" office:version="1.3""#;

/// A text document (ODT) of `body` (inside `<office:text>`), with `automatic` content styles,
/// `layouts` (page layouts, styles.xml's automatic styles), `masters` (inside
/// `<office:master-styles>`) and more `parts`.
fn minimal_odt(
    body: &str,
    automatic: &str,
    layouts: &str,
    masters: &str,
    parts: &[(&str, &[u8])],
) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    out.start_file("mimetype", stored).unwrap();
    out.write_all(b"application/vnd.oasis.opendocument.text")
        .unwrap();
    let mut manifest = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/><manifest:file-entry manifest:full-path="styles.xml" manifest:media-type="text/xml"/>"#,
    );
    for (name, _) in parts {
        manifest.push_str(&format!(
            r#"<manifest:file-entry manifest:full-path="{name}" manifest:media-type="image/png"/>"#
        ));
    }
    manifest.push_str("</manifest:manifest>");
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODF_NS}><office:automatic-styles>{automatic}</office:automatic-styles><office:body><office:text>{body}</office:text></office:body></office:document-content>"#
    );
    let styles = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-styles {ODF_NS}><office:automatic-styles>{layouts}</office:automatic-styles><office:master-styles>{masters}</office:master-styles></office:document-styles>"#
    );
    let texts = [
        ("META-INF/manifest.xml", manifest),
        ("content.xml", content),
        ("styles.xml", styles),
    ];
    for (name, text) in texts {
        out.start_file(name, deflated()).unwrap();
        out.write_all(text.as_bytes()).unwrap();
    }
    for (name, data) in parts {
        out.start_file(*name, stored).unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// Two paragraphs, the second starting a "Right Page": Writer inserts a blank page 2 to put
/// it on an odd page (3 pages), unless blank pages are skipped (2).
pub fn odt_with_an_inserted_blank_page() -> Vec<u8> {
    let size = r#"fo:page-width="21cm" fo:page-height="29.7cm""#;
    let layouts = format!(
        r#"<style:page-layout style:name="L"><style:page-layout-properties {size}/></style:page-layout><style:page-layout style:name="R" style:page-usage="right"><style:page-layout-properties {size}/></style:page-layout>"#
    );
    let masters = r#"<style:master-page style:name="Standard" style:page-layout-name="L"/><style:master-page style:name="Right" style:page-layout-name="R" style:next-style-name="Standard"/>"#;
    let automatic = r#"<style:style style:name="P1" style:family="paragraph" style:master-page-name="Right"><style:paragraph-properties style:page-number="auto"/></style:style>"#;
    minimal_odt(
        r#"<text:p>The first page.</text:p><text:p text:style-name="P1">The page after the blank one.</text:p>"#,
        automatic,
        &layouts,
        masters,
        &[],
    )
}

/// One paragraph with a comment (an ODF annotation).
pub fn odt_with_a_comment() -> Vec<u8> {
    minimal_odt(
        r#"<text:p>Commented text<office:annotation><dc:creator>Reviewer</dc:creator><text:p>Please check this.</text:p></office:annotation> here.</text:p>"#,
        "",
        "",
        r#"<style:master-page style:name="Standard"/>"#,
        &[],
    )
}

/// A document showing one 800×800 photo-like picture (noise over a gradient) 2 inches wide:
/// 400 DPI as placed, so JPEG quality, downsampling and lossless storage all show in the
/// PDF's size.
pub fn odt_with_a_photo() -> Vec<u8> {
    let png = noisy_png(800, 800);
    minimal_odt(
        r#"<text:p><draw:frame draw:name="photo" text:anchor-type="as-char" svg:width="2in" svg:height="2in"><draw:image xlink:href="Pictures/photo.png" xlink:type="simple" xlink:show="embed" xlink:actuate="onLoad"/></draw:frame></text:p>"#,
        "",
        "",
        r#"<style:master-page style:name="Standard"/>"#,
        &[("Pictures/photo.png", &png)],
    )
}

/// A photo-like RGB PNG of `w`×`h`: a gradient with pseudo-random noise.
fn noisy_png(w: u32, h: u32) -> Vec<u8> {
    let mut seed: u32 = 0x1234_5678;
    rgb_png(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = (seed & 0x3f) as u8;
        [
            ((x * 255 / w) as u8).wrapping_add(noise),
            ((y * 255 / h) as u8).wrapping_add(noise),
            128u8.wrapping_add(noise),
        ]
    })
}

/// An 8-bit RGB PNG of `w`×`h` whose pixel at `(x, y)` is `pixel(x, y)`.
pub fn rgb_png(w: u32, h: u32, mut pixel: impl FnMut(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(((w * 3 + 1) * h) as usize);
    for y in 0..h {
        raw.push(0); // filter: none
        for x in 0..w {
            raw.extend(pixel(x, y));
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&raw).unwrap();
    let idat = z.finish().unwrap();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(&b"IHDR"[..], ihdr), (b"IDAT", idat), (b"IEND", Vec::new())] {
        png.extend((data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(&data);
        png.extend(kind);
        png.extend(&data);
        png.extend(crc.finalize().to_be_bytes());
    }
    png
}

/// Samples saved with `password` by LibreOffice itself (`tests/fixtures/tools/
/// save_with_password.py`, on the system Python's `uno`): each `(sample, extension, filter)`,
/// e.g. `("report3.odt", "odt", "writer8")`, comes back encrypted, in order.
pub fn saved_with_password(password: &str, jobs: &[(&str, &str, &str)]) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tools/save_with_password.py");
    let mut cmd = std::process::Command::new("/usr/bin/python3");
    cmd.arg(script).arg(password);
    let outs: Vec<PathBuf> = jobs
        .iter()
        .enumerate()
        .map(|(i, (name, ext, filter))| {
            let out = dir.path().join(format!("{i}.{ext}"));
            cmd.arg(sample(name)).arg(&out).arg(filter);
            out
        })
        .collect();
    let status = cmd.status().expect("run the system python3 (python3-uno)");
    assert!(
        status.success(),
        "LibreOffice could not save with a password"
    );
    outs.iter().map(|o| std::fs::read(o).unwrap()).collect()
}
