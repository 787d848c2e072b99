//! What a document really is, from its bytes — never from its name or the client's claim.
//!
//! - [`detect`] runs at upload: cheap, tolerant of damage (a truncated OOXML package is still
//!   recognised from its local file headers so that its job can fail with a clear reason).
//! - [`inspect`] runs in the worker before LibreOffice sees the file: full package check,
//!   encryption, zip-bomb limits, and the page/slide/sheet count shown as progress.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::DocFormat;
use crate::model::ErrorCode;
use crate::model::codes;

const ZIP_MAGIC: &[u8; 4] = b"PK\x03\x04";
const OLE2_MAGIC: &[u8; 8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
const RTF_MAGIC: &[u8; 5] = b"{\\rtf";

/// Why a stored document is not converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// The document itself is the problem: the same bytes fail the same way every time.
    #[error("{1}")]
    Refused(ErrorCode, String),
    /// Reading it failed (local I/O).
    #[error("{0}")]
    Io(String),
}

impl InspectError {
    fn io(e: impl std::fmt::Display) -> Self {
        InspectError::Io(e.to_string())
    }
}

/// Why an upload is not accepted as a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SniffError {
    #[error("the file is empty")]
    Empty,
    #[error("{0}")]
    Unsupported(String),
}

/// Recognises the format of an uploaded file. `claimed_ext` (from the filename) is only used
/// where the bytes cannot say: an encrypted OOXML package looks the same for all three types.
pub fn detect<F: Read + Seek>(
    file: &mut F,
    claimed_ext: Option<&str>,
) -> Result<DocFormat, SniffError> {
    let mut head = [0u8; 8];
    let n = read_up_to(file, &mut head).map_err(|e| SniffError::Unsupported(e.to_string()))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| SniffError::Unsupported(e.to_string()))?;
    let head = &head[..n];
    if head.is_empty() {
        return Err(SniffError::Empty);
    }
    if head.starts_with(ZIP_MAGIC) {
        return detect_zip(file);
    }
    if head == OLE2_MAGIC {
        return detect_ole2(file, claimed_ext);
    }
    if head.starts_with(RTF_MAGIC) {
        return Ok(DocFormat::Rtf);
    }
    Err(SniffError::Unsupported(
        "not an office document (no OOXML, OpenDocument, legacy Office or RTF signature)".into(),
    ))
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn detect_zip<F: Read + Seek>(file: &mut F) -> Result<DocFormat, SniffError> {
    let names = match zip::ZipArchive::new(&mut *file) {
        Ok(archive) => archive.file_names().map(str::to_owned).collect::<Vec<_>>(),
        // No central directory (e.g. a truncated upload): read what the local headers say.
        Err(_) => {
            file.seek(SeekFrom::Start(0))
                .map_err(|e| SniffError::Unsupported(e.to_string()))?;
            local_header_names(file, 256)
        }
    };
    if names.iter().any(|n| n == "mimetype")
        && let Some(format) = odf_format(file)
    {
        return Ok(format);
    }
    ooxml_format(&names).ok_or_else(|| {
        SniffError::Unsupported("a ZIP archive, but not an OOXML or OpenDocument package".into())
    })
}

/// The OOXML type from its main part (`[Content_Types].xml` must be present).
fn ooxml_format(names: &[String]) -> Option<DocFormat> {
    if !names.iter().any(|n| n == "[Content_Types].xml") {
        return None;
    }
    let has = |part: &str| names.iter().any(|n| n == part);
    if has("ppt/presentation.xml") {
        Some(DocFormat::Pptx)
    } else if has("word/document.xml") {
        Some(DocFormat::Docx)
    } else if has("xl/workbook.xml") {
        Some(DocFormat::Xlsx)
    } else {
        None
    }
}

