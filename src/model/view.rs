//! The public Job JSON — the contract's Job object and friends — and its mapping from stored
//! rows. One view for every place a job is shown: HTTP answers, SSE events, webhook bodies.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::Serialize;

use super::options::ExportOptions;
use uuid::Uuid;

use super::{JobRecord, JobStatus, StepStatus};

/// Progress of the current attempt.
#[derive(Debug, Clone, Object, Serialize)]
pub struct Progress {
    /// 0 to 100.
    pub percent: u8,
    /// The current stage, e.g. `converting 5 slides`.
    pub message: String,
}

/// Why the job failed (or why its last attempt failed, while it waits to retry).
#[derive(Debug, Clone, Object, Serialize)]
pub struct JobErrorInfo {
    /// Stable snake_case code: `document_corrupt` and `document_encrypted` mean the upload
    /// itself is bad; `timeout`, `converter_crashed` and `storage_unavailable` are retried.
    pub code: String,
    /// Human readable.
    pub message: String,
}

/// One failed (or lost) attempt.
#[derive(Debug, Clone, Object, Serialize)]
pub struct AttemptErrorInfo {
    /// Which attempt (1-based).
    pub attempt: u32,
    /// As in `error.code`; `worker_lost` for an attempt whose worker stopped mid-way.
    pub code: String,
    pub message: String,
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
}

/// The uploaded document.
#[derive(Debug, Clone, Object, Serialize)]
pub struct InputInfo {
    /// The client's filename, sanitised.
    pub filename: String,
    /// The detected type (from the bytes, not the client's claim).
    pub content_type: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the uploaded bytes (hex): the result cache's key.
    #[oai(nullable)]
    pub sha256: Option<String>,
}

/// The result file.
#[derive(Debug, Clone, Object, Serialize)]
pub struct ResultInfo {
    pub filename: String,
    pub content_type: String,
    /// Bytes.
    pub size: u64,
    /// Where to download it (`GET`): the one file, or a zip of `files` when there are several.
    pub url: String,
    /// Page images: one per rendered page, in page order (empty for other results).
    pub files: Vec<ResultPartInfo>,
    /// A PNG of page 1 (with `thumbnail` at submit).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<ResultPartInfo>,
}

/// One image of a result.
#[derive(Debug, Clone, Object, Serialize)]
pub struct ResultPartInfo {
    /// The page of the PDF it shows (1-based).
    pub page: u32,
    pub filename: String,
    pub content_type: String,
    /// Bytes.
    pub size: u64,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// Where to download it (`GET`).
    pub url: String,
}

/// One checkpointed step of the job (see `JobKind::STEPS`): the kind's own steps (an export's
/// `inspect` and `convert`), then `publish` (the result stored, the job `succeeded`) and, with a
/// `callback_url`, `notify` (the webhook delivery queued). A new attempt resumes after the last
/// `done` step.
#[derive(Debug, Clone, Object, Serialize)]
pub struct StepInfo {
    pub name: String,
    pub status: StepStatus,
    /// The attempt that last ran it.
    #[oai(nullable)]
    pub attempt: Option<u32>,
    #[oai(nullable)]
    #[serde(serialize_with = "rfc3339_opt")]
    pub started_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    #[serde(serialize_with = "rfc3339_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why its last run failed.
    #[oai(nullable)]
    pub error: Option<String>,
}

/// One part of a merge job: a document converted on its own, merged in this order.
#[derive(Debug, Clone, Object, Serialize)]
pub struct PartInfo {
    /// The part's own job (`GET /api/v1/jobs/{id}`).
    pub id: Uuid,
    pub status: JobStatus,
    /// The part's uploaded filename.
    pub filename: String,
}

/// A job: what was asked, where it is, and what came out.
#[derive(Debug, Clone, Object, Serialize)]
#[oai(rename = "Job", example)]
pub struct Job {
    pub id: Uuid,
    /// `export`, `noop`, `sleep`, or a kind the embedding application registered.
    pub kind: String,
    pub status: JobStatus,
    /// Which waiting job a worker takes first: `interactive`, `normal` or `bulk`.
    pub priority: super::Priority,
    /// The caller's labels, as given (`{}` when none).
    pub metadata: std::collections::BTreeMap<String, String>,
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
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    #[serde(serialize_with = "rfc3339_opt")]
    pub started_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    #[serde(serialize_with = "rfc3339_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    /// When the job's files were deleted after the retention period (`null` until then).
    #[oai(nullable)]
    #[serde(serialize_with = "rfc3339_opt")]
    pub expired_at: Option<DateTime<Utc>>,
    /// Every failed or lost attempt of this run, oldest first (empty when none failed).
    pub attempt_errors: Vec<AttemptErrorInfo>,
    /// The job's steps and their checkpoints, in order.
    pub steps: Vec<StepInfo>,
    /// For a part of a merge job: that merge job.
    #[oai(nullable)]
    pub parent_id: Option<Uuid>,
    /// For a merge job: its parts in merge order (empty for other jobs).
    pub parts: Vec<PartInfo>,
    /// The batch it was submitted in (`GET /api/v1/batches/{id}`).
    #[oai(nullable)]
    pub batch_id: Option<Uuid>,
    /// Where the job is POSTed when it ends (see the README for the signature).
    #[oai(nullable)]
    pub callback_url: Option<String>,
    /// The job waits in `queued` until this time.
    #[oai(nullable)]
    #[serde(serialize_with = "rfc3339_opt")]
    pub run_at: Option<DateTime<Utc>>,
    /// An export's options, as given (`null` when none were).
    #[oai(nullable)]
    pub options: Option<ExportOptions>,
    /// Answered from the result cache: the same document was exported with the same options
    /// before, so the job was `succeeded` at once and nothing was converted.
    pub cache_hit: bool,
}

