//! `POST /api/v1/exports`: upload a document, get an export job back at once.

use std::io::Seek;
use std::sync::Arc;

use super::body::JsonAnswer;
use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Multipart, OpenApi};

use super::errors::{ApiError, ApiErrorCode, operation_errors};
use super::limits::guard_upload;
use super::{ApiState, Idempotent, Tag};
use crate::convert::sniff::{self, SniffError};
use crate::convert::{DocFormat, OutputFormat};
use crate::jobs::JobKind;
use crate::jobs::cache::CacheKey;
use crate::jobs::kinds::export::{ExportArgs, THUMBNAIL_PIXELS};
use crate::jobs::kinds::{Export, Merge};
use crate::metrics::CacheOutcome;
use crate::model::batch::{Batch, NewBatch};
use crate::model::options::{CacheMode, ExportOptions};
use crate::model::view::Job;
use crate::queue::{InputFile, NewJob};
use crate::storage;

/// The export form. A field it does not name is refused (400), so a typo does not pass as a
/// default.
#[derive(Debug, Multipart)]
#[oai(deny_unknown_fields)]
pub struct ExportForm {
    /// The document: pptx, ppt, odp, docx, doc, odt, rtf, xlsx, xls or ods. Its type is read
    /// from its content, not from its name. Several `file` parts make a **batch** (up to 100:
    /// one job per file, answered as `{batch}`), or with `merge=true` one merged PDF (up to
    /// 20). All files together stay within `max_upload_bytes`.
    file: Vec<Upload>,
    /// Output format (default `pdf`): `pdf`; page images `png`, `jpeg` or `webp` (one per
    /// page; a zip of them is the result when there are several, and each is in
    /// `result.files`); or an office format of the document's family — `docx`, `odt`, `rtf`,
    /// `txt`, `html` from text documents, `xlsx`, `ods`, `csv` from spreadsheets, `pptx`, `odp`
    /// from presentations (`GET /api/v1/formats` lists them per input type). A merge makes PDF.
    format: Option<FormField<OutputFormat>>,
    /// Add a PNG thumbnail of page 1 fitting inside this many pixels square (16–2048), as
    /// `result.thumbnail` (`0` or absent: none).
    thumbnail: Option<u32>,
    /// How to export, as JSON: `{"page_range": "1-3", "pdf_a": "2b", "watermark": {"text":
    /// "DRAFT"}}`. The same options apply to every file of a merge. Echoed in the job.
    options: Option<JsonField<ExportOptions>>,
    /// The password of a password-protected document (every file of a merge that needs one
    /// gets it). Never shown, logged or sent on: sealed at rest, wiped when the job ends.
    password: Option<SecretField>,
    /// `use` (default): answer from the result cache when this document was exported with the
    /// same options before; `bypass`: convert, leave the cache alone; `refresh`: convert and
    /// replace the cached result. Password-protected documents are never cached.
    cache: Option<FormField<CacheMode>>,
    /// `interactive` (someone waits for it: claimed first; what the upload page sends),
    /// `normal` (default) or `bulk` (only when nothing else waits).
    priority: Option<FormField<crate::model::Priority>>,
    /// Your labels, as a JSON object of strings (at most 16 keys of `A-Za-z0-9_-`, values up
    /// to 256 characters): `{"customer": "acme"}`. Echoed in the job and its webhook; list by
    /// them with `GET /jobs?metadata.<key>=<value>`. Every job of a merge gets them.
    metadata: Option<JsonField<std::collections::BTreeMap<String, String>>>,
    /// With several files: convert them in parallel and join the PDFs, in upload order, into
    /// one. The answer is the merge job; its `parts` are the per-file jobs.
    merge: Option<bool>,
    /// Where to POST the job (signed) when it ends — in a batch, each job; needs
    /// `WEBHOOK_SECRET` on the service and a public address (or one `OUTBOUND_ALLOW` names).
    callback_url: Option<String>,
    /// With several files and no merge: where to POST the batch (signed, like job webhooks,
    /// `Offload-Event: batch.ended`) once, when every job in it has ended.
    batch_callback_url: Option<String>,
    /// Run no earlier than this (RFC 3339, e.g. `2026-11-22T18:00:00Z`); the job waits in
    /// `queued` until then.
    run_at: Option<String>,
}

