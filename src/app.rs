//! [`Application`]: the parts wired together for one role — API, worker, or both.
//!
//! `build` connects, migrates and binds (port 0 works, for tests); `run_until_stopped` serves
//! until the shutdown future completes, then stops taking work and gives running jobs the
//! grace period. Jobs still running after it go back to the queue (their lease runs out and
//! another worker re-runs them); they are never marked failed for a shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{Endpoint, EndpointExt, IntoResponse, Server};

use crate::api::deadline::HeaderDeadline;
use crate::api::limits::{Guards, Limits};
use crate::api::{self, ApiState};
use crate::convert::libreoffice::ProcessLimits;
use crate::convert::render::Renderer;
use crate::convert::sandbox::{SandboxConfig, SandboxMode};
use crate::convert::{ConvertConfig, Converter};
use crate::jobs::cache::ResultCache;
use crate::jobs::kinds::{BuiltinConfig, ExportConfig, WebhookConfig};
use crate::jobs::runner::Runtime;
use crate::jobs::{Registry, kinds};
use crate::metrics::Metrics;
use crate::queue::{Callbacks, Queue, QueueConfig};
use crate::secrets::SecretKey;
use crate::settings::{ConverterMode, Settings};
use crate::storage::Storage;
use crate::sweeper::Sweeper;
use crate::{board, telemetry};

/// Connections with no traffic at all for this long are closed (event streams send a
/// keep-alive every 15 s, so they never idle this long).
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Which parts run in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// API and an in-process worker (`offload serve`).
    Serve,
    /// API only (`offload api`).
    Api,
    /// Worker only (`offload worker`).
    Worker,
}

impl Role {
    fn serves_http(self) -> bool {
        matches!(self, Role::Serve | Role::Api)
    }

    fn runs_worker(self) -> bool {
        matches!(self, Role::Serve | Role::Worker)
    }
}

pub struct Application {
    role: Role,
    settings: Settings,
    acceptor: Option<TcpAcceptor>,
    board: Option<TcpAcceptor>,
    state: Arc<ApiState>,
    runtime: Arc<Runtime>,
}

impl Application {
    /// Builds with the built-in kinds.
    pub async fn build(settings: Settings, role: Role) -> anyhow::Result<Self> {
        Self::build_with(settings, role, |registry| registry).await
    }

    /// Builds with the built-in kinds plus whatever `extend` registers — the way an embedding
    /// application adds its own kinds.
    pub async fn build_with(
        settings: Settings,
        role: Role,
        extend: impl FnOnce(Registry) -> Registry,
    ) -> anyhow::Result<Self> {
        settings.validate()?;
        let queue = open_queue(&settings).await?;
        let storage = Storage::open(&settings.storage.url)
            .await
            .map_err(|e| anyhow::anyhow!("STORAGE_URL: {e}"))?;
        let converter = converter(&settings, role)?;
        if role.runs_worker()
            && let Err(why) = converter.availability()
        {
            tracing::warn!(%why, "LibreOffice is missing: export jobs will fail with converter_unavailable");
        }
        let metrics = Arc::new(Metrics::default());
        let secrets = secret_key(&settings, role);
        let cache = ResultCache::new(queue.clone(), storage.clone(), settings.cache_retention());
        if role.runs_worker() {
            record_converter(converter.clone(), cache.clone());
        }
        let registry = extend(kinds::builtin(
            &kinds_config(&settings, role, secrets.clone(), cache.clone()),
            converter.clone(),
            metrics.clone(),
        ));
        let (acceptor, board) = match role.serves_http() {
            true => (Some(bind(&settings).await?), bind_board(&settings).await?),
            false => (None, None),
        };
        let runtime = Arc::new(
            Runtime::new(
                queue.clone(),
                storage.clone(),
                registry.clone(),
                settings.work_dir(),
                metrics.clone(),
            )
            .pause_before_publish(settings.testing.pause_before_publish),
        );
        let http = &settings.http;
        let state = Arc::new(ApiState {
            spec: api::spec::document(&registry),
            board_port: board.as_ref().and_then(port_of),
            metrics,
            queue,
            storage,
            registry,
            converter,
            max_upload_bytes: http.max_upload_bytes,
            runs_worker: role.runs_worker(),
            keys: http.api_keys.clone(),
            guards: Guards::new(limits(&settings)),
            outbound: settings.webhooks.outbound_allow.clone(),
            webhooks: !settings.webhooks.webhook_secret.is_empty(),
            secrets,
            cache,
        });
        Ok(Self {
            role,
            settings,
            acceptor,
            board,
            state,
            runtime,
        })
    }