/// ODF packages start with an uncompressed `mimetype` entry naming the type.
fn odf_format<F: Read + Seek>(file: &mut F) -> Option<DocFormat> {
    file.seek(SeekFrom::Start(0)).ok()?;
    let mut head = [0u8; 120];
    let n = read_up_to(file, &mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    let mime = text.split("mimetype").nth(1)?;
    const ODF: [(&str, DocFormat); 3] = [
        (
            "application/vnd.oasis.opendocument.presentation",
            DocFormat::Odp,
        ),
        ("application/vnd.oasis.opendocument.text", DocFormat::Odt),
        (
            "application/vnd.oasis.opendocument.spreadsheet",
            DocFormat::Ods,
        ),
    ];
    ODF.iter()
        .find(|(m, _)| mime.starts_with(m))
        .map(|(_, f)| *f)
}

/// Names from the local file headers, front to back, for archives without a readable
/// central directory. Stops at anything that does not parse.
fn local_header_names<R: Read + Seek>(r: &mut R, max: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut header = [0u8; 30];
    while names.len() < max {
        if read_up_to(r, &mut header).unwrap_or(0) < 30 || &header[..4] != ZIP_MAGIC {
            break;
        }
        let le16 = |i: usize| u16::from_le_bytes([header[i], header[i + 1]]) as u64;
        let le32 = |i: usize| {
            u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]) as u64
        };
        let (flags, compressed, name_len, extra_len) = (le16(6), le32(18), le16(26), le16(28));
        let mut name = vec![0u8; name_len as usize];
        if read_up_to(r, &mut name).unwrap_or(0) < name.len() {
            break;
        }
        names.push(String::from_utf8_lossy(&name).into_owned());
        // Bit 3: sizes follow the data, so the next header cannot be found from here.
        if flags & 0x08 != 0
            || r.seek(SeekFrom::Current((extra_len + compressed) as i64))
                .is_err()
        {
            break;
        }
    }
    names
}

fn detect_ole2<F: Read + Seek>(
    file: &mut F,
    claimed_ext: Option<&str>,
) -> Result<DocFormat, SniffError> {
    let cfb = cfb::CompoundFile::open(&mut *file)
        .map_err(|e| SniffError::Unsupported(format!("a damaged legacy Office file: {e}")))?;
    let has = |name: &str| cfb.exists(format!("/{name}"));
    if has("EncryptedPackage") {
        // An encrypted OOXML file: the type is inside the encryption. Keep the claim so the
        // job can report `document_encrypted` for the right format.
        return Ok(claimed_ext
            .and_then(DocFormat::from_extension)
            .filter(|f| f.is_ooxml())
            .unwrap_or(DocFormat::Docx));
    }
    if has("PowerPoint Document") {
        Ok(DocFormat::Ppt)
    } else if has("WordDocument") {
        Ok(DocFormat::Doc)
    } else if has("Workbook") || has("Book") {
        Ok(DocFormat::Xls)
    } else {
        Err(SniffError::Unsupported(
            "a legacy Office container, but not a Word, Excel or PowerPoint document".into(),
        ))
    }
}

/// Limits checked before LibreOffice opens a package.
#[derive(Debug, Clone)]
pub struct PackageLimits {
    pub max_entries: usize,
    pub max_uncompressed: u64,
    pub max_ratio: u64,
    /// Element nesting any XML part may reach (LibreOffice's parser stops at 256).
    pub max_xml_depth: usize,
}

impl Default for PackageLimits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_uncompressed: 1024 * 1024 * 1024,
            max_ratio: 200,
            max_xml_depth: 256,
        }
    }
}

/// What the worker learns about a document before converting it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DocInfo {
    /// Slides, sheets or pages, when the package says.
    pub count: Option<u32>,
    /// Password-protected: it needs its password to open, and its parts cannot be read (so
    /// only the container was checked).
    pub encrypted: bool,
}

impl DocInfo {
    /// A progress message such as "5 slides".
    pub fn describe(&self, format: DocFormat) -> Option<String> {
        let n = self.count?;
        let unit = format.family().unit();
        Some(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }))
    }
}