/// Most files one merge job joins.
const MAX_PARTS: usize = 20;
/// Most files one batch upload takes (all of them within the request's body limit).
const MAX_BATCH_FILES: usize = 100;

/// A job was accepted (or, for a repeated `Idempotency-Key`, found).
#[derive(ApiResponse)]
pub enum Accepted {
    /// Accepted; follow it at `Location`.
    #[oai(status = 202)]
    Accepted(JsonAnswer<Job>, #[oai(header = "Location")] String),
}

impl Accepted {
    pub fn job(job: Job) -> Self {
        let location = format!("/api/v1/jobs/{}", job.id);
        Accepted::Accepted(JsonAnswer(job), location)
    }
}

/// What `POST /exports` accepted: one job (one file, or a merge of several), or a batch
/// (several files without `merge`).
#[derive(Debug, poem_openapi::Union, serde::Serialize)]
#[oai(one_of)]
// poem-openapi writes a union without a discriminator as the variant's own object.
#[serde(untagged)]
pub enum ExportAnswer {
    Job(Box<Job>),
    Batch(BatchAccepted),
}

/// A batch was accepted (or, for a repeated `Idempotency-Key`, found).
#[derive(Debug, poem_openapi::Object, serde::Serialize)]
pub struct BatchAccepted {
    pub batch: Batch,
}

/// See [`ExportAnswer`].
#[derive(ApiResponse)]
pub enum ExportAccepted {
    /// Accepted: the job, or `{batch}` for several files without `merge`; follow it at
    /// `Location`.
    #[oai(status = 202)]
    Accepted(JsonAnswer<ExportAnswer>, #[oai(header = "Location")] String),
}

impl ExportAccepted {
    fn job(job: Job) -> Self {
        let location = format!("/api/v1/jobs/{}", job.id);
        ExportAccepted::Accepted(JsonAnswer(ExportAnswer::Job(Box::new(job))), location)
    }