    /// The bound API address (`None` for a worker-only process).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        socket_of(self.acceptor.as_ref()?)
    }

    /// The bound board address (`None` when off or in a worker-only process).
    pub fn board_addr(&self) -> Option<SocketAddr> {
        socket_of(self.board.as_ref()?)
    }

    pub fn queue(&self) -> &Queue {
        &self.state.queue
    }

    /// Serves until `shutdown` completes, then drains for the grace period.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown = shutdown.boxed().shared();
        let grace = self.settings.shutdown_grace();
        let head = Duration::from_secs(self.settings.http.header_timeout_secs);
        let http = self.acceptor.map(|acceptor| {
            let routes = api::routes(self.state.clone());
            let signal = shutdown.clone();
            tokio::spawn(async move {
                Server::new_with_acceptor(HeaderDeadline::new(acceptor, head))
                    .idle_timeout(IDLE_TIMEOUT)
                    .run_with_graceful_shutdown(routes, signal, Some(grace))
                    .await
            })
        });
        let board = self.board.map(|acceptor| {
            let kinds = self.state.registry.names();
            let board = board::endpoint(self.state.queue.board_api(&kinds), telemetry::board_log());
            let endpoint = crate::pages::board_routes().nest("/", board);
            let keys = self.state.keys.clone();
            let endpoint = endpoint.around(move |ep, req| {
                let keys = keys.clone();
                async move {
                    // The board is for operators: the default tenant's keys.
                    match keys.identify(&req) {
                        None => return Ok(crate::api::auth::unauthorized()),
                        Some(c) if !c.operator => return Ok(crate::api::auth::operators_only()),
                        Some(_) => {}
                    }
                    Ok(ep.call(req).await?.into_response())
                }
            });
            let signal = shutdown.clone();
            tokio::spawn(async move {
                Server::new_with_acceptor(HeaderDeadline::new(acceptor, head))
                    .idle_timeout(IDLE_TIMEOUT)
                    .run_with_graceful_shutdown(endpoint, signal, Some(grace))
                    .await
            })
        });
        let worker = self.role.runs_worker().then(|| {
            let monitor = apalis::prelude::Monitor::new()
                .shutdown_timeout(grace)
                .should_restart(restart_with_backoff);
            let monitor = crate::jobs::workers::register(monitor, self.runtime.clone());
            let schedule = self.settings.retention.sweep_schedule.clone();
            let sweeper = Sweeper::new(
                self.state.queue.clone(),
                self.state.storage.clone(),
                self.settings.retention(),
                schedule,
            );
            let monitor = Arc::new(sweeper).register(monitor);
            let signal = shutdown.clone().map(Ok);
            tokio::spawn(async move { monitor.run_with_signal(signal).await })
        });
        if self.role.runs_worker() {
            // Two leases of silence: a live worker heartbeats three times per lease.
            let silent = 2 * self.settings.worker_lease();
            let tidy =
                crate::sweeper::tidy_workers(self.state.queue.clone(), silent, shutdown.clone());
            tokio::spawn(tidy);
        }
        if let Some(http) = http {
            http.await?.context("HTTP server")?;
        }
        if let Some(board) = board {
            board.await?.context("board server")?;
        }
        if let Some(worker) = worker {
            if let Err(e) = worker.await? {
                tracing::warn!(error = %e, "workers stopped with an error");
            }
            let requeued = self.runtime.requeue_interrupted().await;
            if requeued > 0 {
                tracing::info!(
                    requeued,
                    "jobs still running at the shutdown deadline went back to the queue"
                );
            }
            match self.state.queue.retire_workers().await {
                Ok(n) => tracing::debug!(workers = n, "workers taken off the board"),
                Err(e) => tracing::warn!(error = %e, "could not take the workers off the board"),
            }
        }
        self.state.queue.close().await;
        Ok(())
    }
}

