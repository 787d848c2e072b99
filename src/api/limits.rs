//! Limits that keep one client from hurting the others, attached per operation (each
//! operation's `#[oai(transform = ...)]` names its guard, so a new operation states its own):
//!
//! - [`guard_read`]: operations without a body — a time limit for the response head;
//! - [`guard_submit`]: `POST /jobs`, `/jobs/batch`, `/jobs/retry` — a JSON body limit, the
//!   queue cap, a time limit;
//! - [`guard_act`]: `POST /jobs/cancel` — a JSON body limit and a time limit, no queue cap
//!   (a tenant at its cap must still be able to cancel);
//! - [`guard_upload`]: `POST /exports` — an upload body limit, the per-client upload rate, the
//!   queue cap and the (longer) upload time limit.
//!
//! A body over its limit answers 413 at once when it declares its length; an undeclared
//! (chunked) body is cut when it grows past it, and the cut is recorded on the request
//! ([`BodyTooLarge`]) so that whatever error the payload parser then raises becomes the 413.
//! The time limit answers 408 when a handler takes too long to produce its response head
//! (streamed bodies — downloads, event streams — are not cut once started).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use governor::{DefaultKeyedRateLimiter, Quota};
use poem::http::{StatusCode, header};
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response};

use super::ApiState;
use super::auth::Caller;
use super::errors::{ApiErrorCode, ErrorBody};
use crate::model::Tenant;

pub use crate::model::tenant::TenantCaps;

/// The limits of the API listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most queued jobs per tenant (0: no cap), unless `tenant_max_queued_jobs` says otherwise.
    pub max_queued_jobs: u64,
    pub tenant_max_queued_jobs: TenantCaps,
    /// Uploads per client (API key, or address without keys) per minute (0: no limit),
    /// unless `tenant_uploads_per_minute` says otherwise for the key's tenant.
    pub uploads_per_minute: u32,
    pub tenant_uploads_per_minute: TenantCaps,
    pub request_timeout: Duration,
    pub upload_timeout: Duration,
    pub max_json_bytes: u64,
    pub max_upload_bytes: u64,
    /// Most bytes of documents and results stored per tenant (0: no quota), unless
    /// `tenant_max_stored_bytes` says otherwise.
    pub max_stored_bytes: u64,
    pub tenant_max_stored_bytes: TenantCaps,
}

/// The multipart envelope around a file of `max_upload_bytes` needs a little room.
const MULTIPART_ROOM: u64 = 1024 * 1024;

/// The record a body limit leaves on its request when it cut the body.
#[derive(Debug, Clone, Default)]
pub struct BodyTooLarge(Arc<AtomicBool>);

impl BodyTooLarge {
    fn hit(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body larger than allowed")
    }
}

impl std::error::Error for BodyTooLarge {}

fn json_error(status: StatusCode, code: ApiErrorCode, message: String) -> Response {
    poem_openapi::payload::Json(ErrorBody { code, message })
        .with_status(status)
        .into_response()
}

fn too_large(limit: u64, declared: Option<u64>) -> Response {
    let size = match declared {
        Some(n) => format!("{n} bytes"),
        None => "the streamed body".into(),
    };
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        ApiErrorCode::TooLarge,
        format!("body: {size} is over this endpoint's limit of {limit} bytes"),
    )
}

/// Enforces a body limit of `limit` bytes on `req`; `Err` is the 413 to send instead, `Ok`
/// the record of a later cut.
fn body_limit(req: &mut Request, limit: u64) -> Result<BodyTooLarge, Box<Response>> {
    let declared = req
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(Box::new(too_large(limit, declared)));
    }
    let cut = BodyTooLarge::default();
    if declared.is_none() {
        let (mut seen, record) = (0u64, cut.clone());
        let limited = req.take_body().into_bytes_stream().map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > limit {
                record.0.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other(record.clone()));
            }
            Ok(chunk)
        });
        req.set_body(Body::from_bytes_stream(limited));
    }
    Ok(cut)
}

/// The 408 for a handler that ran out of time.
fn timed_out(limit: Duration) -> Response {
    json_error(
        StatusCode::REQUEST_TIMEOUT,
        ApiErrorCode::RequestTimeout,
        format!("the request took longer than {}s", limit.as_secs()),
    )
}

/// Who an upload rate counts against: an API key (named by its digest) when keys are on,
/// else an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    Key(String),
    Address(IpAddr),
}

/// Per-client token buckets for uploads (governor's GCRA, keyed by [`Client`]).
pub struct UploadRate {
    per_minute: u32,
    limiter: Option<DefaultKeyedRateLimiter<Client>>,
}

