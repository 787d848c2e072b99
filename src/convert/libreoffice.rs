//! LibreOffice as a [`Converter`]: `soffice --headless --convert-to pdf` in a child process.
//!
//! Isolation: every conversion runs inside the [`Sandbox`] (no network, a filesystem of only
//! LibreOffice, fonts and the job's exchange directory, a cleared environment), with a fresh
//! profile (`-env:UserInstallation`) made from the hardened template below — macros off,
//! remote and linked content blocked — so concurrent conversions never share one and a
//! poisoned profile never outlives its conversion. The sandbox sees the input as the only file
//! of its exchange directory, and writes the PDF there. The child runs in its own process
//! group; the whole group is killed when the conversion is cancelled, times out (the caller
//! drops the future), spends its CPU budget or finishes, so no stray `soffice.bin` survives.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::filter::{self, PdfSettings};
use super::process::{Ended, run_isolated};
use super::sandbox::{Bind, Sandbox};
use super::{
    Conversion, ConvertError, Converted, Converter, DocFormat, Family, OfficeTarget, OutputFormat,
    place_input, take_output, validate_pdf,
};

pub use super::process::ProcessLimits;

/// The profile template. `BlockUntrustedRefererLinks` plus the link-update settings stop
/// some of LibreOffice's loaders from fetching externally linked images or data while loading
/// a document. Only some: several loaders ignore them, which is why the sandbox, not this
/// profile, is the boundary. Link-update values differ per application: Writer's
/// `Content/Update/Link` is 0 = never, 1 = on request, 2 = always; Calc's is 0 = always,
/// 1 = never, 2 = on request.
const REGISTRY_MODIFICATIONS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="BlockUntrustedRefererLinks" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="FirstRun" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="UseSystemFileDialog" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Content/Update"><prop oor:name="Link" oor:op="fuse"><value>1</value></prop></item>
<item oor:path="/org.openoffice.Office.Writer/Content/Update"><prop oor:name="Link" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Internet"><prop oor:name="ooInetProxyType" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"#;

/// The cold, one-process-per-document LibreOffice converter.
#[derive(Debug, Clone)]
pub struct LibreOffice {
    binary: Option<PathBuf>,
    requested: String,
    limits: ProcessLimits,
    sandbox: Arc<Sandbox>,
    version: tokio::sync::OnceCell<Option<String>>,
}

impl LibreOffice {
    /// `soffice` is a path or a command name looked up on `PATH`; every LibreOffice runs in
    /// `sandbox` within `limits`.
    pub fn new(soffice: &str, limits: ProcessLimits, sandbox: Arc<Sandbox>) -> Self {
        Self {
            binary: super::process::resolve_binary(soffice),
            requested: soffice.to_string(),
            limits,
            sandbox,
            version: tokio::sync::OnceCell::new(),
        }
    }

    /// `soffice --version`'s line (`LibreOffice 7.4.7.2 40(Build:2)`), asked once — in the
    /// sandbox like every LibreOffice this service starts. `None` when it cannot be asked.
    pub(crate) async fn version(&self) -> Option<String> {
        self.version
            .get_or_init(|| async {
                let binary = self.binary.as_deref()?;
                let mut cmd = self.sandbox.command(binary, &[]).ok()?;
                let ask = cmd
                    .arg("--version")
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .output();
                let out = tokio::time::timeout(Duration::from_secs(20), ask)
                    .await
                    .ok()?
                    .ok()?;
                let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                (out.status.success() && !text.is_empty()).then_some(text)
            })
            .await
            .clone()
    }

    /// The resolved `soffice`, or why there is none.
    pub(crate) fn binary(&self) -> Result<&Path, ConvertError> {
        self.binary
            .as_deref()
            .ok_or_else(|| unavailable(&format!("{:?} not found", self.requested)))
    }

    pub(crate) fn limits(&self) -> ProcessLimits {
        self.limits
    }

    pub(crate) fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }
}

/// Writes a fresh hardened profile into `dir`.
pub fn write_profile(dir: &Path) -> std::io::Result<()> {
    let user = dir.join("user");
    std::fs::create_dir_all(&user)?;
    std::fs::write(
        user.join("registrymodifications.xcu"),
        REGISTRY_MODIFICATIONS,
    )
}

/// `file://` URL of an absolute path, percent-encoding what a URL cannot carry.
pub fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// The PDF export filter for a family (its settings come from [`PdfSettings`]).
pub(crate) fn pdf_filter(format: DocFormat) -> &'static str {
    match format.family() {
        Family::Presentation => "impress_pdf_Export",
        Family::Text => "writer_pdf_Export",
        Family::Spreadsheet => "calc_pdf_Export",
    }
}

