//! Jobs: the [`JobKind`] trait every kind implements, the errors a kind returns, and the
//! [`Registry`] that the API and the workers share.
//!
//! The built-in kinds (`export`, `noop`, `sleep` in [`kinds`]) use exactly this public trait, the
//! way an application embedding offload as a library adds its own:
//!
//! ```no_run
//! use offload::jobs::{JobContext, JobError, JobKind, JobOutput};
//!
//! struct Thumbnail;
//!
//! #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
//! struct ThumbArgs { width: u32 }
//!
//! impl JobKind for Thumbnail {
//!     const NAME: &'static str = "thumbnail";
//!     type Args = ThumbArgs;
//!     async fn run(&self, ctx: JobContext, args: ThumbArgs) -> Result<JobOutput, JobError> {
//!         ctx.progress(50, format!("resizing to {}px", args.width)).await?;
//!         Ok(JobOutput::none())
//!     }
//! }
//! ```

pub mod cache;
pub mod context;
pub mod kinds;
pub mod runner;
pub mod workers;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::model::{ErrorCode, JobStatus, codes, steps};
pub use context::JobContext;

/// How the workers treat jobs of one kind.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Attempts before the job is `failed` for good (the first run counts).
    pub max_attempts: u32,
    /// Limit of one attempt; past it the attempt fails with code `timeout` (retryable).
    pub timeout: Duration,
    /// Attempts of this kind running at once in one worker process.
    pub concurrency: usize,
    /// Most jobs a worker claims per fetch; a claim never takes more than the worker's free
    /// slots (on Postgres a claimed job is running at once), so no worker hoards work that an
    /// idle one could start. For tiny jobs set `concurrency` to about twice this, so a full
    /// batch can be claimed while the previous one runs.
    pub batch_size: usize,
    /// First retry delay; doubles per attempt with jitter, capped at a minute.
    pub backoff: Duration,
    /// When repeated timeouts mean the job can never finish (`None`: every timeout is retried).
    pub give_up: Option<GiveUp>,
}

/// A kind whose jobs, having hit [`Policy::timeout`] on `after_timeouts` attempts, fail for
/// good with `code` instead of holding a worker for every remaining attempt (a document whose
/// layout never finishes takes as long on every try).
#[derive(Debug, Clone, Copy)]
pub struct GiveUp {
    pub after_timeouts: u32,
    /// The fatal error code (listed in the kind's [`JobKind::ERROR_CODES`] or the built-ins).
    pub code: ErrorCode,
    pub message: &'static str,
}

/// A kind of job: its arguments, its policy and what it does.
pub trait JobKind: Send + Sync + 'static {
    /// The kind's name in the API and its queue name. Renaming a kind strands its queued jobs.
    const NAME: &'static str;
    /// The `args` of `POST /jobs` (or what the API builds for an upload). Its JSON Schema is
    /// what the OpenAPI document shows for this kind's arguments.
    type Args: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
    /// Jobs of this kind carry an uploaded document and are created by `POST /exports`;
    /// the others are argument-only and created by `POST /jobs`.
    const TAKES_UPLOAD: bool = false;
    /// Error codes this kind returns beyond the built-in ones ([`codes::BUILTIN`]); they join
    /// the enum of job error codes in the OpenAPI document, so generated clients know them.
    const ERROR_CODES: &'static [ErrorCode] = &[];
    /// The steps [`Self::run`] goes through with [`JobContext::step`], in order; each one's
    /// outcome is checkpointed, so a new attempt resumes after the last finished step. The
    /// runner adds `publish` and `notify` after them. Shown in the job's `steps`.
    const STEPS: &'static [&'static str] = &[];
    /// Created by offload itself (a merge of parts, a webhook delivery), never by `POST /jobs`.
    const INTERNAL: bool = false;

    /// Adjust the service-wide defaults for this kind.
    fn policy(&self, defaults: Policy) -> Policy {
        defaults
    }

    /// Checks arguments at submit time; an `Err` becomes a 422 naming the problem.
    fn validate(&self, _args: &Self::Args) -> Result<(), String> {
        Ok(())
    }

    /// Runs one attempt. Report progress through `ctx`; return a fatal [`JobError`] for
    /// problems a retry cannot fix and a retryable one for the rest.
    fn run(
        &self,
        ctx: JobContext,
        args: Self::Args,
    ) -> impl Future<Output = Result<JobOutput, JobError>> + Send;
}

/// What an attempt produced.
#[derive(Debug, Default)]
pub struct JobOutput {
    /// A file to publish as the job's result (it is uploaded to storage by the runner).
    pub file: Option<OutputFile>,
    /// A result already in storage ([`JobContext::store`]), e.g. made by a checkpointed step.
    pub stored: Option<crate::queue::ResultFile>,
}

impl JobOutput {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn file(file: OutputFile) -> Self {
        Self {
            file: Some(file),
            stored: None,
        }
    }

    pub fn stored(file: crate::queue::ResultFile) -> Self {
        Self {
            file: None,
            stored: Some(file),
        }
    }
}

/// A result file on local disk, usually inside [`JobContext::work_dir`].
#[derive(Debug, Clone)]
pub struct OutputFile {
    pub path: PathBuf,
    pub filename: String,
    pub content_type: String,
}

/// Why an attempt failed, and whether trying again can help.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{code}: {message}")]
pub struct JobError {
    /// snake_case, stable: clients branch on it.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// `false`: fail now without further attempts (bad input, unsupported type, ...).
    pub retryable: bool,
}

