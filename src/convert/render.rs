//! Page images from a PDF offload made, by the fastest tool measured for each format
//! (`scripts/bench-convert`, deck50 at 1280 px): MuPDF's `mutool draw` for PNG (about 4× as
//! fast as poppler's `pdftoppm`, whose PNG encoder dominates its time), `cwebp` for WebP from
//! those PNGs, and `pdftoppm -jpeg` for JPEG (MuPDF 1.21 writes no JPEG). Every one runs like
//! LibreOffice does: in the sandbox (no network, only the PDF and the output directory
//! visible, a clean environment), in a process group of its own that is killed on cancel,
//! within the same memory and CPU limits.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio_util::sync::CancellationToken;

use super::ConvertError;
use super::process::{Ended, ProcessLimits, run_isolated};
use super::sandbox::{Bind, Sandbox, SandboxConfig};

/// An image format pages are rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Webp,
}

impl ImageFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Webp => "webp",
        }
    }
}

/// How large the images are: fit inside `width` × `height` (either may be absent: the other
/// side follows the page's aspect), or `dpi`; neither: 150 DPI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageSize {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub dpi: Option<u32>,
}

/// The default resolution of page images.
pub const DEFAULT_DPI: u32 = 150;

/// One rendered page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPage {
    /// 1-based page of the PDF.
    pub page: u32,
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
}

/// Renders PDF pages to images.
#[derive(Debug)]
pub struct Renderer {
    mutool: Option<PathBuf>,
    pdftoppm: Option<PathBuf>,
    cwebp: Option<PathBuf>,
    sandbox: Sandbox,
    limits: ProcessLimits,
}

impl Renderer {
    pub fn new(sandbox: &SandboxConfig, limits: ProcessLimits) -> Self {
        let mutool = super::process::resolve_binary("mutool");
        let pdftoppm = super::process::resolve_binary("pdftoppm");
        let cwebp = super::process::resolve_binary("cwebp");
        let programs: Vec<&Path> = [&mutool, &pdftoppm, &cwebp]
            .into_iter()
            .flatten()
            .map(|p| p.as_path())
            .collect();
        Self {
            sandbox: Sandbox::new(sandbox, &programs),
            mutool,
            pdftoppm,
            cwebp,
            limits,
        }
    }

    /// `Err(why)` when pages cannot be rendered here (and so must not be).
    pub fn availability(&self, format: ImageFormat) -> Result<(), String> {
        self.sandbox.availability()?;
        if format == ImageFormat::Jpeg && self.pdftoppm.is_none() {
            return Err("pdftoppm is not installed (Debian: poppler-utils)".into());
        }
        if format != ImageFormat::Jpeg && self.mutool.is_none() {
            return Err("mutool is not installed (Debian: mupdf-tools)".into());
        }
        if format == ImageFormat::Webp && self.cwebp.is_none() {
            return Err("cwebp is not installed (Debian: webp)".into());
        }
        Ok(())
    }