/// Checks a stored document before conversion. Errors are fatal: the same bytes will fail the
/// same way on every attempt.
pub fn inspect(
    path: &Path,
    format: DocFormat,
    limits: &PackageLimits,
) -> Result<DocInfo, InspectError> {
    let mut file = std::fs::File::open(path).map_err(InspectError::io)?;
    if format.is_ooxml() || format.is_odf() {
        inspect_zip(&mut file, format, limits)
    } else if matches!(format, DocFormat::Doc | DocFormat::Xls | DocFormat::Ppt) {
        inspect_ole2(&mut file, format)
    } else {
        Ok(DocInfo::default())
    }
}

fn corrupt(detail: impl std::fmt::Display) -> InspectError {
    InspectError::Refused(
        codes::DOCUMENT_CORRUPT,
        format!("the document is damaged or incomplete and cannot be opened ({detail})"),
    )
}

fn inspect_ole2(file: &mut std::fs::File, format: DocFormat) -> Result<DocInfo, InspectError> {
    let mut cfb = cfb::CompoundFile::open(file).map_err(corrupt)?;
    let encrypted = cfb.exists("/EncryptedPackage")
        || cfb.exists("/EncryptionInfo")
        || legacy_encrypted(&mut cfb, format).map_err(corrupt)?;
    Ok(DocInfo {
        count: None,
        encrypted,
    })
}

/// Whether a legacy Word, Excel or PowerPoint file is password-protected, from the flags each
/// format keeps for it ([MS-DOC] FIB `fEncrypted`, [MS-XLS] a `FilePass` record in the
/// workbook globals, [MS-PPT] the `CurrentUser` header token).
fn legacy_encrypted<F: Read + Seek>(
    cfb: &mut cfb::CompoundFile<F>,
    format: DocFormat,
) -> std::io::Result<bool> {
    match format {
        DocFormat::Doc => {
            let mut fib = [0u8; 12];
            let n = read_up_to(&mut cfb.open_stream("/WordDocument")?, &mut fib)?;
            let flags = u16::from_le_bytes([fib[10], fib[11]]);
            Ok(n == fib.len() && flags & 0x0100 != 0)
        }
        DocFormat::Xls => {
            let name = if cfb.exists("/Workbook") {
                "/Workbook"
            } else {
                "/Book"
            };
            xls_has_filepass(&mut cfb.open_stream(name)?)
        }
        DocFormat::Ppt => {
            if !cfb.exists("/Current User") {
                return Ok(false);
            }
            let mut head = [0u8; 16];
            let n = read_up_to(&mut cfb.open_stream("/Current User")?, &mut head)?;
            let token = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
            Ok(n == head.len() && token == 0xF3D1_C4DF)
        }
        _ => Ok(false),
    }
}

/// Walks the workbook globals (records of `u16 id, u16 length`) from BOF to EOF looking for
/// `FilePass` (0x002F), which stands near the start of an encrypted workbook.
fn xls_has_filepass(stream: &mut impl Read) -> std::io::Result<bool> {
    const FILEPASS: u16 = 0x002F;
    const EOF: u16 = 0x000A;
    let mut header = [0u8; 4];
    let mut body = vec![0u8; 8224];
    for _ in 0..100_000 {
        if read_up_to(stream, &mut header)? < header.len() {
            return Ok(false);
        }
        let id = u16::from_le_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_le_bytes([header[2], header[3]]));
        match id {
            FILEPASS => return Ok(true),
            EOF => return Ok(false),
            _ => {
                let len = len.min(body.len());
                if read_up_to(stream, &mut body[..len])? < len {
                    return Ok(false);
                }
            }
        }
    }
    Ok(false)
}