    pub fn batch(batch: Batch) -> Self {
        let location = format!("/api/v1/batches/{}", batch.id);
        ExportAccepted::Accepted(
            JsonAnswer(ExportAnswer::Batch(BatchAccepted { batch })),
            location,
        )
    }
}

pub struct ExportsApi;

operation_errors!(
    /// Errors of `POST /exports`.
    CreateExportError {
        BadRequest = 400 "Malformed form (no `file` part, more files than a merge or a batch takes), an empty file, an invalid `run_at`, or an invalid `Idempotency-Key` (or one that named a job where this request makes a batch, or the other way round).",
        TooLarge = 413 "The files are larger than `max_upload_bytes` (see `GET /api/v1/formats`), or would take the tenant over its stored-bytes quota (`storage_quota`).",
        UnsupportedType = 415 "The file is not a document type this service converts, or the request is not `multipart/form-data`.",
        Invalid = 422 "Unsupported output `format`, an invalid `options` or `cache` value, a `password` this service cannot keep, or a `callback_url` (`batch_callback_url`) this service may not call.",
    }
);

/// A text form field as sent: a known value of `T`, or the text of one this service does not
/// know (refused by the handler as a 422 naming the field, rather than by the form parser as a
/// malformed form). Its schema is `T`'s, so the spec lists the values.
#[derive(Debug, Clone)]
pub enum FormField<T> {
    Known(T),
    Unknown(String),
}

impl<T> FormField<T> {
    /// The value of an optional field: `default` when it was not sent, the known value, or
    /// the refusal `refuse` makes of the text this service does not know.
    fn value_or(
        field: Option<Self>,
        default: T,
        refuse: impl FnOnce(String) -> ApiError,
    ) -> Result<T, ApiError> {
        match field {
            None => Ok(default),
            Some(FormField::Known(value)) => Ok(value),
            Some(FormField::Unknown(text)) => Err(refuse(text)),
        }
    }
}

impl<T: poem_openapi::types::Type> poem_openapi::types::Type for FormField<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        T::register(registry)
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl<T> poem_openapi::types::ParseFromMultipartField for FormField<T>
where
    T: poem_openapi::types::ParseFromParameter + Send + Sync,
{
    async fn parse_from_multipart(
        field: Option<poem::web::Field>,
    ) -> poem_openapi::types::ParseResult<Self> {
        use poem_openapi::types::ParseError;
        let Some(field) = field else {
            return Err(ParseError::expected_input());
        };
        let text = field.text().await.map_err(ParseError::custom)?;
        Ok(match T::parse_from_parameter(&text) {
            Ok(known) => FormField::Known(known),
            Err(_) => FormField::Unknown(text),
        })
    }
}

/// A JSON form field: its text, parsed by the handler with serde so that an error names the
/// field inside it (`options.page_range: …`). Its schema is `T`'s.
#[derive(Debug, Clone)]
pub struct JsonField<T>(String, std::marker::PhantomData<T>);

impl<T: serde::de::DeserializeOwned> JsonField<T> {
    /// The value, or why not, naming the field as `name.path`.
    fn parse(&self, name: &str) -> Result<T, String> {
        let mut de = serde_json::Deserializer::from_str(&self.0);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." {
                name.to_string()
            } else {
                format!("{name}.{path}")
            };
            format!("{at}: {}", e.inner())
        })
    }
}

impl<T: poem_openapi::types::Type> poem_openapi::types::Type for JsonField<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        T::register(registry)
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl<T: poem_openapi::types::Type> poem_openapi::types::ParseFromMultipartField for JsonField<T> {
    async fn parse_from_multipart(
        field: Option<poem::web::Field>,
    ) -> poem_openapi::types::ParseResult<Self> {
        use poem_openapi::types::ParseError;
        let Some(field) = field else {
            return Err(ParseError::expected_input());
        };
        let text = field.text().await.map_err(ParseError::custom)?;
        Ok(JsonField(text, std::marker::PhantomData))
    }
}

/// A secret form field (a document password): documented as `format: password`, wiped from
/// memory when dropped, never printed.
pub struct SecretField(zeroize::Zeroizing<String>);

impl std::fmt::Debug for SecretField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretField(…)")
    }
}

impl poem_openapi::types::Type for SecretField {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        poem_openapi::types::Password::name()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        poem_openapi::types::Password::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl poem_openapi::types::ParseFromMultipartField for SecretField {
    async fn parse_from_multipart(
        field: Option<poem::web::Field>,
    ) -> poem_openapi::types::ParseResult<Self> {
        use poem_openapi::types::ParseError;
        let Some(field) = field else {
            return Err(ParseError::expected_input());
        };
        let text = field.text().await.map_err(ParseError::custom)?;
        Ok(SecretField(zeroize::Zeroizing::new(text)))
    }
}

/// What every part of one export shares.
struct Plan<'a> {
    args: serde_json::Value,
    steps: Vec<&'static str>,
    output: OutputFormat,
    /// It makes images (pages, a thumbnail): a result of several files.
    renders: bool,
    options: &'a ExportOptions,
    password: Option<&'a str>,
    cache: CacheMode,
    /// Who may share cache entries (see [`super::auth::ApiKeys::scope`]).
    scope: String,
}

