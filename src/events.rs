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
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::Notify;
use tokio::sync::mpsc as watch_mpsc;
use uuid::Uuid;

use crate::model::{JobRecord, JobStatus};

/// One change of one job: its new status (`None`: deleted) and, when the writer had it, the
/// row as written — so a reader sees every state, even one that lasted a millisecond.
#[derive(Debug, Clone)]
pub struct Change {
    pub job: Uuid,
    pub status: Option<JobStatus>,
    pub row: Option<Arc<JobRecord>>,
}

type Watchers = Arc<Mutex<HashMap<Uuid, Vec<watch_mpsc::UnboundedSender<Change>>>>>;

/// Job changes made in this process, delivered to whoever watches that job.
///
/// Each reader cares about one job (an SSE stream, a running attempt's cancel watcher), so a
/// change goes only to that job's watchers. A process-wide broadcast would wake every reader
/// for every change: with 64 attempts in flight, thousands of wake-ups per batch, which
/// starved the runtime and held a 64-job commit for ~45 ms (#8).
#[derive(Clone, Debug, Default)]
pub struct Feed {
    watchers: Watchers,
}

impl Feed {
    pub fn publish(&self, change: Change) {
        // No watcher is normal (nobody is looking at this job).
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
    }

    /// The changes of `job`, from now until the returned watch is dropped.
    pub fn watch(&self, job: Uuid) -> JobWatch {
        self.watch_all(vec![job])
    }

    /// The changes of every job of `jobs` (a batch's), on one watch.
    pub fn watch_all(&self, jobs: Vec<Uuid>) -> JobWatch {
        let (tx, rx) = watch_mpsc::unbounded_channel();
        let mut watchers = self.watchers.lock().expect("watchers lock");
        for job in &jobs {
            watchers.entry(*job).or_default().push(tx.clone());
        }
        JobWatch {
            jobs,
            rx,
            watchers: self.watchers.clone(),
        }
    }
}

/// See [`Feed::watch`] and [`Feed::watch_all`]; unregisters itself on drop.
#[derive(Debug)]
pub struct JobWatch {
    jobs: Vec<Uuid>,
    rx: watch_mpsc::UnboundedReceiver<Change>,
    watchers: Watchers,
}

impl JobWatch {
    /// The next change of the job; `None` never comes while the feed lives, so callers that
    /// also poll the database (for other processes' changes) wrap this in a timeout.
    pub async fn next(&mut self) -> Option<Change> {
        self.rx.recv().await
    }

    /// Drops the changes already waiting (a reader about to re-read every job at once).
    pub fn skip_waiting(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        self.rx.close();
        let mut watchers = self.watchers.lock().expect("watchers lock");
        for job in &self.jobs {
            if let Some(list) = watchers.get_mut(job) {
                list.retain(|tx| !tx.is_closed());
                if list.is_empty() {
                    watchers.remove(job);
                }
            }
        }
    }
}

/// Per-kind wake-ups for this process's workers.
#[derive(Clone, Default)]
pub struct Wakers {
    /// One `Notify` per live wake stream (a worker generation), by kind.
    by_kind: Arc<Mutex<HashMap<String, Vec<Weak<Notify>>>>>,
}

impl Wakers {
    /// A stream that yields whenever a job of `kind` is enqueued in this process. A wake-up
    /// while the worker is busy is kept (one), so it looks again as soon as it can.
    pub fn stream(&self, kind: &str) -> WakeStream {
        let notify = Arc::new(Notify::new());
        self.by_kind
            .lock()
            .expect("wakers lock")
            .entry(kind.to_string())
            .or_default()
            .push(Arc::downgrade(&notify));
        let woken = futures::stream::unfold(notify, |notify| async move {
            notify.notified().await;
            Some(((), notify))
        });
        WakeStream {
            inner: Mutex::new(Box::pin(woken)),
        }
    }

    pub fn wake(&self, kind: &str) {
        let mut by_kind = self.by_kind.lock().expect("wakers lock");
        if let Some(list) = by_kind.get_mut(kind) {
            list.retain(|weak| match weak.upgrade() {
                Some(notify) => {
                    notify.notify_one();
                    true
                }
                None => false,
            });
        }
    }
}

/// See [`Wakers::stream`]. `Sync` (apalis polling strategies require it) through a mutex that
/// only the worker's own poll ever takes.
pub struct WakeStream {
    inner: Mutex<Pin<Box<dyn Stream<Item = ()> + Send>>>,
}

impl Stream for WakeStream {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let mut inner = self.inner.lock().expect("wake stream lock");
        inner.as_mut().poll_next(cx)
    }
}
