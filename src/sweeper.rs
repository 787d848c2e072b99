//! Retention: finished jobs' files expire, and old job rows are pruned.
//!
//! Every worker process runs the sweeper on `SWEEP_SCHEDULE` (an apalis-cron worker), but a
//! cluster-wide lease in the database lets one process per tick do the work. A sweep:
//! 1. deletes the stored input and result of jobs that finished more than `RESULT_RETENTION`
//!    ago and records `expired_at` (their result then answers 410 `result_expired`);
//! 2. deletes job rows (and their apalis tasks) that finished more than `JOB_RETENTION` ago,
//!    so the tables do not grow without bound;
//! 3. removes result-cache entries older than `CACHE_RETENTION`, with their files.
//!
//! Both steps are idempotent, so a sweep that overlaps another (a lease that ran out mid-way)
//! only repeats work.
//!
//! Killed workers are taken off the board by [`tidy_workers`], every lease rather than every
//! sweep, so an operator does not see a dead worker beside the live ones for minutes.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};

use crate::queue::{Queue, now_micros};
use crate::storage::Storage;

/// Rows handled per query, so one sweep never holds a long transaction.
const BATCH: u32 = 200;
const LEASE: &str = "sweeper";

/// How long finished jobs keep their files, and their rows.
#[derive(Debug, Clone)]
pub struct Retention {
    pub results: Duration,
    pub jobs: Duration,
    /// How long the result cache keeps a converted PDF.
    pub cache: Duration,
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub expired: usize,
    pub pruned: usize,
    /// Result-cache entries past `CACHE_RETENTION_SECS`, removed with their files.
    pub cache_expired: usize,
}

fn micros_ago(d: Duration) -> i64 {
    now_micros() - i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// One sweep, now (the scheduled sweeper calls this under its lease).
pub async fn sweep(
    queue: &Queue,
    storage: &Storage,
    retention: &Retention,
) -> anyhow::Result<Swept> {
    let mut swept = Swept::default();
    loop {
        let due = queue
            .expirable(micros_ago(retention.results), BATCH)
            .await?;
        if due.is_empty() {
            break;
        }
        for job in &due {
            storage.delete_job(job.id).await?;
            queue.mark_expired(job.id).await?;
            swept.expired += 1;
        }
    }
    loop {
        let pruned = queue.prune(micros_ago(retention.jobs), BATCH).await?;
        for job in &pruned {
            // Normally gone already (expired first); a job pruned before expiring still has files.
            storage.delete_job(job.id).await?;
        }
        swept.pruned += pruned.len();
        if pruned.len() < BATCH as usize {
            break;
        }
    }
    swept.cache_expired = expire_cache(queue, storage, micros_ago(retention.cache)).await?;
    Ok(swept)
}

/// Removes the result-cache entries made before `before`, and their files. An entry is
/// forgotten first: a lookup never finds an entry whose file is gone (and one that does,
/// after a race with a refresh, counts as a miss).
async fn expire_cache(queue: &Queue, storage: &Storage, before: i64) -> anyhow::Result<usize> {
    let mut expired = 0;
    loop {
        let due = queue.cache_expired(before, BATCH).await?;
        for (key, result_key) in &due {
            if queue.cache_forget(key, before).await? {
                storage.delete(result_key).await?;
                expired += 1;
            }
        }
        if due.len() < BATCH as usize {
            return Ok(expired);
        }
    }
}

/// The scheduled sweeper's shared state.
pub struct Sweeper {
    queue: Queue,
    storage: Storage,
    retention: Retention,
    schedule: cron::Schedule,
    holder: String,
}

impl Sweeper {
    pub fn new(
        queue: Queue,
        storage: Storage,
        retention: Retention,
        schedule: cron::Schedule,
    ) -> Self {
        let holder = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        Self {
            queue,
            storage,
            retention,
            schedule,
            holder,
        }
    }

    /// Registers the cron worker on `monitor`.
    pub fn register(self: Arc<Self>, monitor: Monitor) -> Monitor {
        monitor.register(move |restarts| {
            WorkerBuilder::new(format!("sweeper@{}-{restarts}", self.holder))
                .backend(CronScheduler::new(self.schedule.clone()))
                .data(self.clone())
                .build(on_tick)
        })
    }

    /// The lease lasts until the next tick, so exactly one process sweeps per tick.
    fn lease_until(&self) -> i64 {
        self.schedule
            .upcoming(chrono::Utc)
            .next()
            .map(|t| t.timestamp_micros() - 50_000)
            .unwrap_or_else(|| now_micros() + 60_000_000)
    }
}

async fn on_tick(_tick: Tick, sweeper: Data<Arc<Sweeper>>) -> Result<(), BoxDynError> {
    if !sweeper
        .queue
        .acquire_lease(LEASE, &sweeper.holder, sweeper.lease_until())
        .await?
    {
        return Ok(());
    }
    let swept = sweep(&sweeper.queue, &sweeper.storage, &sweeper.retention).await?;
    if swept != Swept::default() {
        tracing::info!(expired = swept.expired, pruned = swept.pruned, "swept");
    }
    Ok(())
}

/// Until `stop`, takes off the board (apalis's workers table) the workers that have not
/// heartbeated for `silent`: killed processes cannot say goodbye. Each worker process runs it;
/// the delete is one indexed statement, so a cluster of them costs nothing worth sharing out.
pub async fn tidy_workers(queue: Queue, silent: Duration, stop: impl Future<Output = ()>) {
    let mut tick = tokio::time::interval(silent / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => {}
        }
        match queue.prune_dead_workers(silent).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(workers = n, "dead workers taken off the board"),
            // The database being away is reported by the workers themselves.
            Err(e) => tracing::debug!(error = %e, "could not tidy the workers list"),
        }
    }
}
