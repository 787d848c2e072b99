//! `/api/v1/jobs…`: submit argument-only jobs, follow, list, download, cancel, retry, delete.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use poem::Body;
use poem::web::Data;

use super::auth::Caller;
use super::bulk::{forget_files, retry_refusal};
use super::selection::{metadata_filters, page, parse_cursor};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Binary, EventStream, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::body::{JsonAnswer, JsonBody};
use super::errors::{ApiError, ApiErrorCode, operation_errors};
use super::exports::Accepted;
use super::limits::{guard_read, guard_submit};
use super::{ApiState, Tag};
use crate::jobs::JobStatus;
use crate::model::view::Job;
use crate::queue::{JobRecord, ListFilter, Seen};
use crate::storage;

/// Most jobs one batch may create.
pub const MAX_BATCH: usize = 1000;
const DEFAULT_PAGE: u32 = 50;
/// How often an event stream re-reads its job when no change arrives on this process's feed
/// (changes written by other processes).
const EVENTS_POLL: Duration = Duration::from_millis(250);

/// An argument-only job to create. A field it does not name is refused (400).
#[derive(Debug, Object, serde::Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct NewJobRequest {
    /// A registered argument-only kind, e.g. `noop` or `sleep`.
    pub kind: String,
    /// The kind's arguments; `sleep` takes `{"seconds": 2.5, "fail_times": 1}`.
    pub args: Option<serde_json::Value>,
    /// Where to POST the job (signed) when it ends; needs `WEBHOOK_SECRET` on the service and
    /// a public address (or one `OUTBOUND_ALLOW` names).
    #[serde(default, deserialize_with = "super::body::non_null")]
    pub callback_url: Option<String>,
    /// Run no earlier than this (RFC 3339); the job waits in `queued` until then.
    #[serde(default, deserialize_with = "super::body::non_null")]
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `interactive` (someone waits for it: claimed first), `normal` (default) or `bulk`
    /// (only when nothing else of its kind waits).
    #[serde(default, deserialize_with = "super::body::non_null")]
    pub priority: Option<crate::model::Priority>,
    /// Your labels (at most 16 keys of `A-Za-z0-9_-`, values up to 256 characters), echoed in
    /// the job and its webhook; list by them with `GET /jobs?metadata.<key>=<value>`.
    #[serde(default, deserialize_with = "super::body::non_null")]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// Several argument-only jobs, created in one transaction.
#[derive(Debug, Object, serde::Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 1,000 jobs.
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub jobs: Vec<NewJobRequest>,
    /// Where to POST the batch (signed, like job webhooks, `Offload-Event: batch.ended`)
    /// once, when every job in it has ended.
    #[serde(default, deserialize_with = "super::body::non_null")]
    pub batch_callback_url: Option<String>,
}

/// The batch created, with its jobs in request order.
#[derive(Debug, Object, serde::Serialize)]
pub struct BatchCreated {
    /// Follow it at `GET /api/v1/batches/{id}` (or its `events`).
    pub batch: crate::model::batch::Batch,
    /// The same jobs as `batch.jobs`.
    pub jobs: Vec<Job>,
}

/// A page of jobs, newest first.
#[derive(Debug, Object, serde::Serialize)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum BatchAccepted {
    /// All jobs were created (or, for a repeated `Idempotency-Key`, found); follow the batch at
    /// `Location`.
    #[oai(status = 202)]
    Accepted(JsonAnswer<BatchCreated>, #[oai(header = "Location")] String),
}

impl BatchAccepted {
    fn of(batch: crate::model::batch::Batch) -> Self {
        let location = format!("/api/v1/batches/{}", batch.id);
        let jobs = batch.jobs.clone();
        BatchAccepted::Accepted(JsonAnswer(BatchCreated { batch, jobs }), location)
    }
}

