//! `export`: an uploaded office document to PDF.
//!
//! Steps (checkpointed): `inspect` (the real type's pre-flight checks and the slide or sheet
//! count), `convert` (LibreOffice; the PDF goes to storage), then the runner's `publish` and,
//! with a `callback_url`, `notify`. Progress messages: `downloading input` → `inspecting` →
//! `converting N slides` → `converted N pages; storing` → `done`.

use crate::model::codes;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::convert::sniff::{self, PackageLimits};
use crate::convert::{ConvertError, Converter, DocFormat, OutputFormat, references};
use crate::jobs::{GiveUp, JobContext, JobError, JobKind, JobOutput, OutputFile, Policy};
use crate::metrics::Metrics;
use crate::queue::ResultFile;

pub struct Export {
    converter: Arc<dyn Converter>,
    metrics: Arc<Metrics>,
    timeout: std::time::Duration,
    concurrency: usize,
    limits: PackageLimits,
    /// `false` only in tests that show the sandbox holding on its own.
    neutralize: bool,
}

/// How exports run.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// Time limit of one attempt.
    pub timeout: std::time::Duration,
    /// Conversions at once in one worker process.
    pub concurrency: usize,
    /// Cut external references out of documents before converting them (`false` only in
    /// tests that show the sandbox holding on its own).
    pub neutralize: bool,
}

impl Export {
    pub fn new(converter: Arc<dyn Converter>, config: ExportConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            converter,
            metrics,
            timeout: config.timeout,
            concurrency: config.concurrency,
            limits: PackageLimits::default(),
            neutralize: config.neutralize,
        }
    }
}

/// Arguments of an export; the API builds them from the multipart form.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportArgs {
    /// Output format; `pdf`.
    pub format: String,
}

impl JobKind for Export {
    const NAME: &'static str = "export";
    type Args = ExportArgs;
    const TAKES_UPLOAD: bool = true;
    const STEPS: &'static [&'static str] = &["inspect", "convert"];

    fn policy(&self, defaults: Policy) -> Policy {
        // One claimed job per free slot: an idle worker elsewhere can take the rest.
        Policy {
            timeout: self.timeout,
            concurrency: self.concurrency,
            batch_size: self.concurrency,
            give_up: Some(GiveUp {
                after_timeouts: 2,
                code: codes::DOCUMENT_TOO_COMPLEX,
                message: "the conversion timed out twice: the document is too complex to \
                          convert within EXPORT_TIMEOUT_SECS",
            }),
            ..defaults
        }
    }

    fn validate(&self, args: &ExportArgs) -> Result<(), String> {
        OutputFormat::parse(&args.format)
            .map(|_| ())
            .ok_or_else(|| format!("format {:?} is not supported; use \"pdf\"", args.format))
    }

    async fn run(&self, ctx: JobContext, args: ExportArgs) -> Result<JobOutput, JobError> {
        let out = OutputFormat::parse(&args.format).ok_or_else(|| {
            JobError::fatal(codes::INVALID_ARGUMENTS, "unsupported output format")
        })?;
        self.converter.availability().map_err(|why| {
            JobError::fatal(
                codes::CONVERTER_UNAVAILABLE,
                format!("LibreOffice is not available on this worker: {why}"),
            )
        })?;
        let input = ctx
            .input()
            .cloned()
            .ok_or_else(|| JobError::fatal(codes::MISSING_INPUT, "no document"))?;
        let format = DocFormat::from_extension(&input.format).ok_or_else(|| {
            JobError::fatal(
                codes::UNSUPPORTED_TYPE,
                format!("unknown stored format {:?}", input.format),
            )
        })?;
        let inspected: Inspected = ctx.step("inspect", self.inspect(&ctx, format)).await?;
        let stored = ctx
            .step(
                "convert",
                self.convert(&ctx, format, out, &input.filename, inspected),
            )
            .await?;
        Ok(JobOutput::stored(stored))
    }
}

