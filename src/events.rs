//! In-process notifications: the job change feed and the worker wake-ups.
//!
//! - [`Feed`] carries "job X changed (to status S)" from whoever wrote the change in this
//!   process to whoever waits on it here: SSE streams and the cancel watcher of a running
//!   attempt. Changes written by *other* processes are not on the feed; its readers also poll
//!   the database on a short interval, so the feed only makes the common case instant.
//! - [`Wakers`] lets an enqueue in this process wake this process's idle worker of that kind at
//!   once instead of at its next poll.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use futures::channel::mpsc;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::jobs::JobStatus;
use crate::queue::JobRecord;

/// One change of one job: its new status (`None`: deleted) and, when the writer had it, the
/// row as written — so a reader sees every state, even one that lasted a millisecond.
#[derive(Debug, Clone)]
pub struct Change {
    pub job: Uuid,
    pub status: Option<JobStatus>,
    pub row: Option<Arc<JobRecord>>,
}

/// Broadcast of job changes made in this process, plus a direct line per watched job.
///
/// The broadcast suits a few wide readers (an SSE stream of many jobs). A running attempt
/// cares about one job only; had each of them subscribed to the broadcast, every change would
/// wake every running attempt — with 64 attempts in flight, thousands of wake-ups per batch,
/// which starved the runtime and held a 64-job commit for ~45 ms. [`Feed::watch`] delivers
/// just the one job's changes.
#[derive(Clone, Debug)]
pub struct Feed {
    tx: broadcast::Sender<Change>,
    watchers: Arc<Mutex<HashMap<Uuid, Vec<tokio::sync::mpsc::UnboundedSender<Change>>>>>,
}

impl Default for Feed {
    fn default() -> Self {
        // Readers that lag simply re-read the database, so a modest buffer is enough.
        let (tx, _) = broadcast::channel(1024);
        Self {
            tx,
            watchers: Arc::default(),
        }
    }
}

impl Feed {
    pub fn publish(&self, change: Change) {
        if let Some(list) = self
            .watchers
            .lock()
            .expect("watchers lock")
            .get(&change.job)
        {
            for watcher in list {
                let _ = watcher.send(change.clone());
            }
        }
        // No subscribers is normal (nobody watching this job).
        let _ = self.tx.send(change);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// The changes of `job` alone, from now until the returned watch is dropped.
    pub fn watch(&self, job: Uuid) -> JobWatch {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.watchers
            .lock()
            .expect("watchers lock")
            .entry(job)
            .or_default()
            .push(tx);
        JobWatch {
            job,
            rx,
            watchers: self.watchers.clone(),
        }
    }
}

/// See [`Feed::watch`]; unregisters itself on drop.
#[derive(Debug)]
pub struct JobWatch {
    job: Uuid,
    rx: tokio::sync::mpsc::UnboundedReceiver<Change>,
    watchers: Arc<Mutex<HashMap<Uuid, Vec<tokio::sync::mpsc::UnboundedSender<Change>>>>>,
}

impl JobWatch {
    /// The next change of the job (never ends while the feed lives).
    pub async fn next(&mut self) -> Option<Change> {
        self.rx.recv().await
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        self.rx.close();
        let mut watchers = self.watchers.lock().expect("watchers lock");
        if let Some(list) = watchers.get_mut(&self.job) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                watchers.remove(&self.job);
            }
        }
    }
}

/// Waits until `rx` reports a change of `job` (returning it), or the feed lags or closes
/// (returning `None`: the caller should re-read the database).
pub async fn next_change_of(rx: &mut broadcast::Receiver<Change>, job: Uuid) -> Option<Change> {
    loop {
        match rx.recv().await {
            Ok(change) if change.job == job => return Some(change),
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(_)) => return None,
            Err(broadcast::error::RecvError::Closed) => {
                // The feed lives as long as the app; park rather than spin.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Per-kind wake-up channels for this process's workers.
#[derive(Clone, Default)]
pub struct Wakers {
    senders: Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<()>>>>>,
}

impl Wakers {
    /// A stream that yields whenever a job of `kind` is enqueued in this process.
    pub fn stream(&self, kind: &str) -> WakeStream {
        let (tx, rx) = mpsc::unbounded();
        self.senders
            .lock()
            .expect("wakers lock")
            .entry(kind.to_string())
            .or_default()
            .push(tx);
        WakeStream { rx: Mutex::new(rx) }
    }

    pub fn wake(&self, kind: &str) {
        let mut senders = self.senders.lock().expect("wakers lock");
        if let Some(list) = senders.get_mut(kind) {
            list.retain(|tx| tx.unbounded_send(()).is_ok());
        }
    }
}

/// See [`Wakers::stream`]. `Sync` (apalis polling strategies require it) through a mutex that
/// only the worker's own poll ever takes.
pub struct WakeStream {
    rx: Mutex<mpsc::UnboundedReceiver<()>>,
}

impl Stream for WakeStream {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let mut rx = self.rx.lock().expect("wake stream lock");
        Pin::new(&mut *rx).poll_next(cx)
    }
}
