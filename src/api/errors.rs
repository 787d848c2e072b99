//! The HTTP error boundary: every error a client can see is `{ "code", "message" }` JSON with
//! the right status, mapped here and nowhere else.
//!
//! - [`ApiError`] is what handler code produces; [`operation_errors!`] declares, per
//!   operation, the subset of statuses it documents (so the spec, and clients generated from
//!   it, know exactly what each operation can answer).
//! - [`json_errors`] catches everything else poem produces — unknown routes, a malformed
//!   parameter or body rejected before our code runs — and gives it the same shape.
//! - 500s log their cause once and answer a generic message.

use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object};

use crate::queue::QueueError;
use crate::storage::StorageError;

/// What went wrong, for programs. Stable: new codes may be added, none renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ApiErrorCode {
    /// A request part did not parse (see the message for which).
    BadRequest,
    /// A query, path or header parameter is invalid.
    InvalidParameter,
    /// The JSON body is malformed or misses a field.
    InvalidBody,
    /// The multipart form is malformed.
    InvalidForm,
    /// `cursor` is not one this API returned.
    InvalidCursor,
    /// `Idempotency-Key` is empty or longer than 255 bytes.
    InvalidIdempotencyKey,
    /// The uploaded file is empty.
    EmptyFile,
    /// No such route.
    NotFound,
    /// No job with that id.
    JobNotFound,
    /// No batch with that id.
    BatchNotFound,
    /// The job's kind makes no result file.
    NoResult,
    /// The route does not accept that method.
    MethodNotAllowed,
    /// The job's status does not allow this.
    WrongState,
    /// The job has not succeeded (yet): no result to download.
    ResultNotReady,
    /// The result was deleted after the retention period.
    ResultExpired,
    /// The job's uploaded document was deleted after the retention period; upload it again.
    InputExpired,
    /// The upload is larger than `max_upload_bytes`.
    TooLarge,
    /// The upload is not a document type this service converts.
    UnsupportedType,
    /// The request's `Content-Type` is not one this operation accepts.
    UnsupportedContentType,
    /// The arguments are invalid for the kind (or the output format is unknown).
    InvalidArguments,
    /// An export option is invalid, or options were combined that cannot go together.
    InvalidOption,
    /// A document password was sent, and this service cannot keep one (no `SECRET_KEY`).
    PasswordsUnavailable,
    /// The document's type cannot be exported as the `format` asked for (see
    /// `GET /api/v1/formats`), or a merge asked for something other than PDF.
    UnsupportedConversion,
    /// The job's document is password-protected and its password was wiped when the job
    /// ended: a retry cannot open it; upload it again with its password.
    PasswordWiped,
    /// No such job kind.
    UnknownKind,
    /// The kind takes a document: use `POST /api/v1/exports`.
    UploadRequired,
    /// Too many queued jobs, or too many uploads from this client: retry after `Retry-After`.
    Overloaded,
    /// An API key is required (`Authorization: Bearer <key>`).
    Unauthorized,
    /// This key may not use this route (a tenant's key on an operator's route).
    Forbidden,
    /// The upload would take the tenant over its stored-bytes quota (`MAX_STORED_BYTES`):
    /// delete finished jobs, or wait for their retention to end.
    StorageQuota,
    /// The request took too long.
    RequestTimeout,
    /// Unexpected failure; the cause is in the server's log.
    Internal,
    /// The database is unavailable.
    DatabaseUnavailable,
    /// File storage is unavailable.
    StorageUnavailable,
}

/// An error: a stable `code` for programs and a `message` for people.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct ErrorBody {
    pub code: ApiErrorCode,
    /// Human readable; names the offending field where there is one.
    pub message: String,
}

impl poem_openapi::types::Example for ErrorBody {
    fn example() -> Self {
        ErrorBody {
            code: ApiErrorCode::JobNotFound,
            message: "no job with id 3f1c2a9e-0a4b-4c55-9d7e-2f1e6c1b9a10".into(),
        }
    }
}

/// Every error status the API answers with (each operation documents its own subset).
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    #[oai(status = 410)]
    Gone(Json<ErrorBody>),
    #[oai(status = 413)]
    TooLarge(Json<ErrorBody>),
    #[oai(status = 415)]
    UnsupportedType(Json<ErrorBody>),
    #[oai(status = 422)]
    Invalid(Json<ErrorBody>),
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn body(code: ApiErrorCode, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code,
        message: message.into(),
    })
}

impl ApiError {
    pub fn bad_request(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self::BadRequest(body(code, message))
    }

    pub fn not_found(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self::NotFound(body(code, message))
    }

    pub fn conflict(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self::Conflict(body(code, message))
    }

    pub fn gone(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self::Gone(body(code, message))
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::too_large_as(ApiErrorCode::TooLarge, message)
    }

    /// A 413 with another code than `too_large` (a quota, say).
    pub fn too_large_as(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self::TooLarge(body(code, message))
    }

    pub fn unsupported_type(message: impl Into<String>) -> Self {
        Self::UnsupportedType(body(ApiErrorCode::UnsupportedType, message))
    }

    pub fn invalid(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self::Invalid(body(code, message))
    }

    pub fn unavailable(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self::Unavailable(body(code, message))
    }