    /// Renders `pages` (1-based, ascending) of `pdf` into `out_dir`, sized by `size`.
    pub async fn render(
        &self,
        pdf: &Path,
        pages: &[u32],
        size: ImageSize,
        format: ImageFormat,
        out_dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<Vec<RenderedPage>, ConvertError> {
        self.availability(format)
            .map_err(ConvertError::Unavailable)?;
        std::fs::create_dir_all(out_dir).map_err(ConvertError::io)?;
        // The renderer sees the PDF alone in a directory of its own, not the job's scratch
        // space (which holds the uploaded document too).
        let source_dir = out_dir.with_extension("source");
        std::fs::create_dir_all(&source_dir).map_err(ConvertError::io)?;
        let pdf = &super::place_input(pdf, &source_dir, "document.pdf")?;
        let raster = match format {
            ImageFormat::Jpeg => ImageFormat::Jpeg,
            ImageFormat::Png | ImageFormat::Webp => ImageFormat::Png,
        };
        let mut rendered = Vec::new();
        match raster {
            ImageFormat::Jpeg => {
                let boxes = page_boxes_off_thread(pdf).await?;
                for run in runs(pages, &boxes, size) {
                    self.pdftoppm(pdf, &run, out_dir, cancel).await?;
                }
            }
            _ => self.mutool(pdf, pages, size, out_dir, cancel).await?,
        }
        for &page in pages {
            let path = out_dir.join(format!("page-{page}.{}", raster.extension()));
            let (width, height) = image_size(&path).map_err(|why| {
                ConvertError::Failed(format!("page {page} did not render: {why}"))
            })?;
            rendered.push(RenderedPage {
                page,
                path,
                width,
                height,
            });
        }
        if format == ImageFormat::Webp {
            for page in &mut rendered {
                page.path = self.cwebp(&page.path, cancel).await?;
            }
        }
        Ok(rendered)
    }

    /// `binary` in the sandbox, seeing the PDF's own directory (read-only) and `out_dir`.
    fn drawing(
        &self,
        binary: &Option<PathBuf>,
        pdf: &Path,
        out_dir: &Path,
    ) -> Result<tokio::process::Command, ConvertError> {
        let binary = binary.as_deref().expect("checked by availability");
        let binds = [
            Bind::read_only(pdf.parent().unwrap_or(pdf)),
            Bind::dir(out_dir),
        ];
        self.sandbox
            .command(binary, &binds)
            .map_err(ConvertError::Unavailable)
    }

    /// One `mutool draw` over every page, as PNG `page-<n>.png` (it fits each page inside
    /// the size itself, keeping the page's aspect).
    async fn mutool(
        &self,
        pdf: &Path,
        pages: &[u32],
        size: ImageSize,
        out_dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), ConvertError> {
        let mut cmd = self.drawing(&self.mutool, pdf, out_dir)?;
        cmd.args(["draw", "-q", "-F", "png", "-o"])
            .arg(out_dir.join("page-%d.png"));
        match (size.width, size.height) {
            (None, None) => {
                cmd.arg("-r")
                    .arg(size.dpi.unwrap_or(DEFAULT_DPI).to_string());
            }
            (w, h) => {
                if let Some(w) = w {
                    cmd.arg("-w").arg(w.to_string());
                }
                if let Some(h) = h {
                    cmd.arg("-h").arg(h.to_string());
                }
            }
        }
        let list: Vec<String> = pages.iter().map(u32::to_string).collect();
        cmd.arg(pdf).arg(list.join(","));
        self.run(cmd, cancel).await
    }

    /// One pdftoppm over a run of pages that share a scale rule; writes `page-<n>.jpg`.
    async fn pdftoppm(
        &self,
        pdf: &Path,
        run: &Run,
        out_dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), ConvertError> {
        let raster = ImageFormat::Jpeg;
        let mut cmd = self.drawing(&self.pdftoppm, pdf, out_dir)?;
        // The crop box, as page_boxes and mutool measure pages.
        cmd.args(["-jpeg", "-jpegopt", "quality=90", "-cropbox"]);
        cmd.arg("-f").arg(run.first.to_string());
        cmd.arg("-l").arg(run.last.to_string());
        cmd.args(run.scale.args());
        // pdftoppm pads page numbers to the width of the last one; one run per page keeps the
        // names exact (`page-7.png`) without guessing the padding.
        cmd.arg(pdf)
            .arg(out_dir.join(format!("page-{}", run.first)));
        if run.first == run.last {
            cmd.arg("-singlefile");
        }
        self.run(cmd, cancel).await?;
        if run.first != run.last {
            rename_padded(out_dir, run, raster)?;
        }
        Ok(())
    }

    /// PNG to WebP (quality 90), next to it; the PNG is removed.
    async fn cwebp(&self, png: &Path, cancel: &CancellationToken) -> Result<PathBuf, ConvertError> {
        let binary = self.cwebp.as_deref().expect("checked by availability");
        let webp = png.with_extension("webp");
        let dir = png.parent().unwrap_or(png);
        let mut cmd = self
            .sandbox
            .command(binary, &[Bind::dir(dir)])
            .map_err(ConvertError::Unavailable)?;
        cmd.args(["-quiet", "-q", "90"])
            .arg(png)
            .arg("-o")
            .arg(&webp);
        self.run(cmd, cancel).await?;
        let _ = std::fs::remove_file(png);
        Ok(webp)
    }

    async fn run(
        &self,
        mut cmd: tokio::process::Command,
        cancel: &CancellationToken,
    ) -> Result<(), ConvertError> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let output = match run_isolated(cmd, self.limits, cancel).await {
            Err(e) => {
                let why = format!("the renderer cannot start: {e}");
                return Err(ConvertError::Unavailable(why));
            }
            Ok(Ended::Exited(output)) => output,
            Ok(Ended::Cancelled) => return Err(ConvertError::Cancelled),
            Ok(Ended::OverBudget(used)) => {
                return Err(ConvertError::TooComplex(format!(
                    "rendering used {:.1} s of CPU time (the budget is CONVERT_CPU_SECS)",
                    used.as_secs_f64()
                )));
            }
        };
        if !output.status.success() {
            let log = String::from_utf8_lossy(&output.stderr);
            return Err(ConvertError::Failed(format!(
                "the renderer exited with {}: {}",
                output.status,
                log.trim().chars().take(300).collect::<String>()
            )));
        }
        Ok(())
    }
}