impl Job {
    /// The job with its merge parts listed (`parts` are that job's parts, in order).
    pub fn with_parts(row: JobRecord, parts: Vec<JobRecord>) -> Self {
        let mut job = Job::from(row);
        job.parts = parts
            .into_iter()
            .map(|p| PartInfo {
                id: p.id,
                status: p.status,
                filename: p.input.map(|i| i.filename).unwrap_or_default(),
            })
            .collect();
        job
    }
}

/// A timestamp as poem-openapi writes one (`to_rfc3339`: `+00:00`, where chrono's own serde
/// writes `Z`), so that a view's serde encoding — what answers are written with, see
/// `api::body::JsonAnswer` — is the JSON its `ToJSON` would give.
pub fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339())
}

/// [`rfc3339`], or `null`.
pub fn rfc3339_opt<S: serde::Serializer>(
    at: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, s),
        None => s.serialize_none(),
    }
}

fn timestamp(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn size(bytes: i64) -> u64 {
    u64::try_from(bytes).unwrap_or(0)
}

impl From<JobRecord> for Job {
    fn from(r: JobRecord) -> Self {
        let id = r.id;
        let attempt_errors = r
            .attempt_errors
            .into_iter()
            .map(|e| AttemptErrorInfo {
                attempt: u32::try_from(e.attempt).unwrap_or(0),
                code: e.code,
                message: e.message,
                at: timestamp(e.at),
            })
            .collect();
        let steps = r
            .steps
            .into_iter()
            .map(|s| StepInfo {
                name: s.name,
                status: s.status,
                attempt: s.attempt.and_then(|a| u32::try_from(a).ok()),
                started_at: s.started_at.map(timestamp),
                finished_at: s.finished_at.map(timestamp),
                error: s.error,
            })
            .collect();
        let error = match (r.error_code, r.error_message) {
            (Some(code), message) => Some(JobErrorInfo {
                code,
                message: message.unwrap_or_default(),
            }),
            _ => None,
        };
        let input = r.input.map(|i| InputInfo {
            filename: i.filename,
            content_type: i.content_type,
            size: size(i.size),
            sha256: i.sha256,
        });
        let options = r
            .args
            .get("options")
            .and_then(|o| serde_json::from_value::<ExportOptions>(o.clone()).ok());
        let result = r.result.map(|f| {
            let part = |p: crate::model::PartFile, url: String| ResultPartInfo {
                page: p.page,
                filename: p.filename,
                content_type: p.content_type,
                size: size(p.size),
                width: p.width,
                height: p.height,
                url,
            };
            let files = f.parts.files.into_iter().enumerate();
            ResultInfo {
                filename: f.filename,
                content_type: f.content_type,
                size: size(f.size),
                url: format!("/api/v1/jobs/{id}/result"),
                files: files
                    .map(|(n, p)| part(p, format!("/api/v1/jobs/{id}/result/files/{}", n + 1)))
                    .collect(),
                thumbnail: f
                    .parts
                    .thumbnail
                    .map(|p| part(p, format!("/api/v1/jobs/{id}/result/thumbnail"))),
            }
        });
        Job {
            id,
            steps,
            parent_id: r.parent_id,
            parts: Vec::new(),
            batch_id: r.batch.map(|b| b.id),
            callback_url: r.callback_url,
            run_at: r.run_at.map(timestamp),
            options,
            cache_hit: r.cache_hit,
            status: r.status,
            priority: r.priority,
            metadata: r.metadata.as_map().clone(),
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
            priority: super::Priority::Interactive,
            metadata: [("customer".to_string(), "acme".to_string())].into(),
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
                sha256: Some(
                    "9f2c1d0e5b7a4c3e8d6f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d".into(),
                ),
            }),
            result: Some(ResultInfo {
                filename: "deck.pdf".into(),
                content_type: "application/pdf".into(),
                size: 33451,
                url: format!("/api/v1/jobs/{id}/result"),
                files: Vec::new(),
                thumbnail: None,
            }),
            created_at: at("2026-11-22T10:00:00Z"),
            started_at: Some(at("2026-11-22T10:00:00.002Z")),
            finished_at: Some(at("2026-11-22T10:00:00.310Z")),
            expired_at: None,
            attempt_errors: Vec::new(),
            steps: ["inspect", "convert", "publish"]
                .into_iter()
                .map(|name| StepInfo {
                    name: name.into(),
                    status: StepStatus::Done,
                    attempt: Some(1),
                    started_at: Some(at("2026-11-22T10:00:00.002Z")),
                    finished_at: Some(at("2026-11-22T10:00:00.310Z")),
                    error: None,
                })
                .collect(),
            parent_id: None,
            parts: Vec::new(),
            batch_id: None,
            callback_url: None,
            run_at: None,
            options: None,
            cache_hit: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ToJSON;

    use super::*;
    use crate::model::Priority;

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(1_764_633_600_000_000 + second * 1_000_123).unwrap()
    }

    fn part(page: u32) -> ResultPartInfo {
        ResultPartInfo {
            page,
            filename: format!("page-{page}.png"),
            content_type: "image/png".into(),
            size: 1234,
            width: 800,
            height: 600,
            url: format!("/api/v1/jobs/x/result/files/{page}"),
        }
    }

    /// A job with every field set (and one whose optional fields are all empty).
    fn jobs() -> Vec<Job> {
        let full = Job {
            id: Uuid::new_v4(),
            kind: "export".into(),
            status: JobStatus::Failed,
            priority: Priority::Interactive,
            metadata: [("team".to_string(), "a \"quoted\" é".to_string())].into(),
            progress: Progress {
                percent: 42,
                message: "converting 5 slides".into(),
            },
            attempts: 2,
            max_attempts: 5,
            error: Some(JobErrorInfo {
                code: "document_corrupt".into(),
                message: "bad\nzip".into(),
            }),
            input: Some(InputInfo {
                filename: "a.docx".into(),
                content_type: "application/vnd.openxmlformats".into(),
                size: u64::MAX,
                sha256: Some("ab".repeat(32)),
            }),
            result: Some(ResultInfo {
                filename: "a.pdf".into(),
                content_type: "application/pdf".into(),
                size: 99,
                url: "/api/v1/jobs/x/result".into(),
                files: vec![part(1), part(2)],
                thumbnail: Some(part(1)),
            }),
            created_at: at(0),
            started_at: Some(at(1)),
            finished_at: Some(at(2)),
            expired_at: Some(at(3)),
            attempt_errors: vec![AttemptErrorInfo {
                attempt: 1,
                code: "timeout".into(),
                message: "took too long".into(),
                at: at(4),
            }],
            steps: vec![StepInfo {
                name: "convert".into(),
                status: StepStatus::Failed,
                attempt: Some(2),
                started_at: Some(at(5)),
                finished_at: Some(at(6)),
                error: Some("crashed".into()),
            }],
            parent_id: Some(Uuid::new_v4()),
            parts: vec![PartInfo {
                id: Uuid::new_v4(),
                status: JobStatus::Succeeded,
                filename: "b.odt".into(),
            }],
            batch_id: Some(Uuid::new_v4()),
            callback_url: Some("https://example.com/hook".into()),
            run_at: Some(at(7)),
            options: Some(
                serde_json::from_value(serde_json::json!({
                    "page_range": "1-3", "pdf_a": "1b", "landscape": true, "image_quality": 80,
                    "max_image_dpi": 300, "watermark": {"text": "draft", "tiled": true},
                    "csv": {"sheet": 2, "separator": ";", "encoding": "windows-1252"}
                }))
                .unwrap(),
            ),
            cache_hit: true,
        };
        let mut empty = full.clone();
        empty.error = None;
        empty.input = None;
        empty.started_at = None;
        empty.finished_at = None;
        empty.expired_at = None;
        empty.parent_id = None;
        empty.batch_id = None;
        empty.callback_url = None;
        empty.run_at = None;
        empty.options = None;
        empty.metadata.clear();
        empty.steps[0].attempt = None;
        empty.steps[0].started_at = None;
        empty.steps[0].error = None;
        let mut no_thumbnail = full.clone();
        no_thumbnail.result.as_mut().unwrap().thumbnail = None;
        empty.result = None;
        vec![full, no_thumbnail, empty]
    }

    #[test]
    fn answers_written_with_serde_are_the_json_the_spec_types_give() {
        for job in jobs() {
            let ours = serde_json::to_value(&job).unwrap();
            assert_eq!(Some(ours), job.to_json(), "{job:?}");
        }
        let batch = crate::model::batch::Batch {
            id: Uuid::new_v4(),
            created_at: at(0),
            size: 3,
            counts: crate::model::batch::BatchCounts {
                queued: 1,
                running: 0,
                succeeded: 1,
                failed: 1,
                cancelled: 0,
            },
            ended: false,
            ended_at: Some(at(9)),
            callback_url: Some("https://example.com/b".into()),
            callback_delivery: None,
            jobs: jobs(),
        };
        assert_eq!(Some(serde_json::to_value(&batch).unwrap()), batch.to_json());
        let open = crate::model::batch::Batch {
            ended_at: None,
            callback_url: None,
            callback_delivery: Some(Uuid::new_v4()),
            jobs: Vec::new(),
            ..batch
        };
        assert_eq!(Some(serde_json::to_value(&open).unwrap()), open.to_json());
    }
}