/// What a failed conversion means for the job.
fn job_error(err: ConvertError) -> JobError {
    let message = err.to_string();
    match err {
        ConvertError::Unavailable(_) => JobError::fatal(codes::CONVERTER_UNAVAILABLE, message),
        ConvertError::Rejected(_) => JobError::fatal(codes::CONVERSION_FAILED, message),
        ConvertError::Crashed(_) => JobError::retryable(codes::CONVERTER_CRASHED, message),
        ConvertError::Failed(_) => JobError::retryable(codes::CONVERSION_FAILED, message),
        ConvertError::TooComplex(_) => JobError::fatal(codes::DOCUMENT_TOO_COMPLEX, message),
        ConvertError::Cancelled => JobError::fatal(codes::CANCELLED, message),
        ConvertError::Io(_) => JobError::internal(message),
    }
}

/// What the `inspect` step learned.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Inspected {
    /// e.g. "5 slides"
    what: Option<String>,
}

impl Export {
    /// The uploaded document in this attempt's scratch directory (downloaded once per attempt).
    async fn input_path(ctx: &JobContext) -> Result<std::path::PathBuf, JobError> {
        let ext = ctx.input().map(|i| i.format.clone()).unwrap_or_default();
        let path = ctx.work_dir().join(format!("input.{ext}"));
        if path.exists() {
            return Ok(path);
        }
        ctx.progress(5, "downloading input").await?;
        ctx.fetch_input().await
    }

    /// A copy of the input without references to anything outside it (the sandbox is the
    /// boundary; this keeps a document from even trying), and how many were removed. The input
    /// itself when there were none.
    async fn without_external_references(
        input: &std::path::Path,
        format: DocFormat,
    ) -> Result<(std::path::PathBuf, usize), JobError> {
        let input = input.to_path_buf();
        let output = input.with_file_name(format!("neutralized.{}", format.extension()));
        let out = output.clone();
        let report = tokio::task::spawn_blocking(move || {
            references::neutralize(&input, format, &out).map(|r| (input, r))
        })
        .await
        .map_err(JobError::internal)?
        .map_err(job_error)?;
        match report {
            (input, None) => Ok((input, 0)),
            (_, Some(report)) => {
                tracing::info!(removed = ?report.removed, "external references removed before conversion");
                Ok((output, report.removed.len()))
            }
        }
    }

    /// Step `inspect`: the real type's pre-flight checks (package limits, encryption, XML
    /// depth) and the slide or sheet count.
    async fn inspect(&self, ctx: &JobContext, format: DocFormat) -> Result<Inspected, JobError> {
        let path = Self::input_path(ctx).await?;
        ctx.progress(10, "inspecting").await?;
        let limits = self.limits.clone();
        let info = tokio::task::spawn_blocking(move || sniff::inspect(&path, format, &limits))
            .await
            .map_err(JobError::internal)?
            .map_err(|e| match e {
                sniff::InspectError::Refused(code, message) => JobError::fatal(code, message),
                sniff::InspectError::Io(why) => JobError::internal(why),
            })?;
        Ok(Inspected {
            what: info.describe(format),
        })
    }

    /// Step `convert`: LibreOffice, then the PDF into storage (so that `publish` after a crash
    /// needs no second conversion).
    async fn convert(
        &self,
        ctx: &JobContext,
        format: DocFormat,
        out: OutputFormat,
        filename: &str,
        inspected: Inspected,
    ) -> Result<ResultFile, JobError> {
        let path = Self::input_path(ctx).await?;
        let (path, removed) = match self.neutralize {
            true => Self::without_external_references(&path, format).await?,
            false => (path, 0),
        };
        let mut what = inspected
            .what
            .map(|d| format!("converting {d}"))
            .unwrap_or_else(|| "converting".into());
        if removed > 0 {
            let s = if removed == 1 { "" } else { "s" };
            what.push_str(&format!(" ({removed} external reference{s} removed)"));
        }
        ctx.progress(30, what).await?;
        let _in_flight = self.metrics.conversion_started();
        let converted = self
            .converter
            .convert(&path, format, ctx.work_dir(), ctx.cancel_token())
            .await
            .map_err(job_error)?;
        ctx.progress(90, format!("converted {} pages; storing", converted.pages))
            .await?;
        let stem = std::path::Path::new(filename)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "document".into());
        ctx.store(&OutputFile {
            path: converted.path,
            filename: format!("{stem}.{}", out.extension()),
            content_type: out.media_type().to_string(),
        })
        .await
    }
}
