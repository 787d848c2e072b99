//! Checks of what LibreOffice wrote in an office format: an exit code proves nothing, so the
//! file must be there, non-empty, and of its format (a package with its main part, RTF's
//! signature, text in its encoding).

use std::io::Read;
use std::path::Path;

use super::OutputFormat;

/// `Err(why)` when `path` is not a usable `format` file.
pub fn check_office(path: &Path, format: OutputFormat) -> Result<(), String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size == 0 {
        return Err("the file is empty".into());
    }
    match format {
        OutputFormat::Docx => package_part(path, "word/document.xml"),
        OutputFormat::Xlsx => package_part(path, "xl/workbook.xml"),
        OutputFormat::Pptx => package_part(path, "ppt/presentation.xml"),
        OutputFormat::Odt | OutputFormat::Ods | OutputFormat::Odp => {
            package_part(path, "content.xml")
        }
        OutputFormat::Rtf => starts_with(path, b"{\\rtf"),
        OutputFormat::Html => {
            let head = head(path, 4096)?.to_ascii_lowercase();
            let text = String::from_utf8_lossy(&head);
            (text.contains("<html") || text.contains("<!doctype html"))
                .then_some(())
                .ok_or_else(|| "no HTML document in it".into())
        }
        // Plain text and CSV are UTF-8 unless asked otherwise: any bytes are text then.
        OutputFormat::Txt | OutputFormat::Csv => Ok(()),
        OutputFormat::Pdf | OutputFormat::Png | OutputFormat::Jpeg | OutputFormat::Webp => {
            Err(format!("{} is not an office format", format.name()))
        }
    }
}

/// A zip package holding its main part, which must not be empty.
fn package_part(path: &Path, main: &str) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| format!("not a package: {e}"))?;
    let part = archive
        .by_name(main)
        .map_err(|_| format!("its main part {main} is missing"))?;
    match part.size() {
        0 => Err(format!("its main part {main} is empty")),
        _ => Ok(()),
    }
}

fn head(path: &Path, n: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(n).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

fn starts_with(path: &Path, magic: &[u8]) -> Result<(), String> {
    match head(path, magic.len() as u64)?.as_slice() == magic {
        true => Ok(()),
        false => Err("it does not start as the format does".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn office_files_are_checked_by_their_format() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        assert!(check_office(&write("a.rtf", b"{\\rtf1 hi}"), OutputFormat::Rtf).is_ok());
        assert!(check_office(&write("b.rtf", b"hello"), OutputFormat::Rtf).is_err());
        assert!(check_office(&write("c.txt", b""), OutputFormat::Txt).is_err());
        assert!(check_office(&write("d.docx", b"PK junk"), OutputFormat::Docx).is_err());
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("content.xml", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"<office:document-content/>").unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        assert!(check_office(&write("e.odt", &bytes), OutputFormat::Odt).is_ok());
        let missing = check_office(&write("f.docx", &bytes), OutputFormat::Docx);
        assert!(missing.unwrap_err().contains("word/document.xml"));
    }
}
