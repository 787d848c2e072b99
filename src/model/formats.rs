//! What an export may produce: [`OutputFormat`], and which [`Family`] of document allows
//! which. PDF from everything; page images (rendered from offload's own PDF) from
//! everything; office formats within a family (a text document gives text formats).

/// A document family decides how LibreOffice exports it, what progress counts and which
/// outputs it allows.
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

/// Every output an export can make.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, poem_openapi::Enum,
)]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum OutputFormat {
    /// PDF (any document).
    Pdf,
    /// One PNG image per page (any document).
    Png,
    /// One JPEG image per page (any document).
    Jpeg,
    /// One WebP image (lossy, quality 90) per page (any document).
    Webp,
    /// Word (text documents).
    Docx,
    /// OpenDocument text (text documents).
    Odt,
    /// Rich Text Format (text documents).
    Rtf,
    /// Plain text, UTF-8 (text documents).
    Txt,
    /// HTML (text documents).
    Html,
    /// Excel (spreadsheets).
    Xlsx,
    /// OpenDocument spreadsheet (spreadsheets).
    Ods,
    /// Comma-separated values of one sheet (spreadsheets; see `options.csv`).
    Csv,
    /// PowerPoint (presentations).
    Pptx,
    /// OpenDocument presentation (presentations).
    Odp,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 14] = [
        OutputFormat::Pdf,
        OutputFormat::Png,
        OutputFormat::Jpeg,
        OutputFormat::Webp,
        OutputFormat::Docx,
        OutputFormat::Odt,
        OutputFormat::Rtf,
        OutputFormat::Txt,
        OutputFormat::Html,
        OutputFormat::Xlsx,
        OutputFormat::Ods,
        OutputFormat::Csv,
        OutputFormat::Pptx,
        OutputFormat::Odp,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        let s = if s == "jpg" { "jpeg".into() } else { s };
        Self::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The name in the API (`format=…`).
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Pdf => "pdf",
            OutputFormat::Png => "png",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Webp => "webp",
            OutputFormat::Docx => "docx",
            OutputFormat::Odt => "odt",
            OutputFormat::Rtf => "rtf",
            OutputFormat::Txt => "txt",
            OutputFormat::Html => "html",
            OutputFormat::Xlsx => "xlsx",
            OutputFormat::Ods => "ods",
            OutputFormat::Csv => "csv",
            OutputFormat::Pptx => "pptx",
            OutputFormat::Odp => "odp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpg",
            other => other.name(),
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            OutputFormat::Pdf => "application/pdf",
            OutputFormat::Png => "image/png",
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Webp => "image/webp",
            OutputFormat::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            OutputFormat::Odt => "application/vnd.oasis.opendocument.text",
            OutputFormat::Rtf => "application/rtf",
            OutputFormat::Txt => "text/plain; charset=utf-8",
            OutputFormat::Html => "text/html; charset=utf-8",
            OutputFormat::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
            OutputFormat::Ods => "application/vnd.oasis.opendocument.spreadsheet",
            OutputFormat::Csv => "text/csv",
            OutputFormat::Pptx => {
                "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            }
            OutputFormat::Odp => "application/vnd.oasis.opendocument.presentation",
        }
    }

    /// Page images, rendered from the PDF.
    pub fn is_image(self) -> bool {
        matches!(
            self,
            OutputFormat::Png | OutputFormat::Jpeg | OutputFormat::Webp
        )
    }

    /// An office format LibreOffice writes directly (not PDF, not an image).
    pub fn is_office(self) -> bool {
        !self.is_image() && self != OutputFormat::Pdf
    }

    /// Whether a document of `family` can be exported as this.
    pub fn accepts(self, family: Family) -> bool {
        use OutputFormat::*;
        match self {
            Pdf | Png | Jpeg | Webp => true,
            Docx | Odt | Rtf | Txt | Html => family == Family::Text,
            Xlsx | Ods | Csv => family == Family::Spreadsheet,
            Pptx | Odp => family == Family::Presentation,
        }
    }

    /// The outputs a document of `family` allows, in [`Self::ALL`]'s order.
    pub fn for_family(family: Family) -> Vec<OutputFormat> {
        Self::ALL
            .into_iter()
            .filter(|f| f.accepts(family))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_families_get_their_own_formats() {
        for f in OutputFormat::ALL {
            assert_eq!(OutputFormat::parse(f.name()), Some(f));
        }
        assert_eq!(OutputFormat::parse("JPG"), Some(OutputFormat::Jpeg));
        assert_eq!(OutputFormat::parse("exe"), None);
        let text = OutputFormat::for_family(Family::Text);
        assert!(text.contains(&OutputFormat::Docx) && !text.contains(&OutputFormat::Csv));
        assert!(OutputFormat::Pptx.accepts(Family::Presentation));
        assert!(!OutputFormat::Pptx.accepts(Family::Spreadsheet));
        assert!(
            OutputFormat::ALL
                .iter()
                .all(|f| f.accepts(Family::Text) || f.is_office())
        );
    }
}
