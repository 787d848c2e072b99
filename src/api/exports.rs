//! `POST /api/v1/exports`: upload a document, get an export job back at once.

use std::io::Seek;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::payload::Json;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Multipart, OpenApi};

use super::errors::{ApiError, ApiErrorCode, operation_errors};
use super::limits::guard_upload;
use super::{ApiState, Tag};
use crate::convert::sniff::{self, SniffError};
use crate::convert::{DocFormat, OutputFormat};
use crate::jobs::JobKind;
use crate::jobs::kinds::{Export, Merge};
use crate::model::view::Job;
use crate::queue::{InputFile, NewJob};
use crate::storage;

/// The export form. A field it does not name is refused (400), so a typo does not pass as a
/// default.
#[derive(Debug, Multipart)]
#[oai(deny_unknown_fields)]
pub struct ExportForm {
    /// The document: pptx, ppt, odp, docx, doc, odt, rtf, xlsx, xls or ods. Its type is read
    /// from its content, not from its name. Several `file` parts (up to 20) need
    /// `merge=true`.
    file: Vec<Upload>,
    /// Output format (default `pdf`).
    format: Option<FormatField>,
    /// With several files: convert them in parallel and join the PDFs, in upload order, into
    /// one. The answer is the merge job; its `parts` are the per-file jobs.
    merge: Option<bool>,
    /// Where to POST the job (signed) when it ends; needs `WEBHOOK_SECRET` on the service and
    /// a public address (or one `OUTBOUND_ALLOW` names).
    callback_url: Option<String>,
    /// Run no earlier than this (RFC 3339, e.g. `2026-11-22T18:00:00Z`); the job waits in
    /// `queued` until then.
    run_at: Option<String>,
}

/// Most files one merge job joins.
const MAX_PARTS: usize = 20;

/// A job was accepted (or, for a repeated `Idempotency-Key`, found).
#[derive(ApiResponse)]
pub enum Accepted {
    /// Accepted; follow it at `Location`.
    #[oai(status = 202)]
    Accepted(Json<Job>, #[oai(header = "Location")] String),
}

impl Accepted {
    pub fn job(job: Job) -> Self {
        let location = format!("/api/v1/jobs/{}", job.id);
        Accepted::Accepted(Json(job), location)
    }
}

pub struct ExportsApi;

operation_errors!(
    /// Errors of `POST /exports`.
    CreateExportError {
        BadRequest = 400 "Malformed form (no `file` part, several without `merge=true`), an empty file, an invalid `run_at` or `Idempotency-Key`.",
        TooLarge = 413 "The file is larger than `max_upload_bytes` (see `GET /api/v1/formats`).",
        UnsupportedType = 415 "The file is not a document type this service converts, or the request is not `multipart/form-data`.",
        Invalid = 422 "Unsupported output `format`, or a `callback_url` this service may not call.",
    }
);

/// Output formats of an export.
#[derive(Debug, Clone, Copy, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum ExportFormat {
    /// PDF.
    Pdf,
}

/// The `format` field as sent: a known format, or the text of one this service does not make
/// (refused by the handler as a 422 naming the field, rather than by the form parser as a
/// malformed form). Its schema is [`ExportFormat`]'s, so the spec lists the formats.
#[derive(Debug, Clone)]
pub enum FormatField {
    Known(ExportFormat),
    Unknown(String),
}

