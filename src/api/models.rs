//! The JSON objects of the API (the contract's Job object and friends), and their mapping from
//! stored rows.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use uuid::Uuid;

use crate::jobs::JobStatus;
use crate::queue::JobRecord;

/// Progress of the current attempt.
#[derive(Debug, Clone, Object)]
pub struct Progress {
    /// 0 to 100.
    pub percent: u8,
    /// The current stage, e.g. `converting 5 slides`.
    pub message: String,
}

/// Why the job failed (or why its last attempt failed, while it waits to retry).
#[derive(Debug, Clone, Object)]
pub struct JobErrorInfo {
    /// Stable snake_case code: `document_corrupt` and `document_encrypted` mean the upload
    /// itself is bad; `timeout`, `converter_crashed` and `storage_unavailable` are retried.
    pub code: String,
    /// Human readable.
    pub message: String,
}

/// One failed (or lost) attempt.
#[derive(Debug, Clone, Object)]
pub struct AttemptErrorInfo {
    /// Which attempt (1-based).
    pub attempt: u32,
    /// As in `error.code`; `worker_lost` for an attempt whose worker stopped mid-way.
    pub code: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// The uploaded document.
#[derive(Debug, Clone, Object)]
pub struct InputInfo {
    /// The client's filename, sanitised.
    pub filename: String,
    /// The detected type (from the bytes, not the client's claim).
    pub content_type: String,
    /// Bytes.
    pub size: u64,
}

/// The result file.
#[derive(Debug, Clone, Object)]
pub struct ResultInfo {
    pub filename: String,
    pub content_type: String,
    /// Bytes.
    pub size: u64,
    /// Where to download it (`GET`).
    pub url: String,
}

/// A job: what was asked, where it is, and what came out.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Job", example)]
pub struct Job {
    pub id: Uuid,
    /// `export`, `noop`, `sleep`, or a kind the embedding application registered.
    pub kind: String,
    pub status: JobStatus,
    pub progress: Progress,
    /// Attempts started so far.
    pub attempts: u32,
    pub max_attempts: u32,
    #[oai(nullable)]
    pub error: Option<JobErrorInfo>,
    #[oai(nullable)]
    pub input: Option<InputInfo>,
    #[oai(nullable)]
    pub result: Option<ResultInfo>,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub started_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
    /// When the job's files were deleted after the retention period (`null` until then).
    #[oai(nullable)]
    pub expired_at: Option<DateTime<Utc>>,
    /// Every failed or lost attempt of this run, oldest first (empty when none failed).
    pub attempt_errors: Vec<AttemptErrorInfo>,
}

fn timestamp(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn size(bytes: Option<i64>) -> u64 {
    u64::try_from(bytes.unwrap_or(0)).unwrap_or(0)
}

impl From<JobRecord> for Job {
    fn from(r: JobRecord) -> Self {
        let id = r.uuid();
        let attempt_errors = r
            .attempt_history()
            .into_iter()
            .map(|e| AttemptErrorInfo {
                attempt: u32::try_from(e.attempt).unwrap_or(0),
                code: e.code,
                message: e.message,
                at: timestamp(e.at),
            })
            .collect();
        let error = match (r.error_code, r.error_message) {
            (Some(code), message) => Some(JobErrorInfo {
                code,
                message: message.unwrap_or_default(),
            }),
            _ => None,
        };
        let input = r.input_key.as_ref().map(|_| InputInfo {
            filename: r.input_filename.clone().unwrap_or_default(),
            content_type: r.input_content_type.clone().unwrap_or_default(),
            size: size(r.input_size),
        });
        let result = r.result_key.as_ref().map(|_| ResultInfo {
            filename: r.result_filename.clone().unwrap_or_default(),
            content_type: r.result_content_type.clone().unwrap_or_default(),
            size: size(r.result_size),
            url: format!("/api/v1/jobs/{id}/result"),
        });
        Job {
            id,
            status: JobStatus::parse(&r.status).unwrap_or(JobStatus::Failed),
            kind: r.kind,
            progress: Progress {
                percent: u8::try_from(r.progress_percent.clamp(0, 100)).unwrap_or(0),
                message: r.progress_message.unwrap_or_default(),
            },
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            max_attempts: u32::try_from(r.max_attempts).unwrap_or(0),
            error,
            input,
            result,
            created_at: timestamp(r.created_at),
            started_at: r.started_at.map(timestamp),
            finished_at: r.finished_at.map(timestamp),
            expired_at: r.expired_at.map(timestamp),
            attempt_errors,
        }
    }
}

impl poem_openapi::types::Example for Job {
    fn example() -> Self {
        let id = Uuid::parse_str("3f1c2a9e-0a4b-4c55-9d7e-2f1e6c1b9a10").expect("a valid uuid");
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("valid time")
                .with_timezone(&Utc)
        };
        Job {
            id,
            kind: "export".into(),
            status: JobStatus::Succeeded,
            progress: Progress {
                percent: 100,
                message: "done".into(),
            },
            attempts: 1,
            max_attempts: 5,
            error: None,
            input: Some(InputInfo {
                filename: "deck.pptx".into(),
                content_type:
                    "application/vnd.openxmlformats-officedocument.presentationml.presentation"
                        .into(),
                size: 46885,
            }),
            result: Some(ResultInfo {
                filename: "deck.pdf".into(),
                content_type: "application/pdf".into(),
                size: 33451,
                url: format!("/api/v1/jobs/{id}/result"),
            }),
            created_at: at("2026-11-22T10:00:00Z"),
            started_at: Some(at("2026-11-22T10:00:00.002Z")),
            finished_at: Some(at("2026-11-22T10:00:00.310Z")),
            expired_at: None,
            attempt_errors: Vec::new(),
        }
    }
}
