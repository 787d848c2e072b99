//! The workers of this process: one per registered kind, as the queue seam runs them
//! ([`crate::queue::WorkerPlan`]), each task handed to the runner ([`super::runner`]). The
//! queue knows plans and an [`Attempts`] handler; it never sees the kinds or the runtime.

use std::sync::Arc;

use uuid::Uuid;

use super::runner::{self, Runtime};
use crate::queue::{AttemptEnd, Attempts, WorkerPlan};

/// The runner, as the queue's workers call it.
struct RunAttempts(Arc<Runtime>);

#[async_trait::async_trait]
impl Attempts for RunAttempts {
    async fn run(&self, job: Uuid, task_id: String, attempt: usize) -> AttemptEnd {
        runner::handle(self.0.clone(), job, task_id, attempt).await
    }
}

/// Registers one worker per kind of `runtime`'s registry on `monitor`.
pub fn register(
    monitor: apalis::prelude::Monitor,
    runtime: Arc<Runtime>,
) -> apalis::prelude::Monitor {
    let plans = runtime
        .registry()
        .iter()
        .map(|kind| {
            let policy = kind.policy();
            WorkerPlan {
                kind: kind.name(),
                concurrency: policy.concurrency,
                batch_size: policy.batch_size,
                max_attempts: policy.max_attempts,
                backoff: policy.backoff,
                timeout: policy.timeout,
            }
        })
        .collect();
    let queue = runtime.queue().clone();
    queue.register_workers(monitor, plans, Arc::new(RunAttempts(runtime)))
}
