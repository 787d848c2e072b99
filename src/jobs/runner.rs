//! The worker side of a job: from an apalis task to one attempt of a [`super::JobKind`].
//!
//! apalis fetches the task, holds its lock with heartbeats, and wraps every call in its tower
//! layers (`queue::workers`); [`super::workers`] hands each task here. For each attempt
//! [`handle`]:
//! 1. starts the attempt in our table ([`Queue::begin_attempt`]; nothing to do if the job was
//!    cancelled, deleted or re-queued under a newer task),
//! 2. runs the kind with its time limit, a cancel watcher and a scratch directory,
//! 3. publishes the result (file to storage, row to `succeeded`) or records the failure,
//! 4. tells apalis whether to retry: a retryable error with attempts left returns a plain
//!    error (the retry layer backs off and calls us again); anything final returns
//!    `AbortError`, which apalis never retries.
//!
//! The attempt runs on its own tokio task: apalis polls all of a worker's jobs from one task,
//! and a spawned task lets attempts use both cores. Dropping the handler (backstop timeout,
//! shutdown) aborts that task, which drops the kind's future and kills its child processes.

use crate::model::codes;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::{ErasedKind, JobContext, JobError, JobOutput, JobStatus, Registry};
use crate::metrics::Metrics;
use crate::model::steps::{self, StepStatus};
use crate::queue::{AttemptEnd, AttemptError, Failure, JobRecord, Lease, Queue, Seen};
use crate::storage::Storage;

/// How often a running attempt re-reads its job's status to notice a cancel made by another
/// process (cancels made in this process arrive at once through the feed).
const CANCEL_POLL: Duration = Duration::from_millis(500);

/// Everything a worker needs, shared by all its attempts.
pub struct Runtime {
    queue: Queue,
    storage: Storage,
    registry: Registry,
    work_dir: PathBuf,
    metrics: Arc<Metrics>,
    /// Attempts started and not finished. An attempt removes itself when it ends normally; one
    /// that was dropped (shutdown deadline) stays here to be put back in the queue.
    in_flight: std::sync::Mutex<std::collections::HashMap<Uuid, Lease>>,
    /// Test-only fault injection: stop every attempt just before `publish`.
    pause_before_publish: bool,
}

impl Runtime {
    pub fn new(
        queue: Queue,
        storage: Storage,
        registry: Registry,
        work_dir: PathBuf,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            queue,
            storage,
            registry,
            work_dir,
            metrics,
            in_flight: Default::default(),
            pause_before_publish: false,
        }
    }

    /// Test-only fault injection (`OFFLOAD_TEST_PAUSE_BEFORE_PUBLISH`): every attempt stops
    /// for good just before its `publish` step, so a test can kill the worker there.
    pub fn pause_before_publish(mut self, pause: bool) -> Self {
        self.pause_before_publish = pause;
        self
    }

    /// Puts attempts that were still running when the worker stopped back in the queue (our
    /// row `queued`, the apalis task unlocked), so another worker picks them up at once instead
    /// of after their lease runs out. Returns how many.
    pub async fn requeue_interrupted(&self) -> usize {
        let leases: Vec<Lease> = self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .drain()
            .map(|(_, l)| l)
            .collect();
        let mut requeued = 0;
        for lease in leases {
            match self.queue.requeue_interrupted(&lease).await {
                Ok(true) => requeued += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(job_id = %lease.job, error = %e, "could not requeue; its lease will expire")
                }
            }
        }
        requeued
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn queue(&self) -> &Queue {
        &self.queue
    }
}

/// Aborts a spawned task when dropped, so that dropping a handler stops its attempt.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How an attempt ended, from apalis's point of view.
enum Stop {
    /// Try again after backoff.
    Retry(JobError),
    /// Do not try again (success is `Ok`).
    Final(String),
}

/// Runs one attempt of `job` (apalis's attempt `apalis_attempt`, task `task_id`) on a tokio
/// task of its own, and says how it ended.
pub(crate) async fn handle(
    rt: Arc<Runtime>,
    job: Uuid,
    task_id: String,
    apalis_attempt: usize,
) -> AttemptEnd {
    let span = tracing::info_span!("job", job_id = %job, task_id = %task_id);
    let run = run_attempt(rt, job, task_id, apalis_attempt);
    let mut work = AbortOnDrop(tokio::spawn(run.instrument(span)));
    match (&mut work.0).await {
        Ok(Ok(())) => AttemptEnd::Done,
        Ok(Err(Stop::Retry(err))) => AttemptEnd::Retry(Box::new(err)),
        Ok(Err(Stop::Final(reason))) => AttemptEnd::Final(reason),
        Err(join) => AttemptEnd::Final(format!("attempt crashed: {join}")),
    }
}