/// Connects to the database and creates or upgrades the schema.
async fn open_queue(settings: &Settings) -> anyhow::Result<Queue> {
    let queue = Queue::connect(queue_config(settings))
        .await
        .context("DATABASE_URL: cannot connect")?;
    queue
        .migrate()
        .await
        .context("DATABASE_URL: cannot migrate")?;
    Ok(queue)
}

/// What the queue takes from the settings.
fn queue_config(settings: &Settings) -> QueueConfig {
    QueueConfig {
        database: settings.database.url.clone(),
        lease: settings.worker_lease(),
        poll_interval: settings.poll_interval(),
        callbacks: Callbacks {
            kind: kinds::webhook::NAME,
            max_attempts: kinds::webhook::attempts(settings.worker.max_attempts),
        },
        running_caps: crate::queue::RunningCaps {
            default: settings.worker.max_running_jobs_per_tenant,
            exceptions: settings.worker.tenant_max_running_jobs.clone(),
        },
    }
}

/// The key that seals document passwords: `SECRET_KEY`, or — in `serve`, where the API and
/// the worker are one process — a key of this process's own (queued password jobs then fail
/// with `password_required` after a restart). Split processes without one refuse passwords.
fn secret_key(settings: &Settings, role: Role) -> Option<SecretKey> {
    if let Some(key) = &settings.secrets.secret_key {
        return Some(key.clone());
    }
    match role {
        Role::Serve => {
            tracing::info!(
                "no SECRET_KEY: document passwords are sealed with a key of this process (lost on restart)"
            );
            Some(SecretKey::random())
        }
        _ => None,
    }
}

/// Records this worker's LibreOffice version for the result cache, in the background (asking
/// LibreOffice takes a moment; start-up does not wait for it).
fn record_converter(converter: Arc<dyn Converter>, cache: ResultCache) {
    tokio::spawn(async move {
        let Some(version) = converter.version().await else {
            return;
        };
        if let Err(e) = cache.converter_seen(&version).await {
            tracing::debug!(error = %e, "could not record the LibreOffice version");
        }
    });
}

/// What the built-in kinds take from the settings.
fn kinds_config(
    settings: &Settings,
    role: Role,
    secrets: Option<SecretKey>,
    cache: ResultCache,
) -> BuiltinConfig {
    BuiltinConfig {
        max_attempts: settings.worker.max_attempts,
        backoff: settings.retry_backoff(),
        export: ExportConfig {
            timeout: settings.export_timeout(),
            concurrency: settings.worker.concurrency,
            neutralize: !settings.testing.keep_external_references,
            secrets,
            cache: Some(cache),
            renderer: Some(renderer(settings, role)),
            max_render_pages: settings.worker.max_render_pages,
        },
        webhook: WebhookConfig {
            secret: settings.webhooks.webhook_secret.clone(),
            outbound: settings.webhooks.outbound_allow.clone(),
        },
        demo: settings.demo_kinds(),
    }
}

