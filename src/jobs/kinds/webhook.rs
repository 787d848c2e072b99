//! `webhook`: delivers a job that ended to its `callback_url` — a durable job of its own,
//! queued in the transaction that ended the job, retried with backoff until the receiver
//! answers 2xx (at least once; the `Idempotency-Key` header, this delivery's id, is the same
//! on every try so the receiver can drop repeats).
//!
//! The body is the Job JSON as `GET /api/v1/jobs/{id}` shows it at delivery time
//! (`Offload-Event: job.<status>`), or for a batch's callback the Batch JSON as
//! `GET /api/v1/batches/{id}` shows it (`Offload-Event: batch.ended`). The
//! `Offload-Signature` header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
//! keyed with `WEBHOOK_SECRET`. The address is checked against the outbound policy again
//! here, and the request goes only to the addresses that passed.

use crate::model::codes;
use std::time::Duration;

use hmac::{Hmac, Mac};
use poem_openapi::types::ToJSON;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::jobs::ErrorCode;
use crate::jobs::{JobContext, JobError, JobKind, JobOutput, Policy};
use crate::model::view::Job;
use crate::outbound::Outbound;

pub const NAME: &str = "webhook";
/// The receiver did not answer 2xx (retried).
pub const WEBHOOK_FAILED: ErrorCode = ErrorCode::new("webhook_failed");
/// The delivery cannot be made: the job is gone or the address is not allowed (not retried).
pub const WEBHOOK_REFUSED: ErrorCode = ErrorCode::new("webhook_refused");
/// How long a receiver may take to answer.
const RECEIVER_TIMEOUT: Duration = Duration::from_secs(10);

/// Deliveries are worth more tries than the service default: receivers go down for a while.
pub fn attempts(service_default: u32) -> u32 {
    service_default.max(8)
}

/// How webhooks are signed and where they may go.
#[derive(Debug, Clone, Default)]
pub struct WebhookConfig {
    /// Signs every delivery (`Offload-Signature`).
    pub secret: String,
    pub outbound: Outbound,
}

pub struct Webhook {
    secret: String,
    outbound: Outbound,
}

impl Webhook {
    pub fn new(config: WebhookConfig) -> Self {
        Self {
            secret: config.secret,
            outbound: config.outbound,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookArgs {
    /// The job that ended (a job's delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The batch whose jobs have all ended (a batch's delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Where to POST it.
    pub url: String,
}

/// What a delivery sends: its body and its `Offload-Event`.
struct Event {
    body: Vec<u8>,
    name: String,
}

/// `t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`.
pub fn signature(secret: &str, unix: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl JobKind for Webhook {
    const NAME: &'static str = NAME;
    type Args = WebhookArgs;
    const INTERNAL: bool = true;
    const ERROR_CODES: &'static [ErrorCode] = &[WEBHOOK_FAILED, WEBHOOK_REFUSED];

    fn policy(&self, defaults: Policy) -> Policy {
        Policy {
            max_attempts: defaults.max_attempts.max(8),
            timeout: RECEIVER_TIMEOUT * 3,
            concurrency: 16,
            batch_size: 16,
            ..defaults
        }
    }

    async fn run(&self, ctx: JobContext, args: WebhookArgs) -> Result<JobOutput, JobError> {
        if self.secret.is_empty() {
            return Err(JobError::fatal(
                WEBHOOK_REFUSED,
                "WEBHOOK_SECRET is not set on this worker; deliveries are never sent unsigned",
            ));
        }
        let event = match (&args.job_id, &args.batch_id) {
            (Some(job), None) => job_event(&ctx, job).await?,
            (None, Some(batch)) => batch_event(&ctx, batch).await?,
            _ => {
                return Err(JobError::fatal(
                    codes::INVALID_ARGUMENTS,
                    "a delivery names one job_id or one batch_id",
                ));
            }
        };
        let body = event.body;
        let destination = self
            .outbound
            .check(&args.url)
            .await
            .map_err(|why| JobError::fatal(WEBHOOK_REFUSED, format!("callback_url: {why}")))?;
        let client = reqwest::Client::builder()
            .resolve_to_addrs(&destination.host, &destination.addrs)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(RECEIVER_TIMEOUT)
            .build()
            .map_err(JobError::internal)?;
        let unix = chrono::Utc::now().timestamp();
        ctx.progress(50, format!("delivering to {}", destination.host))
            .await?;
        let answer = client
            .post(destination.url)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("offload-webhook/", env!("CARGO_PKG_VERSION")),
            )
            .header("offload-event", event.name)
            .header("offload-signature", signature(&self.secret, unix, &body))
            .header("idempotency-key", ctx.job_id().to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| JobError::retryable(WEBHOOK_FAILED, format!("no answer: {e}")))?;
        if !answer.status().is_success() {
            return Err(JobError::retryable(
                WEBHOOK_FAILED,
                format!("the receiver answered HTTP {}", answer.status()),
            ));
        }
        ctx.progress(
            100,
            format!("delivered (HTTP {})", answer.status().as_u16()),
        )
        .await?;
        Ok(JobOutput::none())
    }
}

/// The Job JSON of job `id` as `GET /api/v1/jobs/{id}` shows it now; `job.<status>`.
async fn job_event(ctx: &JobContext, id: &str) -> Result<Event, JobError> {
    let id = Uuid::parse_str(id)
        .map_err(|e| JobError::fatal(codes::INVALID_ARGUMENTS, format!("job_id: {e}")))?;
    let row = ctx.job(id).await?.ok_or_else(|| {
        JobError::fatal(WEBHOOK_REFUSED, "the job was deleted before its delivery")
    })?;
    let parts = if row.is_parent() {
        ctx.parts_of(id).await?
    } else {
        Vec::new()
    };
    let name = format!("job.{}", row.status);
    let body =
        serde_json::to_vec(&Job::with_parts(row, parts).to_json()).map_err(JobError::internal)?;
    Ok(Event { body, name })
}

/// The Batch JSON of batch `id` as `GET /api/v1/batches/{id}` shows it now; `batch.ended`.
async fn batch_event(ctx: &JobContext, id: &str) -> Result<Event, JobError> {
    let id = Uuid::parse_str(id)
        .map_err(|e| JobError::fatal(codes::INVALID_ARGUMENTS, format!("batch_id: {e}")))?;
    let batch = ctx.batch(id).await?.ok_or_else(|| {
        JobError::fatal(WEBHOOK_REFUSED, "the batch was deleted before its delivery")
    })?;
    let body = serde_json::to_vec(&batch.to_json()).map_err(JobError::internal)?;
    Ok(Event {
        body,
        name: "batch.ended".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn the_signature_is_an_hmac_of_time_dot_body() {
        // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature("secret", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }
}
