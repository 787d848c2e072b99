//! What a worker's claim hands to the rest of this process ([`super::claim`] on Postgres,
//! [`super::sqlite_claim`] on SQLite):
//! - the attempts the claim statement already started, waiting for their handler
//!   ([`super::Queue::begin_attempt`] takes them instead of starting the attempt again);
//! - how many claimed tasks of each kind are still being handled here, so that a claim never
//!   takes more tasks than the worker has free slots — a claimed task is `running` at once,
//!   so one waiting in a local buffer would show as running while nothing runs it (River and
//!   pg-boss fetch no more than their free slots for the same reason);
//! - the tasks whose apalis ack went out in the same statement as their attempt's end, so
//!   the completion event apalis sends afterwards costs nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::JobRecord;

#[derive(Debug, Default)]
pub(super) struct Claims {
    inner: Mutex<Inner>,
    /// Notified whenever a handler lets go of its task (a slot freed).
    freed: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// Task id → the attempt its claim started.
    started: HashMap<String, JobRecord>,
    /// Task id → kind, for tasks claimed here and not yet handled for good.
    handling: HashMap<String, &'static str>,
    per_kind: HashMap<&'static str, usize>,
    /// Task ids acked together with their attempt's end.
    acked: HashSet<String>,
}

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("claims lock")
    }

    /// Tasks of `kind` claimed here and still being handled.
    pub fn handling(&self, kind: &str) -> usize {
        self.lock().per_kind.get(kind).copied().unwrap_or(0)
    }

    /// Records a claim of `task_id`, with the attempt it started when its job was runnable.
    pub fn claimed(&self, kind: &'static str, task_id: &str, started: Option<JobRecord>) {
        let mut inner = self.lock();
        if inner.handling.insert(task_id.to_string(), kind).is_none() {
            *inner.per_kind.entry(kind).or_default() += 1;
        }
        if let Some(row) = started {
            inner.started.insert(task_id.to_string(), row);
        }
    }

    /// The attempt the claim of `task_id` started, once.
    pub fn take_started(&self, task_id: &str) -> Option<JobRecord> {
        self.lock().started.remove(task_id)
    }

    /// The handler of `task_id` is done with it (no retry follows in this process).
    pub fn released(&self, task_id: &str) {
        {
            let mut inner = self.lock();
            inner.started.remove(task_id);
            if let Some(kind) = inner.handling.remove(task_id)
                && let Some(n) = inner.per_kind.get_mut(kind)
            {
                *n = n.saturating_sub(1);
            }
        }
        self.freed.notify_waiters();
    }

    /// Waits until a worker of `kind` with `slots` slots has room for at least `want` more
    /// tasks, or has nothing running, or `patience` passed; returns the room then.
    pub async fn room(
        &self,
        kind: &str,
        slots: usize,
        want: usize,
        patience: std::time::Duration,
    ) -> usize {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Registered before reading, so a release in between is not missed.
            let freed = self.freed.notified();
            let busy = self.handling(kind);
            let room = slots.saturating_sub(busy);
            if room >= want || busy == 0 {
                return room;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return room;
            }
        }
    }

    /// A new worker of `kind` starts (the first, or one restarted after its backend failed):
    /// tasks an earlier one claimed and never handed to a handler are not coming back here
    /// (orphan recovery re-enqueues them), so they no longer take slots.
    pub fn forget(&self, kind: &str) {
        let mut inner = self.lock();
        inner.handling.retain(|_, k| *k != kind);
        inner.per_kind.remove(kind);
        inner.started.retain(|_, row| row.kind != kind);
    }

    /// `task_ids` were acked with their attempts' ends.
    pub fn acked(&self, task_ids: impl IntoIterator<Item = String>) {
        self.lock().acked.extend(task_ids);
    }

    /// Whether `task_id` was acked with its attempt's end (forgetting it).
    pub fn take_acked(&self, task_id: &str) -> bool {
        self.lock().acked.remove(task_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn room_waits_for_enough_free_slots_or_an_idle_worker() {
        let claims = std::sync::Arc::new(Claims::default());
        for t in ["a", "b", "c"] {
            claims.claimed("noop", t, None);
        }
        let long = std::time::Duration::from_secs(30);
        let waiting = {
            let claims = claims.clone();
            tokio::spawn(async move { claims.room("noop", 4, 3, long).await })
        };
        claims.released("a");
        claims.released("b");
        assert_eq!(waiting.await.unwrap(), 3);
        claims.released("c");
        assert_eq!(claims.room("noop", 4, 8, long).await, 4, "idle: no wait");
    }

    #[test]
    fn a_claim_counts_until_its_handler_is_done_and_hands_its_attempt_out_once() {
        let claims = Claims::default();
        claims.claimed("noop", "t1", None);
        claims.claimed("noop", "t2", None);
        claims.claimed("noop", "t2", None);
        claims.claimed("sleep", "t3", None);
        assert_eq!(claims.handling("noop"), 2);
        assert_eq!(claims.handling("sleep"), 1);
        claims.released("t1");
        claims.released("t1");
        assert_eq!(claims.handling("noop"), 1);
        assert!(claims.take_started("t2").is_none());
        claims.forget("sleep");
        assert_eq!(claims.handling("sleep"), 0);
        assert_eq!(claims.handling("noop"), 1);
        claims.acked(["t2".to_string()]);
        assert!(claims.take_acked("t2"));
        assert!(!claims.take_acked("t2"));
    }
}
