//! What a user may tune in an export: [`ExportOptions`], as the API takes them (the `options`
//! form field), as the job's args keep them (so every attempt converts the same way) and as the
//! Job JSON echoes them. Checked once, at submit ([`ExportOptions::check`]); the converter maps
//! them to LibreOffice's PDF export settings.

use serde::{Deserialize, Serialize};

use super::formats::OutputFormat;

/// Options of a PDF export. Every field is optional; an absent one keeps LibreOffice's
/// default (and offload's: spreadsheets print one page per sheet).
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    poem_openapi::Object,
)]
#[serde(deny_unknown_fields)]
// The example is `{}` (no options) because Swagger UI's "Try it out" sends a form field's
// example as its value: a made-up example would change every tried export.
#[oai(deny_unknown_fields, example)]
pub struct ExportOptions {
    /// Pages to export, e.g. `1-3,7` or `2-` (from page 2 to the end); 1-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub page_range: Option<String>,
    /// Produce PDF/A of this part, conformance level b (fonts embedded, no transparency, an
    /// output intent). Not with `merge` (a joined PDF is not PDF/A).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub pdf_a: Option<PdfA>,
    /// Produce a tagged, accessible PDF/UA document. Not with `merge`, nor with `pdf_a: 1b`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub pdf_ua: Option<bool>,
    /// Turn every page landscape (text documents and spreadsheets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub landscape: Option<bool>,
    /// Spreadsheets: each sheet on one page, however large (default `true`, unless
    /// `page_range` is given: pages then follow the sheets' print ranges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub single_page_sheets: Option<bool>,
    /// Export comments (notes) as PDF annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub export_notes: Option<bool>,
    /// Presentations: add each slide's notes page after the slides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub export_notes_pages: Option<bool>,
    /// Presentations: include hidden slides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub export_hidden_slides: Option<bool>,
    /// Export headings (text) or slide titles as PDF bookmarks (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub export_bookmarks: Option<bool>,
    /// Text documents: leave out the blank pages page-break rules insert (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub skip_empty_pages: Option<bool>,
    /// JPEG quality of images, 1–100 (LibreOffice's default: 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub image_quality: Option<u8>,
    /// Downsample images above this resolution, in DPI (50–2400; LibreOffice's default: 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub max_image_dpi: Option<u32>,
    /// Keep images lossless (PNG-style) instead of JPEG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub lossless_images: Option<bool>,
    /// A text stamped on every page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub watermark: Option<Watermark>,
    /// Image exports: which pages of the PDF to render, like `page_range` (default all, at
    /// most `MAX_RENDER_PAGES`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub pages: Option<String>,
    /// Image exports: fit each page inside this width, in pixels (16–8192).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub width: Option<u32>,
    /// Image exports: fit each page inside this height, in pixels (16–8192).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub height: Option<u32>,
    /// Image exports: render at this resolution (10–600 DPI; default 150), instead of a size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub dpi: Option<u32>,
    /// CSV exports: which sheet and how its cells are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub csv: Option<CsvOptions>,
}

/// How a spreadsheet's sheet becomes CSV.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    poem_openapi::Object,
)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct CsvOptions {
    /// The sheet, 1-based (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub sheet: Option<u32>,
    /// One character between fields (default `,`; `\t` for tab-separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub separator: Option<String>,
    /// One character around text fields (default `"`; empty: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub quote: Option<String>,
    /// The character set (default `utf-8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub encoding: Option<CsvEncoding>,
}

/// Character sets CSV is written in.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    poem_openapi::Enum,
)]
pub enum CsvEncoding {
    #[serde(rename = "utf-8")]
    #[oai(rename = "utf-8")]
    Utf8,
    #[serde(rename = "utf-16")]
    #[oai(rename = "utf-16")]
    Utf16,
    #[serde(rename = "windows-1252")]
    #[oai(rename = "windows-1252")]
    Windows1252,
    #[serde(rename = "iso-8859-1")]
    #[oai(rename = "iso-8859-1")]
    Iso88591,
}

