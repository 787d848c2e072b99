//! Document conversion: the formats we accept, what a document really is ([`sniff`]), and the
//! [`Converter`] seam with its LibreOffice implementation ([`libreoffice`]).

pub mod libreoffice;
pub mod process;
pub mod sniff;
pub mod warm;
pub mod xml_depth;

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::jobs::JobError;

/// A document family decides how LibreOffice exports it and what progress counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Presentation,
    Text,
    Spreadsheet,
}

impl Family {
    pub fn unit(self) -> &'static str {
        match self {
            Family::Presentation => "slide",
            Family::Text => "page",
            Family::Spreadsheet => "sheet",
        }
    }
}

/// Every input format offload converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocFormat {
    Pptx,
    Ppt,
    Odp,
    Docx,
    Doc,
    Odt,
    Rtf,
    Xlsx,
    Xls,
    Ods,
}

impl DocFormat {
    pub const ALL: [DocFormat; 10] = [
        DocFormat::Pptx,
        DocFormat::Ppt,
        DocFormat::Odp,
        DocFormat::Docx,
        DocFormat::Doc,
        DocFormat::Odt,
        DocFormat::Rtf,
        DocFormat::Xlsx,
        DocFormat::Xls,
        DocFormat::Ods,
    ];

    pub fn extension(self) -> &'static str {
        match self {
            DocFormat::Pptx => "pptx",
            DocFormat::Ppt => "ppt",
            DocFormat::Odp => "odp",
            DocFormat::Docx => "docx",
            DocFormat::Doc => "doc",
            DocFormat::Odt => "odt",
            DocFormat::Rtf => "rtf",
            DocFormat::Xlsx => "xlsx",
            DocFormat::Xls => "xls",
            DocFormat::Ods => "ods",
        }
    }

    pub fn from_extension(ext: &str) -> Option<Self> {
        let ext = ext.to_ascii_lowercase();
        Self::ALL.into_iter().find(|f| f.extension() == ext)
    }

    pub fn media_type(self) -> &'static str {
        match self {
            DocFormat::Pptx => {
                "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            }
            DocFormat::Ppt => "application/vnd.ms-powerpoint",
            DocFormat::Odp => "application/vnd.oasis.opendocument.presentation",
            DocFormat::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            DocFormat::Doc => "application/msword",
            DocFormat::Odt => "application/vnd.oasis.opendocument.text",
            DocFormat::Rtf => "application/rtf",
            DocFormat::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            DocFormat::Xls => "application/vnd.ms-excel",
            DocFormat::Ods => "application/vnd.oasis.opendocument.spreadsheet",
        }
    }

    pub fn family(self) -> Family {
        match self {
            DocFormat::Pptx | DocFormat::Ppt | DocFormat::Odp => Family::Presentation,
            DocFormat::Docx | DocFormat::Doc | DocFormat::Odt | DocFormat::Rtf => Family::Text,
            DocFormat::Xlsx | DocFormat::Xls | DocFormat::Ods => Family::Spreadsheet,
        }
    }

    pub fn is_ooxml(self) -> bool {
        matches!(self, DocFormat::Pptx | DocFormat::Docx | DocFormat::Xlsx)
    }

    pub fn is_odf(self) -> bool {
        matches!(self, DocFormat::Odp | DocFormat::Odt | DocFormat::Ods)
    }
}

/// Output formats. Only PDF today; the type keeps the API honest about that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Pdf,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Option<Self> {
        s.eq_ignore_ascii_case("pdf").then_some(OutputFormat::Pdf)
    }

    pub fn extension(self) -> &'static str {
        "pdf"
    }

    pub fn media_type(self) -> &'static str {
        "application/pdf"
    }
}

/// A finished conversion.
#[derive(Debug, Clone)]
pub struct Converted {
    pub path: PathBuf,
    pub pages: usize,
}

/// Turns a document into PDF. Implementations must leave nothing running when the returned
/// future is dropped or `cancel` fires.
#[async_trait::async_trait]
pub trait Converter: Send + Sync {
    /// `Err(reason)` when the converter cannot run at all (e.g. LibreOffice is not installed).
    fn availability(&self) -> Result<(), String>;

    /// Converts `input` (whose real type is `format`) into a file inside `out_dir`.
    async fn convert(
        &self,
        input: &Path,
        format: DocFormat,
        out_dir: &Path,
        cancel: CancellationToken,
    ) -> Result<Converted, JobError>;
}

/// Counts the pages of a PDF, failing if it does not parse or is empty. An exit code of 0
/// from LibreOffice proves nothing; this does.
pub fn validate_pdf(path: &Path) -> Result<usize, String> {
    let doc = lopdf::Document::load(path).map_err(|e| format!("the PDF does not parse: {e}"))?;
    match doc.get_pages().len() {
        0 => Err("the PDF has no pages".into()),
        n => Ok(n),
    }
}
