//! `export`: an uploaded office document to PDF, page images or another office format.
//!
//! Steps (checkpointed): `inspect` (the real type's pre-flight checks, encryption, and the
//! slide or sheet count), `convert` (LibreOffice with the job's options; the PDF or office
//! file goes to storage, and into the result cache), for page images and thumbnails `render`
//! (pages of that same PDF, so images match the PDF download page for page), then the
//! runner's `publish` and, with a `callback_url`, `notify`. Progress messages:
//! `downloading input` → `inspecting` → `converting N slides` → `converted N pages; storing`
//! → `rendering N pages` → `done`.

use crate::model::codes;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::convert::filter::PdfSettings;
use crate::convert::render::{ImageFormat, ImageSize, RenderedPage, Renderer};
use crate::convert::sniff::{self, PackageLimits};
use crate::convert::{
    Conversion, ConvertError, Converter, DocFormat, OfficeTarget, OutputFormat, Password,
    references,
};
use crate::jobs::cache::{CacheKey, ResultCache};
use crate::jobs::{GiveUp, JobContext, JobError, JobKind, JobOutput, OutputFile, Policy};
use crate::metrics::Metrics;
use crate::model::options::ExportOptions;
use crate::model::{PartFile, ResultParts};
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
    renderer: Option<Arc<Renderer>>,
    max_render_pages: u32,
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
    /// Renders page images (`None`: image exports fail as `converter_unavailable`).
    pub renderer: Option<Arc<Renderer>>,
    /// Most pages one image export renders (`MAX_RENDER_PAGES`).
    pub max_render_pages: u32,
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
            renderer: config.renderer,
            max_render_pages: config.max_render_pages,
        }
    }
}

/// Arguments of an export; the API builds them from the multipart form.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportArgs {
    /// Output format: `pdf`, `png`, `jpeg`, `webp`, or an office format of the document's
    /// family (`docx`, `xlsx`, `csv`, `pptx`, …).
    pub format: String,
    /// How to export (checked at submit).
    #[serde(default, skip_serializing_if = "ExportOptions::is_empty")]
    pub options: ExportOptions,
    /// Keep the result in the result cache under this key (absent: `cache=bypass`, or a
    /// password-protected document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<CacheKey>,
    /// Add a PNG of page 1 fitting inside this many pixels square.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<u32>,
}

impl Export {
    /// Whether `row` is an export of a password-protected document whose password is gone
    /// (wiped when the job ended): running it again can only fail `password_required`.
    pub fn password_lost(row: &crate::queue::JobRecord) -> bool {
        let encrypted = |step: &crate::model::Step| {
            step.output
                .as_ref()
                .and_then(|o| o.get("encrypted"))
                .and_then(serde_json::Value::as_bool)
                == Some(true)
        };
        row.kind == Self::NAME
            && row.secret.is_none()
            && row
                .steps
                .iter()
                .any(|s| s.name == "inspect" && encrypted(s))
    }
}

/// Thumbnail sizes accepted, in pixels.
pub const THUMBNAIL_PIXELS: std::ops::RangeInclusive<u32> = 16..=2048;

impl ExportArgs {
    /// Whether this export renders images (pages, or a thumbnail).
    pub fn renders(&self) -> bool {
        OutputFormat::parse(&self.format).is_some_and(OutputFormat::is_image)
            || self.thumbnail.is_some()
    }