#[OpenApi(prefix_path = "/api/v1", tag = "Tag::Exports")]
impl ExportsApi {
    /// Upload a document to convert
    ///
    /// Stores the document and queues an `export` job; answers at once with the job. Follow
    /// it with `GET /jobs/{id}` or `GET /jobs/{id}/events`, then download
    /// `GET /jobs/{id}/result`. The same `Idempotency-Key` returns the same job.
    #[oai(
        path = "/exports",
        method = "post",
        operation_id = "create_export",
        transform = "guard_upload"
    )]
    async fn create_export(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&super::auth::Caller>,
        req: &poem::Request,
        form: ExportForm,
        /// Any client-chosen string (at most 255 bytes); retrying a request with the same key
        /// returns the job the first request created instead of creating another.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
    ) -> Result<ExportAccepted, CreateExportError> {
        let key = super::idempotency_key(idempotency_key.0, &caller)?;
        let output = FormField::value_or(form.format, OutputFormat::Pdf, |text| {
            let known: Vec<&str> = OutputFormat::ALL.iter().map(|f| f.name()).collect();
            ApiError::invalid(
                ApiErrorCode::InvalidArguments,
                format!(
                    "field format: unsupported output format {text:?}; supported: {}",
                    known.join(", ")
                ),
            )
        })?;
        let merge = form.merge.unwrap_or(false);
        if merge && output != OutputFormat::Pdf {
            return Err(ApiError::invalid(
                ApiErrorCode::UnsupportedConversion,
                format!(
                    "field format: a merge makes one PDF; {} cannot be merged",
                    output.name()
                ),
            )
            .into());
        }
        // Swagger UI's Try it out sends an untouched number field as 0: that means none.
        let thumbnail = form.thumbnail.filter(|px| *px != 0);
        if let Some(px) = thumbnail.filter(|px| !THUMBNAIL_PIXELS.contains(px)) {
            return Err(ApiError::invalid(
                ApiErrorCode::InvalidArguments,
                format!("field thumbnail: {px} is not within 16–2048 pixels"),
            )
            .into());
        }
        if merge && thumbnail.is_some() {
            return Err(ApiError::invalid(
                ApiErrorCode::UnsupportedConversion,
                "field thumbnail: a merge makes one PDF of its parts; it draws no thumbnail",
            )
            .into());
        }
        let options = checked_options(form.options.as_ref(), merge, output)?;
        let cache = FormField::value_or(form.cache, CacheMode::Use, |text| {
            ApiError::invalid(
                ApiErrorCode::InvalidOption,
                format!("field cache: {text:?} is not one of use, bypass, refresh"),
            )
        })?;
        let priority = FormField::value_or(form.priority, Default::default(), |text| {
            ApiError::invalid(
                ApiErrorCode::InvalidArguments,
                format!("field priority: {text:?} is not one of interactive, normal, bulk"),
            )
        })?;
        let metadata = match &form.metadata {
            None => crate::model::Metadata::default(),
            Some(field) => field
                .parse("field metadata")
                .and_then(|m| crate::model::Metadata::check(m, "field metadata"))
                .map_err(|why| ApiError::invalid(ApiErrorCode::InvalidArguments, why))?,
        };
        let password = form.password.map(|p| p.0).filter(|p| !p.is_empty());
        let password = password.as_ref().map(|p| p.as_str());
        if password.is_some() && state.secrets.is_none() {
            return Err(ApiError::invalid(
                ApiErrorCode::PasswordsUnavailable,
                "field password: this service cannot keep document passwords (no SECRET_KEY is \
                 set for its API and worker processes)",
            )
            .into());
        }
        let files = checked_files(form.file, merge, state.max_upload_bytes)?;
        let batch = files.len() > 1 && !merge;
        // An HTML form sends fields left blank as empty strings: those mean "not given".
        let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let run_at = given(form.run_at)
            .as_deref()
            .map(parse_run_at)
            .transpose()?;
        let callback_url = state
            .callback_url(given(form.callback_url), "field callback_url")
            .await?;
        let batch_callback_url = state
            .callback_url(given(form.batch_callback_url), "field batch_callback_url")
            .await?;
        if batch_callback_url.is_some() && !batch {
            return Err(ApiError::invalid(
                ApiErrorCode::InvalidArguments,
                "field batch_callback_url: only a batch (several files without merge) has one",
            )
            .into());
        }
        match state.find_idempotent_any(key.as_deref()).await? {
            Some(Idempotent::Batch(existing)) if batch => {
                return Ok(ExportAccepted::batch(existing));
            }
            Some(Idempotent::Job(existing)) if !batch => return Ok(ExportAccepted::job(*existing)),
            Some(other) => return Err(other.reused().into()),
            None => {}
        }
        // After the idempotency lookup: a retried upload is answered, not counted again.
        let incoming: u64 = files.iter().map(|f| f.size() as u64).sum();
        state.check_stored_bytes(&caller.tenant, incoming).await?;
        let export = ExportArgs {
            format: output.name().to_string(),
            options: options.clone(),
            cache_key: None,
            thumbnail,
        };
        let plan = Plan {
            args: serde_json::to_value(&export).expect("args serialize"),
            steps: export.steps(),
            output,
            renders: export.renders(),
            options: &options,
            password,
            cache,
            scope: state.keys.scope(req),
        };
        let mut parts = Vec::with_capacity(files.len());
        for upload in files {
            parts.push(store_upload(&state, upload, &plan).await?);
        }
        for job in parts.iter_mut() {
            job.run_at = run_at;
            job.tenant = caller.tenant.clone();
            job.priority = priority;
            job.metadata = metadata.clone();
        }
        let ids: Vec<uuid::Uuid> = parts.iter().map(|j| j.id).collect();
        if batch {
            for job in parts.iter_mut() {
                job.callback_url = callback_url.clone();
            }
            let mut new = NewBatch::new(caller.tenant.clone());
            new.callback_url = batch_callback_url;
            new.idempotency_key = key;
            let made = match state.queue.enqueue_batch(new, parts).await {
                Ok(made) => made,
                Err(e) => {
                    forget_files(&state, &ids).await;
                    return Err(ApiError::from(e).into());
                }
            };
            if !made.created {
                // Lost a race on the idempotency key: the other request's batch stands.
                forget_files(&state, &ids).await;
            }
            return Ok(ExportAccepted::batch(Batch::of(made.batch, made.jobs)));
        }
        let mut jobs = if parts.len() == 1 {
            parts
        } else {
            let mut merge = NewJob::new(
                Merge::NAME,
                plan.args.clone(),
                state.max_attempts(Merge::NAME),
            );
            merge.steps = Merge::STEPS.to_vec();
            // Cached parts count down in the same transaction that creates them.
            merge.waiting_parts = Some(parts.len() as i64);
            for (i, part) in parts.iter_mut().enumerate() {
                part.part_of = Some((merge.id, i as i64));
            }
            merge.run_at = run_at;
            merge.tenant = caller.tenant.clone();
            merge.priority = priority;
            merge.metadata = metadata.clone();
            std::iter::once(merge).chain(parts).collect()
        };
        jobs[0].idempotency_key = key;
        jobs[0].callback_url = callback_url;
        let ids: Vec<uuid::Uuid> = jobs.iter().map(|j| j.id).collect();
        let enqueued = match state.queue.enqueue(jobs).await {
            Ok(e) => e,
            Err(e) => {
                forget_files(&state, &ids).await;
                return Err(ApiError::from(e).into());
            }
        };
        let first = enqueued.into_iter().next().expect("at least one job");
        if !first.created {
            // Lost a race on the idempotency key: the other request's job stands.
            forget_files(&state, &ids).await;
        }
        Ok(ExportAccepted::job(state.queue.view(first.job).await?))
    }
}

