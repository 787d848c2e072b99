//! A job as the rest of offload sees it: the stored row, decoded once into types ([`JobRecord`]),
//! what it carries in and out ([`InputFile`], [`ResultFile`]), its failed attempts
//! ([`AttemptError`]), an attempt's claim on it ([`Lease`]), and a job to create ([`NewJob`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::status::JobStatus;
use super::steps::{self, Step};

/// A job as stored: every column decoded once, when the row is read.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: Uuid,
    /// Whose job it is: only this tenant's keys reach it.
    pub tenant: super::Tenant,
    /// Which waiting job a worker takes first.
    pub priority: super::Priority,
    /// The caller's labels.
    pub metadata: super::Metadata,
    pub kind: String,
    pub status: JobStatus,
    pub args: serde_json::Value,
    /// The apalis task that carries the current run (a retry gets a new one).
    pub task_id: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub progress_percent: i64,
    pub progress_message: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub input: Option<InputFile>,
    pub result: Option<ResultFile>,
    pub idempotency_key: Option<String>,
    /// Unix microseconds, as every timestamp here.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
    /// When the sweeper deleted the job's files (its result then answers 410).
    pub expired_at: Option<i64>,
    /// Failed (or lost) attempts of this run, oldest first.
    pub attempt_errors: Vec<AttemptError>,
    /// The step checkpoints.
    pub steps: Vec<Step>,
    /// The merge job this job is a part of.
    pub parent_id: Option<Uuid>,
    /// This part's place in its merge job (upload order, from 0).
    pub part_index: Option<i64>,
    /// A merge job's parts not yet succeeded; its task is pushed when this reaches 0.
    pub waiting_parts: Option<i64>,
    /// Where to POST the job when it ends.
    pub callback_url: Option<String>,
    /// Not before this time.
    pub run_at: Option<i64>,
    /// The document's password, sealed; wiped (by the database) when the job ends.
    pub secret: Option<Sealed>,
    /// Answered from the result cache: succeeded at submit, nothing converted.
    pub cache_hit: bool,
    /// The batch it was submitted in.
    pub batch: Option<super::batch::BatchRef>,
}

impl JobRecord {
    /// A merge job (it has parts).
    pub fn is_parent(&self) -> bool {
        self.waiting_parts.is_some()
    }

    /// The attempt this row is currently leased to.
    pub fn lease(&self) -> Lease {
        Lease {
            job: self.id,
            task_id: self.task_id.clone(),
            attempt: self.attempts,
        }
    }

    /// The uploaded document's filename, if it has one.
    pub fn input_filename(&self) -> Option<&str> {
        self.input.as_ref().map(|i| i.filename.as_str())
    }
}

/// One failed (or lost) attempt, as kept in the job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    pub attempt: i64,
    pub code: String,
    pub message: String,
    /// Unix microseconds.
    pub at: i64,
}

/// A stored input document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub key: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// The detected document format (e.g. `pptx`), never the client's claim.
    pub format: String,
    /// SHA-256 of the uploaded bytes, hex.
    pub sha256: Option<String>,
}

/// A document password sealed under the service's key (see `secrets`); its text is
/// ciphertext, and even so it is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(String);

impl Sealed {
    pub fn new(text: String) -> Self {
        Sealed(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(…)")
    }
}

/// A stored result file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultFile {
    pub key: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// The files inside a result of several (page images), and a thumbnail.
    #[serde(default, skip_serializing_if = "ResultParts::is_empty")]
    pub parts: ResultParts,
}

/// What a result holds besides its main file: each page image (the main file is then a zip
/// of them, or the one image), and a page-1 thumbnail. Stored as JSON (`result_parts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultParts {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PartFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<PartFile>,
}

impl ResultParts {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.thumbnail.is_none()
    }

    /// The JSON of the `result_parts` column (`None` when there are none).
    pub fn to_column(&self) -> Option<String> {
        (!self.is_empty()).then(|| serde_json::to_string(self).expect("parts serialize"))
    }
}

/// One stored image of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    /// 1-based page of the PDF it shows.
    pub page: u32,
    pub key: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub width: u32,
    pub height: u32,
}

/// One attempt's claim on a job; every write of the attempt is fenced by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job: Uuid,
    pub task_id: String,
    pub attempt: i64,
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub tenant: super::Tenant,
    pub priority: super::Priority,
    pub metadata: super::Metadata,
    pub kind: String,
    pub args: serde_json::Value,
    pub max_attempts: u32,
    pub idempotency_key: Option<String>,
    pub input: Option<InputFile>,
    /// Names of the kind's steps (the runner's own are added).
    pub steps: Vec<&'static str>,
    /// Where to POST the job when it ends (checked by the caller).
    pub callback_url: Option<String>,
    /// Not before this time (unix microseconds).
    pub run_at: Option<i64>,
    /// Part `index` of merge job `parent`.
    pub part_of: Option<(Uuid, i64)>,
    /// A merge job waiting for this many parts: it gets no task until they succeed.
    pub waiting_parts: Option<i64>,
    /// The document's password, sealed for this job.
    pub secret: Option<Sealed>,
    /// Already converted (a result-cache hit): the job is created `succeeded` with this
    /// result, and gets no task.
    pub cached: Option<ResultFile>,
    /// Its batch (set by the queue when it creates the batch).
    pub batch: Option<super::batch::BatchRef>,
}

impl NewJob {
    /// A job of `kind` with `args` and nothing else set.
    pub fn new(kind: &str, args: serde_json::Value, max_attempts: u32) -> Self {
        Self {
            id: Uuid::new_v4(),
            tenant: super::Tenant::default_tenant(),
            priority: super::Priority::Normal,
            metadata: super::Metadata::default(),
            kind: kind.to_string(),
            args,
            max_attempts,
            idempotency_key: None,
            input: None,
            steps: Vec::new(),
            callback_url: None,
            run_at: None,
            part_of: None,
            waiting_parts: None,
            secret: None,
            cached: None,
            batch: None,
        }
    }

    /// The steps it starts with: the kind's, `publish`, and `notify` with a callback.
    pub fn initial_steps(&self) -> Vec<Step> {
        steps::initial(&self.steps, self.callback_url.is_some())
    }

    /// Its first progress message.
    pub fn initial_message(&self, now: i64) -> String {
        match (self.waiting_parts, self.run_at) {
            (Some(n), _) => format!("waiting for {n} parts"),
            (None, Some(at)) if at > now => format!(
                "scheduled for {}",
                chrono::DateTime::from_timestamp_micros(at)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default()
            ),
            _ => "queued".into(),
        }
    }
}

/// Now, in unix microseconds (the unit of every stored timestamp).
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