impl CsvOptions {
    /// LibreOffice's CSV filter options string: tokens separator, quote, character set (its
    /// rtl_TextEncoding number), first line, column formats, language, quote all text, detect
    /// numbers, save as shown, formulas, remove spaces, sheet (LibreOffice ≥ 7.2).
    pub fn filter_options(&self) -> String {
        let code = |s: Option<&String>, default: u32| {
            s.and_then(|s| s.chars().next()).map_or(default, u32::from)
        };
        let separator = code(self.separator.as_ref(), u32::from(','));
        let quote = match self.quote.as_deref() {
            Some("") => String::new(),
            _ => code(self.quote.as_ref(), u32::from('"')).to_string(),
        };
        let charset = match self.encoding.unwrap_or(CsvEncoding::Utf8) {
            CsvEncoding::Utf8 => 76,
            CsvEncoding::Utf16 => 65535,
            CsvEncoding::Windows1252 => 1,
            CsvEncoding::Iso88591 => 12,
        };
        let sheet = self.sheet.unwrap_or(1);
        format!("{separator},{quote},{charset},1,,0,false,true,true,false,false,{sheet}")
    }

    fn check(&self) -> Result<(), OptionError> {
        if self.sheet == Some(0) {
            return Err(refuse("csv.sheet", "sheets count from 1"));
        }
        let one_char = |s: &Option<String>| s.as_ref().is_none_or(|s| s.chars().count() == 1);
        if !one_char(&self.separator) {
            return Err(refuse("csv.separator", "must be one character"));
        }
        if self.quote.as_ref().is_some_and(|q| q.chars().count() > 1) {
            return Err(refuse(
                "csv.quote",
                "must be one character, or empty for none",
            ));
        }
        Ok(())
    }
}

/// The image sizes accepted (`width`, `height`), in pixels.
pub const IMAGE_PIXELS: std::ops::RangeInclusive<u32> = 16..=8192;

/// The image resolutions accepted (`dpi`).
pub const RENDER_DPIS: std::ops::RangeInclusive<u32> = 10..=600;

/// The pages a page-range text selects out of `count` (ascending, each once).
pub fn expand_pages(text: &str, count: u32) -> Vec<u32> {
    let mut pages = std::collections::BTreeSet::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (from, to) = match item.split_once('-') {
            Some((from, to)) => (from.trim(), Some(to.trim())),
            None => (item, None),
        };
        let Ok(first) = from.parse::<u32>() else {
            continue;
        };
        let last = match to {
            None => first,
            Some("") => count,
            Some(to) => to.parse::<u32>().unwrap_or(first),
        };
        pages.extend((first.max(1)..=last.min(count)).filter(|p| *p >= 1));
    }
    pages.into_iter().collect()
}

/// A PDF/A part, conformance level b. (Level a is not offered: LibreOffice's "1a" output does
/// not meet level a.)
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    poem_openapi::Enum,
)]
pub enum PdfA {
    #[serde(rename = "1b")]
    #[oai(rename = "1b")]
    A1b,
    #[serde(rename = "2b")]
    #[oai(rename = "2b")]
    A2b,
    #[serde(rename = "3b")]
    #[oai(rename = "3b")]
    A3b,
}

impl PdfA {
    /// The PDF/A part: 1, 2 or 3.
    pub fn part(self) -> u8 {
        match self {
            PdfA::A1b => 1,
            PdfA::A2b => 2,
            PdfA::A3b => 3,
        }
    }
}

/// How an export uses the result cache.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    poem_openapi::Enum,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum CacheMode {
    /// Answer from the cache when the same document was converted with the same options
    /// before; else convert and keep the result there.
    #[default]
    Use,
    /// Convert, and neither read nor write the cache.
    Bypass,
    /// Convert, and replace what the cache holds.
    Refresh,
}