/// LibreOffice's export filter for an office format (names from its filter registry,
/// `filter/source/config/fragments/filters`); [`OutputFormat::accepts`] has already matched
/// the format to the document's family.
pub(crate) fn office_filter(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Docx => "MS Word 2007 XML",
        OutputFormat::Odt => "writer8",
        OutputFormat::Rtf => "Rich Text Format",
        OutputFormat::Txt => "Text (encoded)",
        OutputFormat::Html => "HTML (StarWriter)",
        OutputFormat::Xlsx => "Calc MS Excel 2007 XML",
        OutputFormat::Ods => "calc8",
        OutputFormat::Csv => "Text - txt - csv (StarCalc)",
        OutputFormat::Pptx => "Impress MS PowerPoint 2007 XML",
        OutputFormat::Odp => "impress8",
        OutputFormat::Pdf | OutputFormat::Png | OutputFormat::Jpeg | OutputFormat::Webp => {
            unreachable!("{format:?} is not an office format")
        }
    }
}

/// The filter options an office filter gets by default: plain text is UTF-8, and HTML carries
/// its images inline (the result is one file; images written beside it would be lost).
pub(crate) fn filter_options<'a>(target: &OfficeTarget<'a>) -> Option<&'a str> {
    match (target.format, target.filter_options) {
        (OutputFormat::Txt, None) => Some("UTF8"),
        (OutputFormat::Html, None) => Some("EmbedImages"),
        (_, given) => given,
    }
}

/// What LibreOffice writes for `job`: the file's extension in its exchange directory.
pub(crate) fn written_extension(job: &Conversion<'_>) -> &'static str {
    job.office.map_or("pdf", |o| o.format.extension())
}

/// Where LibreOffice put the file it was told to write at `expected`: there, or — for one
/// sheet as CSV, which it names after the sheet (`input-Data.csv`) — beside it.
pub(crate) fn written_file(expected: &Path) -> PathBuf {
    if expected.is_file() {
        return expected.to_path_buf();
    }
    let (Some(dir), Some(stem), Some(ext)) = (
        expected.parent(),
        expected.file_stem().and_then(|s| s.to_str()),
        expected.extension().and_then(|s| s.to_str()),
    ) else {
        return expected.to_path_buf();
    };
    let (prefix, suffix) = (format!("{stem}-"), format!(".{ext}"));
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(&suffix))
        })
        .unwrap_or_else(|| expected.to_path_buf())
}

/// The `--convert-to` argument of the cold path.
fn convert_to_arg(job: &Conversion<'_>) -> String {
    if let Some(office) = &job.office {
        let (ext, filter) = (office.format.extension(), office_filter(office.format));
        return match filter_options(office) {
            None => format!("{ext}:{filter}"),
            Some(options) => format!("{ext}:{filter}:{options}"),
        };
    }
    let filter = pdf_filter(job.format);
    match job.settings.command_line_json() {
        None => format!("pdf:{filter}"),
        Some(json) => format!("pdf:{filter}:{json}"),
    }
}

/// What the command line cannot do: it has no way to give a password or to change page
/// styles, so such conversions need the UNO helper.
pub(crate) fn command_line_can(job: &Conversion<'_>) -> Result<(), ConvertError> {
    let what = match (job.password.is_some(), job.settings.needs_uno()) {
        (false, false) => return Ok(()),
        (true, _) => "opening a password-protected document",
        (false, true) => "the landscape option",
    };
    Err(ConvertError::Unavailable(format!(
        "{what} needs LibreOffice driven over UNO (python3-uno and the warm converter), which \
         is not available on this worker"
    )))
}

pub(crate) fn unavailable(why: &str) -> ConvertError {
    ConvertError::Unavailable(format!(
        "LibreOffice is not available on this worker ({why}); install it or set SOFFICE_PATH"
    ))
}

/// The flags every LibreOffice gets, headless and without any first-start or recovery UI.
pub(crate) const SOFFICE_FLAGS: [&str; 8] = [
    "--headless",
    "--invisible",
    "--nocrashreport",
    "--nodefault",
    "--nofirststartwizard",
    "--nolockcheck",
    "--nologo",
    "--norestore",
];

/// The directories one sandboxed LibreOffice uses: its profile, the exchange directory that
/// holds the input and receives the output, and its `/tmp`.
#[derive(Debug, Clone)]
pub(crate) struct SandboxDirs {
    pub profile: PathBuf,
    pub exchange: PathBuf,
    pub tmp: PathBuf,
}

impl SandboxDirs {
    /// Creates them under `root`, with a fresh hardened profile.
    pub(crate) fn create(root: &Path) -> std::io::Result<Self> {
        let dirs = Self {
            profile: root.join("profile"),
            exchange: root.join("job"),
            tmp: root.join("tmp"),
        };
        write_profile(&dirs.profile)?;
        std::fs::create_dir_all(&dirs.exchange)?;
        std::fs::create_dir_all(&dirs.tmp)?;
        Ok(dirs)
    }

    pub(crate) fn binds(&self) -> [Bind; 3] {
        [
            Bind::dir(&self.profile),
            Bind::dir(&self.exchange),
            Bind::tmp(&self.tmp),
        ]
    }
}

#[async_trait::async_trait]
impl Converter for LibreOffice {
    fn availability(&self) -> Result<(), String> {
        match &self.binary {
            Some(_) => self.sandbox.availability(),
            None => Err(format!("{:?} not found", self.requested)),
        }
    }

