//! Restarting a worker whose backend failed (typically: the database went away).
//!
//! apalis's `Monitor` polls every worker inside one future and asks a *synchronous* callback
//! whether to restart; sleeping there stalls every other worker, whose in-flight database
//! calls then time out, so they fail too — a cascade that kept workers down long after the
//! database was back. So the callback never waits: the pause before a restarted worker touches
//! the database is taken asynchronously, while its first connection is made, in a pool of its
//! own ([`generation_pool`]). That pool is dropped with its generation, so a failed worker
//! cannot leave the next one short of connections either (a connection dropped mid-query is
//! returned to its pool by a background task with no time bound; see sqlx#4349).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::pool::{Pool, PoolOptions};

/// Connections a worker generation needs: fetch, heartbeat/acks, and (Postgres) LISTEN.
const GENERATION_CONNECTIONS: u32 = 4;

/// How long restart number `restarts` (1 = first) waits: 250 ms doubling to 2 s.
pub fn restart_pause(restarts: usize) -> Duration {
    let doublings = restarts.saturating_sub(1).min(3) as u32;
    Duration::from_millis(250 * 2u64.pow(doublings))
}

/// The pool for a worker's generation `restarts`: the shared pool for the first run; after
/// that, a fresh lazy pool with the same connection options whose first connection waits out
/// [`restart_pause`].
/// A pooled connection idle this long is pinged before it is handed out; one used more
/// recently is not. sqlx pings every connection on every acquire by default: a round trip per
/// query on the hot path, where a connection handed back a moment ago has just worked (and a
/// query on one that broke since fails like any other and is retried by its caller).
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// `options` with the ping only for connections idle past [`PING_AFTER_IDLE`].
pub(super) fn ping_when_idle<DB: sqlx::Database>(options: PoolOptions<DB>) -> PoolOptions<DB> {
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < PING_AFTER_IDLE {
                    return Ok(true);
                }
                // A failed ping drops the connection; the pool opens another.
                Ok(sqlx::Connection::ping(conn).await.is_ok())
            })
        })
}

pub(super) fn generation_pool<DB: sqlx::Database>(
    main: &Pool<DB>,
    restarts: usize,
    acquire_timeout: Duration,
) -> Pool<DB> {
    if restarts == 0 {
        return main.clone();
    }
    let pause = restart_pause(restarts);
    let paused = Arc::new(AtomicBool::new(false));
    ping_when_idle(PoolOptions::<DB>::new())
        .max_connections(GENERATION_CONNECTIONS)
        .acquire_timeout(acquire_timeout + pause)
        .after_connect(move |_, _| {
            let paused = paused.clone();
            Box::pin(async move {
                if !paused.swap(true, Ordering::AcqRel) {
                    tokio::time::sleep(pause).await;
                }
                Ok(())
            })
        })
        .connect_lazy_with((*main.connect_options()).clone())
}

#[cfg(test)]
mod tests {
    use super::restart_pause;
    use std::time::Duration;

    #[test]
    fn pauses_double_up_to_two_seconds() {
        let pauses: Vec<Duration> = (1..=6).map(restart_pause).collect();
        let ms: Vec<u128> = pauses.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 2000, 2000]);
    }
}
