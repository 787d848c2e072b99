//! LibreOffice as a [`Converter`]: `soffice --headless --convert-to pdf` in a child process.
//!
//! Isolation: every conversion gets a fresh profile (`-env:UserInstallation`) made from the
//! hardened template below — macros off, remote and linked content blocked — inside the job's
//! scratch directory, so concurrent conversions never share one and a poisoned profile never
//! outlives its conversion. The child runs in its own process group; the whole group is killed
//! when the conversion is cancelled, times out (the caller drops the future) or finishes, so no
//! stray `soffice.bin` survives.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio_util::sync::CancellationToken;

use super::process::{Isolation, ProcessGroup, isolate};
use super::{Converted, Converter, DocFormat, Family, validate_pdf};
use crate::jobs::JobError;

/// The profile template. `BlockUntrustedRefererLinks` plus the link-update settings stop
/// LibreOffice from fetching externally linked images or data while loading a document
/// (without them a conversion makes network requests on the document's behalf).
const REGISTRY_MODIFICATIONS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="BlockUntrustedRefererLinks" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="FirstRun" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="UseSystemFileDialog" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Content/Update"><prop oor:name="Link" oor:op="fuse"><value>2</value></prop></item>
<item oor:path="/org.openoffice.Office.Writer/Content/Update"><prop oor:name="Link" oor:op="fuse"><value>2</value></prop></item>
<item oor:path="/org.openoffice.Office.Impress/Content/Update"><prop oor:name="Link" oor:op="fuse"><value>2</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Internet"><prop oor:name="ooInetProxyType" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"#;

/// The cold, one-process-per-document LibreOffice converter.
#[derive(Debug, Clone)]
pub struct LibreOffice {
    binary: Option<PathBuf>,
    requested: String,
    memory_limit: Option<u64>,
}

impl LibreOffice {
    /// `soffice` is a path or a command name looked up on `PATH`; `memory_limit` caps each
    /// LibreOffice's address space in bytes.
    pub fn new(soffice: &str, memory_limit: Option<u64>) -> Self {
        Self {
            binary: resolve_binary(soffice),
            requested: soffice.to_string(),
            memory_limit,
        }
    }

    /// The resolved `soffice`, or why there is none.
    pub(crate) fn binary(&self) -> Result<&Path, JobError> {
        self.binary
            .as_deref()
            .ok_or_else(|| unavailable(&format!("{:?} not found", self.requested)))
    }

    pub(crate) fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }
}

fn resolve_binary(cmd: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        let path = PathBuf::from(cmd);
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(cmd))
        .find(|p| p.is_file())
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

/// The PDF export filter for a family. Spreadsheets print one page per sheet so charts stay
/// whole (`SinglePageSheets`).
pub(crate) fn pdf_filter(format: DocFormat) -> (&'static str, bool) {
    match format.family() {
        Family::Presentation => ("impress_pdf_Export", false),
        Family::Text => ("writer_pdf_Export", false),
        Family::Spreadsheet => ("calc_pdf_Export", true),
    }
}

/// The `--convert-to` argument of the cold path.
fn convert_to_arg(format: DocFormat) -> String {
    match pdf_filter(format) {
        (filter, false) => format!("pdf:{filter}"),
        (filter, true) => {
            format!(r#"pdf:{filter}:{{"SinglePageSheets":{{"type":"boolean","value":"true"}}}}"#)
        }
    }
}

pub(crate) fn unavailable(why: &str) -> JobError {
    JobError::fatal(
        "converter_unavailable",
        format!(
            "LibreOffice is not available on this worker ({why}); install it or set SOFFICE_PATH"
        ),
    )
}

#[async_trait::async_trait]
impl Converter for LibreOffice {
    fn availability(&self) -> Result<(), String> {
        match &self.binary {
            Some(_) => Ok(()),
            None => Err(format!("{:?} not found", self.requested)),
        }
    }

    async fn convert(
        &self,
        input: &Path,
        format: DocFormat,
        out_dir: &Path,
        cancel: CancellationToken,
    ) -> Result<Converted, JobError> {
        let binary = self
            .binary
            .as_ref()
            .ok_or_else(|| unavailable(&format!("{:?} not found", self.requested)))?;
        let profile = out_dir.join("lo-profile");
        let out = out_dir.join("lo-out");
        write_profile(&profile).map_err(JobError::internal)?;
        std::fs::create_dir_all(&out).map_err(JobError::internal)?;

        let mut cmd = tokio::process::Command::new(binary);
        cmd.arg(format!("-env:UserInstallation={}", file_url(&profile)))
            .args([
                "--headless",
                "--invisible",
                "--nocrashreport",
                "--nodefault",
            ])
            .args([
                "--nofirststartwizard",
                "--nolockcheck",
                "--nologo",
                "--norestore",
            ])
            .arg("--convert-to")
            .arg(convert_to_arg(format))
            .arg("--outdir")
            .arg(&out)
            .arg(input)
            .env("HOME", out_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let iso = Isolation {
            group: 0,
            memory_limit: self.memory_limit,
            die_with_parent: true,
        };
        isolate(&mut cmd, iso);
        let child = cmd.spawn().map_err(|e| unavailable(&e.to_string()))?;
        let _group = ProcessGroup(child.id().map(|id| id as i32).unwrap_or(0));
        let output = tokio::select! {
            output = child.wait_with_output() => output.map_err(JobError::internal)?,
            () = cancel.cancelled() => {
                return Err(JobError::fatal("cancelled", "the conversion was cancelled"));
            }
        };
        let log = String::from_utf8_lossy(&output.stderr).trim().to_string()
            + String::from_utf8_lossy(&output.stdout).trim();
        if let Some(signal) = output.status.signal() {
            return Err(JobError::retryable(
                "converter_crashed",
                format!("LibreOffice was killed by signal {signal} during the conversion"),
            ));
        }
        if !output.status.success() {
            return Err(JobError::retryable(
                "conversion_failed",
                format!("LibreOffice exited with {}: {}", output.status, tail(&log)),
            ));
        }
        let stem = input.file_stem().unwrap_or_default();
        let pdf = out.join(stem).with_extension("pdf");
        if !pdf.is_file() {
            return Err(JobError::fatal(
                "conversion_failed",
                format!(
                    "LibreOffice could not read the document and wrote no PDF (it may be damaged): {}",
                    tail(&log)
                ),
            ));
        }
        let checked = pdf.clone();
        let pages = tokio::task::spawn_blocking(move || validate_pdf(&checked))
            .await
            .map_err(JobError::internal)?
            .map_err(|why| {
                JobError::fatal(
                    "conversion_failed",
                    format!("LibreOffice wrote a broken PDF: {why}"),
                )
            })?;
        Ok(Converted { path: pdf, pages })
    }
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