impl poem_openapi::types::Type for FormatField {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        ExportFormat::name()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        ExportFormat::schema_ref()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        ExportFormat::register(registry)
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl poem_openapi::types::ParseFromMultipartField for FormatField {
    async fn parse_from_multipart(
        field: Option<poem::web::Field>,
    ) -> poem_openapi::types::ParseResult<Self> {
        use poem_openapi::types::{ParseError, ParseFromParameter};
        let Some(field) = field else {
            return Err(ParseError::expected_input());
        };
        let text = field.text().await.map_err(ParseError::custom)?;
        Ok(match ExportFormat::parse_from_parameter(&text) {
            Ok(known) => FormatField::Known(known),
            Err(_) => FormatField::Unknown(text),
        })
    }
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
        form: ExportForm,
        /// Any client-chosen string (at most 255 bytes); retrying a request with the same key
        /// returns the job the first request created instead of creating another.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
    ) -> Result<Accepted, CreateExportError> {
        let key = super::idempotency_key(idempotency_key.0)?;
        let output = match form.format.unwrap_or(FormatField::Known(ExportFormat::Pdf)) {
            FormatField::Known(ExportFormat::Pdf) => OutputFormat::Pdf,
            FormatField::Unknown(text) => {
                return Err(ApiError::invalid(
                    ApiErrorCode::InvalidArguments,
                    format!("field format: unsupported output format {text:?}; supported: pdf"),
                )
                .into());
            }
        };
        let files = checked_files(
            form.file,
            form.merge.unwrap_or(false),
            state.max_upload_bytes,
        )?;
        // An HTML form sends fields left blank as empty strings: those mean "not given".
        let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let run_at = given(form.run_at)
            .as_deref()
            .map(parse_run_at)
            .transpose()?;
        let callback_url = state
            .callback_url(given(form.callback_url), "field callback_url")
            .await?;
        if let Some(existing) = state.find_idempotent(key.as_deref()).await? {
            return Ok(Accepted::job(existing));
        }
        let args = serde_json::json!({ "format": output.extension() });
        let mut parts = Vec::with_capacity(files.len());
        for upload in files {
            parts.push(store_upload(&state, upload, &args).await?);
        }
        let mut jobs = if parts.len() == 1 {
            parts
        } else {
            let mut merge = NewJob::new(Merge::NAME, args.clone(), state.max_attempts(Merge::NAME));
            merge.steps = Merge::STEPS.to_vec();
            merge.waiting_parts = Some(parts.len() as i64);
            for (i, part) in parts.iter_mut().enumerate() {
                part.part_of = Some((merge.id, i as i64));
            }
            std::iter::once(merge).chain(parts).collect()
        };
        jobs[0].idempotency_key = key;
        jobs[0].callback_url = callback_url;
        for job in jobs.iter_mut() {
            job.run_at = run_at;
        }
        let inputs: Vec<String> = jobs
            .iter()
            .filter_map(|j| j.input.as_ref().map(|i| i.key.clone()))
            .collect();
        let enqueued = match state.queue.enqueue(jobs).await {
            Ok(e) => e,
            Err(e) => {
                for key in &inputs {
                    let _ = state.storage.delete(key).await;
                }
                return Err(ApiError::from(e).into());
            }
        };
        let first = enqueued.into_iter().next().expect("at least one job");
        if !first.created {
            // Lost a race on the idempotency key: the other request's job stands.
            for key in &inputs {
                let _ = state.storage.delete(key).await;
            }
        }
        Ok(Accepted::job(state.queue.view(first.job).await?))
    }
}

/// The uploads of a form: at least one, several only with `merge`, none too large.
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
        n if !merge => {
            return Err(bad(format!(
                "field file: {n} files sent; add merge=true to join them into one PDF, or send one"
            )));
        }
        n if n > MAX_PARTS => {
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

/// Sniffs and stores one upload; the export job that will convert it.
async fn store_upload(
    state: &ApiState,
    upload: Upload,
    args: &serde_json::Value,
) -> Result<NewJob, ApiError> {
    let filename = storage::sanitize_filename(upload.file_name().unwrap_or("document"));
    let (format, file) = sniff_upload(upload, &filename).await?;
    let mut job = NewJob::new(Export::NAME, args.clone(), state.max_attempts(Export::NAME));
    job.steps = Export::STEPS.to_vec();
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
        filename,
        content_type: format.media_type().to_string(),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        format: format.extension().to_string(),
    });
    Ok(job)
}

/// Reads the spooled upload's real type; the file comes back rewound for storing.
async fn sniff_upload(
    upload: Upload,
    filename: &str,
) -> Result<(DocFormat, std::fs::File), ApiError> {
    let claimed_ext = std::path::Path::new(filename)
        .extension()
        .map(|e| e.to_string_lossy().into_owned());
    let file = upload.into_file().into_std().await;
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        let detected = sniff::detect(&mut file, claimed_ext.as_deref());
        file.rewind().map_err(ApiError::internal)?;
        match detected {
            Ok(format) => Ok((format, file)),
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
