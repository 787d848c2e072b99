//! `export`: an uploaded office document to PDF.
//!
//! Steps (checkpointed): `inspect` (the real type's pre-flight checks, encryption, and the
//! slide or sheet count), `convert` (LibreOffice with the job's options; the PDF goes to
//! storage, and into the result cache), then the runner's `publish` and, with a
//! `callback_url`, `notify`. Progress messages: `downloading input` → `inspecting` →
//! `converting N slides` → `converted N pages; storing` → `done`.

use crate::model::codes;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::convert::filter::PdfSettings;
use crate::convert::sniff::{self, PackageLimits};
use crate::convert::{
    Conversion, ConvertError, Converter, DocFormat, OutputFormat, Password, references,
};
use crate::jobs::cache::{CacheKey, ResultCache};
use crate::jobs::{GiveUp, JobContext, JobError, JobKind, JobOutput, OutputFile, Policy};
use crate::metrics::Metrics;
use crate::model::options::ExportOptions;
use crate::queue::ResultFile;
use crate::secrets::SecretKey;

pub struct Export {
    converter: Arc<dyn Converter>,
    metrics: Arc<Metrics>,
    timeout: std::time::Duration,
    concurrency: usize,
    limits: PackageLimits,
    /// `false` only in tests that show the sandbox holding on its own.
    neutralize: bool,
    secrets: Option<SecretKey>,
    cache: Option<ResultCache>,
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
    /// Opens the passwords the API sealed (`SECRET_KEY`).
    pub secrets: Option<SecretKey>,
    /// Where converted results are kept for repeats (`None`: not kept).
    pub cache: Option<ResultCache>,
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
            secrets: config.secrets,
            cache: config.cache,
        }
    }
}

/// Arguments of an export; the API builds them from the multipart form.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportArgs {
    /// Output format; `pdf`.
    pub format: String,
    /// How to export (checked at submit).
    #[serde(default, skip_serializing_if = "ExportOptions::is_empty")]
    pub options: ExportOptions,
    /// Keep the result in the result cache under this key (absent: `cache=bypass`, or a
    /// password-protected document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<CacheKey>,
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
            .ok_or_else(|| format!("format {:?} is not supported; use \"pdf\"", args.format))?;
        args.options.check(false).map_err(|e| e.to_string())
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
        let password = self.password(&ctx, format, &inspected)?;
        let job = ExportJob {
            format,
            out,
            filename: &input.filename,
            options: &args.options,
            password: password.as_ref(),
            inspected,
        };
        let stored = ctx.step("convert", self.convert(&ctx, job)).await?;
        if let Some(key) = &args.cache_key {
            self.keep(key, &stored).await;
        }
        Ok(JobOutput::stored(stored))
    }
}

/// What the `convert` step needs.
struct ExportJob<'a> {
    format: DocFormat,
    out: OutputFormat,
    filename: &'a str,
    options: &'a ExportOptions,
    password: Option<&'a Password>,
    inspected: Inspected,
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
        ConvertError::PasswordIncorrect(_) => JobError::fatal(codes::PASSWORD_INCORRECT, message),
        ConvertError::Io(_) => JobError::internal(message),
    }
}

/// What the `inspect` step learned.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Inspected {
    /// e.g. "5 slides"
    what: Option<String>,
    /// Password-protected.
    #[serde(default)]
    encrypted: bool,
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
            encrypted: info.encrypted,
        })
    }

    /// The password that opens a password-protected document, or why there is none to use.
    fn password(
        &self,
        ctx: &JobContext,
        format: DocFormat,
        inspected: &Inspected,
    ) -> Result<Option<Password>, JobError> {
        if !inspected.encrypted {
            return Ok(None);
        }
        if format == DocFormat::Ppt {
            return Err(JobError::fatal(
                codes::DOCUMENT_ENCRYPTED,
                "LibreOffice cannot open password-protected .ppt files, even with the \
                 password; save it as .pptx (or without the password) and upload it again",
            ));
        }
        let Some(sealed) = ctx.sealed_password() else {
            return Err(JobError::fatal(
                codes::PASSWORD_REQUIRED,
                "the document is password-protected; send its password in the `password` \
                 field (passwords are wiped when a job ends, so a retried job needs a new upload)",
            ));
        };
        let opened = self
            .secrets
            .as_ref()
            .and_then(|key| key.open(ctx.job_id(), sealed).ok())
            .ok_or_else(|| {
                JobError::fatal(
                    codes::PASSWORD_REQUIRED,
                    "the document's password cannot be read on this worker (its SECRET_KEY is \
                     not the one the API sealed it with); submit the document again",
                )
            })?;
        Ok(Some(Password::new(opened)))
    }

    /// Keeps a fresh result in the cache; a failure there costs the next submit a conversion,
    /// not this job its result.
    async fn keep(&self, key: &CacheKey, stored: &ResultFile) {
        let (Some(cache), Some(version)) = (&self.cache, self.converter.version().await) else {
            return;
        };
        if let Err(why) = cache.keep(key, &version, stored).await {
            tracing::warn!(%why, "the result could not be kept in the cache");
        }
    }

    /// Step `convert`: LibreOffice, then the PDF into storage (so that `publish` after a crash
    /// needs no second conversion).
    async fn convert(&self, ctx: &JobContext, job: ExportJob<'_>) -> Result<ResultFile, JobError> {
        let ExportJob {
            format,
            out,
            filename,
            options,
            password,
            inspected,
        } = job;
        let path = Self::input_path(ctx).await?;
        // An encrypted document's parts cannot be read before LibreOffice decrypts them: the
        // sandbox alone holds it.
        let (path, removed) = match self.neutralize && !inspected.encrypted {
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
        let settings = PdfSettings::new(options, format.family());
        let conversion = Conversion {
            input: &path,
            format,
            out_dir: ctx.work_dir(),
            settings: &settings,
            password,
        };
        let converted = self
            .converter
            .convert(&conversion, ctx.cancel_token())
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