/// A watermark: `text` across every page, or `tiled` over it.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, poem_openapi::Object,
)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct Watermark {
    /// At most 200 characters, one line.
    pub text: String,
    /// `#RRGGBB` (default a light grey, `#C0C0C0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub color: Option<String>,
    /// Letter height in points, 1–500 (default: sized to the page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub font_height: Option<u32>,
    /// Counter-clockwise, in degrees, 0–359 (default 45).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub rotate_angle: Option<u32>,
    /// Repeat the text over the page instead of once across it (in LibreOffice's own grey, size
    /// and angle, so not with `color`, `font_height` or `rotate_angle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub tiled: Option<bool>,
}

/// An option that cannot be used, naming it (`options.page_range`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for OptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

fn refuse(field: &str, reason: impl Into<String>) -> OptionError {
    OptionError {
        field: format!("options.{field}"),
        reason: reason.into(),
    }
}

/// The image resolutions accepted (`MaxImageResolution` takes any; beyond these it means
/// nothing).
pub const IMAGE_DPIS: std::ops::RangeInclusive<u32> = 50..=2400;

/// A `page_range` in LibreOffice's syntax without blanks (`1-3,7`), or why it is not one.
pub fn page_range(text: &str) -> Result<String, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err("is empty; e.g. \"1-3,7\"".into());
    }
    for item in compact.split(',') {
        let (from, to) = match item.split_once('-') {
            Some((from, to)) => (from, Some(to)),
            None => (item, None),
        };
        let page = |s: &str| s.parse::<u32>().ok().filter(|n| *n >= 1);
        let Some(first) = page(from) else {
            return Err(format!(
                "{item:?} is not a page or a range like 2-5 (pages count from 1)"
            ));
        };
        if let Some(to) = to.filter(|t| !t.is_empty()) {
            match page(to) {
                Some(last) if last >= first => {}
                Some(_) => return Err(format!("{item:?} ends before it starts")),
                None => return Err(format!("{item:?} is not a page or a range like 2-5")),
            }
        }
    }
    Ok(compact)
}

/// `#RRGGBB` as a number, or why it is not one.
pub fn rgb(text: &str) -> Result<u32, String> {
    text.strip_prefix('#')
        .filter(|hex| hex.len() == 6)
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or_else(|| format!("{text:?} is not a colour like #C0C0C0"))
}

impl poem_openapi::types::Example for ExportOptions {
    fn example() -> Self {
        Self::default()
    }
}

impl ExportOptions {
    /// Checks every option and the combinations for an export to `output`; `merge`: the
    /// export joins several documents.
    pub fn check(&self, merge: bool, output: OutputFormat) -> Result<(), OptionError> {
        self.check_applies(output)?;
        self.check_images()?;
        if let Some(csv) = &self.csv {
            csv.check()?;
        }
        if let Some(range) = &self.page_range {
            page_range(range).map_err(|why| refuse("page_range", why))?;
        }
        if let Some(q) = self.image_quality
            && !(1..=100).contains(&q)
        {
            return Err(refuse("image_quality", format!("{q} is not within 1–100")));
        }
        if let Some(dpi) = self.max_image_dpi
            && !IMAGE_DPIS.contains(&dpi)
        {
            return Err(refuse(
                "max_image_dpi",
                format!("{dpi} is not within 50–2400"),
            ));
        }
        if let Some(mark) = &self.watermark {
            mark.check()?;
        }
        self.check_combinations(merge)
    }

