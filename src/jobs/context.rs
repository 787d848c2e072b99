//! [`JobContext`]: what a running attempt can see and do — its ids, its scratch directory, its
//! input document, progress reports, checkpointed steps, other jobs' results (a merge reads its
//! parts') and cancellation.

use crate::model::codes;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{JobError, OutputFile};
use crate::model::Sealed;
use crate::model::steps::{self, Step, StepStatus};
use crate::queue::{InputFile, JobRecord, Lease, Queue, ResultFile};
use crate::storage::{self, Storage};

/// Handed to [`super::JobKind::run`] for one attempt. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<Inner>,
}

struct Inner {
    lease: Lease,
    max_attempts: u32,
    input: Option<InputFile>,
    secret: Option<Sealed>,
    queue: Queue,
    storage: Storage,
    /// Where the attempt's scratch directory goes.
    work_root: PathBuf,
    /// The scratch directory, made on first use and removed with the last handle.
    scratch: OnceLock<tempfile::TempDir>,
    cancel: CancellationToken,
    /// The job's step checkpoints as this attempt found and updated them.
    steps: Mutex<Vec<Step>>,
}

impl JobContext {
    pub(crate) fn new(
        row: &JobRecord,
        queue: Queue,
        storage: Storage,
        work_root: &Path,
        cancel: CancellationToken,
    ) -> Self {
        let input = row.input.clone();
        Self {
            inner: Arc::new(Inner {
                lease: row.lease(),
                max_attempts: u32::try_from(row.max_attempts).unwrap_or(u32::MAX),
                input,
                secret: row.secret.clone(),
                queue,
                storage,
                work_root: work_root.to_path_buf(),
                scratch: OnceLock::new(),
                cancel,
                steps: Mutex::new(row.steps.clone()),
            }),
        }
    }

    pub fn job_id(&self) -> Uuid {
        self.inner.lease.job
    }

    /// This attempt's number, starting at 1.
    pub fn attempt(&self) -> u32 {
        u32::try_from(self.inner.lease.attempt).unwrap_or(u32::MAX)
    }

    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// A private directory for this attempt, made on first use — most attempts of small kinds
    /// never touch disk, and making and removing a directory cost more than their whole queue
    /// path (#17) — and removed when the attempt ends however it ends. Failing to make it
    /// (disk full, no permission) is retryable.
    pub fn work_dir(&self) -> Result<&Path, JobError> {
        if let Some(dir) = self.inner.scratch.get() {
            return Ok(dir.path());
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("offload-{}-", self.job_id()))
            .tempdir_in(&self.inner.work_root)
            .map_err(|e| JobError::retryable(codes::SCRATCH_UNAVAILABLE, e.to_string()))?;
        // A racing first use made one too: keep the first, remove the other.
        Ok(self.inner.scratch.get_or_init(|| dir).path())
    }

    /// The document's password as the API sealed it (see `secrets::SecretKey::open`), while
    /// the job runs.
    pub fn sealed_password(&self) -> Option<&Sealed> {
        self.inner.secret.as_ref()
    }

    /// The uploaded document's metadata, for kinds created by `POST /exports`.
    pub fn input(&self) -> Option<&InputFile> {
        self.inner.input.as_ref()
    }

    /// Copies the uploaded document into the work directory as `input.<format>` and returns
    /// its path. A storage failure is retryable.
    pub async fn fetch_input(&self) -> Result<PathBuf, JobError> {
        let input = self.input().ok_or_else(|| {
            JobError::fatal(codes::MISSING_INPUT, "this job has no uploaded document")
        })?;
        let ext = if input.format.is_empty() {
            "bin"
        } else {
            &input.format
        };
        let path = self.work_dir()?.join(format!("input.{ext}"));
        self.inner
            .storage
            .download(&input.key, &path)
            .await
            .map_err(|e| JobError::retryable(codes::STORAGE_UNAVAILABLE, e.to_string()))?;
        Ok(path)
    }

    /// Reports progress (0–100) with a short stage message. Fails when the attempt no longer
    /// owns the job (it was cancelled, deleted, or handed to a newer attempt): stop then.
    pub async fn progress(&self, percent: u8, message: impl Into<String>) -> Result<(), JobError> {
        let message = message.into();
        let current = self
            .inner
            .queue
            .progress(&self.inner.lease, percent, &message)
            .await
            .map_err(JobError::internal)?;
        self.still_leased(current)
    }

    /// Runs step `name` once per job: if an earlier attempt finished it, returns its kept
    /// output without running `work`; otherwise runs `work` and checkpoints its output before
    /// returning it. Whatever the step made outside the database must be durable when `work`
    /// returns (see [`Self::store`]). A failure is recorded on the step and returned.
    pub async fn step<T, F>(&self, name: &str, work: F) -> Result<T, JobError>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, JobError>>,
    {
        if let Some(kept) = self.finished_step(name) {
            tracing::debug!(step = name, "step already done; using its checkpoint");
            return serde_json::from_value(kept).map_err(|e| {
                JobError::fatal(
                    codes::INTERNAL,
                    format!("step {name}: checkpoint unreadable: {e}"),
                )
            });
        }
        let (attempt, now) = (self.inner.lease.attempt, crate::queue::now_micros());
        self.checkpoint(name, |s| {
            s.status = StepStatus::Running;
            s.attempt = Some(attempt);
            s.started_at = Some(now);
            s.finished_at = None;
            s.error = None;
        })
        .await?;
        let result = work.await;
        let now = crate::queue::now_micros();
        match result {
            Ok(value) => {
                let output = serde_json::to_value(&value).map_err(JobError::internal)?;
                self.checkpoint(name, |s| {
                    s.status = StepStatus::Done;
                    s.finished_at = Some(now);
                    s.output = Some(output);
                })
                .await?;
                Ok(value)
            }
            Err(err) => {
                let why = err.to_string();
                // Best effort: the attempt's failure is recorded by the runner either way.
                let _ = self
                    .checkpoint(name, |s| {
                        s.status = StepStatus::Failed;
                        s.finished_at = Some(now);
                        s.error = Some(why);
                    })
                    .await;
                Err(err)
            }
        }
    }

