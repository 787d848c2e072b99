//! The worker side of the seam: one apalis worker per [`WorkerPlan`], pulling tasks from this
//! database and handing each to an [`Attempts`] — the job runner, which lives above the queue
//! and knows the kinds. The queue knows only plans: names, concurrency, retries, time limits.
//!
//! apalis owns fetching, locking, heartbeats and orphan recovery, and wraps each call in its
//! tower layers: concurrency limit, retry with exponential backoff and jitter, a backstop
//! timeout, panic catching. A handler that returns a plain error is retried after its backoff;
//! one that returns [`AbortError`] is never retried.

use std::sync::Arc;
use std::time::Duration;

use apalis::layers::retry::HasherRng;
use apalis::layers::retry::backoff::{ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use apalis::prelude::*;
use uuid::Uuid;

use super::claims::Claims;
use super::config::WorkerPlan;
use super::{Db, Queue, TaskRef};

/// How far past a kind's own time limit the apalis timeout layer waits before dropping a
/// stuck attempt (e.g. one blocked on a database that went away).
const BACKSTOP_GRACE: Duration = Duration::from_secs(30);
/// Backoff ceiling between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How an attempt ended, as the worker tells apalis.
#[derive(Debug)]
pub enum AttemptEnd {
    /// Finished (succeeded, or nothing to do).
    Done,
    /// Try again after the backoff.
    Retry(BoxDynError),
    /// Do not try again, for this reason.
    Final(String),
}

/// What a worker does with each task it takes: one attempt of the job the task carries.
#[async_trait::async_trait]
pub trait Attempts: Send + Sync + 'static {
    /// Runs attempt `attempt` (apalis's count, from 1) of job `job`, carried by `task_id`.
    async fn run(&self, job: Uuid, task_id: String, attempt: usize) -> AttemptEnd;
}

/// Tells the claims that a task's handler is done with it when dropped — after its last
/// attempt here, or when apalis drops the handler (backstop timeout, shutdown).
struct Release<'a> {
    claims: &'a Claims,
    task_id: &'a str,
    /// An in-process retry follows: the task still holds its slot.
    retrying: bool,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if !self.retrying {
            self.claims.released(self.task_id);
        }
    }
}

/// The apalis handler of every kind's worker.
async fn handle(
    task: TaskRef,
    task_id: TaskId,
    attempt: Attempt,
    attempts: Data<Arc<dyn Attempts>>,
    claims: Data<Arc<Claims>>,
) -> Result<(), BoxDynError> {
    let task_id = task_id.to_string();
    let mut release = Release {
        claims: &claims,
        task_id: &task_id,
        retrying: false,
    };
    match attempts
        .run(task.job_id, task_id.clone(), attempt.current())
        .await
    {
        AttemptEnd::Done => Ok(()),
        AttemptEnd::Retry(err) => {
            release.retrying = true;
            Err(err)
        }
        AttemptEnd::Final(reason) => Err(Box::new(AbortError::new(reason))),
    }
}

/// `max_attempts - 1` retries after the first run, exponential backoff from `plan.backoff`
/// doubling to a minute, with jitter so retries of many jobs spread out.
fn retry_policy(plan: &WorkerPlan) -> BackoffRetryPolicy<ExponentialBackoff<HasherRng>> {
    let min = plan.backoff.max(Duration::from_millis(1));
    let backoff =
        ExponentialBackoffMaker::new(min, MAX_BACKOFF.max(min), 0.5, HasherRng::default())
            .expect("backoff bounds are ordered and jitter is in range")
            .make_backoff();
    RetryPolicy::retries(plan.max_attempts.saturating_sub(1) as usize).with_backoff(backoff)
}

/// A worker name unique to this process and start (SQLite refuses a reused name for a while).
fn worker_name(kind: &str, restarts: usize) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    let nonce = &Uuid::new_v4().simple().to_string()[..8];
    format!("{kind}@{host}-{}-{nonce}-{restarts}", std::process::id())
}

/// The layers every worker gets over `backend`; a macro because each engine's backend is a
/// different type and apalis's builder bounds are not nameable in a generic function.
macro_rules! worker {
    ($backend:expr, $plan:expr, $name:expr, $attempts:expr, $claims:expr) => {
        WorkerBuilder::new($name)
            .backend($backend)
            .data($attempts.clone())
            .data($claims)
            .concurrency($plan.concurrency)
            .retry(retry_policy(&$plan))
            .timeout($plan.timeout + BACKSTOP_GRACE)
            .catch_panic()
            .build(handle)
    };
}

impl Queue {
    /// A fresh name for a worker of `kind`, remembered so that a clean shutdown can take the
    /// worker off the board ([`Queue::retire_workers`]).
    fn name_worker(&self, kind: &str, restarts: usize) -> String {
        let name = worker_name(kind, restarts);
        self.workers
            .lock()
            .expect("worker names lock")
            .push(name.clone());
        name
    }

    /// Registers one apalis worker per plan on `monitor`, pulling from this database; each
    /// restart (after the database went away) gets a fresh pool generation.
    pub fn register_workers(
        &self,
        mut monitor: Monitor,
        plans: Vec<WorkerPlan>,
        attempts: Arc<dyn Attempts>,
    ) -> Monitor {
        for plan in plans {
            let (queue, attempts) = (self.clone(), attempts.clone());
            monitor = match &self.db {
                Db::Postgres(_) => monitor.register(move |restarts| {
                    let name = queue.name_worker(plan.kind, restarts);
                    let backend = super::postgres::task_source(&queue, &plan, restarts);
                    worker!(backend, plan, name, attempts, queue.claims.clone())
                }),
                Db::Sqlite(_) => monitor.register(move |restarts| {
                    let name = queue.name_worker(plan.kind, restarts);
                    let backend = super::sqlite::task_source(&queue, &plan, restarts);
                    worker!(backend, plan, name, attempts, queue.claims.clone())
                }),
            };
        }
        monitor
    }
}