    /// Options of another kind of output are refused, not ignored.
    fn check_applies(&self, output: OutputFormat) -> Result<(), OptionError> {
        let image_only = [
            ("pages", self.pages.is_some()),
            ("width", self.width.is_some()),
            ("height", self.height.is_some()),
            ("dpi", self.dpi.is_some()),
        ];
        if !output.is_image()
            && let Some((name, _)) = image_only.iter().find(|(_, set)| *set)
        {
            return Err(refuse(name, "applies to png, jpeg and webp exports"));
        }
        if output != OutputFormat::Csv && self.csv.is_some() {
            return Err(refuse("csv", "applies to csv exports"));
        }
        let pdf_only = [
            ("page_range", self.page_range.is_some()),
            ("pdf_a", self.pdf_a.is_some()),
            ("pdf_ua", self.pdf_ua.is_some()),
            ("landscape", self.landscape.is_some()),
            ("single_page_sheets", self.single_page_sheets.is_some()),
            ("export_notes", self.export_notes.is_some()),
            ("export_notes_pages", self.export_notes_pages.is_some()),
            ("export_hidden_slides", self.export_hidden_slides.is_some()),
            ("export_bookmarks", self.export_bookmarks.is_some()),
            ("skip_empty_pages", self.skip_empty_pages.is_some()),
            ("image_quality", self.image_quality.is_some()),
            ("max_image_dpi", self.max_image_dpi.is_some()),
            ("lossless_images", self.lossless_images.is_some()),
            ("watermark", self.watermark.is_some()),
        ];
        if output.is_office()
            && let Some((name, _)) = pdf_only.iter().find(|(_, set)| *set)
        {
            return Err(refuse(
                name,
                format!("applies to pdf and image exports, not {}", output.name()),
            ));
        }
        if output.is_image() && self.pdf_a.is_some() {
            return Err(refuse("pdf_a", "an image is not a PDF/A document"));
        }
        Ok(())
    }

    fn check_images(&self) -> Result<(), OptionError> {
        if let Some(pages) = &self.pages {
            page_range(pages).map_err(|why| refuse("pages", why))?;
        }
        for (name, value) in [("width", self.width), ("height", self.height)] {
            if let Some(px) = value
                && !IMAGE_PIXELS.contains(&px)
            {
                return Err(refuse(name, format!("{px} is not within 16–8192 pixels")));
            }
        }
        if let Some(dpi) = self.dpi {
            if !RENDER_DPIS.contains(&dpi) {
                return Err(refuse("dpi", format!("{dpi} is not within 10–600")));
            }
            if self.width.is_some() || self.height.is_some() {
                return Err(refuse(
                    "dpi",
                    "give a size (width, height) or a dpi, not both",
                ));
            }
        }
        Ok(())
    }

    fn check_combinations(&self, merge: bool) -> Result<(), OptionError> {
        if merge && self.pdf_a.is_some() {
            return Err(refuse(
                "pdf_a",
                "cannot be combined with merge: joining PDFs does not keep PDF/A conformance",
            ));
        }
        if merge && self.pdf_ua == Some(true) {
            return Err(refuse(
                "pdf_ua",
                "cannot be combined with merge: joining PDFs does not keep their tags",
            ));
        }
        if self.pdf_ua == Some(true) && self.pdf_a == Some(PdfA::A1b) {
            return Err(refuse(
                "pdf_ua",
                "cannot be combined with pdf_a 1b (PDF/A-1 is PDF 1.4, older than PDF/UA); \
                 use pdf_a 2b or 3b",
            ));
        }
        if self.page_range.is_some() && self.single_page_sheets == Some(true) {
            return Err(refuse(
                "single_page_sheets",
                "cannot be combined with page_range: a sheet on one page has no pages to pick",
            ));
        }
        if self.lossless_images == Some(true) && self.image_quality.is_some() {
            return Err(refuse(
                "image_quality",
                "applies to JPEG images; lossless_images keeps them lossless",
            ));
        }
        Ok(())
    }

    /// The options in one canonical JSON text (fields in a fixed order, absent ones left
    /// out, the page range without blanks): equal options give equal text.
    pub fn canonical(&self) -> String {
        let mut normal = self.clone();
        if let Some(range) = &self.page_range {
            normal.page_range = page_range(range).ok().or(normal.page_range);
        }
        serde_json::to_string(&normal).expect("options serialize")
    }

    /// No option set.
    pub fn is_empty(&self) -> bool {
        *self == ExportOptions::default()
    }
}