fn inspect_zip(
    file: &mut std::fs::File,
    format: DocFormat,
    limits: &PackageLimits,
) -> Result<DocInfo, InspectError> {
    // An encrypted OOXML upload is an OLE2 file, whatever its claimed type; only its
    // container can be checked before LibreOffice decrypts it.
    let mut magic = [0u8; 8];
    let n = read_up_to(file, &mut magic).map_err(InspectError::io)?;
    if &magic[..n] == OLE2_MAGIC {
        file.seek(SeekFrom::Start(0)).map_err(InspectError::io)?;
        let cfb = cfb::CompoundFile::open(&mut *file).map_err(corrupt)?;
        if !cfb.exists("/EncryptedPackage") {
            return Err(corrupt("an OLE2 container without an encrypted package"));
        }
        return Ok(DocInfo {
            count: None,
            encrypted: true,
        });
    }
    let twice = super::references::duplicate_entries(file).map_err(InspectError::io)?;
    if let Some(name) = twice.first() {
        // Which copy a reader takes differs between readers: an upload that says two
        // things at once is not converted.
        return Err(corrupt(format!("it holds two parts named {name:?}")));
    }
    file.seek(SeekFrom::Start(0)).map_err(InspectError::io)?;
    let mut archive = zip::ZipArchive::new(file).map_err(corrupt)?;
    check_package_limits(&mut archive, limits)?;
    if format.is_odf() && odf_encrypted(&mut archive)? {
        // Its parts are ciphertext: their XML cannot be checked before LibreOffice decrypts.
        return Ok(DocInfo {
            count: None,
            encrypted: true,
        });
    }
    check_main_part(&mut archive, format)?;
    check_xml_depth(&mut archive, limits.max_xml_depth)?;
    let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
    let count_matching = |prefix: &str| {
        names
            .iter()
            .filter(|n| {
                n.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix(".xml"))
                    .is_some_and(|num| !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()))
            })
            .count() as u32
    };
    let count = match format {
        DocFormat::Pptx => Some(count_matching("ppt/slides/slide")),
        DocFormat::Xlsx => Some(count_matching("xl/worksheets/sheet")),
        // Word's own page count (docProps/app.xml) is whatever the last editor saved, often
        // wrong; pages are only known after layout, so text documents report none here.
        _ => None,
    };
    Ok(DocInfo {
        count,
        encrypted: false,
    })
}

/// An OpenDocument package with encrypted parts: its (plain) manifest says how each is
/// encrypted.
fn odf_encrypted<R: Read + Seek>(archive: &mut zip::ZipArchive<R>) -> Result<bool, InspectError> {
    let Ok(manifest) = archive.by_name("META-INF/manifest.xml") else {
        return Ok(false);
    };
    // The manifest of a package within the limits is small; read at most 4 MiB of it.
    let mut text = Vec::new();
    manifest
        .take(4 * 1024 * 1024)
        .read_to_end(&mut text)
        .map_err(corrupt)?;
    encryption_element(&text)
}

/// Whether a manifest holds a `manifest:encryption-data` element: parsed, not searched for,
/// so a file name or attribute with those words in it neither makes a plain document
/// "encrypted" (skipping the checks and the reference removal) nor hides an encrypted one.
fn encryption_element(manifest: &[u8]) -> Result<bool, InspectError> {
    let mut reader = quick_xml::NsReader::from_reader(manifest);
    let mut buf = Vec::new();
    loop {
        use quick_xml::events::Event;
        use quick_xml::name::ResolveResult;
        match reader.read_resolved_event_into(&mut buf).map_err(corrupt)? {
            (ResolveResult::Bound(ns), Event::Start(e) | Event::Empty(e))
                if ns.as_ref() == ODF_MANIFEST_NS
                    && e.local_name().as_ref() == "encryption-data" =>
            {
                return Ok(true);
            }
            (_, Event::Eof) => return Ok(false),
            _ => {}
        }
        buf.clear();
    }
}

const ODF_MANIFEST_NS: &str = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0";

/// Zip-bomb guards: entry count, total uncompressed size, and per-entry compression ratio,
/// all from the central directory (nothing is decompressed).
fn check_package_limits<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    limits: &PackageLimits,
) -> Result<(), InspectError> {
    let too_large = |why: String| InspectError::Refused(codes::DOCUMENT_TOO_LARGE, why);
    if archive.len() > limits.max_entries {
        return Err(too_large(format!(
            "the package has {} parts; the limit is {}",
            archive.len(),
            limits.max_entries
        )));
    }
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(corrupt)?;
        total = total.saturating_add(entry.size());
        let ratio = entry.size() / entry.compressed_size().max(1);
        if entry.size() > 1024 * 1024 && ratio > limits.max_ratio {
            return Err(too_large(format!(
                "part {:?} expands {ratio}:1 (a zip bomb?); the limit is {}:1",
                entry.name(),
                limits.max_ratio
            )));
        }
    }
    if total > limits.max_uncompressed {
        return Err(too_large(format!(
            "the package expands to {total} bytes; the limit is {}",
            limits.max_uncompressed
        )));
    }
    Ok(())
}

