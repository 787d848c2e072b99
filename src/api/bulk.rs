//! Bulk actions (#18; `DELETE /jobs` is declared with the other `/jobs` operations in
//! [`super::jobs`], since one path belongs to one API block): cancel, retry or delete every job of the caller's tenant that matches a
//! filter — status, kind, batch, labels, creation time — in pages of at most 10,000 jobs with a
//! cursor, so one call cannot hold the database for minutes. Each job goes through the same
//! single-job path as `POST /jobs/{id}/cancel` and friends (its own short transaction, its
//! files and cached results deleted with it), and the answer counts what matched, what the
//! action changed and what it skipped (a job whose status does not allow it, a part of a
//! merge job).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiState;
use super::Tag;
use super::auth::Caller;
use super::body::JsonBody;
use super::errors::{ApiError, ApiErrorCode, operation_errors};
use super::limits::{guard_act, guard_submit};
use super::selection::{check_labels, metadata_filters, page, parse_cursor};
use crate::model::JobStatus;
use crate::queue::JobRecord;
use crate::queue::{ListFilter, QueueError};

/// Most jobs one call takes.
const MAX_PAGE: u32 = 10_000;
const DEFAULT_PAGE: u32 = 1_000;

/// Which of your jobs a bulk action takes: those matching every field given.
#[derive(Debug, Default, Object, serde::Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    #[serde(default, deserialize_with = "super::body::non_null")]
    pub status: Option<JobStatus>,
    #[serde(default, deserialize_with = "super::body::non_null")]
    pub kind: Option<String>,
    /// Labels the jobs carry (up to 4), e.g. `{"batch": "2026-12"}`.
    #[serde(default, deserialize_with = "super::body::non_null")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Only jobs created before this time (RFC 3339).
    #[serde(default, deserialize_with = "super::body::non_null")]
    pub created_before: Option<DateTime<Utc>>,
    /// Only the jobs of this batch.
    #[serde(default, deserialize_with = "super::body::non_null")]
    pub batch_id: Option<uuid::Uuid>,
}

/// A bulk action's filter and page.
#[derive(Debug, Object, serde::Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub filter: JobFilter,
    /// Most jobs this call takes, 1 to 10,000 (default 1,000); newest first.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
    #[serde(default, deserialize_with = "super::body::non_null")]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous call with the same filter.
    #[serde(default, deserialize_with = "super::body::non_null")]
    pub cursor: Option<String>,
}

/// What one call of a bulk action did.
#[derive(Debug, Object)]
pub struct BulkResult {
    /// Jobs the filter matched in this call (at most `limit`).
    pub matched: u32,
    /// Of those, the jobs the action changed.
    pub affected: u32,
    /// Of those, the jobs it left as they were (their status does not allow the action, or
    /// they are parts of a merge job: act on the merge job).
    pub skipped: u32,
    /// Call again with this to go on (`null`: no more matching jobs).
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

operation_errors!(
    /// Errors of the bulk actions.
    BulkError {
        BadRequest = 400 "Malformed JSON body, an invalid filter field, `limit` or `cursor`.",
        UnsupportedType = 415 "The body is not `application/json`.",
    }
);

#[derive(Debug, Clone, Copy)]
enum Action {
    Cancel,
    Retry,
    Delete,
}

pub struct BulkApi;

#[OpenApi(prefix_path = "/api/v1", tag = "Tag::Jobs")]
impl BulkApi {
    /// Cancel many jobs
    ///
    /// Cancels your queued and running jobs that match `filter` (up to `limit` per call; go on
    /// with `next_cursor`). Jobs already finished are skipped.
    #[oai(
        path = "/jobs/cancel",
        method = "post",
        operation_id = "cancel_jobs",
        transform = "guard_act"
    )]
    async fn cancel_jobs(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        body: JsonBody<BulkRequest>,
    ) -> Result<Json<BulkResult>, BulkError> {
        Ok(Json(bulk(&state, &caller, body.0, Action::Cancel).await?))
    }

    /// Retry many jobs
    ///
    /// Puts your failed and cancelled jobs that match `filter` back in the queue (up to
    /// `limit` per call). Others, and those whose document or password is gone, are skipped.
    #[oai(
        path = "/jobs/retry",
        method = "post",
        operation_id = "retry_jobs",
        transform = "guard_submit"
    )]
    async fn retry_jobs(
        &self,
        state: Data<&Arc<ApiState>>,
        caller: Data<&Caller>,
        body: JsonBody<BulkRequest>,
    ) -> Result<Json<BulkResult>, BulkError> {
        Ok(Json(bulk(&state, &caller, body.0, Action::Retry).await?))
    }
}

