//! Following one job: its states as they change, from this process's feed at once (with the
//! row as written, so even a state that lasted a millisecond is seen) and from other
//! processes' writes within a poll of the database. One mechanism for everything that follows
//! a job: the SSE stream of `GET /jobs/{id}/events` and a running attempt's cancel watcher.

use std::time::Duration;

use uuid::Uuid;

use super::{JobRecord, JobStatus, Queue};
use crate::events::JobWatch;

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
