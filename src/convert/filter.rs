//! [`ExportOptions`] as LibreOffice's PDF export filter takes them: `FilterData` properties
//! (names, types and units checked against LibreOffice 7.4's `filter/source/pdf`, and each one
//! by a real export), plus what is not a filter setting (landscape: the page styles).
//!
//! Once any `FilterData` is sent, LibreOffice stops reading the user profile's PDF defaults
//! and every property not sent takes the filter's built-in default — which exports comments
//! as annotations and drops JPEG quality from 90 to 80. So whenever something is sent, the
//! [`BASELINE`] goes with it, and the output differs from a plain export only where an option
//! asks for it.

use serde::Serialize;

use super::Family;
use crate::model::options::{ExportOptions, PdfA, rgb};

/// A `FilterData` value, typed as LibreOffice reads it (a string page range, a long quality).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum FilterValue {
    Bool(bool),
    Long(i64),
    Text(String),
}

impl FilterValue {
    /// The type name in `--convert-to`'s JSON form (`{"Quality":{"type":"long","value":"90"}}`).
    fn type_name(&self) -> &'static str {
        match self {
            FilterValue::Bool(_) => "boolean",
            FilterValue::Long(_) => "long",
            FilterValue::Text(_) => "string",
        }
    }

    fn text(&self) -> String {
        match self {
            FilterValue::Bool(b) => b.to_string(),
            FilterValue::Long(n) => n.to_string(),
            FilterValue::Text(s) => s.clone(),
        }
    }
}

/// What LibreOffice's profile would have used, sent whenever anything is.
const BASELINE: [(&str, FilterValue); 3] = [
    ("ExportNotes", FilterValue::Bool(false)),
    ("Quality", FilterValue::Long(90)),
    ("ExportBookmarks", FilterValue::Bool(true)),
];

/// The default watermark colour, a light grey (LibreOffice's own is green).
const WATERMARK_GREY: i64 = 0xC0C0C0;

/// How one document is exported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdfSettings {
    /// `FilterData`, in a fixed order; empty: LibreOffice's defaults.
    pub filter_data: Vec<(&'static str, FilterValue)>,
    /// Turn the page styles landscape before exporting (not a filter setting: needs UNO).
    pub landscape: bool,
    /// PDF/A-1: LibreOffice labels its PDF/A-1 output conformance level A, which it does not
    /// meet; the label is corrected to B after the export.
    pub pdf_a_1b: bool,
}

impl PdfSettings {
    /// The settings for `options` on a document of `family`. Options that do not apply to the
    /// family (hidden slides of a spreadsheet) are left out.
    pub fn new(options: &ExportOptions, family: Family) -> Self {
        let mut data: Vec<(&'static str, FilterValue)> = Vec::new();
        let mut flag = |name: &'static str, value: Option<bool>| {
            if let Some(v) = value {
                data.push((name, FilterValue::Bool(v)));
            }
        };
        flag("ExportNotes", options.export_notes);
        flag("ExportBookmarks", options.export_bookmarks);
        flag("UseLosslessCompression", options.lossless_images);
        if family == Family::Presentation {
            flag("ExportNotesPages", options.export_notes_pages);
            flag("ExportHiddenSlides", options.export_hidden_slides);
        }
        if family == Family::Text {
            flag("IsSkipEmptyPages", options.skip_empty_pages);
        }
        if options.pdf_ua == Some(true) {
            flag("PDFUACompliance", Some(true));
            flag("UseTaggedPDF", Some(true));
        }
        let single_sheets = family == Family::Spreadsheet
            && options
                .single_page_sheets
                .unwrap_or(options.page_range.is_none());
        if single_sheets {
            data.push(("SinglePageSheets", FilterValue::Bool(true)));
        }
        if let Some(range) = &options.page_range {
            let range = crate::model::options::page_range(range).unwrap_or_else(|_| range.clone());
            data.push(("PageRange", FilterValue::Text(range)));
        }
        if let Some(a) = options.pdf_a {
            data.push(("SelectPdfVersion", FilterValue::Long(i64::from(a.part()))));
        }
        if let Some(q) = options.image_quality {
            data.push(("Quality", FilterValue::Long(i64::from(q))));
        }
        if let Some(dpi) = options.max_image_dpi {
            data.push(("ReduceImageResolution", FilterValue::Bool(true)));
            data.push(("MaxImageResolution", FilterValue::Long(i64::from(dpi))));
        }
        if let Some(mark) = &options.watermark {
            if mark.tiled == Some(true) {
                data.push(("TiledWatermark", FilterValue::Text(mark.text.trim().into())));
            } else {
                let color = mark.color.as_deref().and_then(|c| rgb(c).ok());
                data.push(("Watermark", FilterValue::Text(mark.text.trim().into())));
                data.push((
                    "WatermarkColor",
                    FilterValue::Long(color.map_or(WATERMARK_GREY, i64::from)),
                ));
                // Tenths of a degree, counter-clockwise.
                let angle = mark.rotate_angle.unwrap_or(45);
                data.push((
                    "WatermarkRotateAngle",
                    FilterValue::Long(i64::from(angle) * 10),
                ));
                if let Some(h) = mark.font_height {
                    data.push(("WatermarkFontHeight", FilterValue::Long(i64::from(h))));
                }
            }
        }
        if !data.is_empty() {
            let sent: Vec<&str> = data.iter().map(|(n, _)| *n).collect();
            let missing = BASELINE.iter().filter(|(n, _)| !sent.contains(n)).cloned();
            data = missing.chain(data).collect();
        }
        PdfSettings {
            filter_data: data,
            landscape: options.landscape == Some(true) && family != Family::Presentation,
            pdf_a_1b: options.pdf_a == Some(PdfA::A1b),
        }
    }

