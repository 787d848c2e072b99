//! `noop`: does nothing and succeeds — the unit of the queue benchmarks.

use serde::{Deserialize, Serialize};

use crate::jobs::{JobContext, JobError, JobKind, JobOutput, Policy};

pub struct Noop;

/// `noop` takes no arguments (`{}`).
#[derive(Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoopArgs {}

impl JobKind for Noop {
    const NAME: &'static str = "noop";
    type Args = NoopArgs;

    fn policy(&self, defaults: Policy) -> Policy {
        // Tiny jobs: fetch many at once, run many at once. A claim takes at most the free
        // slots, so twice a batch of slots lets the next full batch be claimed while the last
        // one runs (pg-boss's best setting is the same shape: batches of 100, two at a time).
        Policy {
            concurrency: 200,
            batch_size: 100,
            ..defaults
        }
    }

    async fn run(&self, _ctx: JobContext, _args: NoopArgs) -> Result<JobOutput, JobError> {
        Ok(JobOutput::none())
    }
}
