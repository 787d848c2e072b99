//! Process signals: the first SIGINT/SIGTERM starts a graceful shutdown; a second one exits at
//! once (an operator who presses Ctrl-C twice means it).

use tokio::signal::unix::{SignalKind, signal as unix_signal};

/// Completes on the first SIGINT or SIGTERM, and arranges for the second to exit immediately.
pub async fn signal() {
    let mut term = unix_signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = unix_signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!(
        "shutting down: no new jobs; running jobs get the grace period (signal again to exit now)"
    );
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting now; unfinished jobs return to the queue");
        std::process::exit(130);
    });
}
