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
    /// The last state handed out.
    last: Option<Stamp>,
}

/// What tells one state of a job from another: when it was written, its status, and the run
/// (apalis task) it belongs to.
#[derive(Debug, Clone, PartialEq)]
struct Stamp {
    at: i64,
    status: JobStatus,
    run: String,
}

impl Stamp {
    fn of(row: &JobRecord) -> Self {
        Self {
            at: row.updated_at,
            status: row.status,
            run: row.task_id.clone(),
        }
    }
}

/// What the next look at a followed job found.
#[derive(Debug)]
pub enum Seen {
    /// A state newer than the last one handed out (or its run's end, see [`is_stale`]).
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
            last: Some(Stamp::of(since)),
        }
    }
}

impl Follow {
    /// The next state of the job: waits for one that is not stale (a repeat, or older than
    /// the last one handed out and not its run's end: writers race, a change can be
    /// published after a newer one).
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
            let stamp = Stamp::of(&row);
            if self
                .last
                .as_ref()
                .is_some_and(|last| is_stale(last, &stamp))
            {
                continue;
            }
            self.last = Some(stamp);
            return Seen::Changed(Box::new(row));
        }
    }
}

/// Whether state `next` adds nothing to `last`: a repeat, or older — except the end of the
/// run `last` belongs to, after a state that was not an end. Writers take their time before
/// they wait for the row, so an end can carry an older stamp than the write it waited for (a
/// cancel that queued behind an attempt's progress); skipping it would hide the end for good,
/// from a stream and from the attempt's cancel watcher alike. An older end of an earlier run
/// (a retry gives the job a new task) is stale like any older state.
fn is_stale(last: &Stamp, next: &Stamp) -> bool {
    let ends_the_run = next.status.is_final() && !last.status.is_final() && next.run == last.run;
    last == next || (last.at > next.at && !ends_the_run)
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

#[cfg(test)]
mod tests {
    use super::{Stamp, is_stale};
    use crate::model::JobStatus::{self, Cancelled, Running, Succeeded};

    fn at(at: i64, status: JobStatus, run: &str) -> Stamp {
        Stamp {
            at,
            status,
            run: run.into(),
        }
    }

    #[test]
    fn an_end_of_the_run_is_news_even_with_an_older_stamp() {
        let last = at(5, Running, "a");
        assert!(is_stale(&last, &at(5, Running, "a")), "a repeat");
        assert!(is_stale(&last, &at(4, Running, "a")), "an older progress");
        assert!(!is_stale(&last, &at(6, Running, "a")), "a newer progress");
        assert!(
            !is_stale(&last, &at(4, Cancelled, "a")),
            "a cancel that waited behind a progress"
        );
        let ended = at(5, Succeeded, "a");
        assert!(
            is_stale(&ended, &at(4, Running, "a")),
            "a late progress after the end"
        );
        assert!(
            is_stale(&ended, &at(4, Cancelled, "a")),
            "an older end after an end"
        );
        assert!(
            is_stale(&at(5, Running, "b"), &at(4, Cancelled, "a")),
            "an earlier run's end, after a retry"
        );
    }
}