impl JobError {
    /// A problem that another attempt will not fix; the job fails at once.
    pub fn fatal(code: impl Into<ErrorCode>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: false,
        }
    }

    /// A problem that may pass (a crash, a timeout, an outage); the job is retried with backoff.
    pub fn retryable(code: impl Into<ErrorCode>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: true,
        }
    }

    /// An unexpected internal failure (database, storage); retried.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::retryable(codes::INTERNAL, err.to_string())
    }
}

/// A kind with its types erased, so kinds of different `Args` live in one registry.
pub(crate) trait ErasedKind: Send + Sync {
    fn name(&self) -> &'static str;
    fn takes_upload(&self) -> bool;
    fn error_codes(&self) -> &'static [ErrorCode];
    fn steps(&self) -> &'static [&'static str];
    fn internal(&self) -> bool;
    fn args_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema;
    fn policy(&self) -> &Policy;
    fn check_args(&self, args: &serde_json::Value) -> Result<(), ArgsError>;
    fn run(
        &self,
        ctx: JobContext,
        args: serde_json::Value,
    ) -> BoxFuture<'static, Result<JobOutput, JobError>>;
}

struct Registered<K> {
    kind: Arc<K>,
    policy: Policy,
    /// The argument names the kind's schema lists (`None`: the schema allows any).
    fields: Option<std::collections::BTreeSet<String>>,
}

/// Why arguments were refused at submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// A key the kind's arguments do not have (a typo, say).
    UnknownField { field: String, known: Vec<String> },
    /// They do not parse, or the kind's own check refused them.
    Invalid(String),
}

/// The property names of an object schema that admits no others.
fn declared_fields(schema: &schemars::Schema) -> Option<std::collections::BTreeSet<String>> {
    let object = schema.as_object()?;
    if object.get("additionalProperties") != Some(&serde_json::Value::Bool(false)) {
        return None;
    }
    let properties = object.get("properties").and_then(|p| p.as_object());
    Some(
        properties
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default(),
    )
}

impl<K: JobKind> ErasedKind for Registered<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn takes_upload(&self) -> bool {
        K::TAKES_UPLOAD
    }

    fn error_codes(&self) -> &'static [ErrorCode] {
        K::ERROR_CODES
    }

    fn steps(&self) -> &'static [&'static str] {
        K::STEPS
    }

    fn internal(&self) -> bool {
        K::INTERNAL
    }

    fn args_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<K::Args>()
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }

    fn check_args(&self, args: &serde_json::Value) -> Result<(), ArgsError> {
        if let (Some(known), Some(given)) = (&self.fields, args.as_object())
            && let Some(unknown) = given.keys().find(|k| !known.contains(k.as_str()))
        {
            return Err(ArgsError::UnknownField {
                field: unknown.clone(),
                known: known.iter().cloned().collect(),
            });
        }
        let parsed: K::Args =
            serde_json::from_value(args.clone()).map_err(|e| ArgsError::Invalid(e.to_string()))?;
        self.kind.validate(&parsed).map_err(ArgsError::Invalid)
    }

    fn run(
        &self,
        ctx: JobContext,
        args: serde_json::Value,
    ) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let kind = self.kind.clone();
        Box::pin(async move {
            let args: K::Args = serde_json::from_value(args).map_err(|e| {
                JobError::fatal(
                    codes::INVALID_ARGUMENTS,
                    format!("stored arguments do not parse: {e}"),
                )
            })?;
            kind.run(ctx, args).await
        })
    }
}

fn is_kind_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The kinds this process knows, by name. The API and the workers must share one registry.
#[derive(Clone)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn ErasedKind>>,
    defaults: Policy,
}

impl Registry {
    /// An empty registry whose kinds start from `defaults`.
    pub fn new(defaults: Policy) -> Self {
        Self {
            kinds: BTreeMap::new(),
            defaults,
        }
    }

    /// Adds a kind; a second kind with the same name replaces the first.
    ///
    /// # Panics
    /// When the kind's name is not snake_case (`[a-z][a-z0-9_]*`): it names a queue, a URL
    /// segment in the spec and a metrics label.
    pub fn register<K: JobKind>(mut self, kind: K) -> Self {
        assert!(
            is_kind_name(K::NAME),
            "job kind names are snake_case ([a-z][a-z0-9_]*): {:?}",
            K::NAME
        );
        let policy = kind.policy(self.defaults.clone());
        let entry = Registered {
            kind: Arc::new(kind),
            policy,
            fields: declared_fields(&schemars::schema_for!(K::Args)),
        };
        self.kinds.insert(K::NAME, Arc::new(entry));
        self
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn ErasedKind>> {
        self.kinds.get(name)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<dyn ErasedKind>> {
        self.kinds.values()
    }

    /// Names of all registered kinds, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    /// Names of the kinds clients may submit (not the internal ones), sorted.
    pub fn submittable(&self) -> Vec<&'static str> {
        self.kinds
            .iter()
            .filter(|(_, k)| !k.internal())
            .map(|(name, _)| *name)
            .collect()
    }

    /// Every job error code a job of these kinds can show, sorted.
    pub fn error_codes(&self) -> Vec<&'static str> {
        let mut all: Vec<&'static str> = codes::BUILTIN.iter().map(|c| c.as_str()).collect();
        all.extend(
            self.kinds
                .values()
                .flat_map(|k| k.error_codes().iter().map(|c| c.as_str())),
        );
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The policy of a registered kind.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.kinds.get(name).map(|k| k.policy())
    }
}
