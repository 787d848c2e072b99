//! The HTTP API: typed poem-openapi operations (so the spec and Swagger UI come from the
//! code), plus the routes around them (`/docs`, `/openapi.json`).
//!
//! One file per resource: [`exports`] (uploads), [`jobs`] (everything about a job),
//! [`health`] (liveness, readiness, formats). [`errors`] is the single place where errors
//! become statuses.

pub mod auth;
pub mod batches;
pub mod body;
pub mod bulk;
pub mod deadline;
pub mod errors;
pub mod exports;
pub mod health;
pub mod jobs;
pub mod limits;
pub mod selection;
pub mod spec;

use std::sync::Arc;

use poem::endpoint::make_sync;
use poem::web::Html;
use poem::{Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::convert::Converter;
use crate::jobs::{ArgsError, Registry};
use crate::model::view::Job;
use crate::queue::{NewJob, Queue};
use crate::storage::Storage;
use errors::{ApiError, ApiErrorCode};

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;

#[derive(Tags)]
pub enum Tag {
    /// Upload documents to convert.
    Exports,
    /// Follow, list, download, cancel, retry and delete jobs.
    Jobs,
    /// Health, readiness and capabilities.
    Service,
}

/// What every handler shares.
pub struct ApiState {
    pub queue: Queue,
    pub storage: Storage,
    pub registry: Registry,
    pub converter: Arc<dyn Converter>,
    pub max_upload_bytes: u64,
    /// Whether this process converts (then `/readyz` requires a working converter).
    pub runs_worker: bool,
    /// The OpenAPI document ([`spec::document`] of `registry`).
    pub spec: String,
    /// This process's job metrics (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The board's port, for `GET /board` (`None`: off).
    pub board_port: Option<u16>,
    /// API keys (auth off when empty).
    pub keys: auth::ApiKeys,
    /// Body, time, rate and queue limits.
    pub guards: limits::Guards,
    /// Where `callback_url`s may point.
    pub outbound: crate::outbound::Outbound,
    /// Whether `WEBHOOK_SECRET` is set (a `callback_url` needs it).
    pub webhooks: bool,
    /// Seals document passwords (`None`: passwords are refused).
    pub secrets: Option<crate::secrets::SecretKey>,
    /// The result cache exports are looked up in.
    pub cache: crate::jobs::cache::ResultCache,
}

impl ApiState {
    fn max_attempts(&self, kind: &str) -> u32 {
        self.registry
            .policy(kind)
            .map(|p| p.max_attempts)
            .unwrap_or(1)
    }

    /// Job `id` as stored, or 404 `job_not_found` — also when it is another tenant's, so that
    /// another tenant's id tells nothing an unknown one would not.
    async fn job(
        &self,
        id: uuid::Uuid,
        caller: &auth::Caller,
    ) -> Result<crate::queue::JobRecord, ApiError> {
        self.queue
            .get(id)
            .await?
            .filter(|row| row.tenant == caller.tenant)
            .ok_or_else(|| ApiError::job_not_found(id))
    }

    /// The job an earlier request with this idempotency key created, if any.
    async fn find_idempotent(&self, key: Option<&str>) -> Result<Option<Job>, ApiError> {
        let Some(key) = key else { return Ok(None) };
        Ok(self
            .queue
            .find_by_idempotency_key(key)
            .await?
            .map(Job::from))
    }

    /// Batch `id` and its jobs' rows, if it is `caller`'s (another tenant's is as unknown).
    async fn batch_rows(
        &self,
        id: uuid::Uuid,
        caller: &auth::Caller,
    ) -> Result<
        (
            crate::model::batch::BatchRecord,
            Vec<crate::queue::JobRecord>,
        ),
        ApiError,
    > {
        self.queue
            .batch(id)
            .await?
            .filter(|(batch, _)| batch.tenant == caller.tenant)
            .ok_or_else(|| ApiError::batch_not_found(id))
    }

    /// What an earlier request with this idempotency key created — a job or a batch — if any.
    async fn find_idempotent_any(&self, key: Option<&str>) -> Result<Option<Idempotent>, ApiError> {
        if let Some(job) = self.find_idempotent(key).await? {
            return Ok(Some(Idempotent::Job(Box::new(job))));
        }
        Ok(self
            .find_idempotent_batch(key)
            .await?
            .map(Idempotent::Batch))
    }

    /// The batch an earlier request with this idempotency key created, if any.
    async fn find_idempotent_batch(
        &self,
        key: Option<&str>,
    ) -> Result<Option<crate::model::batch::Batch>, ApiError> {
        let Some(key) = key else { return Ok(None) };
        let found = self.queue.batch_by_key(key).await?;
        Ok(found.map(|(batch, jobs)| crate::model::batch::Batch::of(batch, jobs)))
    }

    /// A 413 `storage_quota` when `incoming` bytes would take `tenant` over its quota.
    async fn check_stored_bytes(
        &self,
        tenant: &crate::model::Tenant,
        incoming: u64,
    ) -> Result<(), ApiError> {
        self.guards
            .stored_full(&self.queue, tenant, incoming)
            .await
            .map_err(|why| ApiError::too_large_as(ApiErrorCode::StorageQuota, why))
    }

    /// Validates an argument-only job request; `field` names it in errors.
    async fn new_job(
        &self,
        req: jobs::NewJobRequest,
        field: &str,
        caller: &auth::Caller,
    ) -> Result<NewJob, ApiError> {
        let kind = self
            .registry
            .get(&req.kind)
            .filter(|k| !k.internal())
            .ok_or_else(|| {
                ApiError::invalid(
                    ApiErrorCode::UnknownKind,
                    format!(
                        "{field}.kind: unknown kind {:?}; known: {}",
                        req.kind,
                        self.registry.submittable().join(", ")
                    ),
                )
            })?;
        if kind.takes_upload() {
            return Err(ApiError::invalid(
                ApiErrorCode::UploadRequired,
                format!(
                    "{field}.kind: {:?} jobs take a document; create them with POST /api/v1/exports",
                    req.kind
                ),
            ));
        }
        let args = req.args.unwrap_or_else(|| serde_json::json!({}));
        kind.check_args(&args).map_err(|e| match e {
            ArgsError::UnknownField { field: name, known } => ApiError::bad_request(
                ApiErrorCode::InvalidBody,
                format!(
                    "{field}.args.{name}: unknown field; {} takes {}",
                    req.kind,
                    match known.is_empty() {
                        true => "no arguments".to_string(),
                        false => known.join(", "),
                    }
                ),
            ),
            ArgsError::Invalid(why) => ApiError::invalid(
                ApiErrorCode::InvalidArguments,
                format!("{field}.args: {why}"),
            ),
        })?;
        let mut job = NewJob::new(kind.name(), args, kind.policy().max_attempts);
        job.tenant = caller.tenant.clone();
        job.steps = kind.steps().to_vec();
        job.callback_url = self
            .callback_url(req.callback_url, &format!("{field}.callback_url"))
            .await?;
        job.run_at = req.run_at.map(|t| t.timestamp_micros());
        job.priority = req.priority.unwrap_or_default();
        if let Some(labels) = req.metadata {
            job.metadata = crate::model::Metadata::check(labels, &format!("{field}.metadata"))
                .map_err(|why| ApiError::invalid(ApiErrorCode::InvalidArguments, why))?;
        }
        Ok(job)
    }

    /// Checks a `callback_url` (`place` names it in errors): webhooks configured, the
    /// address allowed.
    async fn callback_url(
        &self,
        url: Option<String>,
        place: &str,
    ) -> Result<Option<String>, ApiError> {
        let Some(url) = url else { return Ok(None) };
        let refuse = |why: String| {
            ApiError::invalid(ApiErrorCode::InvalidArguments, format!("{place}: {why}"))
        };
        if !self.webhooks {
            return Err(refuse(
                "this service has no WEBHOOK_SECRET, so it cannot sign webhooks".into(),
            ));
        }
        self.outbound.check(&url).await.map_err(refuse)?;
        Ok(Some(url))
    }
}

/// What an idempotency key named before: a job (one upload, a merge, `POST /jobs`) or a batch.
enum Idempotent {
    Job(Box<Job>),
    Batch(crate::model::batch::Batch),
}

impl Idempotent {
    /// The 400 for a key sent again to make the other kind of thing.
    fn reused(&self) -> ApiError {
        let what = match self {
            Idempotent::Job(job) => format!("job {}", job.id),
            Idempotent::Batch(batch) => format!("batch {}", batch.id),
        };
        ApiError::bad_request(
            ApiErrorCode::InvalidIdempotencyKey,
            format!(
                "header Idempotency-Key: already used for {what}; use a new key for this request"
            ),
        )
    }
}

/// Checks an `Idempotency-Key` header value; the key as stored for `caller`'s tenant.
fn idempotency_key(key: Option<String>, caller: &auth::Caller) -> Result<Option<String>, ApiError> {
    match key {
        Some(k) if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY => Err(ApiError::bad_request(
            ApiErrorCode::InvalidIdempotencyKey,
            format!("header Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY} bytes"),
        )),
        other => Ok(other.map(|k| caller.tenant.idempotency_key(&k))),
    }
}

/// The API operations (stateless: handlers get [`ApiState`] through `Data`).
pub type Operations = (
    exports::ExportsApi,
    jobs::JobsApi,
    bulk::BulkApi,
    batches::BatchesApi,
    health::HealthApi,
);

/// The OpenAPI service: every typed operation. Needs no running parts, so the spec can be
/// printed without a database (`offload openapi`).
pub fn service() -> OpenApiService<Operations, ()> {
    OpenApiService::new(
        (
            exports::ExportsApi,
            jobs::JobsApi,
            bulk::BulkApi,
            batches::BatchesApi,
            health::HealthApi,
        ),
        "offload",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Takes slow work out of web requests: upload a document, get a job id at once, follow \
         its progress live and download the PDF. Every error is `{code, message}` JSON.",
    )
}

/// The document `offload openapi` prints: the built-in kinds' API.
pub fn builtin_spec() -> String {
    use crate::jobs::kinds::{BuiltinConfig, ExportConfig, WebhookConfig};
    let converter = Arc::new(crate::convert::libreoffice::LibreOffice::new(
        "soffice",
        Default::default(),
        Arc::new(crate::convert::sandbox::Sandbox::off()),
    ));
    let metrics = Arc::new(crate::metrics::Metrics::default());
    // The spec lists kinds, their arguments and error codes; no setting changes those.
    let config = BuiltinConfig {
        max_attempts: 1,
        backoff: std::time::Duration::ZERO,
        export: ExportConfig {
            timeout: std::time::Duration::ZERO,
            concurrency: 1,
            neutralize: true,
            secrets: None,
            cache: None,
            renderer: None,
            max_render_pages: 1,
        },
        webhook: WebhookConfig::default(),
        demo: true,
    };
    spec::document(&crate::jobs::kinds::builtin(&config, converter, metrics))
}

/// All HTTP routes of the API listener.
pub fn routes(state: Arc<ApiState>) -> impl Endpoint {
    let spec = state.spec.clone();
    let docs = spec::swagger_ui_html(&spec);
    let allowed = Arc::new(spec::allowed_methods(&spec));
    let board = crate::pages::BoardLink {
        port: state.board_port,
    };
    // One service, mounted where its operations are (the pages own `/`).
    let api = Arc::new(service().into_endpoint());
    let guarded = state.clone();
    crate::pages::add_routes(Route::new(), board)
        .at("/docs", make_sync(move |_| Html(docs.clone())))
        .at(
            "/openapi.json",
            make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json")
                    .body(spec.clone())
            }),
        )
        .nest_no_strip("/api", api.clone())
        .at("/healthz", api.clone())
        .at("/readyz", api.clone())
        .at("/metrics", api)
        .data(state)
        .catch_all_error(errors::json_errors)
        .around(move |ep, req| {
            let (state, allowed) = (guarded.clone(), allowed.clone());
            async move {
                // Keys guard every route here; each operation's own limits are its transform.
                let path = req.uri().path().to_string();
                let mut req = req;
                if !auth::ApiKeys::is_public(&path) {
                    let Some(caller) = state.keys.identify(&req) else {
                        return Ok(auth::unauthorized());
                    };
                    if auth::ApiKeys::is_operator_only(&path) && !caller.operator {
                        return Ok(auth::operators_only());
                    }
                    req.extensions_mut().insert(caller);
                }
                let mut resp = ep.call(req).await?.into_response();
                // RFC 9110: a 405 names the methods the resource does accept.
                if resp.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
                    && let Some((_, methods)) = allowed
                        .iter()
                        .find(|(t, _)| spec::matches_template(t, &path))
                    && let Ok(value) = poem::http::HeaderValue::from_str(methods)
                {
                    resp.headers_mut().insert(poem::http::header::ALLOW, value);
                }
                Ok(resp)
            }
        })
}
