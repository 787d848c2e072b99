//! `sleep`: the seed's demo of long and failing jobs. Sleeps `seconds`, reporting progress in
//! ten steps, and fails (retryably) its first `fail_times` attempts.

use crate::model::codes;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::{JobContext, JobError, JobKind, JobOutput};

pub struct Sleep;

/// Longest sleep accepted, so a typo cannot park a worker slot for days.
const MAX_SECONDS: f64 = 24.0 * 3600.0;
const MAX_FAIL_TIMES: u32 = 1000;
const STEPS: u32 = 10;

/// `sleep` arguments.
#[derive(Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepArgs {
    /// How long each attempt sleeps, in seconds (0 to 86400).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 86400.0))]
    pub seconds: f64,
    /// How many of the first attempts fail on purpose (0 to 1000).
    #[serde(default)]
    #[schemars(range(max = 1000))]
    pub fail_times: u32,
}

impl JobKind for Sleep {
    const NAME: &'static str = "sleep";
    type Args = SleepArgs;

    fn validate(&self, args: &SleepArgs) -> Result<(), String> {
        if !(0.0..=MAX_SECONDS).contains(&args.seconds) {
            return Err(format!("seconds must be between 0 and {MAX_SECONDS}"));
        }
        if args.fail_times > MAX_FAIL_TIMES {
            return Err(format!("fail_times must be at most {MAX_FAIL_TIMES}"));
        }
        Ok(())
    }

    async fn run(&self, ctx: JobContext, args: SleepArgs) -> Result<JobOutput, JobError> {
        let step = Duration::from_secs_f64(args.seconds / f64::from(STEPS));
        for i in 1..=STEPS {
            tokio::time::sleep(step).await;
            let percent = u8::try_from(i * 100 / STEPS).unwrap_or(100);
            ctx.progress(
                percent,
                format!("slept {:.1}s", step.as_secs_f64() * f64::from(i)),
            )
            .await?;
        }
        if ctx.attempt() <= args.fail_times {
            return Err(JobError::retryable(
                codes::PLANNED_FAILURE,
                format!(
                    "attempt {} fails on purpose (fail_times = {})",
                    ctx.attempt(),
                    args.fail_times
                ),
            ));
        }
        Ok(JobOutput::none())
    }
}