/// The API listener's limits.
fn limits(settings: &Settings) -> Limits {
    let http = &settings.http;
    Limits {
        max_queued_jobs: http.max_queued_jobs,
        tenant_max_queued_jobs: http.tenant_max_queued_jobs.clone(),
        uploads_per_minute: http.uploads_per_minute,
        tenant_uploads_per_minute: http.tenant_uploads_per_minute.clone(),
        request_timeout: Duration::from_secs(http.request_timeout_secs),
        upload_timeout: Duration::from_secs(http.upload_timeout_secs),
        max_json_bytes: http.max_json_bytes,
        max_upload_bytes: http.max_upload_bytes,
        max_stored_bytes: http.max_stored_bytes,
        tenant_max_stored_bytes: http.tenant_max_stored_bytes.clone(),
    }
}

/// The configured converter (a process that does not convert gets a cold one that only
/// answers for the formats it knows).
fn converter(settings: &Settings, role: Role) -> anyhow::Result<Arc<dyn Converter>> {
    let c = &settings.convert;
    let config = ConvertConfig {
        warm: role.runs_worker() && c.converter == ConverterMode::Warm,
        slots: settings.worker.concurrency,
        soffice: c.soffice_path.clone(),
        uno_python: c.uno_python.clone(),
        warm_restart_after: c.warm_restart_after,
        limits: ProcessLimits {
            memory: settings.convert_memory_limit(),
            cpu: settings.convert_cpu_budget(),
        },
        sandbox: SandboxConfig {
            mode: match role.runs_worker() {
                true => c.convert_sandbox,
                false => SandboxMode::Off,
            },
            bwrap: c.bwrap_path.clone(),
        },
        work_dir: settings.work_dir(),
    };
    crate::convert::converter(&config).context("WORK_DIR: cannot prepare warm LibreOffice")
}

/// The page renderer, sandboxed as LibreOffice is (a process that does not convert gets an
/// unsandboxed one it never runs).
fn renderer(settings: &Settings, role: Role) -> Arc<Renderer> {
    let c = &settings.convert;
    let sandbox = SandboxConfig {
        mode: match role.runs_worker() {
            true => c.convert_sandbox,
            false => SandboxMode::Off,
        },
        bwrap: c.bwrap_path.clone(),
    };
    let limits = ProcessLimits {
        memory: settings.convert_memory_limit(),
        cpu: settings.convert_cpu_budget(),
    };
    Arc::new(Renderer::new(&sandbox, limits))
}

/// Restarts a worker whose backend failed (the database went away); the restarted worker
/// waits a pause that grows with its restarts up to 2 s before it touches the database again
/// (`queue::restart`), so an outage is ridden out without a restart storm.
fn restart_with_backoff(
    worker: &apalis::prelude::WorkerContext,
    error: &apalis::prelude::WorkerError,
) -> bool {
    // Never wait here: the monitor polls every worker in one future (see `queue::restart`).
    let pause = crate::queue::restart::restart_pause(worker.restarts() + 1);
    tracing::warn!(worker = worker.name(), %error, ?pause, "worker stopped; restarting");
    true
}

fn socket_of(acceptor: &TcpAcceptor) -> Option<SocketAddr> {
    acceptor
        .local_addr()
        .into_iter()
        .next()?
        .as_socket_addr()
        .copied()
}

fn port_of(acceptor: &TcpAcceptor) -> Option<u16> {
    socket_of(acceptor).map(|a| a.port())
}

async fn bind_board(settings: &Settings) -> anyhow::Result<Option<TcpAcceptor>> {
    let Some(addr) = settings.http.board.0 else {
        return Ok(None);
    };
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("BOARD_ADDR: cannot listen on {addr}"))?;
    Ok(Some(acceptor))
}

async fn bind(settings: &Settings) -> anyhow::Result<TcpAcceptor> {
    let addr = settings.http.bind;
    TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("BIND_ADDR: cannot listen on {addr}"))
}

/// Creates or upgrades the schema, then returns (`offload migrate`).
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    settings.validate()?;
    let queue = open_queue(settings).await?;
    queue.close().await;
    Ok(())
}