async fn run_attempt(
    rt: Arc<Runtime>,
    job: Uuid,
    task_id: String,
    apalis_attempt: usize,
) -> Result<(), Stop> {
    let row = match rt.queue.begin_attempt(job, &task_id).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            tracing::debug!("nothing to run: the job was cancelled, deleted or re-queued");
            return Ok(());
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not start the attempt");
            return Err(Stop::Retry(JobError::internal(e)));
        }
    };
    let lease = row.lease();
    rt.in_flight
        .lock()
        .expect("in-flight lock")
        .insert(job, lease.clone());
    let result = attempt(&rt, &row, lease.clone(), apalis_attempt).await;
    rt.in_flight.lock().expect("in-flight lock").remove(&job);
    result
}

/// One started attempt, from running the kind to recording how it ended.
/// The job's failed attempts so far, with an entry for every earlier attempt that left no
/// record: its worker stopped mid-attempt (crash, `kill -9`, shutdown) and its lease ran out.
fn history_before(row: &JobRecord, attempt: i64) -> Vec<AttemptError> {
    let mut history = row.attempt_errors.clone();
    for n in 1..attempt {
        if !history.iter().any(|e| e.attempt == n) {
            history.push(AttemptError {
                attempt: n,
                code: codes::WORKER_LOST.to_string(),
                message: "the worker running this attempt stopped before it finished (crash, kill or shutdown)".into(),
                at: crate::queue::now_micros(),
            });
        }
    }
    history.sort_by_key(|e| e.attempt);
    history
}

async fn attempt(
    rt: &Runtime,
    row: &JobRecord,
    lease: Lease,
    apalis_attempt: usize,
) -> Result<(), Stop> {
    let started = std::time::Instant::now();
    let mut history = history_before(row, lease.attempt);
    tracing::debug!(kind = %row.kind, attempt = lease.attempt, "attempt started");
    let result = match rt.registry.get(&row.kind) {
        None => Err(Outcome::Failed(JobError::fatal(
            codes::UNKNOWN_KIND,
            format!("no worker handles kind {:?}", row.kind),
        ))),
        Some(_) if row.attempts > row.max_attempts => Err(Outcome::Failed(JobError::fatal(
            codes::ATTEMPTS_EXHAUSTED,
            format!(
                "all {} attempts were used (the last ones were lost to crashes)",
                row.max_attempts
            ),
        ))),
        Some(kind) => run_kind(rt, kind.as_ref(), row, &history).await,
    };
    let result = match result {
        Ok(()) => {
            rt.metrics.attempt(
                row.tenant.as_str(),
                &row.kind,
                "succeeded",
                started.elapsed(),
            );
            return Ok(());
        }
        Err(Outcome::Cancelled) => {
            rt.metrics.attempt(
                row.tenant.as_str(),
                &row.kind,
                "cancelled",
                started.elapsed(),
            );
            tracing::info!("attempt stopped: the job was cancelled or deleted");
            return Err(Stop::Final("cancelled".into()));
        }
        Err(Outcome::Failed(err)) => err,
    };
    let result = give_up_after_timeouts(rt, &row.kind, &history, result);
    let max = u64::try_from(row.max_attempts).unwrap_or(1);
    let is_final = !result.retryable || lease.attempt as u64 >= max || apalis_attempt as u64 >= max;
    let outcome = if is_final { "failed" } else { "retried" };
    rt.metrics
        .attempt(row.tenant.as_str(), &row.kind, outcome, started.elapsed());
    tracing::warn!(code = %result.code, message = %result.message, is_final, "attempt failed");
    history.push(AttemptError {
        attempt: lease.attempt,
        code: result.code.to_string(),
        message: result.message.clone(),
        at: crate::queue::now_micros(),
    });
    let failure = Failure {
        code: result.code.as_str(),
        message: &result.message,
        is_final,
        history: &history,
    };
    if let Err(e) = rt.queue.fail(row, &failure).await {
        tracing::error!(error = %e, "could not record the failure");
    }
    if is_final {
        Err(Stop::Final(result.to_string()))
    } else {
        Err(Stop::Retry(result))
    }
}

