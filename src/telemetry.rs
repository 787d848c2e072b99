//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), and the same events
//! (at info) to the apalis board's live log page. Every line a job causes carries its `job_id`
//! through the `job` span the runner opens around each attempt.

use std::sync::{Arc, Mutex, OnceLock};

use apalis_board::axum::sse::{TracingBroadcaster, TracingSubscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

static BOARD_LOG: OnceLock<Arc<Mutex<TracingBroadcaster>>> = OnceLock::new();

/// Where the board's log page reads from.
pub fn board_log() -> Arc<Mutex<TracingBroadcaster>> {
    BOARD_LOG.get_or_init(TracingBroadcaster::create).clone()
}

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,apalis=warn,apalis_core=warn"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // RUST_LOG filters globally (a per-layer EnvFilter lost span context here); the board's
    // log page additionally stops at info.
    let board = TracingSubscriber::new(&board_log())
        .layer()
        .with_filter(LevelFilter::INFO);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(board)
        .try_init();
}
