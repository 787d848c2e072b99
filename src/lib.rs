//! offload takes slow work out of web requests: a client uploads a document and gets a job id
//! at once; a durable queue in a real database holds the job; a worker converts it with
//! retries, backoff, timeouts and cancellation; the client follows progress live and
//! downloads the result.
//!
//! # Layout
//!
//! Layers, lowest first; a module imports only from layers below its own (checked by
//! `tests/api/layers.rs`; ARCHITECTURE.md says why each part sits where it does):
//!
//! 1. [`model`] — the job's own types: status, steps, the typed job row, error codes, the Job
//!    JSON view. Imports nothing of the crate.
//! 2. [`events`] — in-process notifications: per-job change watches, worker wake-ups.
//! 3. The seams, each behind its own types: [`storage`] (opendal), [`convert`] (document types,
//!    external references, the OS sandbox, LibreOffice), [`outbound`] (where webhooks may go),
//!    [`secrets`] (document passwords sealed at rest),
//!    [`metrics`] (`/metrics`), [`client`] (the command-line client, over HTTP only).
//! 4. [`queue`] — the one seam to the database (Postgres or SQLite): job rows, fenced
//!    transitions, following a job, apalis tasks and workers run from plain plans.
//! 5. [`jobs`] (the `JobKind` trait, the registry, the runner, the workers, the built-in
//!    kinds) and [`sweeper`] (retention).
//! 6. [`pages`] and [`board`] — the upload and progress pages, the apalis board.
//! 7. [`api`] — the HTTP API (poem-openapi): one file per resource, `auth`, per-operation
//!    `limits`, the slow-loris `deadline`, and `errors`, where every error becomes a status.
//! 8. [`settings`], [`telemetry`], [`shutdown`] — typed settings, logs, signals.
//! 9. [`app`] — wires the parts for one role (API, worker, or both) from the settings.
//! 10. [`cli`] (and `main`) — the command line.
//!
//! Only `app`, `cli` and `main` see the settings; every component takes its own config.

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
pub mod secrets;
pub mod settings;
pub mod shutdown;
pub mod storage;
pub mod sweeper;
pub mod telemetry;