/// The form's `options`, checked (`merge`: for a merge of several files).
fn checked_options(
    field: Option<&JsonField<ExportOptions>>,
    merge: bool,
    output: OutputFormat,
) -> Result<ExportOptions, ApiError> {
    let invalid = |message: String| ApiError::invalid(ApiErrorCode::InvalidOption, message);
    let options = match field {
        // A form's options left blank mean none.
        Some(field) if !field.0.trim().is_empty() => field
            .parse("options")
            .map_err(|why| invalid(format!("field {why}")))?,
        _ => ExportOptions::default(),
    };
    options
        .check(merge, output)
        .map_err(|e| invalid(format!("field {e}")))?;
    Ok(options)
}

/// Removes what was stored for jobs that were not created after all.
async fn forget_files(state: &ApiState, ids: &[uuid::Uuid]) {
    for id in ids {
        let _ = state.storage.delete_job(*id).await;
    }
}

/// The uploads of a form: at least one, at most a merge's or a batch's worth, none too large.
fn checked_files(files: Vec<Upload>, merge: bool, limit: u64) -> Result<Vec<Upload>, ApiError> {
    let bad = |message: String| ApiError::bad_request(ApiErrorCode::InvalidForm, message);
    // A blank file input of a form arrives as an empty part without a filename: not a file.
    let files: Vec<Upload> = files
        .into_iter()
        .filter(|f| f.size() > 0 || f.file_name().is_some_and(|n| !n.is_empty()))
        .collect();
    match files.len() {
        0 => {
            return Err(bad(
                "field file: missing; send the document as a `file` part".into(),
            ));
        }
        1 => {}
        n if !merge && n > MAX_BATCH_FILES => {
            return Err(bad(format!(
                "field file: {n} files; a batch takes at most {MAX_BATCH_FILES} (send several \
                 requests, or POST /api/v1/jobs/batch for argument-only jobs)"
            )));
        }
        n if merge && n > MAX_PARTS => {
            return Err(bad(format!(
                "field file: {n} files; a merge takes at most {MAX_PARTS}"
            )));
        }
        _ => {}
    }
    if let Some(big) = files.iter().find(|f| f.size() as u64 > limit) {
        return Err(ApiError::too_large(format!(
            "field file: {} bytes is over the limit of {limit} bytes",
            big.size()
        )));
    }
    Ok(files)
}

