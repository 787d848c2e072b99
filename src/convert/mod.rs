//! Document conversion: the formats we accept, what a document really is ([`sniff`]), the
//! external references a document may not follow ([`references`]), the OS [`sandbox`] every
//! converter runs in, and the [`Converter`] seam with its LibreOffice implementations (cold
//! [`libreoffice`], [`warm`]).

pub mod filter;
pub mod libreoffice;
pub mod outputs;
pub mod process;
pub mod references;
pub mod render;
pub mod sandbox;
pub mod sniff;
pub mod warm;
pub mod xml_depth;

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

pub use crate::model::formats::{Family, OutputFormat};

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

/// A finished conversion.
#[derive(Debug, Clone)]
pub struct Converted {
    pub path: PathBuf,
    /// Pages of a PDF (0 for office formats, which have no fixed pages).
    pub pages: usize,
}

/// Why a conversion produced no PDF. The export kind decides what each means for the job
/// (its error code, and whether another attempt may help).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The converter cannot run here: not installed, or its sandbox cannot be made.
    #[error("{0}")]
    Unavailable(String),
    /// LibreOffice read the document and gave up on it, or wrote no usable PDF: the same bytes
    /// fail the same way again.
    #[error("{0}")]
    Rejected(String),
    /// LibreOffice died mid-conversion (a crash, a kill): another attempt may pass.
    #[error("{0}")]
    Crashed(String),
    /// LibreOffice exited with an error of its own: another attempt may pass.
    #[error("{0}")]
    Failed(String),
    /// The document used up its CPU budget: its layout does not converge.
    #[error("{0}")]
    TooComplex(String),
    #[error("the conversion was cancelled")]
    Cancelled,
    /// The password sent does not open the (password-protected) document.
    #[error("{0}")]
    PasswordIncorrect(String),
    /// Local trouble around the conversion (scratch directory, copying files).
    #[error("{0}")]
    Io(String),
}

impl ConvertError {
    pub(crate) fn io(err: impl std::fmt::Display) -> Self {
        ConvertError::Io(err.to_string())
    }
}

/// Turns a document into PDF. Implementations must leave nothing running when the returned
/// future is dropped or `cancel` fires.
#[async_trait::async_trait]
pub trait Converter: Send + Sync {
    /// `Err(reason)` when the converter cannot run at all (LibreOffice is not installed, or
    /// its sandbox cannot be created).
    fn availability(&self) -> Result<(), String>;

    /// The converter's version (`LibreOffice 7.4.7.2 …`): a result made by another version
    /// is not reused. `None` when it cannot say.
    async fn version(&self) -> Option<String>;

    /// Converts `job.input` into a file inside `job.out_dir`.
    async fn convert(
        &self,
        job: &Conversion<'_>,
        cancel: CancellationToken,
    ) -> Result<Converted, ConvertError>;
}

/// One document to convert, and how.
#[derive(Debug, Clone, Copy)]
pub struct Conversion<'a> {
    pub input: &'a Path,
    /// Its real type.
    pub format: DocFormat,
    /// Where the PDF goes (the attempt's scratch directory).
    pub out_dir: &'a Path,
    /// How to write the PDF (when `office` is `None`).
    pub settings: &'a filter::PdfSettings,
    /// Write this office format instead of a PDF.
    pub office: Option<OfficeTarget<'a>>,
    /// Opens a password-protected document. Goes to LibreOffice over the helper's stdin only.
    pub password: Option<&'a Password>,
}

/// An office format for LibreOffice to write, with its filter's options string (CSV's
/// separator, quote and character set), if any.
#[derive(Debug, Clone, Copy)]
pub struct OfficeTarget<'a> {
    pub format: OutputFormat,
    pub filter_options: Option<&'a str>,
}

/// A document password in memory: wiped when dropped, never printed.
pub struct Password(zeroize::Zeroizing<String>);