    /// The steps this export goes through (`render` only when it makes images).
    pub fn steps(&self) -> Vec<&'static str> {
        let mut steps = Export::STEPS.to_vec();
        if self.renders() {
            steps.push("render");
        }
        steps
    }
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
        let out = OutputFormat::parse(&args.format)
            .ok_or_else(|| format!("format {:?} is not supported", args.format))?;
        if let Some(px) = args.thumbnail
            && !THUMBNAIL_PIXELS.contains(&px)
        {
            return Err(format!("thumbnail: {px} is not within 16–2048 pixels"));
        }
        args.options.check(false, out).map_err(|e| e.to_string())
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
        let converted = ctx.step("convert", self.convert(&ctx, job)).await?;
        let stored = match args.renders() {
            false => converted,
            true => {
                let render = RenderJob {
                    out,
                    format,
                    filename: &input.filename,
                    options: &args.options,
                    thumbnail: args.thumbnail,
                    converted,
                    password: password.as_ref(),
                };
                ctx.step("render", self.render(&ctx, render)).await?
            }
        };
        // Results of several files are not cached: only single files are (see `use_cache`).
        if let (Some(key), Some(sha256)) = (&args.cache_key, &input.sha256)
            && stored.parts.is_empty()
        {
            self.keep(key, sha256, &stored).await;
        }
        Ok(JobOutput::stored(stored))
    }
}