/// A timeout that repeats what earlier attempts already showed becomes the kind's fatal
/// [`super::GiveUp`] error.
fn give_up_after_timeouts(
    rt: &Runtime,
    kind: &str,
    history: &[AttemptError],
    result: JobError,
) -> JobError {
    let rule = rt.registry.policy(kind).and_then(|p| p.give_up);
    let Some(rule) = rule.filter(|_| result.code == codes::TIMEOUT) else {
        return result;
    };
    let timeouts = 1 + history
        .iter()
        .filter(|e| codes::TIMEOUT == e.code.as_str())
        .count();
    if timeouts < rule.after_timeouts as usize {
        return result;
    }
    JobError::fatal(
        rule.code,
        format!("{} ({timeouts} attempts timed out)", rule.message),
    )
}

enum Outcome {
    Failed(JobError),
    Cancelled,
}

impl From<JobError> for Outcome {
    fn from(e: JobError) -> Self {
        Outcome::Failed(e)
    }
}

/// Runs the kind within its limit and publishes what it made. The scratch directory (made
/// when the kind first asks for it) lives as long as the attempt's context.
async fn run_kind(
    rt: &Runtime,
    kind: &dyn ErasedKind,
    row: &JobRecord,
    history: &[AttemptError],
) -> Result<(), Outcome> {
    let policy = kind.policy();
    let token = CancellationToken::new();
    let ctx = JobContext::new(
        row,
        rt.queue.clone(),
        rt.storage.clone(),
        &rt.work_dir,
        token.clone(),
    );
    let _watcher = AbortOnDrop(tokio::spawn(watch_cancel(
        rt.queue.clone(),
        row.clone(),
        token.clone(),
    )));
    let output = tokio::select! {
        r = tokio::time::timeout(policy.timeout, kind.run(ctx.clone(), row.args.clone())) => match r {
            Ok(output) => output,
            Err(_) => Err(JobError::retryable(
                codes::TIMEOUT,
                format!("the attempt took longer than {}s and was stopped", policy.timeout.as_secs()),
            )),
        },
        _ = token.cancelled() => return Err(Outcome::Cancelled),
    };
    match output {
        Ok(output) => publish(rt, row, &ctx, output, history).await,
        Err(_) if token.is_cancelled() => Err(Outcome::Cancelled),
        Err(e) => Err(e.into()),
    }
}

/// The runner's `publish` step: stores the result file (if the kind left one on disk) and
/// marks the job `succeeded` with its steps, fenced by the lease; for a job with a webhook or
/// a merge job, that happens in the same transaction as their next move.
async fn publish(
    rt: &Runtime,
    row: &JobRecord,
    ctx: &JobContext,
    output: JobOutput,
    history: &[AttemptError],
) -> Result<(), Outcome> {
    if rt.pause_before_publish {
        tracing::warn!(
            "fault injection (OFFLOAD_TEST_PAUSE_BEFORE_PUBLISH): pausing before publish"
        );
        std::future::pending::<()>().await;
    }
    let started_at = crate::queue::now_micros();
    let uploaded = match output.file {
        Some(file) if output.stored.is_none() => Some(ctx.store(&file).await?),
        _ => None,
    };
    let result = output.stored.or_else(|| uploaded.clone());
    let mut list = ctx.steps();
    steps::update(&mut list, steps::PUBLISH, |s| {
        s.status = StepStatus::Done;
        s.attempt = Some(row.attempts);
        s.started_at = Some(started_at);
        s.finished_at = Some(crate::queue::now_micros());
        s.error = None;
    });
    match rt
        .queue
        .succeed(row, result.as_ref(), history, &list)
        .await
        .map_err(JobError::internal)?
    {
        Some(_) => {
            tracing::debug!("attempt succeeded");
            Ok(())
        }
        None => {
            // Cancelled, deleted or superseded meanwhile: the file this attempt uploaded is
            // nobody's (one kept by a step may be a newer attempt's, so it stays).
            if let Some(file) = uploaded {
                let _ = rt.storage.delete(&file.key).await;
            }
            Err(Outcome::Cancelled)
        }
    }
}

/// Cancels `token` once the job is no longer `running`: cancelled or deleted (seen at once on
/// this process's feed, or within [`CANCEL_POLL`] from another process), following the job
/// from `started`, the row this attempt began with.
async fn watch_cancel(queue: Queue, started: JobRecord, token: CancellationToken) {
    let mut follow = queue.follow(&started, CANCEL_POLL);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            seen = follow.next() => match seen {
                Seen::Changed(row) if row.status == JobStatus::Running => continue,
                Seen::Changed(_) | Seen::Deleted => {
                    token.cancel();
                    return;
                }
            },
        }
    }
}