#[derive(ApiResponse)]
pub enum Retried {
    /// Back in the queue.
    #[oai(status = 202)]
    Accepted(JsonAnswer<Job>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// The job and its files are gone.
    #[oai(status = 204)]
    NoContent,
}

#[derive(ApiResponse)]
pub enum ResultDownload {
    /// The file, streamed, in its own media type.
    #[oai(status = 200)]
    File(
        FileBody,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Content-Length")] u64,
    ),
}

/// A result file in each media type an export makes (generated clients learn them all).
#[derive(poem_openapi::ResponseContent)]
pub enum FileBody {
    #[oai(content_type = "application/pdf")]
    Pdf(Binary<Body>),
    #[oai(content_type = "application/zip")]
    Zip(Binary<Body>),
    #[oai(content_type = "image/png")]
    Png(Binary<Body>),
    #[oai(content_type = "image/jpeg")]
    Jpeg(Binary<Body>),
    #[oai(content_type = "image/webp")]
    Webp(Binary<Body>),
    #[oai(content_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document")]
    Docx(Binary<Body>),
    #[oai(content_type = "application/vnd.oasis.opendocument.text")]
    Odt(Binary<Body>),
    #[oai(content_type = "application/rtf")]
    Rtf(Binary<Body>),
    #[oai(content_type = "text/plain; charset=utf-8")]
    Txt(Binary<Body>),
    #[oai(content_type = "text/html; charset=utf-8")]
    Html(Binary<Body>),
    #[oai(content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")]
    Xlsx(Binary<Body>),
    #[oai(content_type = "application/vnd.oasis.opendocument.spreadsheet")]
    Ods(Binary<Body>),
    #[oai(content_type = "text/csv")]
    Csv(Binary<Body>),
    #[oai(
        content_type = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    )]
    Pptx(Binary<Body>),
    #[oai(content_type = "application/vnd.oasis.opendocument.presentation")]
    Odp(Binary<Body>),
    #[oai(content_type = "application/octet-stream")]
    Other(Binary<Body>),
}

impl FileBody {
    /// `body` served as `content_type` (the type the job stored with it).
    fn of(content_type: &str, body: Body) -> Self {
        use crate::model::formats::OutputFormat as F;
        let body = Binary(body);
        let format = F::ALL.into_iter().find(|f| f.media_type() == content_type);
        match (content_type, format) {
            ("application/zip", _) => FileBody::Zip(body),
            (_, Some(F::Pdf)) => FileBody::Pdf(body),
            (_, Some(F::Png)) => FileBody::Png(body),
            (_, Some(F::Jpeg)) => FileBody::Jpeg(body),
            (_, Some(F::Webp)) => FileBody::Webp(body),
            (_, Some(F::Docx)) => FileBody::Docx(body),
            (_, Some(F::Odt)) => FileBody::Odt(body),
            (_, Some(F::Rtf)) => FileBody::Rtf(body),
            (_, Some(F::Txt)) => FileBody::Txt(body),
            (_, Some(F::Html)) => FileBody::Html(body),
            (_, Some(F::Xlsx)) => FileBody::Xlsx(body),
            (_, Some(F::Ods)) => FileBody::Ods(body),
            (_, Some(F::Csv)) => FileBody::Csv(body),
            (_, Some(F::Pptx)) => FileBody::Pptx(body),
            (_, Some(F::Odp)) => FileBody::Odp(body),
            (_, None) => FileBody::Other(body),
        }
    }
}

pub struct JobsApi;