/// What the `render` step needs.
struct RenderJob<'a> {
    out: OutputFormat,
    format: DocFormat,
    filename: &'a str,
    options: &'a ExportOptions,
    thumbnail: Option<u32>,
    /// What the `convert` step stored: the PDF to render (or, for an office output, the
    /// result the thumbnail goes with).
    converted: ResultFile,
    password: Option<&'a Password>,
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
        let path = ctx.work_dir()?.join(format!("input.{ext}"));
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
    async fn keep(&self, key: &CacheKey, input: &str, stored: &ResultFile) {
        let (Some(cache), Some(version)) = (&self.cache, self.converter.version().await) else {
            return;
        };
        if let Err(why) = cache.keep(key, input, &version, stored).await {
            tracing::warn!(%why, "the result could not be kept in the cache");
        }
    }

    /// Step `convert`: LibreOffice, then its PDF or office file into storage (so that
    /// `publish` or `render` after a crash needs no second conversion). Image exports convert
    /// to PDF here.
    async fn convert(&self, ctx: &JobContext, job: ExportJob<'_>) -> Result<ResultFile, JobError> {
        let ExportJob {
            format,
            out,
            filename,
            options,
            password,
            inspected,
        } = job;
        let (path, removed) = self
            .prepared_input(ctx, format, inspected.encrypted)
            .await?;
        let mut what = inspected
            .what
            .map(|d| format!("converting {d}"))
            .unwrap_or_else(|| "converting".into());
        if removed > 0 {
            let s = if removed == 1 { "" } else { "s" };
            what.push_str(&format!(" ({removed} external reference{s} removed)"));
        }
        ctx.progress(30, what).await?;
        let written = match out.is_office() {
            true => out,
            false => OutputFormat::Pdf,
        };
        let converted = self
            .libreoffice(ctx, &path, format, written, options, password)
            .await?;
        let what = match converted.pages {
            0 => "converted; storing".to_string(),
            n => format!("converted {n} pages; storing"),
        };
        ctx.progress(if out.is_image() { 60 } else { 90 }, what)
            .await?;
        ctx.store(&OutputFile {
            path: converted.path,
            filename: format!("{}.{}", stem(filename), written.extension()),
            content_type: written.media_type().to_string(),
        })
        .await
    }

    /// The input as LibreOffice gets it: without external references (an encrypted
    /// document's parts cannot be read before LibreOffice decrypts them: the sandbox alone
    /// holds it), and how many were removed.
    async fn prepared_input(
        &self,
        ctx: &JobContext,
        format: DocFormat,
        encrypted: bool,
    ) -> Result<(std::path::PathBuf, usize), JobError> {
        let path = Self::input_path(ctx).await?;
        match self.neutralize && !encrypted {
            true => Self::without_external_references(&path, format).await,
            false => Ok((path, 0)),
        }
    }

    /// One LibreOffice conversion of `path` into `written` (PDF with `options`, or an office
    /// format).
    async fn libreoffice(
        &self,
        ctx: &JobContext,
        path: &std::path::Path,
        format: DocFormat,
        written: OutputFormat,
        options: &ExportOptions,
        password: Option<&Password>,
    ) -> Result<crate::convert::Converted, JobError> {
        let _in_flight = self.metrics.conversion_started();
        let settings = PdfSettings::new(options, format.family());
        let csv = options.csv.clone().unwrap_or_default().filter_options();
        let office = written.is_office().then(|| OfficeTarget {
            format: written,
            filter_options: (written == OutputFormat::Csv).then_some(csv.as_str()),
        });
        let conversion = Conversion {
            input: path,
            format,
            out_dir: ctx.work_dir()?,
            settings: &settings,
            office,
            password,
        };
        self.converter
            .convert(&conversion, ctx.cancel_token())
            .await
            .map_err(job_error)
    }

    /// Step `render`: page images of the PDF the `convert` step made (a zip of them is the
    /// result when there are several), and a page-1 thumbnail.
    async fn render(&self, ctx: &JobContext, job: RenderJob<'_>) -> Result<ResultFile, JobError> {
        let renderer = self.renderer.as_ref().ok_or_else(|| {
            JobError::fatal(
                codes::CONVERTER_UNAVAILABLE,
                "this worker cannot render page images",
            )
        })?;
        let pdf = self.pdf_to_render(ctx, &job).await?;
        let count = crate::convert::render::page_boxes_off_thread(&pdf)
            .await
            .map_err(job_error)?
            .len() as u32;
        let mut result = match job.out.is_image() {
            true => self.page_images(ctx, renderer, &pdf, count, &job).await?,
            false => job.converted.clone(),
        };
        if let Some(px) = job.thumbnail {
            let size = ImageSize {
                width: Some(px),
                height: Some(px),
                dpi: None,
            };
            let dir = ctx.work_dir()?.join("thumbnail");
            let page = self
                .draw(ctx, renderer, &pdf, &[1], size, ImageFormat::Png, &dir)
                .await?
                .remove(0);
            let name = format!("{}-thumbnail.png", stem(job.filename));
            let stored = self
                .store_page(ctx, page, (&name, "image/png"), "thumbnail.png")
                .await?;
            result.parts.thumbnail = Some(stored);
        }
        Ok(result)
    }

    /// The PDF to render: the one `convert` made (here, or downloaded when an earlier attempt
    /// made it), or for an office export a fresh one of page 1, for its thumbnail.
    async fn pdf_to_render(
        &self,
        ctx: &JobContext,
        job: &RenderJob<'_>,
    ) -> Result<std::path::PathBuf, JobError> {
        if job.out.is_office() {
            let encrypted = job.password.is_some();
            let (path, _) = self.prepared_input(ctx, job.format, encrypted).await?;
            let first = ExportOptions {
                page_range: Some("1".into()),
                ..Default::default()
            };
            let pdf = self
                .libreoffice(
                    ctx,
                    &path,
                    job.format,
                    OutputFormat::Pdf,
                    &first,
                    job.password,
                )
                .await?;
            return Ok(pdf.path);
        }
        let local = ctx.work_dir()?.join("output.pdf");
        if !local.is_file() {
            ctx.fetch_stored(&job.converted.key, &local).await?;
        }
        Ok(local)
    }

    /// Every selected page as an image, stored; the result is the one image, or a zip of all.
    async fn page_images(
        &self,
        ctx: &JobContext,
        renderer: &Renderer,
        pdf: &std::path::Path,
        count: u32,
        job: &RenderJob<'_>,
    ) -> Result<ResultFile, JobError> {
        let options = job.options;
        let mut pages = match &options.pages {
            Some(spec) => crate::model::options::expand_pages(spec, count),
            None => (1..=count).collect(),
        };
        if pages.is_empty() {
            return Err(JobError::fatal(
                codes::INVALID_ARGUMENTS,
                format!("options.pages selects none of the PDF's {count} pages"),
            ));
        }
        let capped = pages.len() > self.max_render_pages as usize;
        pages.truncate(self.max_render_pages as usize);
        let what = match capped {
            true => format!("rendering {} pages (MAX_RENDER_PAGES)", pages.len()),
            false => format!("rendering {} pages", pages.len()),
        };
        ctx.progress(70, what).await?;
        let format = match job.out {
            OutputFormat::Jpeg => ImageFormat::Jpeg,
            OutputFormat::Webp => ImageFormat::Webp,
            _ => ImageFormat::Png,
        };
        let size = ImageSize {
            width: options.width,
            height: options.height,
            dpi: options.dpi,
        };
        let dir = ctx.work_dir()?.join("pages");
        let rendered = self
            .draw(ctx, renderer, pdf, &pages, size, format, &dir)
            .await?;
        ctx.progress(90, format!("rendered {} pages; storing", rendered.len()))
            .await?;
        let stem = stem(job.filename);
        let mut files = Vec::with_capacity(rendered.len());
        for page in rendered {
            let ext = format.extension();
            let (name, key) = (
                format!("{stem}-{}.{ext}", page.page),
                format!("page-{}.{ext}", page.page),
            );
            let stored = self
                .store_page(ctx, page, (&name, job.out.media_type()), &key)
                .await?;
            files.push(stored);
        }
        let mut main = match files.as_slice() {
            [one] => ResultFile {
                key: one.key.clone(),
                filename: one.filename.clone(),
                content_type: one.content_type.clone(),
                size: one.size,
                parts: ResultParts::default(),
            },
            _ => {
                let zip = ctx.work_dir()?.join("pages.zip");
                let (d, f, z) = (dir.clone(), files.clone(), zip.clone());
                tokio::task::spawn_blocking(move || zip_pages(&d, &f, &z))
                    .await
                    .map_err(JobError::internal)??;
                let file = OutputFile {
                    path: zip,
                    filename: format!("{stem}-pages.zip"),
                    content_type: "application/zip".into(),
                };
                ctx.store_named(&file, "pages.zip").await?
            }
        };
        main.parts.files = files;
        Ok(main)
    }

    /// The renderer, with its failures as job errors.
    #[allow(clippy::too_many_arguments)]
    async fn draw(
        &self,
        ctx: &JobContext,
        renderer: &Renderer,
        pdf: &std::path::Path,
        pages: &[u32],
        size: ImageSize,
        format: ImageFormat,
        dir: &std::path::Path,
    ) -> Result<Vec<RenderedPage>, JobError> {
        renderer
            .render(pdf, pages, size, format, dir, &ctx.cancel_token())
            .await
            .map_err(job_error)
    }

    /// Stores one image as `(filename, content_type)` under the service-made name `key`.
    async fn store_page(
        &self,
        ctx: &JobContext,
        page: RenderedPage,
        (filename, content_type): (&str, &str),
        name: &str,
    ) -> Result<PartFile, JobError> {
        let file = OutputFile {
            path: page.path,
            filename: filename.to_string(),
            content_type: content_type.to_string(),
        };
        let stored = ctx.store_named(&file, name).await?;
        Ok(PartFile {
            page: page.page,
            key: stored.key,
            filename: stored.filename,
            content_type: stored.content_type,
            size: stored.size,
            width: page.width,
            height: page.height,
        })
    }
}

use crate::storage::document_stem as stem;

/// A zip of the rendered pages (stored, not deflated: the images are compressed already),
/// written to disk entry by entry, never held in memory.
fn zip_pages(
    dir: &std::path::Path,
    files: &[PartFile],
    to: &std::path::Path,
) -> Result<(), JobError> {
    let write = || -> Result<(), String> {
        let out = std::fs::File::create(to).map_err(|e| e.to_string())?;
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(out));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        for file in files {
            let ext = std::path::Path::new(&file.filename)
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            let local = dir.join(format!("page-{}.{ext}", file.page));
            zip.start_file(file.filename.as_str(), options)
                .map_err(|e| e.to_string())?;
            let mut page = std::fs::File::open(&local).map_err(|e| e.to_string())?;
            std::io::copy(&mut page, &mut zip).map_err(|e| e.to_string())?;
        }
        zip.finish().map_err(|e| e.to_string())?;
        Ok(())
    };
    write().map_err(|why| JobError::internal(format!("zipping the pages: {why}")))
}