/// The part that holds the document itself must be there and not be empty: LibreOffice would
/// otherwise render a blank page and call it a success.
fn check_main_part<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    format: DocFormat,
) -> Result<(), InspectError> {
    let main = match format {
        DocFormat::Pptx => "ppt/presentation.xml",
        DocFormat::Docx => "word/document.xml",
        DocFormat::Xlsx => "xl/workbook.xml",
        _ => "content.xml",
    };
    match archive.by_name(main) {
        Ok(entry) if entry.size() > 0 => Ok(()),
        Ok(_) => Err(corrupt(format!("its main part {main} is empty"))),
        Err(_) => Err(corrupt(format!("its main part {main} is missing"))),
    }
}

/// Refuses a package with an XML part nested deeper than `limit` (streams every part; the
/// package limits above already bound how much that is).
fn check_xml_depth<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    limit: usize,
) -> Result<(), InspectError> {
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(corrupt)?;
        let name = entry.name().to_owned();
        if !(name.ends_with(".xml") || name.ends_with(".rels")) {
            continue;
        }
        if let Some(depth) = super::xml_depth::exceeds(entry, limit).map_err(corrupt)? {
            return Err(InspectError::Refused(
                codes::DOCUMENT_TOO_LARGE,
                format!(
                    "part {name:?} nests elements over {} deep (reached {depth})",
                    limit
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    #[test]
    fn only_a_manifest_encryption_element_means_encrypted() {
        let ns = r#"xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0""#;
        let encrypted = format!(
            r#"<manifest:manifest {ns}><manifest:file-entry manifest:full-path="content.xml">
            <manifest:encryption-data manifest:checksum="x"/></manifest:file-entry></manifest:manifest>"#
        );
        let named = format!(
            r#"<manifest:manifest {ns}><manifest:file-entry
            manifest:full-path="Pictures/encryption-data.png"/><!-- encryption-data -->
            <other:encryption-data xmlns:other="urn:other"/></manifest:manifest>"#
        );
        assert!(encryption_element(encrypted.as_bytes()).unwrap());
        assert!(!encryption_element(named.as_bytes()).unwrap());
    }

    fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut buf);
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn ooxml_types_come_from_the_main_part() {
        let pptx = zip_with(&[
            ("[Content_Types].xml", b"x"),
            ("ppt/presentation.xml", b"x"),
        ]);
        assert_eq!(
            detect(&mut Cursor::new(pptx), Some("docx")),
            Ok(DocFormat::Pptx)
        );
        let other = zip_with(&[("hello.txt", b"x")]);
        assert!(matches!(
            detect(&mut Cursor::new(other), None),
            Err(SniffError::Unsupported(_))
        ));
    }

    #[test]
    fn a_truncated_package_is_still_recognised() {
        let mut docx = zip_with(&[
            ("[Content_Types].xml", b"x"),
            ("word/document.xml", b"hello"),
        ]);
        docx.truncate(docx.len() - 30);
        assert_eq!(detect(&mut Cursor::new(docx), None), Ok(DocFormat::Docx));
    }

    #[test]
    fn text_and_empty_files_are_refused() {
        assert_eq!(
            detect(&mut Cursor::new(Vec::new()), None),
            Err(SniffError::Empty)
        );
        let text = b"just some text pretending to be a deck".to_vec();
        assert!(matches!(
            detect(&mut Cursor::new(text), Some("pptx")),
            Err(SniffError::Unsupported(_))
        ));
        assert_eq!(
            detect(&mut Cursor::new(b"{\\rtf1 hi}".to_vec()), None),
            Ok(DocFormat::Rtf)
        );
    }
}