    fn finished_step(&self, name: &str) -> Option<serde_json::Value> {
        let steps = self.inner.steps.lock().expect("steps lock");
        steps
            .iter()
            .find(|s| s.name == name && s.status == StepStatus::Done)
            .map(|s| s.output.clone().unwrap_or(serde_json::Value::Null))
    }

    async fn checkpoint(&self, name: &str, change: impl FnOnce(&mut Step)) -> Result<(), JobError> {
        let list = {
            let mut steps = self.inner.steps.lock().expect("steps lock");
            steps::update(&mut steps, name, change);
            steps.clone()
        };
        let current = self
            .inner
            .queue
            .checkpoint(&self.inner.lease, &list)
            .await
            .map_err(JobError::internal)?;
        self.still_leased(current)
    }

    /// `Ok` while a write found the attempt still owning the job; otherwise stops the attempt.
    fn still_leased(&self, current: bool) -> Result<(), JobError> {
        if current {
            return Ok(());
        }
        self.inner.cancel.cancel();
        Err(JobError::fatal(
            codes::LEASE_LOST,
            "the job was cancelled or taken over",
        ))
    }

    /// The step checkpoints as they stand.
    pub(crate) fn steps(&self) -> Vec<Step> {
        self.inner.steps.lock().expect("steps lock").clone()
    }

    /// Uploads `file` to storage as this attempt's result object and returns it; hand it to
    /// [`super::JobOutput::stored`], possibly from a later attempt (via a step's output).
    pub async fn store(&self, file: &OutputFile) -> Result<ResultFile, JobError> {
        let lease = &self.inner.lease;
        let key = storage::result_key(lease.job, &lease.task_id, lease.attempt);
        self.store_at(file, key).await
    }

    /// Like [`Self::store`], for one of several files of a result: `name` (service-made, e.g.
    /// `page-3.png`) tells them apart.
    pub async fn store_named(&self, file: &OutputFile, name: &str) -> Result<ResultFile, JobError> {
        let lease = &self.inner.lease;
        let key = storage::result_part_key(lease.job, &lease.task_id, lease.attempt, name);
        self.store_at(file, key).await
    }

    /// Copies a stored object (a result an earlier step stored) into `to`.
    pub async fn fetch_stored(&self, key: &str, to: &Path) -> Result<(), JobError> {
        self.inner
            .storage
            .download(key, to)
            .await
            .map(|_| ())
            .map_err(|e| JobError::retryable(codes::STORAGE_UNAVAILABLE, e.to_string()))
    }

    async fn store_at(&self, file: &OutputFile, key: String) -> Result<ResultFile, JobError> {
        let size = self
            .inner
            .storage
            .put_file(&key, &file.path)
            .await
            .map_err(|e| JobError::retryable(codes::STORAGE_UNAVAILABLE, e.to_string()))?;
        Ok(ResultFile {
            key,
            filename: file.filename.clone(),
            content_type: file.content_type.clone(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            parts: Default::default(),
        })
    }

    /// Another job, as stored (`None` if it does not exist).
    pub async fn job(&self, id: Uuid) -> Result<Option<JobRecord>, JobError> {
        self.inner.queue.get(id).await.map_err(JobError::internal)
    }

    /// Batch `id` as the API shows it, if it still exists.
    pub async fn batch(&self, id: Uuid) -> Result<Option<crate::model::batch::Batch>, JobError> {
        let found = self
            .inner
            .queue
            .batch(id)
            .await
            .map_err(JobError::internal)?;
        Ok(found.map(|(batch, jobs)| crate::model::batch::Batch::of(batch, jobs)))
    }

    /// This job's parts (a merge job's), in upload order.
    pub async fn parts(&self) -> Result<Vec<JobRecord>, JobError> {
        self.parts_of(self.job_id()).await
    }

    /// The parts of merge job `id`, in upload order.
    pub async fn parts_of(&self, id: Uuid) -> Result<Vec<JobRecord>, JobError> {
        self.inner.queue.parts(id).await.map_err(JobError::internal)
    }

    /// Copies the result file of `job` into `to`. A storage failure is retryable.
    pub async fn fetch_result(&self, job: &JobRecord, to: &Path) -> Result<(), JobError> {
        let key = job.result.as_ref().map(|r| r.key.as_str()).ok_or_else(|| {
            JobError::fatal(
                codes::MISSING_INPUT,
                format!("job {} has no result file", job.id),
            )
        })?;
        self.inner
            .storage
            .download(key, to)
            .await
            .map(|_| ())
            .map_err(|e| JobError::retryable(codes::STORAGE_UNAVAILABLE, e.to_string()))
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Completes when the job is cancelled; long-running kinds select on it.
    pub async fn cancelled(&self) {
        self.inner.cancel.cancelled().await
    }

    /// The token behind [`Self::cancelled`], for handing to helpers (e.g. a converter).
    pub fn cancel_token(&self) -> CancellationToken {
        self.inner.cancel.clone()
    }
}