    /// Needs LibreOffice driven over UNO (the warm helper): the command line cannot set page
    /// styles.
    pub fn needs_uno(&self) -> bool {
        self.landscape
    }

    /// `FilterData` in the JSON form `soffice --convert-to 'pdf:FILTER:{…}'` reads.
    pub fn command_line_json(&self) -> Option<String> {
        if self.filter_data.is_empty() {
            return None;
        }
        let map: serde_json::Map<String, serde_json::Value> = self
            .filter_data
            .iter()
            .map(|(name, value)| {
                let typed = serde_json::json!({ "type": value.type_name(), "value": value.text() });
                (name.to_string(), typed)
            })
            .collect();
        Some(serde_json::Value::Object(map).to_string())
    }

    /// `FilterData` as the UNO helper takes it: name → a JSON value of the right type.
    pub fn helper_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = self
            .filter_data
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    serde_json::to_value(value).expect("value"),
                )
            })
            .collect();
        serde_json::Value::Object(map)
    }
}

/// LibreOffice writes `pdfaid:conformance` A into its PDF/A-1 output, which meets level B;
/// this corrects the label in place (same length, so no offset in the file moves). Returns
/// whether the label was found.
pub fn label_pdf_a_1b(pdf: &std::path::Path) -> std::io::Result<bool> {
    const CLAIM_A: &[&[u8]] = &[
        b"<pdfaid:conformance>A</pdfaid:conformance>",
        b"pdfaid:conformance=\"A\"",
    ];
    let mut bytes = std::fs::read(pdf)?;
    let mut found = false;
    for claim in CLAIM_A {
        let fixed: Vec<u8> = claim
            .iter()
            .map(|&b| if b == b'A' { b'B' } else { b })
            .collect();
        let mut at = 0;
        while let Some(pos) = find(&bytes[at..], claim) {
            let start = at + pos;
            bytes[start..start + claim.len()].copy_from_slice(&fixed);
            at = start + claim.len();
            found = true;
        }
    }
    if found {
        std::fs::write(pdf, bytes)?;
    }
    Ok(found)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::options::Watermark;

    #[test]
    fn no_options_send_nothing() {
        let plain = PdfSettings::new(&ExportOptions::default(), Family::Text);
        assert!(plain.filter_data.is_empty());
        assert_eq!(plain.command_line_json(), None);
    }

    #[test]
    fn spreadsheets_print_a_page_per_sheet_unless_a_range_is_asked_for() {
        let sheets = PdfSettings::new(&ExportOptions::default(), Family::Spreadsheet);
        assert!(
            sheets
                .filter_data
                .contains(&("SinglePageSheets", FilterValue::Bool(true)))
        );
        assert!(
            sheets
                .filter_data
                .contains(&("ExportNotes", FilterValue::Bool(false)))
        );
        let ranged = ExportOptions {
            page_range: Some("2".into()),
            ..Default::default()
        };
        let ranged = PdfSettings::new(&ranged, Family::Spreadsheet);
        assert!(
            !ranged
                .filter_data
                .iter()
                .any(|(n, _)| *n == "SinglePageSheets")
        );
    }

    #[test]
    fn options_map_to_typed_filter_data() {
        let options = ExportOptions {
            page_range: Some("1 -2".into()),
            pdf_a: Some(PdfA::A2b),
            image_quality: Some(40),
            watermark: Some(Watermark {
                text: "DRAFT".into(),
                color: Some("#FF0000".into()),
                font_height: Some(20),
                rotate_angle: Some(30),
                tiled: None,
            }),
            ..Default::default()
        };
        let s = PdfSettings::new(&options, Family::Presentation);
        let json: serde_json::Value =
            serde_json::from_str(&s.command_line_json().unwrap()).unwrap();
        assert_eq!(
            json["PageRange"],
            serde_json::json!({"type": "string", "value": "1-2"})
        );
        assert_eq!(json["SelectPdfVersion"]["value"], "2");
        assert_eq!(
            json["Quality"],
            serde_json::json!({"type": "long", "value": "40"})
        );
        assert_eq!(json["WatermarkColor"]["value"], (0xFF0000).to_string());
        assert_eq!(json["WatermarkRotateAngle"]["value"], "300");
        assert_eq!(json["ExportNotes"]["value"], "false");
        assert_eq!(s.helper_json()["Quality"], 40);
        assert_eq!(s.helper_json()["PageRange"], "1-2");
    }

    #[test]
    fn the_pdf_a_1_label_is_corrected_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let pdf = dir.path().join("a.pdf");
        let body =
            b"%PDF-1.4 <pdfaid:part>1</pdfaid:part><pdfaid:conformance>A</pdfaid:conformance> end";
        std::fs::write(&pdf, body).unwrap();
        assert!(label_pdf_a_1b(&pdf).unwrap());
        let fixed = std::fs::read(&pdf).unwrap();
        assert_eq!(fixed.len(), body.len());
        assert!(find(&fixed, b"<pdfaid:conformance>B</pdfaid:conformance>").is_some());
    }
}