/// How pdftoppm scales a run of pages.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    Dpi(u32),
    /// Width fixed, height by aspect.
    Width(u32),
    /// Height fixed, width by aspect.
    Height(u32),
}

impl Scale {
    fn args(self) -> Vec<String> {
        match self {
            Scale::Dpi(dpi) => vec!["-r".into(), dpi.to_string()],
            Scale::Width(w) => vec![
                "-scale-to-x".into(),
                w.to_string(),
                "-scale-to-y".into(),
                "-1".into(),
            ],
            Scale::Height(h) => vec![
                "-scale-to-x".into(),
                "-1".into(),
                "-scale-to-y".into(),
                h.to_string(),
            ],
        }
    }
}

/// Consecutive pages rendered by one pdftoppm.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    first: u32,
    last: u32,
    scale: Scale,
}

/// The scale rule of one page of (displayed) size `page` (points, rotation applied).
fn scale_of(page: (f64, f64), size: ImageSize) -> Scale {
    match (size.width, size.height, size.dpi) {
        (Some(w), Some(h), _) => {
            // Fit inside: the side that reaches its bound first decides.
            if page.0 * f64::from(h) >= page.1 * f64::from(w) {
                Scale::Width(w)
            } else {
                Scale::Height(h)
            }
        }
        (Some(w), None, _) => Scale::Width(w),
        (None, Some(h), _) => Scale::Height(h),
        (None, None, dpi) => Scale::Dpi(dpi.unwrap_or(DEFAULT_DPI)),
    }
}

/// `pages` split into runs of consecutive pages with one scale rule.
fn runs(pages: &[u32], boxes: &[(f64, f64)], size: ImageSize) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for &page in pages {
        let dims = boxes
            .get(page as usize - 1)
            .copied()
            .unwrap_or((612.0, 792.0));
        let scale = scale_of(dims, size);
        match out.last_mut() {
            Some(run) if run.last + 1 == page && run.scale == scale => run.last = page,
            _ => out.push(Run {
                first: page,
                last: page,
                scale,
            }),
        }
    }
    out
}

/// pdftoppm names a run's files `page-<first>-<n padded>.<ext>`; renames them `page-<n>.<ext>`.
fn rename_padded(dir: &Path, run: &Run, raster: ImageFormat) -> Result<(), ConvertError> {
    let prefix = format!("page-{}-", run.first);
    let suffix = format!(".{}", raster.extension());
    for entry in std::fs::read_dir(dir).map_err(ConvertError::io)? {
        let name = entry.map_err(ConvertError::io)?.file_name();
        let name = name.to_string_lossy();
        let Some(number) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(&suffix))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let to = dir.join(format!("page-{number}{suffix}"));
        std::fs::rename(dir.join(name.as_ref()), to).map_err(ConvertError::io)?;
    }
    Ok(())
}

/// [`page_boxes`] on a blocking thread (a PDF can take a while to parse).
pub async fn page_boxes_off_thread(pdf: &Path) -> Result<Vec<(f64, f64)>, ConvertError> {
    let pdf = pdf.to_path_buf();
    tokio::task::spawn_blocking(move || page_boxes(&pdf))
        .await
        .map_err(ConvertError::io)?
        .map_err(ConvertError::Rejected)
}

