//! The apalis backend that offload's claiming persistences drive — [`super::claim`] on
//! Postgres, [`super::sqlite_claim`] on SQLite — and what they share: a worker's [`Slots`].
//! Built on apalis-core's public `Persistence` trait and its `Persisted` driver, which run
//! registration, heartbeats, fetches and completion events in order; a persistence only says
//! how each is done.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_codec::json::JsonCodec;
use apalis_core::backend::persistence::{Persisted, Persistence, TaskPersistLayer};
use apalis_core::backend::{Backend, BackendConfig, WireFormatBackend, finalize::Durable};
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::status::Status;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use serde_json::Value;
use ulid::Ulid;

use super::TaskRef;
use super::claims::Claims;

/// How long a claim waits for half a batch of free slots while other tasks run.
const GATHER_PATIENCE: Duration = Duration::from_millis(5);

/// A persistence whose fetch claims tasks and starts their attempts.
pub(super) trait ClaimSource:
    Persistence<Compact = Vec<u8>, Response = Value> + Clone + Send + 'static
{
    /// The engine's apalis configuration (what the builder reads).
    type Config;
    fn settings(&self) -> &Self::Config;
    fn slots(&self) -> &Slots;
}

/// An engine's claiming persistence: its pool, its apalis configuration and the worker's
/// slots (`claim` and `sqlite_claim` give it its `Persistence`).
#[derive(Clone)]
pub(super) struct Claimer<Pool, Config> {
    pub pool: Pool,
    pub config: Config,
    pub slots: Slots,
}

impl<Pool, Config> ClaimSource for Claimer<Pool, Config>
where
    Self: Persistence<Compact = Vec<u8>, Response = Value> + Clone + Send + 'static,
{
    type Config = Config;

    fn settings(&self) -> &Config {
        &self.config
    }

    fn slots(&self) -> &Slots {
        &self.slots
    }
}

/// One worker's slots: how many of its kind's tasks it runs at once, and what its claims
/// handed over.
#[derive(Clone)]
pub(super) struct Slots {
    pub kind: &'static str,
    pub concurrency: usize,
    /// Most tasks one claim takes.
    pub batch: usize,
    pub heartbeat: Duration,
    pub claims: Arc<Claims>,
    /// Running-job caps per tenant.
    pub caps: super::RunningCaps,
    /// The caps' exceptions as the Postgres claim binds them (`{tenant: cap}`), made once.
    pub caps_json: String,
}

impl Slots {
    /// The slots of a worker of `plan` on `queue`.
    pub fn of(queue: &super::Queue, plan: &super::WorkerPlan) -> Self {
        Self {
            kind: plan.kind,
            concurrency: plan.concurrency,
            batch: plan.batch_size,
            heartbeat: queue.config.heartbeat(),
            claims: queue.claims.clone(),
            caps: queue.config.running_caps.clone(),
            caps_json: queue.config.running_caps.exceptions.to_json(),
        }
    }

    /// The tasks a clean shutdown gives back before their handlers ran: forgotten here, with
    /// the attempts their claim started (to be undone).
    pub fn abandon(&self, task_ids: &[String]) -> Vec<super::JobRecord> {
        task_ids
            .iter()
            .filter_map(|id| {
                let row = self.claims.take_started(id);
                self.claims.released(id);
                row
            })
            .collect()
    }

    /// The completions among `events` that still need their ack (the rest were acked with
    /// their attempts' ends).
    pub fn unacked(
        &self,
        events: Vec<apalis_core::backend::persistence::TaskEvent<Value>>,
    ) -> Vec<apalis_core::backend::TaskResult<Value>> {
        use apalis_core::backend::persistence::TaskEvent;
        events
            .into_iter()
            .filter_map(|event| match event {
                TaskEvent::Complete(done) => Some(done),
                _ => None,
            })
            .filter(|done| !self.claims.take_acked(&done.task_id.to_string()))
            .collect()
    }

    /// How many tasks the next claim may take: the free slots, at least one (apalis asks for
    /// a task only when a slot is free) and at most `batch`. While others run, it first waits
    /// (briefly) for half a batch of slots: apalis asks again as soon as one slot frees, and
    /// a claim per freed slot would cost a statement per job.
    pub async fn room(&self) -> i64 {
        let batch = self.batch.max(1);
        let free = self
            .claims
            .room(
                self.kind,
                self.concurrency,
                batch.div_ceil(2),
                GATHER_PATIENCE,
            )
            .await;
        free.clamp(1, batch) as i64
    }
}

/// A task as a claim read it back, on either engine.
pub(super) struct Claimed {
    pub id: String,
    pub job: Vec<u8>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub priority: i64,
    /// Unix seconds.
    pub run_at: i64,
}

impl Claimed {
    /// The apalis task a worker of `kind` named `worker` now holds; `Err` names an id that is
    /// no ULID.
    pub fn into_task(self, kind: &str, worker: &str) -> Result<Task<Vec<u8>>, String> {
        let ulid =
            Ulid::from_string(&self.id).map_err(|e| format!("task id {:?}: {e}", self.id))?;
        let count = |n: i64| n.max(0) as usize;
        Ok(TaskBuilder::new(self.job)
            .task_id(TaskId::from_ulid(ulid))
            .queue(kind.to_string().into())
            .status(Status::Running)
            .attempt(count(self.attempts))
            .max_attempts(count(self.max_attempts))
            .priority(count(self.priority))
            .run_at_timestamp(self.run_at.max(0) as u64)
            .lock_by(Some(worker.to_string()))
            .build())
    }
}

/// The apalis backend of one worker: its persistence driven by apalis-core.
pub(super) struct ClaimingStorage<P: ClaimSource> {
    persistence: Persisted<P>,
    codec: JsonCodec,
}

impl<P: ClaimSource> ClaimingStorage<P> {
    pub fn new(persistence: P) -> Self {
        Self {
            persistence: Persisted::new(persistence),
            codec: JsonCodec::default(),
        }
    }
}

impl<P> Backend for ClaimingStorage<P>
where
    P: ClaimSource,
    P::Error: std::error::Error + Send + Sync + 'static,
{
    type Task = Task<Vec<u8>>;
    type Error = P::Error;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), P::Error>> {
        let heartbeat = self.persistence.slots().heartbeat;
        self.persistence.poll_ready(cx, worker, heartbeat)
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, P::Error>>> {
        self.persistence.poll_next(cx, worker)
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), P::Error>> {
        self.persistence.poll_close(cx, worker)
    }
}

impl<P: ClaimSource> BackendConfig for ClaimingStorage<P> {
    type Args = TaskRef;
    type Kind = Durable;
    type Id = Ulid;
    type Config = P::Config;
    type Layer = TaskPersistLayer<JsonCodec<Value>, Value>;

    fn config(&self) -> &P::Config {
        self.persistence.settings()
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        let batch = self.persistence.slots().batch;
        // Results are persisted (the ack); no lock event: the claim set `Running` already.
        self.persistence
            .layer(JsonCodec::<Value>::default(), batch)
            .persist_results(true)
            .lock_tasks(false)
    }
}

impl<P: ClaimSource> WireFormatBackend for ClaimingStorage<P> {
    type Codec = JsonCodec;
    type Compact = Vec<u8>;

    fn codec(&self) -> &JsonCodec {
        &self.codec
    }
}