operation_errors!(
    /// Errors of `POST /jobs`.
    CreateJobError {
        BadRequest = 400 "Malformed JSON body, or an invalid `Idempotency-Key` (or one that named another kind of request: a batch, a job).",
        UnsupportedType = 415 "The body is not `application/json`.",
        Invalid = 422 "Unknown kind, a kind that takes a document, invalid arguments, or a `callback_url` this service may not call.",
    }
);
operation_errors!(
    /// Errors of `POST /jobs/batch`.
    CreateBatchError {
        BadRequest = 400 "Malformed JSON body, or an invalid `Idempotency-Key` (or one that named another kind of request: a batch, a job).",
        UnsupportedType = 415 "The body is not `application/json`.",
        Invalid = 422 "Not 1 to 1,000 jobs, one of them is invalid (the message names it), or a `batch_callback_url` this service may not call; nothing was created.",
    }
);
operation_errors!(
    /// Errors of operations on one job.
    JobError {
        BadRequest = 400 "The id is not a UUID.",
        NotFound = 404 "No job with that id.",
    }
);
operation_errors!(
    /// Errors of operations that change a job's state.
    JobStateError {
        BadRequest = 400 "The id is not a UUID.",
        NotFound = 404 "No job with that id.",
        Conflict = 409 "The job's status does not allow this, it is a part of a merge job (act on that job), or (retry) its document was deleted or its password wiped.",
    }
);
operation_errors!(
    /// Errors of `DELETE /jobs/{id}`.
    DeleteError {
        BadRequest = 400 "The id is not a UUID.",
        NotFound = 404 "No job with that id.",
        Conflict = 409 "The job is a part of a merge job; delete the merge job.",
    }
);
operation_errors!(
    /// Errors of `GET /jobs/{id}/result`.
    ResultError {
        BadRequest = 400 "The id is not a UUID.",
        NotFound = 404 "No job with that id, or its kind makes no result file.",
        Conflict = 409 "The job has not succeeded: there is no result (yet).",
        Gone = 410 "The result was deleted after the retention period (`result_expired`).",
    }
);
operation_errors!(
    /// Errors of `GET /jobs`.
    ListError {
        BadRequest = 400 "An invalid `status`, `limit` or `cursor`.",
    }
);

fn job_id_example() -> Uuid {
    Uuid::parse_str("3f1c2a9e-0a4b-4c55-9d7e-2f1e6c1b9a10").expect("a valid uuid")
}