/// `DELETE /jobs` (an operation of [`super::jobs::JobsApi`], which owns the `/jobs` path):
/// the filter comes as the listing's query parameters.
pub(super) async fn delete_matching(
    state: &ApiState,
    caller: &Caller,
    req: &poem::Request,
    mut filter: JobFilter,
    limit: Option<u32>,
    cursor: Option<String>,
) -> Result<BulkResult, ApiError> {
    let labels: BTreeMap<String, String> = metadata_filters(req)?.into_iter().collect();
    filter.metadata = (!labels.is_empty()).then_some(labels);
    let request = BulkRequest {
        filter,
        limit,
        cursor,
    };
    bulk(state, caller, request, Action::Delete).await
}

/// The listing filter of `request`, checked (field names as in the body).
fn filter_of(
    state: &ApiState,
    caller: &Caller,
    request: &BulkRequest,
    limit: u32,
) -> Result<ListFilter, ApiError> {
    let bad = |why: String| ApiError::bad_request(ApiErrorCode::InvalidParameter, why);
    let f = &request.filter;
    if let Some(kind) = f.kind.as_deref()
        && state.registry.get(kind).is_none()
    {
        return Err(bad(format!("filter.kind: unknown kind {kind:?}")));
    }
    let metadata: Vec<(String, String)> =
        f.metadata.clone().unwrap_or_default().into_iter().collect();
    check_labels(&metadata, "filter.metadata")?;
    Ok(ListFilter {
        tenant: caller.tenant.clone(),
        status: f.status,
        kind: f.kind.clone(),
        metadata,
        // One extra row tells whether another page exists.
        limit: limit + 1,
        before: request.cursor.as_deref().map(parse_cursor).transpose()?,
        created_before: f.created_before.map(|t| t.timestamp_micros()),
        batch: f.batch_id,
    })
}

/// One page of a bulk action.
async fn bulk(
    state: &ApiState,
    caller: &Caller,
    request: BulkRequest,
    action: Action,
) -> Result<BulkResult, ApiError> {
    // The body is parsed by serde (for field-naming errors), so the spec's bounds are
    // checked here.
    let limit = request.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            ApiErrorCode::InvalidParameter,
            format!("limit: {limit}; 1 to {MAX_PAGE}"),
        ));
    }
    let filter = filter_of(state, caller, &request, limit)?;
    let (rows, next_cursor) = page(state.queue.list(&filter).await?, limit);
    let mut result = BulkResult {
        matched: rows.len() as u32,
        affected: 0,
        skipped: 0,
        next_cursor,
    };
    for row in rows {
        let done = match action {
            Action::Cancel => state.queue.cancel(row.id).await.map(|_| ()),
            Action::Retry if retry_refusal(&row).is_some() => {
                result.skipped += 1;
                continue;
            }
            Action::Retry => state.queue.retry(row.id).await.map(|_| ()),
            Action::Delete => match state.queue.delete(row.id).await {
                Ok(deleted) if deleted.is_empty() => Err(QueueError::NotFound),
                Ok(deleted) => {
                    forget_files(state, deleted).await;
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        match done {
            Ok(()) => result.affected += 1,
            // Moved on meanwhile (or taken along with its merge job): nothing to do here.
            Err(
                QueueError::WrongState(_) | QueueError::PartOfMerge { .. } | QueueError::NotFound,
            ) => result.skipped += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(result)
}

/// Why a job cannot be retried beyond its status: its document or its password is gone.
pub(super) fn retry_refusal(row: &JobRecord) -> Option<ApiError> {
    if row.expired_at.is_some() && (row.input.is_some() || row.is_parent()) {
        return Some(ApiError::conflict(
            ApiErrorCode::InputExpired,
            "the uploaded document was deleted after the retention period; upload it again",
        ));
    }
    if crate::jobs::kinds::Export::password_lost(row) {
        return Some(ApiError::conflict(
            ApiErrorCode::PasswordWiped,
            "the document is password-protected and its password was wiped when the job \
             ended; upload it again with its password",
        ));
    }
    None
}

/// Deletes the stored files of `deleted` jobs and their documents' cached results.
pub(super) async fn forget_files(state: &ApiState, deleted: Vec<JobRecord>) {
    for row in deleted {
        if let Err(e) = state.storage.delete_job(row.id).await {
            // The row is gone, so nothing can reach the files; log and move on.
            tracing::warn!(job_id = %row.id, error = %e, "could not delete stored files");
        }
        // Deleting a job deletes its document: its cached results go too.
        let hash = row.input.as_ref().and_then(|i| i.sha256.as_deref());
        if let Some(hash) = hash
            && let Err(e) = state.cache.forget_input(hash).await
        {
            tracing::warn!(job_id = %row.id, error = %e, "could not forget cached results");
        }
    }
}
