//! The HTTP error boundary: every error a client can see is `{ "code", "message" }` JSON with
//! the right status, mapped here and nowhere else.
//!
//! - [`ApiError`] is what our operations return; its variants are the documented statuses.
//! - [`json_errors`] catches everything else poem produces — unknown routes, a malformed
//!   parameter or body rejected before our code runs — and gives it the same shape.
//! - 500s log their cause once and answer a generic message.

use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::queue::QueueError;
use crate::storage::StorageError;

/// An error: a stable snake_case `code` for programs and a `message` for people.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// Stable, snake_case; branch on this.
    pub code: String,
    /// Human readable; names the offending field where there is one.
    pub message: String,
}

/// Every error status the API answers with.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Malformed request: a missing or unparsable field, parameter or header.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No job with that id.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The job is in a state that does not allow this.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The upload is larger than the service accepts.
    #[oai(status = 413)]
    TooLarge(Json<ErrorBody>),
    /// The upload is not a document type the service converts.
    #[oai(status = 415)]
    UnsupportedType(Json<ErrorBody>),
    /// The request is well-formed but its arguments are invalid.
    #[oai(status = 422)]
    Invalid(Json<ErrorBody>),
    /// Unexpected failure; the cause is in the server's log.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency (database, storage) is unavailable; try again shortly.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: code.to_string(),
        message: message.into(),
    })
}

impl ApiError {
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::BadRequest(body(code, message))
    }

    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::NotFound(body(code, message))
    }

    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::Conflict(body(code, message))
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::TooLarge(body("too_large", message))
    }

    pub fn unsupported_type(message: impl Into<String>) -> Self {
        Self::UnsupportedType(body("unsupported_type", message))
    }

    pub fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self::Invalid(body(code, message))
    }

    pub fn unavailable(code: &str, message: impl Into<String>) -> Self {
        Self::Unavailable(body(code, message))
    }

    /// Logs `cause` once; the client sees only that something went wrong.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::Internal(body(
            "internal",
            "an unexpected error occurred; it has been logged",
        ))
    }

    pub fn job_not_found(id: impl std::fmt::Display) -> Self {
        Self::not_found("job_not_found", format!("no job with id {id}"))
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::NotFound => ApiError::not_found("job_not_found", "no such job"),
            QueueError::WrongState(s) => ApiError::conflict(
                "wrong_state",
                format!("the job is {s}, which does not allow this"),
            ),
            QueueError::Db(err) if is_outage(&err) => {
                tracing::warn!(error = %err, "database unavailable");
                ApiError::unavailable(
                    "database_unavailable",
                    "the database is unavailable; try again shortly",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::TooLarge { limit } => ApiError::too_large(format!(
                "field file: the upload exceeds the limit of {limit} bytes"
            )),
            other => {
                tracing::warn!(error = %other, "storage unavailable");
                ApiError::unavailable(
                    "storage_unavailable",
                    "file storage is unavailable; try again shortly",
                )
            }
        }
    }
}

/// Connection-level failures: the database is down or overloaded, not the request wrong.
fn is_outage(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
    ) || matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57") || c.starts_with("08")))
}

/// Turns any error response poem produces into our JSON shape (ours pass through unchanged).
pub async fn json_errors(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let (code, message) = describe(&err);
    if status.is_server_error() {
        tracing::error!(error = %err, %status, "request failed");
    }
    poem::web::Json(serde_json::json!({ "code": code, "message": message }))
        .with_status(status)
        .into_response()
}

/// A code and a message naming the offending part, for errors raised before our handlers run.
fn describe(err: &poem::Error) -> (&'static str, String) {
    use poem_openapi::error::{
        ContentTypeError, ParseMultipartError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    };
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        return (
            "invalid_parameter",
            format!("parameter {}: {}", e.name, e.reason),
        );
    }
    if let Some(e) = err.downcast_ref::<ParsePathError>() {
        // poem-openapi renames path parameters internally (`param0`); every path of this API
        // has exactly one, the job id.
        return (
            "invalid_parameter",
            format!("path parameter id: {}", e.reason),
        );
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return ("invalid_body", format!("body: {}", e.reason));
    }
    if let Some(e) = err.downcast_ref::<ParseMultipartError>() {
        return ("invalid_form", format!("multipart form: {}", e.reason));
    }
    if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        return ("unsupported_content_type", e.to_string());
    }
    match err.status().as_u16() {
        404 => ("not_found", "no such route".into()),
        405 => (
            "method_not_allowed",
            "this route does not accept that method".into(),
        ),
        413 => ("too_large", err.to_string()),
        400..=499 => ("bad_request", err.to_string()),
        _ => (
            "internal",
            "an unexpected error occurred; it has been logged".into(),
        ),
    }
}