impl Password {
    pub fn new(text: zeroize::Zeroizing<String>) -> Self {
        Password(text)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

/// How this process converts, as the service's configuration says.
#[derive(Debug, Clone)]
pub struct ConvertConfig {
    /// Keep one LibreOffice per slot running (else one per document).
    pub warm: bool,
    /// Conversions at once (warm slots).
    pub slots: usize,
    /// `soffice`: a path or a command on `PATH`.
    pub soffice: String,
    /// A Python with LibreOffice's `uno` module, for the warm helper.
    pub uno_python: String,
    /// Conversions before a warm LibreOffice is replaced.
    pub warm_restart_after: u32,
    pub limits: libreoffice::ProcessLimits,
    pub sandbox: sandbox::SandboxConfig,
    /// Where warm slots keep their profiles.
    pub work_dir: PathBuf,
}

/// The converter `config` describes; warm slots start lazily, on the first conversion. The
/// sandbox is tried now, so that `/readyz` can say at once if it cannot be made.
pub fn converter(config: &ConvertConfig) -> std::io::Result<std::sync::Arc<dyn Converter>> {
    let sandbox = std::sync::Arc::new(prepared_sandbox(config));
    let cold = libreoffice::LibreOffice::new(&config.soffice, config.limits, sandbox);
    // Cold converts on the command line; what that cannot do (passwords, landscape) goes
    // over UNO to a LibreOffice used for that one document.
    let options = warm::WarmOptions {
        slots: config.slots,
        restart_after: if config.warm {
            config.warm_restart_after
        } else {
            1
        },
        python: config.uno_python.clone(),
        root: config.work_dir.join("offload-warm"),
        start_timeout: std::time::Duration::from_secs(30),
        cold_first: !config.warm,
    };
    Ok(std::sync::Arc::new(warm::WarmLibreOffice::new(
        cold, options,
    )?))
}

/// The sandbox for `config`'s programs, with what an operator must know about it logged.
fn prepared_sandbox(config: &ConvertConfig) -> sandbox::Sandbox {
    let programs: Vec<PathBuf> = [&config.soffice, &config.uno_python]
        .into_iter()
        .filter_map(|p| process::resolve_binary(p))
        .collect();
    let on = config.sandbox.mode == sandbox::SandboxMode::Bubblewrap;
    for program in programs
        .iter()
        .filter(|p| sandbox::install_root(p).is_none())
    {
        if on {
            tracing::warn!(program = %program.display(), "installed outside /usr and /opt: not visible inside the converter sandbox");
        }
    }
    let refs: Vec<&Path> = programs.iter().map(PathBuf::as_path).collect();
    let sandbox = sandbox::Sandbox::new(&config.sandbox, &refs);
    match (on, sandbox.availability()) {
        (false, _) => tracing::warn!(
            "CONVERT_SANDBOX=off: LibreOffice runs WITHOUT a sandbox; a crafted document can read \
             this worker's files and reach its network. Use it only where namespaces are impossible."
        ),
        (true, Err(why)) => tracing::error!(%why, "exports will fail with converter_unavailable"),
        (true, Ok(())) => tracing::debug!("conversions run in a bubblewrap sandbox"),
    }
    sandbox
}

/// Puts `input` into the sandbox's exchange directory `dir` as `name` (a hard link when the
/// two share a filesystem, else a copy), so the sandbox sees that one file and nothing else of
/// the job's scratch space.
pub(crate) fn place_input(input: &Path, dir: &Path, name: &str) -> Result<PathBuf, ConvertError> {
    let placed = dir.join(name);
    let _ = std::fs::remove_file(&placed);
    if std::fs::hard_link(input, &placed).is_err() {
        std::fs::copy(input, &placed).map_err(ConvertError::io)?;
    }
    Ok(placed)
}

/// Moves a file the sandbox wrote out of its exchange directory (a rename when possible).
pub(crate) fn take_output(from: &Path, to: &Path) -> Result<(), ConvertError> {
    if std::fs::rename(from, to).is_err() {
        std::fs::copy(from, to).map_err(ConvertError::io)?;
        let _ = std::fs::remove_file(from);
    }
    Ok(())
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
