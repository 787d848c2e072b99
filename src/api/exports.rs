//! `POST /api/v1/exports`: upload a document, get an export job back at once.

use std::io::Seek;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Header;
use poem_openapi::payload::Json;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Multipart, OpenApi};
use uuid::Uuid;

use super::errors::{ApiError, ApiErrorCode, operation_errors};
use super::models::Job;
use super::{ApiState, Tag};
use crate::convert::sniff::{self, SniffError};
use crate::convert::{DocFormat, OutputFormat};
use crate::jobs::JobKind;
use crate::jobs::kinds::Export;
use crate::queue::{InputFile, NewJob};
use crate::storage;

/// The export form.
#[derive(Debug, Multipart)]
pub struct ExportForm {
    /// The document: pptx, ppt, odp, docx, doc, odt, rtf, xlsx, xls or ods. Its type is read
    /// from its content, not from its name.
    file: Upload,
    /// Output format (default `pdf`).
    format: Option<ExportFormat>,
}

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
        BadRequest = 400 "Malformed form (no `file` part), an empty file, or an invalid `Idempotency-Key`.",
        TooLarge = 413 "The file is larger than `max_upload_bytes` (see `GET /api/v1/formats`).",
        UnsupportedType = 415 "The file is not a document type this service converts, or the request is not `multipart/form-data`.",
        Invalid = 422 "Unsupported output `format`.",
    }
);

/// Output formats of an export.
#[derive(Debug, Clone, Copy, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum ExportFormat {
    /// PDF.
    Pdf,
}

#[OpenApi(prefix_path = "/api/v1", tag = "Tag::Exports")]
impl ExportsApi {
    /// Upload a document to convert
    ///
    /// Stores the document and queues an `export` job; answers at once with the job. Follow
    /// it with `GET /jobs/{id}` or `GET /jobs/{id}/events`, then download
    /// `GET /jobs/{id}/result`. The same `Idempotency-Key` returns the same job.
    #[oai(path = "/exports", method = "post", operation_id = "create_export")]
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
        let output = match form.format.unwrap_or(ExportFormat::Pdf) {
            ExportFormat::Pdf => OutputFormat::Pdf,
        };
        if form.file.size() as u64 > state.max_upload_bytes {
            return Err(ApiError::too_large(format!(
                "field file: {} bytes is over the limit of {} bytes",
                form.file.size(),
                state.max_upload_bytes
            ))
            .into());
        }
        if let Some(existing) = state.find_idempotent(key.as_deref()).await? {
            return Ok(Accepted::job(existing));
        }
        let filename = storage::sanitize_filename(form.file.file_name().unwrap_or("document"));
        let (format, file) = sniff_upload(form.file, &filename).await?;
        let id = Uuid::new_v4();
        let input_key = storage::input_key(id);
        let size = state
            .storage
            .put_reader(
                &input_key,
                tokio::fs::File::from_std(file),
                state.max_upload_bytes,
            )
            .await?;
        let job = NewJob {
            id,
            kind: Export::NAME.to_string(),
            args: serde_json::json!({ "format": output.extension() }),
            max_attempts: state.max_attempts(Export::NAME),
            idempotency_key: key,
            input: Some(InputFile {
                key: input_key.clone(),
                filename,
                content_type: format.media_type().to_string(),
                size: i64::try_from(size).unwrap_or(i64::MAX),
                format: format.extension().to_string(),
            }),
        };
        let enqueued = match state.queue.enqueue(vec![job]).await {
            Ok(mut e) => e.remove(0),
            Err(e) => {
                let _ = state.storage.delete(&input_key).await;
                return Err(ApiError::from(e).into());
            }
        };
        if !enqueued.created {
            // Lost a race on the idempotency key: the other request's job stands.
            let _ = state.storage.delete(&input_key).await;
        }
        Ok(Accepted::job(enqueued.job.into()))
    }
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