fn parse_run_at(value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_micros())
        .map_err(|e| {
            ApiError::bad_request(
                ApiErrorCode::InvalidForm,
                format!("field run_at: {value:?} is not an RFC 3339 time ({e})"),
            )
        })
}

/// Sniffs and stores one upload; the export job that will convert it (or, for a cache hit,
/// the job that is already done).
async fn store_upload(
    state: &ApiState,
    upload: Upload,
    plan: &Plan<'_>,
) -> Result<NewJob, ApiError> {
    let filename = storage::sanitize_filename(upload.file_name().unwrap_or("document"));
    let (format, sha256, file) = sniff_upload(upload, &filename).await?;
    if !plan.output.accepts(format.family()) {
        let allowed: Vec<&str> = OutputFormat::for_family(format.family())
            .into_iter()
            .map(OutputFormat::name)
            .collect();
        return Err(ApiError::invalid(
            ApiErrorCode::UnsupportedConversion,
            format!(
                "field format: a {} document cannot be exported as {}; it can be: {}",
                format.extension(),
                plan.output.name(),
                allowed.join(", ")
            ),
        ));
    }
    let mut job = NewJob::new(
        Export::NAME,
        plan.args.clone(),
        state.max_attempts(Export::NAME),
    );
    job.steps = plan.steps.clone();
    let input_key = storage::input_key(job.id);
    let size = state
        .storage
        .put_reader(
            &input_key,
            tokio::fs::File::from_std(file),
            state.max_upload_bytes,
        )
        .await?;
    job.input = Some(InputFile {
        key: input_key,
        filename: filename.clone(),
        content_type: format.media_type().to_string(),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        format: format.extension().to_string(),
        sha256: Some(sha256.clone()),
    });
    if let (Some(password), Some(secrets)) = (plan.password, &state.secrets) {
        job.secret = Some(secrets.seal(job.id, password));
    }
    use_cache(state, &mut job, plan, &sha256, &filename).await?;
    Ok(job)
}

