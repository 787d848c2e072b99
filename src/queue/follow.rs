//! Following one job: its states as they change, from this process's feed at once (with the
//! row as written, so even a state that lasted a millisecond is seen) and from other
//! processes' writes within a poll of the database. One mechanism for everything that follows
//! a job: the SSE stream of `GET /jobs/{id}/events` and a running attempt's cancel watcher;
//! and following a batch, all its jobs at once (`GET /batches/{id}/events`).

use std::time::Duration;

use uuid::Uuid;

use super::{JobRecord, JobStatus, Queue};
use crate::events::JobWatch;
use crate::model::batch::BatchRecord;

/// See [`Queue::follow`].
pub struct Follow {
    queue: Queue,
    id: Uuid,
    changes: JobWatch,
    poll: Duration,
    /// The last state handed out: `(updated_at, status)`.
    last: Option<(i64, JobStatus)>,
}

/// What the next look at a followed job found.
#[derive(Debug)]
pub enum Seen {
    /// A state newer than the last one handed out.
    Changed(Box<JobRecord>),
    /// The job no longer exists.
    Deleted,
}

impl Queue {
    /// Follows job `since.id` from the state `since` (which counts as seen); the database is
    /// read every `poll` for changes made elsewhere.
    pub fn follow(&self, since: &JobRecord, poll: Duration) -> Follow {
        Follow {
            queue: self.clone(),
            id: since.id,
            changes: self.feed().watch(since.id),
            poll,
            last: Some((since.updated_at, since.status)),
        }
    }
}

impl Follow {
    /// The next state of the job: waits for one that is neither a repeat nor older than the
    /// last one handed out (writers race: a change can be published after a newer one).
    pub async fn next(&mut self) -> Seen {
        loop {
            let row = match tokio::time::timeout(self.poll, self.changes.next()).await {
                Ok(Some(change)) if change.status.is_none() => return Seen::Deleted,
                Ok(Some(change)) => match change.row {
                    Some(row) => (*row).clone(),
                    None => continue,
                },
                // A poll (or a feed that closed): ask the database what is true now.
                _ => match self.queue.get(self.id).await {
                    Ok(Some(row)) => row,
                    Ok(None) => return Seen::Deleted,
                    Err(_) => continue,
                },
            };
            let stamp = (row.updated_at, row.status);
            if self
                .last
                .is_some_and(|last| last == stamp || last.0 > stamp.0)
            {
                continue;
            }
            self.last = Some(stamp);
            return Seen::Changed(Box::new(row));
        }
    }
}

/// See [`Queue::follow_batch`].
pub struct BatchFollow {
    queue: Queue,
    id: Uuid,
    changes: JobWatch,
    poll: Duration,
    /// What the last state handed out looked like (see [`fingerprint`]).
    last: Fingerprint,
}

/// Enough of a batch's jobs to tell a new state from a repeat: how many there are, and the
/// newest and the sum of their `updated_at` (every write of a job moves its `updated_at`).
type Fingerprint = (usize, i64, i128);

fn fingerprint(jobs: &[JobRecord]) -> Fingerprint {
    let newest = jobs.iter().map(|j| j.updated_at).max().unwrap_or(0);
    let sum = jobs.iter().map(|j| i128::from(j.updated_at)).sum();
    (jobs.len(), newest, sum)
}

impl Queue {
    /// Follows batch `id` from the state of `jobs` (its jobs as last handed out); the
    /// database is read every `poll`, and at once when one of its jobs changes here.
    pub fn follow_batch(&self, id: Uuid, jobs: &[JobRecord], poll: Duration) -> BatchFollow {
        BatchFollow {
            queue: self.clone(),
            id,
            changes: self.feed().watch_all(jobs.iter().map(|j| j.id).collect()),
            poll,
            last: fingerprint(jobs),
        }
    }
}

impl BatchFollow {
    /// The batch's next state: its row and jobs once any job changed; `None` once the batch
    /// no longer exists.
    pub async fn next(&mut self) -> Option<(BatchRecord, Vec<JobRecord>)> {
        loop {
            // A change here, or a poll for changes made elsewhere: either way, read it all.
            let _ = tokio::time::timeout(self.poll, self.changes.next()).await;
            self.changes.skip_waiting();
            let (batch, jobs) = match self.queue.batch(self.id).await {
                Ok(Some(found)) => found,
                Ok(None) => return None,
                Err(_) => continue,
            };
            let seen = fingerprint(&jobs);
            if seen != self.last {
                self.last = seen;
                return Some((batch, jobs));
            }
        }
    }
}
