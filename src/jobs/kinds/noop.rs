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
        // Tiny jobs: fetch many at once, run many at once.
        Policy {
            concurrency: 64,
            batch_size: 64,
            ..defaults
        }
    }

    async fn run(&self, _ctx: JobContext, _args: NoopArgs) -> Result<JobOutput, JobError> {
        Ok(JobOutput::none())
    }
}