/// Each page's displayed size in points (its crop or media box, turned by `/Rotate`).
pub fn page_boxes(pdf: &Path) -> Result<Vec<(f64, f64)>, String> {
    let doc = lopdf::Document::load(pdf).map_err(|e| format!("the PDF does not parse: {e}"))?;
    let mut out = Vec::new();
    for (_, id) in doc.get_pages() {
        let inherited = |key: &[u8]| inherited(&doc, id, key);
        let rect = inherited(b"CropBox")
            .or_else(|| inherited(b"MediaBox"))
            .and_then(|o| rect(&doc, &o))
            .unwrap_or((612.0, 792.0));
        let rotate = inherited(b"Rotate")
            .and_then(|o| o.as_i64().ok())
            .unwrap_or(0);
        out.push(match rotate.rem_euclid(180) {
            90 => (rect.1, rect.0),
            _ => rect,
        });
    }
    Ok(out)
}

/// A page attribute, looked up through its `/Parent`s as PDF's inheritance rules say.
fn inherited(doc: &lopdf::Document, mut id: lopdf::ObjectId, key: &[u8]) -> Option<lopdf::Object> {
    for _ in 0..32 {
        let dict = doc.get_dictionary(id).ok()?;
        if let Ok(value) = dict.get(key) {
            return Some(value.clone());
        }
        id = dict.get(b"Parent").ok()?.as_reference().ok()?;
    }
    None
}

fn rect(doc: &lopdf::Document, o: &lopdf::Object) -> Option<(f64, f64)> {
    let o = match o {
        lopdf::Object::Reference(id) => doc.get_object(*id).ok()?,
        other => other,
    };
    let n: Vec<f64> = o
        .as_array()
        .ok()?
        .iter()
        .filter_map(|v| {
            v.as_float()
                .ok()
                .map(f64::from)
                .or_else(|| v.as_i64().ok().map(|i| i as f64))
        })
        .collect();
    match n.as_slice() {
        [x0, y0, x1, y1] => Some(((x1 - x0).abs(), (y1 - y0).abs())),
        _ => None,
    }
}

/// Width and height of a PNG or JPEG, from its header.
pub fn image_size(path: &Path) -> Result<(u32, u32), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() >= 24 {
        let be =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        return Ok((be(16), be(20)));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return jpeg_size(&bytes).ok_or_else(|| "a JPEG without a frame header".into());
    }
    Err("not a PNG or JPEG".into())
}

/// A JPEG's size from its first start-of-frame marker.
fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    while i + 9 < bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        let is_frame = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_frame {
            let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
            let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
            return Some((u32::from(w), u32::from(h)));
        }
        i += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_group_into_runs_by_scale_and_adjacency() {
        let boxes = [
            (720.0, 540.0),
            (720.0, 540.0),
            (540.0, 720.0),
            (720.0, 540.0),
        ];
        let fit = ImageSize {
            width: Some(1280),
            height: Some(1280),
            dpi: None,
        };
        let got = runs(&[1, 2, 3, 4], &boxes, fit);
        let scales: Vec<(u32, u32, Scale)> =
            got.iter().map(|r| (r.first, r.last, r.scale)).collect();
        assert_eq!(
            scales,
            [
                (1, 2, Scale::Width(1280)),
                (3, 3, Scale::Height(1280)),
                (4, 4, Scale::Width(1280))
            ]
        );
        let gap = runs(&[1, 3], &boxes, ImageSize::default());
        assert_eq!(gap.len(), 2);
        assert_eq!(gap[0].scale, Scale::Dpi(DEFAULT_DPI));
    }

    #[test]
    fn image_sizes_come_from_headers() {
        let dir = tempfile::tempdir().unwrap();
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&640u32.to_be_bytes());
        png.extend_from_slice(&480u32.to_be_bytes());
        let path = dir.path().join("a.png");
        std::fs::write(&path, &png).unwrap();
        assert_eq!(image_size(&path).unwrap(), (640, 480));
        // SOI, an APP0 of 4 bytes, then SOF0: length 11, precision 8, height 300, width 200.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC0, 0, 11, 8, 1, 44, 0, 200, 3, 0, 0, 0,
        ];
        let path = dir.path().join("a.jpg");
        std::fs::write(&path, jpeg).unwrap();
        assert_eq!(image_size(&path).unwrap(), (200, 300));
    }
}