/// Looks the export up in the result cache and gives the job its key (for the worker to keep
/// the result under). Password-protected documents stay out of the cache either way.
async fn use_cache(
    state: &ApiState,
    job: &mut NewJob,
    plan: &Plan<'_>,
    sha256: &str,
    filename: &str,
) -> Result<(), ApiError> {
    // Results of several files (page images, thumbnails) are not cached: a hit copies one file.
    if plan.cache == CacheMode::Bypass || plan.password.is_some() || plan.renders {
        state.metrics.cache_lookup(CacheOutcome::Skipped);
        return Ok(());
    }
    let key = CacheKey::new(&plan.scope, sha256, plan.options, plan.output.name());
    job.args["cache_key"] = serde_json::json!(key);
    if plan.cache == CacheMode::Refresh {
        state.metrics.cache_lookup(CacheOutcome::Skipped);
        return Ok(());
    }
    match state.cache.find(&key, job.id).await? {
        Some(mut result) => {
            result.filename = result_name(filename, plan.output);
            job.cached = Some(result);
            state.metrics.cache_lookup(CacheOutcome::Hit);
        }
        None => state.metrics.cache_lookup(CacheOutcome::Miss),
    }
    Ok(())
}

/// `deck.pptx` → `deck.pdf`, as the export names its result.
fn result_name(filename: &str, output: OutputFormat) -> String {
    format!(
        "{}.{}",
        storage::document_stem(filename),
        output.extension()
    )
}

/// Reads the spooled upload's real type; the file comes back rewound for storing.
async fn sniff_upload(
    upload: Upload,
    filename: &str,
) -> Result<(DocFormat, String, std::fs::File), ApiError> {
    let claimed_ext = std::path::Path::new(filename)
        .extension()
        .map(|e| e.to_string_lossy().into_owned());
    let file = upload.into_file().into_std().await;
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        let detected = sniff::detect(&mut file, claimed_ext.as_deref());
        file.rewind().map_err(ApiError::internal)?;
        let sha256 = sha256_of(&mut file).map_err(ApiError::internal)?;
        match detected {
            Ok(format) => Ok((format, sha256, file)),
            Err(SniffError::Empty) => Err(ApiError::bad_request(
                ApiErrorCode::EmptyFile,
                "field file: the upload is empty",
            )),
            Err(SniffError::Unsupported(why)) => Err(ApiError::unsupported_type(format!(
                "field file: {why}; supported: pptx, ppt, odp, docx, doc, odt, rtf, xlsx, xls, ods"
            ))),
        }
    })
    .await
    .map_err(ApiError::internal)?
}

/// The hex SHA-256 of a spooled upload; the file comes back rewound.
fn sha256_of(file: &mut std::fs::File) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    std::io::copy(file, &mut hash)?;
    file.rewind()?;
    Ok(hex::encode(hash.finalize()))
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::{Example, ToJSON};

    use super::*;

    /// `POST /exports` answers through `JsonAnswer`: its serde encoding must be the union's.
    #[test]
    fn an_export_answer_written_with_serde_is_the_unions_json() {
        let job = Job::example();
        let batch = Batch {
            id: job.id,
            created_at: job.created_at,
            size: 1,
            counts: Default::default(),
            ended: false,
            ended_at: None,
            callback_url: None,
            callback_delivery: None,
            jobs: vec![job.clone()],
        };
        for answer in [
            ExportAnswer::Job(Box::new(job)),
            ExportAnswer::Batch(BatchAccepted { batch }),
        ] {
            let ours = serde_json::to_value(&answer).unwrap();
            assert_eq!(Some(ours), answer.to_json(), "{answer:?}");
        }
    }
}