impl UploadRate {
    /// `per_minute == 0` disables the limit.
    pub fn new(per_minute: u32) -> Self {
        let limiter = NonZeroU32::new(per_minute)
            .map(|n| DefaultKeyedRateLimiter::hashmap(Quota::per_minute(n)));
        Self {
            per_minute,
            limiter,
        }
    }

    /// Takes one token for `client`; `Err(seconds)` to wait when there is none.
    pub fn take(&self, client: &Client) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > 10_000 {
            // Forget clients whose buckets have long been full again.
            limiter.retain_recent();
        }
        limiter.check_key(client).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            wait.as_secs_f64().ceil().max(1.0) as u64
        })
    }

    /// The 429 for a client over its rate.
    fn refusal(&self, wait: u64) -> Response {
        let mut resp = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            ApiErrorCode::Overloaded,
            format!(
                "more than {} uploads a minute from this client; retry in {wait}s",
                self.per_minute
            ),
        );
        resp.headers_mut().insert(header::RETRY_AFTER, wait.into());
        resp
    }
}

/// The upload buckets: one rate for every client, and their own for the tenants that have an
/// exception (each such tenant's keys share its rate, a bucket per key).
pub struct UploadRates {
    default: UploadRate,
    tenants: std::collections::HashMap<Tenant, UploadRate>,
}

impl UploadRates {
    pub fn new(per_minute: u32, exceptions: &TenantCaps) -> Self {
        let tenants = exceptions
            .iter()
            .map(|(tenant, rate)| {
                let rate = u32::try_from(rate).unwrap_or(u32::MAX);
                (tenant.clone(), UploadRate::new(rate))
            })
            .collect();
        Self {
            default: UploadRate::new(per_minute),
            tenants,
        }
    }

    /// The rate `tenant`'s uploads count against.
    fn of(&self, tenant: &Tenant) -> &UploadRate {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }
}

/// The limits with their state: the upload buckets and the cached queued-job counts.
pub struct Guards {
    pub limits: Limits,
    uploads: UploadRates,
    /// Each tenant's queued-job count and when it was read: its submits check it at most
    /// every 250 ms.
    queued: tokio::sync::Mutex<std::collections::HashMap<Tenant, (Instant, i64)>>,
}

impl Guards {
    pub fn new(limits: Limits) -> Self {
        Self {
            uploads: UploadRates::new(limits.uploads_per_minute, &limits.tenant_uploads_per_minute),
            limits,
            queued: Default::default(),
        }
    }

    /// `Err(message)` when `incoming` more bytes would take `tenant` over its stored-bytes
    /// quota. Counts the documents and main results of jobs whose files are kept, summed per
    /// upload (uploads are rare beside submits, and a cached sum would hold a deletion back);
    /// a result made later counts from then on, so results of jobs already accepted (and
    /// uploads racing each other) can overshoot the quota a little.
    pub async fn stored_full(
        &self,
        queue: &crate::queue::Queue,
        tenant: &Tenant,
        incoming: u64,
    ) -> Result<(), String> {
        let limits = &self.limits;
        let quota = limits
            .tenant_max_stored_bytes
            .cap(tenant, limits.max_stored_bytes);
        if quota == 0 {
            return Ok(());
        }
        // A failing sum must not block uploads; the queue itself reports the outage.
        let stored = queue.stored_bytes(tenant).await.unwrap_or(0);
        let stored = u64::try_from(stored).unwrap_or(0);
        if stored.saturating_add(incoming) <= quota {
            return Ok(());
        }
        Err(format!(
            "tenant {tenant} stores {stored} bytes of its quota of {quota}; {incoming} more do \
             not fit (delete finished jobs, e.g. DELETE /api/v1/jobs?status=succeeded, or wait \
             for their retention to end)"
        ))
    }

    /// `Some(response)` (429) when `tenant` already has its cap of queued jobs.
    async fn queue_full(&self, queue: &crate::queue::Queue, tenant: &Tenant) -> Option<Response> {
        let cap = (self.limits.tenant_max_queued_jobs).cap(tenant, self.limits.max_queued_jobs);
        if cap == 0 {
            return None;
        }
        let mut cached = self.queued.lock().await;
        if cached.len() > 10_000 {
            cached.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(60));
        }
        let fresh = cached
            .get(tenant)
            .is_some_and(|(at, _)| at.elapsed() <= Duration::from_millis(250));
        if !fresh {
            // A failing count must not block submits; the queue itself reports the outage.
            let count = queue.queued_count(tenant).await.unwrap_or(0);
            cached.insert(tenant.clone(), (Instant::now(), count));
        }
        let entry = cached.get_mut(tenant).expect("just read");
        let queued = u64::try_from(entry.1).unwrap_or(0);
        if queued < cap {
            // Count the admitted submit until the next read, so a burst within the cache
            // window cannot overshoot the cap (a refused or batch submit is corrected then).
            entry.1 += 1;
            return None;
        }
        let mut resp = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            ApiErrorCode::Overloaded,
            format!("{queued} of your jobs are waiting (your limit is {cap}); retry shortly"),
        );
        resp.headers_mut().insert(header::RETRY_AFTER, 5.into());
        Some(resp)
    }
}

