//! [`Application`]: the parts wired together for one role — API, worker, or both.
//!
//! `build` connects, migrates and binds (port 0 works, for tests); `run_until_stopped` serves
//! until the shutdown future completes, then stops taking work and gives running jobs the
//! grace period. Jobs still running after it go back to the queue (their lease runs out and
//! another worker re-runs them); they are never marked failed for a shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use futures::FutureExt;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{Endpoint, EndpointExt, IntoResponse, Server};

use crate::api::{self, ApiState};
use crate::auth::ApiKeys;
use crate::convert::Converter;
use crate::convert::libreoffice::{LibreOffice, ProcessLimits};
use crate::convert::sandbox::{Sandbox, SandboxConfig, SandboxMode};
use crate::convert::warm::{WarmLibreOffice, WarmOptions};
use crate::jobs::runner::Runtime;
use crate::jobs::{Registry, kinds};
use crate::limits::{Guards, HeaderDeadline};
use crate::metrics::Metrics;
use crate::queue::{Callbacks, Queue, QueueConfig};
use crate::settings::Settings;
use crate::storage::Storage;
use crate::sweeper::{self, Sweeper};
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
        let queue = Queue::connect(queue_config(&settings)?)
            .await
            .context("DATABASE_URL: cannot connect")?;
        queue
            .migrate()
            .await
            .context("DATABASE_URL: cannot migrate")?;
        let storage = Storage::open(&settings.storage_url)
            .await
            .map_err(|e| anyhow::anyhow!("STORAGE_URL: {e}"))?;
        let converter = converter(&settings, role)?;
        if role.runs_worker()
            && let Err(why) = converter.availability()
        {
            tracing::warn!(%why, "LibreOffice is missing: export jobs will fail with converter_unavailable");
        }
        let metrics = Arc::new(Metrics::default());
        let registry = extend(kinds::builtin(
            &settings,
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
            .pause_before_publish(settings.test_pause_before_publish),
        );
        let state = Arc::new(ApiState {
            spec: api::spec::document(&registry),
            board_port: board.as_ref().and_then(port_of),
            metrics,
            queue,
            storage,
            registry,
            converter,
            max_upload_bytes: settings.max_upload_bytes,
            runs_worker: role.runs_worker(),
            keys: ApiKeys::parse(&settings.api_keys),
            guards: Guards::from_settings(&settings),
            outbound: crate::outbound::Outbound::parse(&settings.outbound_allow)
                .expect("validated at start"),
            webhooks: !settings.webhook_secret.is_empty(),
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
        let head = std::time::Duration::from_secs(self.settings.header_timeout_secs);
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
            let endpoint =
                board::endpoint(self.state.queue.board_api(&kinds), telemetry::board_log());
            let keys = self.state.keys.clone();
            let endpoint = endpoint.around(move |ep, req| {
                let keys = keys.clone();
                async move {
                    if !keys.allows(&req) {
                        return Ok(crate::auth::unauthorized());
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
            let schedule =
                sweeper::parse_schedule(&self.settings.sweep_schedule).expect("validated at start");
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
        }
        self.state.queue.close().await;
        Ok(())
    }
}

/// What the queue takes from the settings.
fn queue_config(settings: &Settings) -> anyhow::Result<QueueConfig> {
    Ok(QueueConfig {
        database: settings
            .database_url
            .parse()
            .map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?,
        lease: settings.worker_lease(),
        poll_interval: settings.poll_interval(),
        callbacks: Callbacks {
            kind: kinds::webhook::NAME,
            max_attempts: kinds::webhook::attempts(settings),
        },
    })
}

/// The configured converter; warm slots start lazily, on the first conversion.
fn converter(settings: &Settings, role: Role) -> anyhow::Result<Arc<dyn Converter>> {
    let limits = ProcessLimits {
        memory: settings.convert_memory_limit(),
        cpu: settings.convert_cpu_budget(),
    };
    if !role.runs_worker() {
        let cold = LibreOffice::new(&settings.soffice_path, limits, Arc::new(Sandbox::off()));
        return Ok(Arc::new(cold));
    }
    let sandbox = Arc::new(sandbox(settings)?);
    let cold = LibreOffice::new(&settings.soffice_path, limits, sandbox);
    if settings.converter == "cold" {
        return Ok(Arc::new(cold));
    }
    let options = WarmOptions {
        slots: settings.concurrency,
        restart_after: settings.warm_restart_after,
        python: settings.uno_python.clone(),
        root: settings.work_dir().join("offload-warm"),
        start_timeout: std::time::Duration::from_secs(30),
    };
    let warm =
        WarmLibreOffice::new(cold, options).context("WORK_DIR: cannot prepare warm LibreOffice")?;
    Ok(Arc::new(warm))
}

/// The sandbox conversions run in, tried once now so that `/readyz` can say if it is missing.
fn sandbox(settings: &Settings) -> anyhow::Result<Sandbox> {
    let mode = settings.sandbox_mode()?;
    let programs = [
        Path::new(&settings.soffice_path),
        Path::new(&settings.uno_python),
    ];
    let config = SandboxConfig {
        mode,
        bwrap: settings.bwrap_path.clone(),
    };
    let resolved: Vec<std::path::PathBuf> = programs
        .iter()
        .filter_map(|p| crate::convert::libreoffice::resolve_binary(&p.to_string_lossy()))
        .collect();
    let refs: Vec<&Path> = resolved.iter().map(|p| p.as_path()).collect();
    for program in refs
        .iter()
        .filter(|p| crate::convert::sandbox::install_root(p).is_none())
    {
        if mode == SandboxMode::Bubblewrap {
            tracing::warn!(program = %program.display(), "installed outside /usr and /opt: not visible inside the converter sandbox");
        }
    }
    let sandbox = Sandbox::new(&config, &refs);
    match (mode, sandbox.availability()) {
        (SandboxMode::Off, _) => tracing::warn!(
            "CONVERT_SANDBOX=off: LibreOffice runs WITHOUT a sandbox; a crafted document can read \
             this worker's files and reach its network. Use it only where namespaces are impossible."
        ),
        (_, Err(why)) => tracing::error!(%why, "exports will fail with converter_unavailable"),
        (_, Ok(())) => tracing::debug!("conversions run in a bubblewrap sandbox"),
    }
    Ok(sandbox)
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
    let Some(addr) = settings.board_socket()? else {
        return Ok(None);
    };
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("BOARD_ADDR: cannot listen on {addr}"))?;
    Ok(Some(acceptor))
}

async fn bind(settings: &Settings) -> anyhow::Result<TcpAcceptor> {
    let addr = settings.bind_socket()?;
    TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("BIND_ADDR: cannot listen on {addr}"))
}

/// Creates or upgrades the schema, then returns (`offload migrate`).
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    settings.validate()?;
    let queue = Queue::connect(queue_config(settings)?)
        .await
        .context("DATABASE_URL: cannot connect")?;
    queue
        .migrate()
        .await
        .context("DATABASE_URL: cannot migrate")?;
    queue.close().await;
    Ok(())
}