#[OpenApi(prefix_path = "/api/v1", tag = "Tag::Jobs")]
impl JobsApi {
    /// Submit an argument-only job
    ///
    /// For kinds that take no document (`noop`, `sleep`, ...). Answers at once with the job.
    #[oai(
        path = "/jobs",
        method = "post",
        operation_id = "create_job",
        transform = "guard_submit"
    )]
    async fn create_job(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        body: JsonBody<NewJobRequest>,
        /// Retrying a request with the same key returns the job the first one created.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
    ) -> Result<Accepted, CreateJobError> {
        let key = super::idempotency_key(idempotency_key.0, &caller)?;
        match state.find_idempotent_any(key.as_deref()).await? {
            Some(super::Idempotent::Job(existing)) => return Ok(Accepted::job(*existing)),
            Some(other) => return Err(other.reused().into()),
            None => {}
        }
        let mut job = state.new_job(body.0, "body", &caller).await?;
        job.idempotency_key = key;
        let mut created = state.queue.enqueue(vec![job]).await?;
        Ok(Accepted::job(created.remove(0).job.into()))
    }

    /// Submit many argument-only jobs at once
    ///
    /// Up to 1,000 jobs in one transaction, all created or none, as one **batch**: follow it
    /// at `GET /batches/{id}`, act on it with the bulk actions' `batch_id` filter, and have
    /// `batch_callback_url` called once when every job in it has ended.
    #[oai(
        path = "/jobs/batch",
        method = "post",
        operation_id = "create_jobs_batch",
        transform = "guard_submit"
    )]
    async fn create_batch(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        body: JsonBody<BatchRequest>,
        /// Retrying a request with the same key returns the batch the first one created.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
    ) -> Result<BatchAccepted, CreateBatchError> {
        let key = super::idempotency_key(idempotency_key.0, &caller)?;
        let request = body.0;
        let n = request.jobs.len();
        if n == 0 || n > MAX_BATCH {
            return Err(ApiError::invalid(
                ApiErrorCode::InvalidArguments,
                format!("body.jobs: {n} jobs; a batch holds 1 to {MAX_BATCH}"),
            )
            .into());
        }
        let callback = state
            .callback_url(request.batch_callback_url, "body.batch_callback_url")
            .await?;
        match state.find_idempotent_any(key.as_deref()).await? {
            Some(super::Idempotent::Batch(existing)) => return Ok(BatchAccepted::of(existing)),
            Some(other) => return Err(other.reused().into()),
            None => {}
        }
        let mut jobs = Vec::with_capacity(n);
        for (i, req) in request.jobs.into_iter().enumerate() {
            jobs.push(
                state
                    .new_job(req, &format!("body.jobs[{i}]"), &caller)
                    .await?,
            );
        }
        let mut batch = crate::model::batch::NewBatch::new(caller.tenant.clone());
        batch.callback_url = callback;
        batch.idempotency_key = key;
        let made = state.queue.enqueue_batch(batch, jobs).await?;
        Ok(BatchAccepted::of(crate::model::batch::Batch::of(
            made.batch, made.jobs,
        )))
    }

    /// Get a job
    ///
    /// Status, progress, attempts, error and result of one job.
    #[oai(
        path = "/jobs/:id",
        method = "get",
        operation_id = "get_job",
        transform = "guard_read"
    )]
    async fn get_job(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        #[oai(example = "job_id_example")] id: Path<Uuid>,
    ) -> Result<JsonAnswer<Job>, JobError> {
        let row = state.job(id.0, &caller).await?;
        Ok(JsonAnswer(state.queue.view(row).await?))
    }

    /// List jobs
    ///
    /// Newest first, optionally filtered by status, kind, batch and labels
    /// (`metadata.<key>=<value>`, up to 4). Page with `cursor`.
    #[oai(
        path = "/jobs",
        method = "get",
        operation_id = "list_jobs",
        transform = "guard_read"
    )]
    // An operation's parameters are its arguments (poem-openapi); the query filters add up.
    #[allow(clippy::too_many_arguments)]
    async fn list_jobs(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        req: &poem::Request,
        /// Only jobs in this status.
        status: Query<Option<JobStatus>>,
        /// Only jobs of this kind.
        kind: Query<Option<String>>,
        /// Page size, 1 to 500 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(
            pattern = r"^[0-9]{1,20}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
        ))]
        cursor: Query<Option<String>>,
        /// Only the jobs of this batch.
        batch_id: Query<Option<Uuid>>,
    ) -> Result<JsonAnswer<JobPage>, ListError> {
        if let Some(kind) = kind.0.as_deref()
            && state.registry.get(kind).is_none()
        {
            return Err(ApiError::bad_request(
                ApiErrorCode::InvalidParameter,
                format!(
                    "parameter kind: unknown kind {kind:?}; known: {}",
                    state.registry.names().join(", ")
                ),
            )
            .into());
        }
        let metadata = metadata_filters(req)?;
        let limit = limit.0.unwrap_or(DEFAULT_PAGE);
        let filter = ListFilter {
            metadata,
            tenant: caller.tenant.clone(),
            status: status.0,
            kind: kind.0,
            // One extra row tells whether another page exists.
            limit: limit + 1,
            before: cursor.0.as_deref().map(parse_cursor).transpose()?,
            created_before: None,
            batch: batch_id.0,
        };
        let (rows, next_cursor) = page(state.queue.list(&filter).await?, limit);
        Ok(JsonAnswer(JobPage {
            jobs: {
                let mut jobs = Vec::with_capacity(rows.len());
                for row in rows {
                    jobs.push(state.queue.view(row).await?);
                }
                jobs
            },
            next_cursor,
        }))
    }

    /// Download a job's result
    ///
    /// Streams the result file as an attachment. 409 while the job has not succeeded.
    #[oai(
        path = "/jobs/:id/result",
        method = "get",
        operation_id = "get_job_result",
        transform = "guard_read"
    )]
    async fn get_result(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        #[oai(example = "job_id_example")] id: Path<Uuid>,
    ) -> Result<ResultDownload, ResultError> {
        let row = state.job(id.0, &caller).await?;
        let result = downloadable(&row)?;
        serve(
            &state,
            &result.key,
            &result.filename,
            &result.content_type,
            result.size,
        )
        .await
    }

    /// Download one image of a result
    ///
    /// `n` counts from 1 in `result.files` (page images, in page order).
    #[oai(
        path = "/jobs/:id/result/files/:n",
        method = "get",
        operation_id = "get_job_result_file",
        transform = "guard_read"
    )]
    async fn get_result_file(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        #[oai(example = "job_id_example")] id: Path<Uuid>,
        /// 1-based position in `result.files`.
        #[oai(validator(minimum(value = "1")))]
        n: Path<u32>,
    ) -> Result<ResultDownload, ResultError> {
        let row = state.job(id.0, &caller).await?;
        let result = downloadable(&row)?;
        let files = &result.parts.files;
        let file = files.get(n.0 as usize - 1).ok_or_else(|| {
            ApiError::not_found(
                ApiErrorCode::NoResult,
                format!(
                    "the result has {} files; there is no file {}",
                    files.len(),
                    n.0
                ),
            )
        })?;
        serve(
            &state,
            &file.key,
            &file.filename,
            &file.content_type,
            file.size,
        )
        .await
    }

    /// Download a result's thumbnail
    ///
    /// A PNG of page 1, made when the export asked for `thumbnail`.
    #[oai(
        path = "/jobs/:id/result/thumbnail",
        method = "get",
        operation_id = "get_job_result_thumbnail",
        transform = "guard_read"
    )]
    async fn get_result_thumbnail(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        #[oai(example = "job_id_example")] id: Path<Uuid>,
    ) -> Result<ResultDownload, ResultError> {
        let row = state.job(id.0, &caller).await?;
        let result = downloadable(&row)?;
        let thumb = result.parts.thumbnail.as_ref().ok_or_else(|| {
            ApiError::not_found(
                ApiErrorCode::NoResult,
                "this export made no thumbnail (ask for one with `thumbnail` at submit)",
            )
        })?;
        serve(
            &state,
            &thumb.key,
            &thumb.filename,
            &thumb.content_type,
            thumb.size,
        )
        .await
    }

    /// Follow a job live
    ///
    /// Server-sent events: the job (as JSON) now and after every change of status or
    /// progress; the stream ends after a final status. Reconnecting is always safe.
    #[oai(
        path = "/jobs/:id/events",
        method = "get",
        operation_id = "get_job_events",
        transform = "guard_read"
    )]
    async fn events(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        #[oai(example = "job_id_example")] id: Path<Uuid>,
    ) -> Result<EventStream<BoxStream<'static, Job>>, JobError> {
        let first = state.job(id.0, &caller).await?;
        let stream = job_updates(Arc::clone(state.0), first);
        Ok(EventStream::new(stream.boxed()).keep_alive(Duration::from_secs(15)))
    }

    /// Cancel a job
    ///
    /// Cancels a queued or running job; a running conversion is stopped. 409 if it already
    /// finished.
    #[oai(
        path = "/jobs/:id/cancel",
        method = "post",
        operation_id = "cancel_job",
        transform = "guard_read"
    )]
    async fn cancel(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        #[oai(example = "job_id_example")] id: Path<Uuid>,
    ) -> Result<JsonAnswer<Job>, JobStateError> {
        state.job(id.0, &caller).await?;
        let row = state.queue.cancel(id.0).await?;
        Ok(JsonAnswer(state.queue.view(row).await?))
    }

    /// Retry a job
    ///
    /// Puts a failed or cancelled job back in the queue with fresh attempts. 409 otherwise.
    #[oai(
        path = "/jobs/:id/retry",
        method = "post",
        operation_id = "retry_job",
        transform = "guard_read"
    )]
    async fn retry(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        #[oai(example = "job_id_example")] id: Path<Uuid>,
    ) -> Result<Retried, JobStateError> {
        let row = state.job(id.0, &caller).await?;
        if let Some(refusal) = retry_refusal(&row) {
            return Err(refusal.into());
        }
        let row = state.queue.retry(id.0).await?;
        Ok(Retried::Accepted(JsonAnswer(state.queue.view(row).await?)))
    }

    /// Delete many jobs
    ///
    /// Deletes your jobs that match the filter — the same parameters as listing jobs
    /// (`status`, `kind`, `batch_id`, `metadata.<key>=<value>`) plus `created_before` — with their files,
    /// up to `limit` per call (default 1,000, at most 10,000); go on with `next_cursor`.
    /// Parts of a merge job are skipped (they go with it).
    #[oai(
        path = "/jobs",
        method = "delete",
        operation_id = "delete_jobs",
        transform = "guard_read"
    )]
    // An operation's parameters are its arguments (poem-openapi).
    #[allow(clippy::too_many_arguments)]
    async fn delete_jobs(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        req: &poem::Request,
        /// Only jobs in this status.
        status: Query<Option<JobStatus>>,
        /// Only jobs of this kind.
        kind: Query<Option<String>>,
        /// Only jobs created before this time (RFC 3339).
        created_before: Query<Option<chrono::DateTime<chrono::Utc>>>,
        /// Most jobs this call takes, 1 to 10,000 (default 1,000).
        #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous call.
        cursor: Query<Option<String>>,
        /// Only the jobs of this batch.
        batch_id: Query<Option<Uuid>>,
    ) -> Result<Json<super::bulk::BulkResult>, super::bulk::BulkError> {
        let filter = super::bulk::JobFilter {
            status: status.0,
            kind: kind.0,
            created_before: created_before.0,
            batch_id: batch_id.0,
            metadata: None,
        };
        let done =
            super::bulk::delete_matching(&state, &caller, req, filter, limit.0, cursor.0).await?;
        Ok(Json(done))
    }

    /// Delete a job
    ///
    /// Deletes the job and its stored files; a running attempt is stopped.
    #[oai(
        path = "/jobs/:id",
        method = "delete",
        operation_id = "delete_job",
        transform = "guard_read"
    )]
    async fn delete(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        #[oai(example = "job_id_example")] id: Path<Uuid>,
    ) -> Result<Deleted, DeleteError> {
        state.job(id.0, &caller).await?;
        let deleted = state.queue.delete(id.0).await?;
        if deleted.is_empty() {
            return Err(ApiError::job_not_found(id.0).into());
        }
        forget_files(&state, deleted).await;
        Ok(Deleted::NoContent)
    }
}

