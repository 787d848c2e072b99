//! Liveness, readiness, and discovery: the formats this service converts and the job kinds
//! it runs.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::errors::operation_errors;
use super::limits::guard_read;
use super::{ApiState, Tag};
use crate::convert::{DocFormat, Family, OutputFormat};
use crate::model::steps::initial;

/// Liveness: the process answers.
#[derive(Debug, Object)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// Each dependency's state: `ok`, or what is wrong.
#[derive(Debug, Object)]
pub struct ReadinessChecks {
    pub database: String,
    pub storage: String,
    /// `not used` in a process that does not convert (`offload api`).
    pub converter: String,
}

/// Readiness, part by part.
#[derive(Debug, Object)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: String,
    pub checks: ReadinessChecks,
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Every dependency works.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// At least one dependency is down; `checks` says which.
    #[oai(status = 503)]
    Unavailable(Json<Readiness>),
}

/// An input format.
#[derive(Debug, Object)]
pub struct InputFormat {
    /// File extension, e.g. `pptx`.
    pub extension: String,
    pub media_type: String,
    /// `presentation`, `text` or `spreadsheet`.
    pub family: String,
    /// The `format`s a document of this type can be exported as; any other is refused at
    /// submit (422 `unsupported_conversion`).
    pub outputs: Vec<OutputFormat>,
}

/// How jobs of a kind are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum KindOrigin {
    /// `POST /api/v1/jobs` (or `/jobs/batch`) with the kind's `args`.
    Jobs,
    /// An upload to `POST /api/v1/exports`.
    Exports,
    /// Made by offload itself (a merge of parts, a webhook delivery); not submittable.
    Internal,
}

/// A job kind this service runs.
#[derive(Debug, Object)]
pub struct KindInfo {
    pub name: String,
    pub created_by: KindOrigin,
    /// Checkpointed steps of a job, in order, as its `steps` lists them (plus `notify` for a job
    /// with a `callback_url`).
    pub steps: Vec<String>,
    /// Attempts before a job of this kind fails for good (the first run counts).
    pub max_attempts: u32,
    /// Limit of one attempt, in seconds.
    pub timeout_secs: f64,
}

/// The job kinds enabled on this service.
#[derive(Debug, Object)]
pub struct Kinds {
    pub kinds: Vec<KindInfo>,
}

/// What goes in and what comes out.
#[derive(Debug, Object)]
pub struct Formats {
    pub inputs: Vec<InputFormat>,
    /// Every output format of an export (each input type allows some: see its `outputs`).
    pub outputs: Vec<OutputFormat>,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
}

pub struct HealthApi;

operation_errors!(
    /// Errors of `GET /metrics`.
    MetricsError {}
);

fn check<E: std::fmt::Display>(r: Result<(), E>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

#[OpenApi(tag = "Tag::Service")]
impl HealthApi {
    /// Liveness
    ///
    /// 200 whenever the process can answer HTTP.
    #[oai(
        path = "/healthz",
        method = "get",
        operation_id = "healthz",
        transform = "guard_read"
    )]
    async fn healthz(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// Readiness
    ///
    /// Checks the database, the storage and (in processes that convert) LibreOffice. 503
    /// with the failing part named when one is down.
    #[oai(
        path = "/readyz",
        method = "get",
        operation_id = "readyz",
        transform = "guard_read"
    )]
    async fn readyz(&self, state: Data<&Arc<ApiState>>) -> ReadyResponse {
        let (database, storage) = tokio::join!(state.queue.ping(), state.storage.check());
        let converter = if state.runs_worker {
            check(
                state
                    .converter
                    .availability()
                    .map_err(|why| format!("LibreOffice missing: {why}")),
            )
        } else {
            "not used".into()
        };
        let checks = ReadinessChecks {
            database: check(database),
            storage: check(storage),
            converter,
        };
        let ok = [&checks.database, &checks.storage]
            .iter()
            .all(|c| *c == "ok")
            && (checks.converter == "ok" || checks.converter == "not used");
        let body = Readiness {
            status: if ok { "ready" } else { "unavailable" }.into(),
            checks,
        };
        if ok {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::Unavailable(Json(body))
        }
    }

    /// Metrics
    ///
    /// Prometheus text: jobs by kind and status, queue depth (from the database); attempt
    /// durations and conversions in flight (this process's).
    #[oai(
        path = "/metrics",
        method = "get",
        operation_id = "metrics",
        transform = "guard_read"
    )]
    async fn metrics(
        &self,
        state: Data<&Arc<ApiState>>,
    ) -> Result<PlainText<String>, MetricsError> {
        let counts = state.queue.counts().await?;
        let mut tenants: Vec<String> = state.keys.tenants().iter().map(|t| t.to_string()).collect();
        tenants.push(crate::model::Tenant::DEFAULT.to_string());
        Ok(PlainText(state.metrics.render(
            &counts,
            &state.registry.names(),
            &tenants,
        )))
    }

    /// Supported formats
    ///
    /// The document types `POST /exports` accepts (detected from content) and the outputs.
    #[oai(
        path = "/api/v1/formats",
        method = "get",
        operation_id = "list_formats",
        transform = "guard_read"
    )]
    async fn formats(&self, state: Data<&Arc<ApiState>>) -> Json<Formats> {
        let family = |f: Family| match f {
            Family::Presentation => "presentation",
            Family::Text => "text",
            Family::Spreadsheet => "spreadsheet",
        };
        Json(Formats {
            inputs: DocFormat::ALL
                .iter()
                .map(|f| InputFormat {
                    extension: f.extension().into(),
                    media_type: f.media_type().into(),
                    family: family(f.family()).into(),
                    outputs: OutputFormat::for_family(f.family()),
                })
                .collect(),
            outputs: OutputFormat::ALL.to_vec(),
            max_upload_bytes: state.max_upload_bytes,
        })
    }

    /// Job kinds
    ///
    /// The kinds enabled here, so a client can tell what it may submit: the demo kinds `noop`
    /// and `sleep` are listed only where they are offered (`DEMO_KINDS`).
    #[oai(
        path = "/api/v1/kinds",
        method = "get",
        operation_id = "list_kinds",
        transform = "guard_read"
    )]
    async fn kinds(&self, state: Data<&Arc<ApiState>>) -> Json<Kinds> {
        let kinds = state
            .registry
            .iter()
            .map(|kind| KindInfo {
                name: kind.name().into(),
                created_by: match (kind.internal(), kind.takes_upload()) {
                    (true, _) => KindOrigin::Internal,
                    (false, true) => KindOrigin::Exports,
                    (false, false) => KindOrigin::Jobs,
                },
                steps: initial(kind.steps(), false)
                    .into_iter()
                    .map(|s| s.name)
                    .collect(),
                max_attempts: kind.policy().max_attempts,
                timeout_secs: kind.policy().timeout.as_secs_f64(),
            })
            .collect();
        Json(Kinds { kinds })
    }
}