    async fn version(&self) -> Option<String> {
        LibreOffice::version(self).await
    }

    async fn convert(
        &self,
        job: &Conversion<'_>,
        cancel: CancellationToken,
    ) -> Result<Converted, ConvertError> {
        let (input, format, out_dir) = (job.input, job.format, job.out_dir);
        command_line_can(job)?;
        let binary = self.binary()?;
        self.sandbox
            .availability()
            .map_err(ConvertError::Unavailable)?;
        let dirs = SandboxDirs::create(&out_dir.join("sandbox")).map_err(ConvertError::io)?;
        let ext = format.extension();
        let placed = place_input(input, &dirs.exchange, &format!("input.{ext}"))?;
        // Written beside the input it would share its name when the format is the input's
        // (docx → docx): a directory of its own tells "wrote nothing" from "wrote it".
        let out = dirs.exchange.join("out");
        std::fs::create_dir_all(&out).map_err(ConvertError::io)?;

        let mut cmd = self
            .sandbox
            .command(binary, &dirs.binds())
            .map_err(ConvertError::Unavailable)?;
        cmd.arg(format!("-env:UserInstallation={}", file_url(&dirs.profile)))
            .args(SOFFICE_FLAGS)
            .arg("--convert-to")
            .arg(convert_to_arg(job))
            .arg("--outdir")
            .arg(&out)
            .arg(&placed)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output = match run_isolated(cmd, self.limits, &cancel).await {
            Err(e) => return Err(unavailable(&e.to_string())),
            Ok(Ended::Exited(output)) => output,
            Ok(Ended::Cancelled) => return Err(ConvertError::Cancelled),
            Ok(Ended::OverBudget(used)) => return Err(too_complex(used)),
        };
        let log = String::from_utf8_lossy(&output.stderr).trim().to_string()
            + String::from_utf8_lossy(&output.stdout).trim();
        if let Some(signal) = output.status.signal() {
            return Err(ConvertError::Crashed(format!(
                "LibreOffice was killed by signal {signal} during the conversion"
            )));
        }
        if !output.status.success() {
            return Err(ConvertError::Failed(format!(
                "LibreOffice exited with {}: {}",
                output.status,
                tail(&log)
            )));
        }
        let ext = written_extension(job);
        let written = written_file(&out.join(format!("input.{ext}")));
        if !written.is_file() {
            return Err(ConvertError::Rejected(format!(
                "LibreOffice could not read the document and wrote no {ext} (it may be damaged): {}",
                tail(&log)
            )));
        }
        let output = out_dir.join(format!("output.{ext}"));
        take_output(&written, &output)?;
        let _ = std::fs::remove_dir_all(out_dir.join("sandbox"));
        finished(job, output).await
    }
}

pub(crate) fn too_complex(used: Duration) -> ConvertError {
    ConvertError::TooComplex(format!(
        "the document used {:.1} s of CPU time without finishing its layout (the budget is \
         CONVERT_CPU_SECS); it is too complex to convert",
        used.as_secs_f64()
    ))
}

/// Checks what LibreOffice wrote for `job` at `path`: a PDF ([`finished_pdf`]) or an office
/// file ([`super::outputs::check_office`]).
pub(crate) async fn finished(
    job: &Conversion<'_>,
    path: PathBuf,
) -> Result<Converted, ConvertError> {
    let Some(office) = job.office else {
        let pages = finished_pdf(&path, job.settings).await?;
        return Ok(Converted { path, pages });
    };
    let (checked, format) = (path.clone(), office.format);
    tokio::task::spawn_blocking(move || super::outputs::check_office(&checked, format))
        .await
        .map_err(ConvertError::io)?
        .map_err(|why| {
            ConvertError::Rejected(format!(
                "LibreOffice wrote an unusable {}: {why}",
                format.name()
            ))
        })?;
    Ok(Converted { path, pages: 0 })
}

/// Checks a PDF LibreOffice wrote and counts its pages (off the runtime's threads), after
/// correcting a PDF/A-1 label (see [`filter::label_pdf_a_1b`]).
pub(crate) async fn finished_pdf(
    pdf: &Path,
    settings: &PdfSettings,
) -> Result<usize, ConvertError> {
    let checked = pdf.to_path_buf();
    let relabel = settings.pdf_a_1b;
    tokio::task::spawn_blocking(move || {
        if relabel {
            filter::label_pdf_a_1b(&checked).map_err(|e| e.to_string())?;
        }
        validate_pdf(&checked)
    })
    .await
    .map_err(ConvertError::io)?
    .map_err(|why| ConvertError::Rejected(format!("LibreOffice wrote a broken PDF: {why}")))
}

/// The last few hundred characters of a log, for error messages.
fn tail(log: &str) -> String {
    let log = log.trim();
    if log.is_empty() {
        return "no output".into();
    }
    let start = log.len().saturating_sub(300);
    let start = (start..log.len())
        .find(|&i| log.is_char_boundary(i))
        .unwrap_or(0);
    log[start..].to_string()
}