    /// Logs `cause` once; the client sees only that something went wrong.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::Internal(body(
            ApiErrorCode::Internal,
            "an unexpected error occurred; it has been logged",
        ))
    }

    pub fn job_not_found(id: impl std::fmt::Display) -> Self {
        Self::not_found(ApiErrorCode::JobNotFound, format!("no job with id {id}"))
    }

    pub fn batch_not_found(id: impl std::fmt::Display) -> Self {
        Self::not_found(
            ApiErrorCode::BatchNotFound,
            format!("no batch with id {id}"),
        )
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::NotFound => ApiError::not_found(ApiErrorCode::JobNotFound, "no such job"),
            QueueError::WrongState(s) => ApiError::conflict(
                ApiErrorCode::WrongState,
                format!("the job is {s}, which does not allow this"),
            ),
            e @ QueueError::PartOfMerge { .. } => {
                ApiError::conflict(ApiErrorCode::WrongState, e.to_string())
            }
            QueueError::Db(err) if is_outage(&err) => {
                tracing::warn!(error = %err, "database unavailable");
                ApiError::unavailable(
                    ApiErrorCode::DatabaseUnavailable,
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
                    ApiErrorCode::StorageUnavailable,
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

/// Declares an operation's error response: the listed statuses (each `Variant = status
/// "description"`, variants named as in [`ApiError`]) plus 500 and 503, which any operation
/// can answer. Converts from [`ApiError`], [`QueueError`] and [`StorageError`]; an error of a
/// status the operation does not document becomes a logged 500, so drift shows up in tests.
macro_rules! operation_errors {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $status:literal $doc:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, poem_openapi::ApiResponse)]
        pub enum $name {
            $(
                #[doc = $doc]
                #[oai(status = $status)]
                $variant(poem_openapi::payload::Json<$crate::api::errors::ErrorBody>),
            )*
            /// Unexpected failure; the cause is in the server's log.
            #[oai(status = 500)]
            Internal(poem_openapi::payload::Json<$crate::api::errors::ErrorBody>),
            /// The database or the file storage is unavailable; try again shortly.
            #[oai(status = 503)]
            Unavailable(poem_openapi::payload::Json<$crate::api::errors::ErrorBody>),
        }

        impl From<$crate::api::errors::ApiError> for $name {
            fn from(e: $crate::api::errors::ApiError) -> Self {
                use $crate::api::errors::ApiError;
                match e {
                    $(ApiError::$variant(b) => Self::$variant(b),)*
                    ApiError::Internal(b) => Self::Internal(b),
                    ApiError::Unavailable(b) => Self::Unavailable(b),
                    #[allow(unreachable_patterns)]
                    other => match ApiError::internal(format!(
                        "{} cannot answer {other:?}; document the status", stringify!($name)
                    )) {
                        ApiError::Internal(b) => Self::Internal(b),
                        _ => unreachable!("internal() makes a 500"),
                    },
                }
            }
        }

        impl From<$crate::queue::QueueError> for $name {
            fn from(e: $crate::queue::QueueError) -> Self {
                $crate::api::errors::ApiError::from(e).into()
            }
        }

        impl From<$crate::storage::StorageError> for $name {
            fn from(e: $crate::storage::StorageError) -> Self {
                $crate::api::errors::ApiError::from(e).into()
            }
        }
    };
}
pub(crate) use operation_errors;

/// Turns any error response poem produces into our JSON shape (ours pass through unchanged).
pub async fn json_errors(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let (code, message) = describe(&err);
    let status = match code {
        ApiErrorCode::TooLarge => poem::http::StatusCode::PAYLOAD_TOO_LARGE,
        _ => err.status(),
    };
    if status.is_server_error() {
        tracing::error!(error = %err, %status, "request failed");
    }
    Json(ErrorBody { code, message })
        .with_status(status)
        .into_response()
}

/// A code and a message naming the offending part, for errors raised before our handlers run.
fn describe(err: &poem::Error) -> (ApiErrorCode, String) {
    use poem_openapi::error::{
        ContentTypeError, ParseMultipartError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    };
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        return (
            ApiErrorCode::InvalidParameter,
            format!("parameter {}: {}", e.name, e.reason),
        );
    }
    if let Some(e) = err.downcast_ref::<ParsePathError>() {
        // poem-openapi renames path parameters internally (`param0`); every path of this API
        // has exactly one, the job id.
        return (
            ApiErrorCode::InvalidParameter,
            format!("path parameter id: {}", e.reason),
        );
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return (ApiErrorCode::InvalidBody, e.reason.clone());
    }
    if let Some(e) = err.downcast_ref::<ParseMultipartError>() {
        return (
            ApiErrorCode::InvalidForm,
            format!("multipart form: {}", e.reason),
        );
    }
    if let Some(e) = err.downcast_ref::<poem::error::ParseMultipartError>() {
        return (ApiErrorCode::InvalidForm, format!("multipart form: {e}"));
    }
    if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        return (ApiErrorCode::UnsupportedContentType, e.to_string());
    }
    match err.status().as_u16() {
        404 => (ApiErrorCode::NotFound, "no such route".into()),
        405 => (
            ApiErrorCode::MethodNotAllowed,
            "this route does not accept that method".into(),
        ),
        413 => (ApiErrorCode::TooLarge, err.to_string()),
        400..=499 => (ApiErrorCode::BadRequest, err.to_string()),
        _ => (
            ApiErrorCode::Internal,
            "an unexpected error occurred; it has been logged".into(),
        ),
    }
}
