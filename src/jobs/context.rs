//! [`JobContext`]: what a running attempt can see and do — its ids, its scratch directory, its
//! input document, progress reports and cancellation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::JobError;
use crate::queue::{InputFile, JobRecord, Lease, Queue};
use crate::storage::Storage;

/// Handed to [`super::JobKind::run`] for one attempt. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<Inner>,
}

struct Inner {
    lease: Lease,
    max_attempts: u32,
    input: Option<InputFile>,
    queue: Queue,
    storage: Storage,
    work_dir: PathBuf,
    cancel: CancellationToken,
}

impl JobContext {
    pub(crate) fn new(
        row: &JobRecord,
        queue: Queue,
        storage: Storage,
        work_dir: &Path,
        cancel: CancellationToken,
    ) -> Self {
        let input = row.input_key.as_ref().map(|key| InputFile {
            key: key.clone(),
            filename: row.input_filename.clone().unwrap_or_default(),
            content_type: row.input_content_type.clone().unwrap_or_default(),
            size: row.input_size.unwrap_or(0),
            format: row.input_format.clone().unwrap_or_default(),
        });
        Self {
            inner: Arc::new(Inner {
                lease: row.lease(),
                max_attempts: u32::try_from(row.max_attempts).unwrap_or(u32::MAX),
                input,
                queue,
                storage,
                work_dir: work_dir.to_path_buf(),
                cancel,
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

    /// A private directory for this attempt, removed when the attempt ends however it ends.
    pub fn work_dir(&self) -> &Path {
        &self.inner.work_dir
    }

    /// The uploaded document's metadata, for kinds created by `POST /exports`.
    pub fn input(&self) -> Option<&InputFile> {
        self.inner.input.as_ref()
    }

    /// Copies the uploaded document into the work directory as `input.<format>` and returns
    /// its path. A storage failure is retryable.
    pub async fn fetch_input(&self) -> Result<PathBuf, JobError> {
        let input = self
            .input()
            .ok_or_else(|| JobError::fatal("missing_input", "this job has no uploaded document"))?;
        let ext = if input.format.is_empty() {
            "bin"
        } else {
            &input.format
        };
        let path = self.work_dir().join(format!("input.{ext}"));
        self.inner
            .storage
            .download(&input.key, &path)
            .await
            .map_err(|e| JobError::retryable("storage_unavailable", e.to_string()))?;
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
        if current {
            Ok(())
        } else {
            self.inner.cancel.cancel();
            Err(JobError::fatal(
                "lease_lost",
                "the job was cancelled or taken over",
            ))
        }
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