/// The job now, then after every change, ending after a final status (or when the job is
/// deleted): the queue's [`crate::queue::Follow`], with changes made by other processes read
/// from the database within [`EVENTS_POLL`].
fn job_updates(state: Arc<ApiState>, first: JobRecord) -> impl futures::Stream<Item = Job> + Send {
    let follow = state.queue.follow(&first, EVENTS_POLL);
    // (next row to send, the follow — `None` once a final state went out)
    let start = (Some(first), Some(follow));
    futures::stream::unfold(start, move |(pending, follow)| {
        let state = state.clone();
        async move {
            let (row, mut follow) = match (pending, follow) {
                (Some(row), follow) => (row, follow),
                (None, Some(mut follow)) => match follow.next().await {
                    Seen::Changed(row) => (*row, Some(follow)),
                    Seen::Deleted => return None,
                },
                (None, None) => return None,
            };
            if row.status.is_final() {
                follow = None;
            }
            let job = match state.queue.view(row.clone()).await {
                Ok(job) => job,
                Err(_) => Job::from(row),
            };
            Some((job, (None, follow)))
        }
    })
}

/// The result of `row`, if it can be downloaded: the job succeeded, its files are kept, and
/// its kind makes one.
fn downloadable(row: &JobRecord) -> Result<&crate::model::ResultFile, ApiError> {
    if row.status != JobStatus::Succeeded {
        return Err(ApiError::conflict(
            ApiErrorCode::ResultNotReady,
            format!(
                "the job is {}; a result exists only once it has succeeded",
                row.status
            ),
        ));
    }
    if let Some(at) = row.expired_at {
        let at = chrono::DateTime::from_timestamp_micros(at).unwrap_or_default();
        return Err(ApiError::gone(
            ApiErrorCode::ResultExpired,
            format!(
                "the result was deleted at {} after the retention period",
                at.to_rfc3339()
            ),
        ));
    }
    let Some(result) = &row.result else {
        return Err(ApiError::not_found(
            ApiErrorCode::NoResult,
            format!("jobs of kind {} make no result file", row.kind),
        ));
    };
    Ok(result)
}

/// Streams one stored file as an attachment.
async fn serve(
    state: &ApiState,
    key: &str,
    filename: &str,
    content_type: &str,
    size: i64,
) -> Result<ResultDownload, ResultError> {
    let stream = state.storage.stream(key).await?;
    Ok(ResultDownload::File(
        FileBody::of(content_type, Body::from_bytes_stream(stream)),
        storage::content_disposition(filename),
        u64::try_from(size).unwrap_or(0),
    ))
}