/// What one operation's guard checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    Read,
    /// A JSON body that queues nothing (bulk cancel): its limit, no queue cap.
    Act,
    Submit,
    Upload,
}

/// Who a request's uploads count against: its API key, else its address.
fn client(req: &Request, state: &ApiState) -> Option<Client> {
    if state.keys.enabled() {
        return Some(Client::Key(state.keys.scope(req)));
    }
    req.remote_addr()
        .as_socket_addr()
        .map(|a| Client::Address(a.ip()))
}

/// Runs `req` through the checks of `guard`, then `ep` within its time limit.
async fn guarded<E: Endpoint>(ep: &E, mut req: Request, guard: Guard) -> poem::Result<Response> {
    let state = req
        .data::<Arc<ApiState>>()
        .cloned()
        .expect("the API routes carry their state");
    let (g, limits) = (&state.guards, &state.guards.limits);
    let body = match guard {
        Guard::Read => None,
        Guard::Act | Guard::Submit => Some(limits.max_json_bytes),
        Guard::Upload => Some(limits.max_upload_bytes + MULTIPART_ROOM),
    };
    let cut = match body.map(|limit| (limit, body_limit(&mut req, limit))) {
        Some((_, Err(refusal))) => return Ok(*refusal),
        Some((limit, Ok(cut))) => Some((limit, cut)),
        None => None,
    };
    let tenant = req
        .extensions()
        .get::<Caller>()
        .map(|c| c.tenant.clone())
        .unwrap_or_default();
    if guard == Guard::Upload
        && let Some(client) = client(&req, &state)
    {
        let rate = g.uploads.of(&tenant);
        if let Err(wait) = rate.take(&client) {
            return Ok(rate.refusal(wait));
        }
    }
    if matches!(guard, Guard::Submit | Guard::Upload)
        && let Some(full) = g.queue_full(&state.queue, &tenant).await
    {
        return Ok(full);
    }
    let time = match guard {
        Guard::Upload => limits.upload_timeout,
        _ => limits.request_timeout,
    };
    let answer = match tokio::time::timeout(time, ep.call(req)).await {
        Err(_) => return Ok(timed_out(time)),
        Ok(answer) => answer.map(IntoResponse::into_response),
    };
    match (cut, answer) {
        // The body was cut at its limit: whatever the parser made of that, it is a 413.
        (Some((limit, cut)), _) if cut.hit() => Ok(too_large(limit, None)),
        (_, answer) => answer,
    }
}

/// The guard of operations without a body.
pub fn guard_read(ep: impl Endpoint + 'static) -> impl Endpoint {
    ep.around(|ep, req| async move { guarded(&ep, req, Guard::Read).await })
}

/// The guard of JSON submits.
pub fn guard_submit(ep: impl Endpoint + 'static) -> impl Endpoint {
    ep.around(|ep, req| async move { guarded(&ep, req, Guard::Submit).await })
}

/// The guard of operations with a JSON body that queue nothing (bulk cancel): a tenant at
/// its queued cap must still be able to cancel.
pub fn guard_act(ep: impl Endpoint + 'static) -> impl Endpoint {
    ep.around(|ep, req| async move { guarded(&ep, req, Guard::Act).await })
}

/// The guard of uploads.
pub fn guard_upload(ep: impl Endpoint + 'static) -> impl Endpoint {
    ep.around(|ep, req| async move { guarded(&ep, req, Guard::Upload).await })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_holds_a_minute_of_uploads_per_client() {
        let rate = UploadRate::new(60);
        let ip = Client::Address("192.0.2.1".parse().unwrap());
        for _ in 0..60 {
            rate.take(&ip).unwrap();
        }
        assert_eq!(rate.take(&ip), Err(1), "empty: wait about a second");
        assert!(
            rate.take(&Client::Address("192.0.2.2".parse().unwrap()))
                .is_ok(),
            "buckets are per client"
        );
        assert!(rate.take(&Client::Key("k".into())).is_ok(), "and per key");
        assert!(UploadRate::new(0).take(&ip).is_ok(), "0 disables the limit");
    }
}
