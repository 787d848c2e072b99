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
use super::process::{CpuBudget, Isolation, KERNEL_LIMIT_SLACK_SECS, ProcessGroup, isolate, spent};
use super::sandbox::{Bind, Sandbox};
use super::{
    Conversion, ConvertError, Converted, Converter, DocFormat, Family, place_input, take_output,
    validate_pdf,
};

/// Limits of each LibreOffice process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessLimits {
    /// Address-space cap, in bytes (`RLIMIT_AS`).
    pub memory: Option<u64>,
    /// CPU time one conversion may use; past it the document is "too complex".
    pub cpu: Option<Duration>,
}

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

/// The `--convert-to` argument of the cold path.
fn convert_to_arg(format: DocFormat, settings: &PdfSettings) -> String {
    let filter = pdf_filter(format);
    match settings.command_line_json() {
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

        let mut cmd = self
            .sandbox
            .command(binary, &dirs.binds())
            .map_err(ConvertError::Unavailable)?;
        cmd.arg(format!("-env:UserInstallation={}", file_url(&dirs.profile)))
            .args(SOFFICE_FLAGS)
            .arg("--convert-to")
            .arg(convert_to_arg(format, job.settings))
            .arg("--outdir")
            .arg(&dirs.exchange)
            .arg(&placed)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let iso = Isolation {
            group: 0,
            memory_limit: self.limits.memory,
            die_with_parent: true,
            cpu_limit: self
                .limits
                .cpu
                .map(|c| c.as_secs() + KERNEL_LIMIT_SLACK_SECS),
        };
        isolate(&mut cmd, iso);
        let child = cmd.spawn().map_err(|e| unavailable(&e.to_string()))?;
        let pid = child.id().map(|id| id as i32).unwrap_or(0);
        let _group = ProcessGroup(pid);
        let output = tokio::select! {
            output = child.wait_with_output() => output.map_err(ConvertError::io)?,
            () = cancel.cancelled() => return Err(ConvertError::Cancelled),
            used = spent(self.limits.cpu.map(|limit| CpuBudget::start(pid, limit))) => {
                return Err(too_complex(used));
            }
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
        let written = dirs.exchange.join("input.pdf");
        if !written.is_file() {
            return Err(ConvertError::Rejected(format!(
                "LibreOffice could not read the document and wrote no PDF (it may be damaged): {}",
                tail(&log)
            )));
        }
        let pdf = out_dir.join("output.pdf");
        take_output(&written, &pdf)?;
        let _ = std::fs::remove_dir_all(out_dir.join("sandbox"));
        let pages = finished_pdf(&pdf, job.settings).await?;
        Ok(Converted { path: pdf, pages })
    }
}

pub(crate) fn too_complex(used: Duration) -> ConvertError {
    ConvertError::TooComplex(format!(
        "the document used {:.1} s of CPU time without finishing its layout (the budget is \
         CONVERT_CPU_SECS); it is too complex to convert",
        used.as_secs_f64()
    ))
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
