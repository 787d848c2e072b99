//! offload takes slow work out of web requests: a client uploads a document and gets a job id
//! at once; a durable queue in a real database holds the job; a worker converts it with
//! retries, backoff, timeouts and cancellation; the client follows progress live and
//! downloads the result.
//!
//! # Layout
//!
//! - [`cli`], [`settings`], [`telemetry`], [`shutdown`]: the process around the service —
//!   command line, typed settings (flags → env → defaults), logs, signals.
//! - [`client`]: the command-line client (`offload submit | status | cancel`), over the
//!   public HTTP API only.
//! - [`app`]: [`app::Application`] wires the parts for one role (API, worker, or both).
//! - [`api`]: the HTTP API (poem-openapi), one file per resource; `api::errors` maps every
//!   error to a status in one place.
//! - [`queue`]: the one seam to the database (Postgres or SQLite): job rows, state
//!   transitions, apalis tasks and workers.
//! - [`jobs`]: the [`jobs::JobKind`] trait, the registry, the runner that executes attempts,
//!   and the built-in kinds (`export`, `noop`, `sleep`).
//! - [`convert`]: document type detection and the LibreOffice converter.
//! - [`storage`]: inputs and results in object storage (opendal), under service-made keys.
//! - [`sweeper`]: retention — expires finished jobs' files and prunes old rows, on a schedule,
//!   once across the cluster.
//! - [`events`]: in-process notifications (job changes for SSE and cancels; worker wake-ups).
//! - [`pages`]: the upload and live-progress pages (embedded from `frontend/`).
//! - [`board`]: the apalis board for operators, on its own listener.
//! - [`metrics`]: `/metrics` in Prometheus text.
//! - [`auth`], [`limits`]: optional API keys; body, time, rate and queue limits, and the
//!   slow-loris guard.
//! - [`outbound`]: where webhooks may go (public addresses, or those `OUTBOUND_ALLOW` names).

pub mod api;
pub mod app;
pub mod board;
pub mod cli;
pub mod client;
pub mod convert;
pub mod events;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod outbound;
pub mod pages;
pub mod queue;
pub mod settings;
pub mod shutdown;
pub mod storage;
pub mod sweeper;
pub mod telemetry;
