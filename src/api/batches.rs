//! `/api/v1/batches…`: a batch — the files of one export form sent without `merge`, or the jobs
//! of one `POST /jobs/batch` — read and followed as one. Acting on its jobs is the bulk
//! actions' business (`batch_id` in their filter).

use std::sync::Arc;
use std::time::Duration;

use super::body::JsonAnswer;
use futures::StreamExt;
use futures::stream::BoxStream;
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::EventStream;
use uuid::Uuid;

use super::auth::Caller;
use super::errors::operation_errors;
use super::limits::guard_read;
use super::{ApiState, Tag};
use crate::model::batch::Batch;

/// How often a batch's event stream re-reads it when no change arrives on this process's
/// feed (changes written by other processes). Slower than a job's stream: each read is the
/// whole batch (up to 1,000 jobs).
const EVENTS_POLL: Duration = Duration::from_secs(1);

operation_errors!(
    /// Errors of operations on one batch.
    BatchError {
        BadRequest = 400 "The id is not a UUID.",
        NotFound = 404 "No batch with that id (`batch_not_found`).",
    }
);

fn batch_id_example() -> Uuid {
    Uuid::parse_str("8d2b6f0e-7c1a-4e3b-9a55-1f0c2d3e4b5a").expect("a valid uuid")
}

pub struct BatchesApi;

#[OpenApi(prefix_path = "/api/v1", tag = "Tag::Jobs")]
impl BatchesApi {
    /// Get a batch
    ///
    /// Its jobs in request order and how many are in each status; `ended` once every job in
    /// it has ended.
    #[oai(
        path = "/batches/:id",
        method = "get",
        operation_id = "get_batch",
        transform = "guard_read"
    )]
    async fn get_batch(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        #[oai(example = "batch_id_example")] id: Path<Uuid>,
    ) -> Result<JsonAnswer<Batch>, BatchError> {
        let (batch, jobs) = state.batch_rows(id.0, &caller).await?;
        Ok(JsonAnswer(Batch::of(batch, jobs)))
    }

    /// Follow a batch live
    ///
    /// Server-sent events: the batch (as JSON) now and after its jobs change; the stream ends
    /// once every job in it has ended (or the batch is gone). Reconnecting is always safe.
    #[oai(
        path = "/batches/:id/events",
        method = "get",
        operation_id = "get_batch_events",
        transform = "guard_read"
    )]
    async fn events(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        #[oai(example = "batch_id_example")] id: Path<Uuid>,
    ) -> Result<EventStream<BoxStream<'static, Batch>>, BatchError> {
        let (batch, jobs) = state.batch_rows(id.0, &caller).await?;
        let follow = state.queue.follow_batch(id.0, &jobs, EVENTS_POLL);
        let first = Batch::of(batch, jobs);
        // (the next state to send, the follow — `None` once an ended state went out)
        let start = (Some(first), Some(follow));
        let stream = futures::stream::unfold(start, |(pending, follow)| async move {
            let (batch, mut follow) = match (pending, follow) {
                (Some(batch), follow) => (batch, follow),
                (None, Some(mut follow)) => {
                    let (batch, jobs) = follow.next().await?;
                    (Batch::of(batch, jobs), Some(follow))
                }
                (None, None) => return None,
            };
            if batch.ended {
                follow = None;
            }
            Some((batch, (None, follow)))
        });
        Ok(EventStream::new(stream.boxed()).keep_alive(Duration::from_secs(15)))
    }
}