impl Watermark {
    fn check(&self) -> Result<(), OptionError> {
        let text = self.text.trim();
        if text.is_empty() {
            return Err(refuse("watermark.text", "is empty"));
        }
        if text.chars().count() > 200 || text.contains(['\n', '\r']) {
            return Err(refuse(
                "watermark.text",
                "must be one line of at most 200 characters",
            ));
        }
        let styled =
            self.color.is_some() || self.font_height.is_some() || self.rotate_angle.is_some();
        if self.tiled == Some(true) && styled {
            return Err(refuse(
                "watermark.tiled",
                "a tiled watermark has LibreOffice's own colour, size and angle; leave out \
                 color, font_height and rotate_angle",
            ));
        }
        if let Some(color) = &self.color {
            rgb(color).map_err(|why| refuse("watermark.color", why))?;
        }
        if let Some(h) = self.font_height
            && !(1..=500).contains(&h)
        {
            return Err(refuse(
                "watermark.font_height",
                format!("{h} is not within 1–500"),
            ));
        }
        if let Some(a) = self.rotate_angle
            && a > 359
        {
            return Err(refuse(
                "watermark.rotate_angle",
                format!("{a} is not within 0–359"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_and_csv_options_belong_to_their_formats() {
        let sized = ExportOptions {
            width: Some(1280),
            pages: Some("2-3".into()),
            ..Default::default()
        };
        assert!(sized.check(false, OutputFormat::Png).is_ok());
        assert_eq!(
            sized.check(false, OutputFormat::Pdf).unwrap_err().field,
            "options.pages"
        );
        let both = ExportOptions {
            dpi: Some(96),
            ..sized.clone()
        };
        assert_eq!(
            both.check(false, OutputFormat::Png).unwrap_err().field,
            "options.dpi"
        );
        let marked = ExportOptions {
            watermark: Some(Watermark {
                text: "DRAFT".into(),
                color: None,
                font_height: None,
                rotate_angle: None,
                tiled: None,
            }),
            ..Default::default()
        };
        assert!(marked.check(false, OutputFormat::Jpeg).is_ok());
        assert_eq!(
            marked.check(false, OutputFormat::Docx).unwrap_err().field,
            "options.watermark"
        );
        let csv = CsvOptions {
            sheet: Some(2),
            separator: Some(";".into()),
            quote: Some(String::new()),
            encoding: Some(CsvEncoding::Windows1252),
        };
        assert_eq!(
            csv.filter_options(),
            "59,,1,1,,0,false,true,true,false,false,2"
        );
        assert_eq!(
            CsvOptions::default().filter_options(),
            "44,34,76,1,,0,false,true,true,false,false,1"
        );
        assert_eq!(expand_pages("2-3,7,9-", 10), [2, 3, 7, 9, 10]);
        assert_eq!(expand_pages("4-2,20", 5), Vec::<u32>::new());
    }

    #[test]
    fn page_ranges_are_checked_and_compacted() {
        assert_eq!(page_range(" 1-3, 7 ").unwrap(), "1-3,7");
        assert_eq!(page_range("2-").unwrap(), "2-");
        for bad in ["", "0", "3-1", "a", "1-b", "1,,2", "-2"] {
            assert!(page_range(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn impossible_combinations_are_refused_naming_the_option() {
        let pdf_a = ExportOptions {
            pdf_a: Some(PdfA::A2b),
            ..Default::default()
        };
        assert!(pdf_a.check(false, OutputFormat::Pdf).is_ok());
        assert_eq!(
            pdf_a.check(true, OutputFormat::Pdf).unwrap_err().field,
            "options.pdf_a"
        );
        let ua_1b = ExportOptions {
            pdf_a: Some(PdfA::A1b),
            pdf_ua: Some(true),
            ..Default::default()
        };
        assert_eq!(
            ua_1b.check(false, OutputFormat::Pdf).unwrap_err().field,
            "options.pdf_ua"
        );
        let mark = ExportOptions {
            watermark: Some(Watermark {
                text: "DRAFT".into(),
                color: Some("red".into()),
                font_height: None,
                rotate_angle: None,
                tiled: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            mark.check(false, OutputFormat::Pdf).unwrap_err().field,
            "options.watermark.color"
        );
    }

    #[test]
    fn equal_options_have_one_canonical_text() {
        let a = ExportOptions {
            page_range: Some("1 - 3".into()),
            landscape: Some(true),
            ..Default::default()
        };
        let b = ExportOptions {
            landscape: Some(true),
            page_range: Some("1-3".into()),
            ..Default::default()
        };
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.canonical(), r#"{"page_range":"1-3","landscape":true}"#);
    }
}
