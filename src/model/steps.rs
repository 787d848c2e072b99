//! Checkpointed steps: a job runs as named steps whose outcomes are kept in its row, so a new
//! attempt (after a crash, a kill, a retry) resumes after the last finished step instead of
//! starting over.
//!
//! A kind declares its steps (`JobKind::STEPS`) and runs each through `JobContext::step`.
//! The runner adds two of its own to every job: `publish` (store
//! the result, mark the job `succeeded`) and, when the job has a `callback_url`, `notify`
//! (queue the webhook delivery, itself a durable job).
//!
//! A step's output must be all that later steps need from it, and anything it made outside
//! the database must be durable before it returns (the export's `convert` step stores its PDF
//! in object storage and returns the key).

use serde::{Deserialize, Serialize};

/// The runner's step that stores the result and marks the job `succeeded`.
pub const PUBLISH: &str = "publish";
/// The runner's step that queues the completion webhook.
pub const NOTIFY: &str = "notify";

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started (or started by an attempt that did not finish it).
    Pending,
    /// An attempt is running it.
    Running,
    /// Finished; its output is kept and it will not run again.
    Done,
    /// Its last run failed (a later attempt runs it again if the job is retried).
    Failed,
}

/// One step's checkpoint, as stored in the job's `steps` column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub status: StepStatus,
    /// The attempt that last ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
    /// Unix microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// What the step returned (kept for the attempts after it; not shown by the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// Why its last run failed (`code: message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Step {
    pub fn pending(name: &str) -> Self {
        Self {
            name: name.to_string(),
            status: StepStatus::Pending,
            attempt: None,
            started_at: None,
            finished_at: None,
            output: None,
            error: None,
        }
    }
}

/// The steps of a new job: the kind's, then `publish`, then `notify` if it has a callback.
pub fn initial(kind_steps: &[&str], notify: bool) -> Vec<Step> {
    let runner_steps = std::iter::once(PUBLISH).chain(notify.then_some(NOTIFY));
    kind_steps
        .iter()
        .copied()
        .chain(runner_steps)
        .map(Step::pending)
        .collect()
}

/// Parses a `steps` column (absent or unreadable: no steps).
pub fn parse(column: Option<&str>) -> Vec<Step> {
    column
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

pub fn to_column(steps: &[Step]) -> String {
    serde_json::to_string(steps).expect("steps serialize")
}

/// Sets step `name` (appending it if the job's list lacks it) with `update`.
pub fn update(steps: &mut Vec<Step>, name: &str, update: impl FnOnce(&mut Step)) {
    let index = match steps.iter().position(|s| s.name == name) {
        Some(i) => i,
        None => {
            steps.push(Step::pending(name));
            steps.len() - 1
        }
    };
    update(&mut steps[index]);
}

/// For a retry: finished steps keep their checkpoints, the others start over.
pub fn reset_unfinished(steps: &mut [Step]) {
    for step in steps.iter_mut().filter(|s| s.status != StepStatus::Done) {
        *step = Step::pending(&step.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_jobs_list_the_kinds_steps_then_the_runners() {
        let names = |steps: Vec<Step>| steps.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(
            names(initial(&["inspect", "convert"], true)),
            ["inspect", "convert", "publish", "notify"]
        );
        assert_eq!(names(initial(&[], false)), ["publish"]);
    }

    #[test]
    fn a_retry_keeps_finished_steps_only() {
        let mut steps = initial(&["a", "b"], false);
        update(&mut steps, "a", |s| {
            s.status = StepStatus::Done;
            s.output = Some(serde_json::json!(1));
        });
        update(&mut steps, "b", |s| s.status = StepStatus::Failed);
        reset_unfinished(&mut steps);
        assert_eq!(steps[0].status, StepStatus::Done);
        assert_eq!(steps[0].output, Some(serde_json::json!(1)));
        assert_eq!(steps[1], Step::pending("b"));
        let column = to_column(&steps);
        assert_eq!(parse(Some(&column)), steps);
    }
}
