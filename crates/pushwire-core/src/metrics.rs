//! Node counters, read by the server's Prometheus endpoint and the `info` API.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters and gauges of a node. All relaxed atomics: cheap on hot paths.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted since start.
    pub connections_accepted: AtomicU64,
    /// Connections currently authenticated.
    pub connections_active: AtomicU64,
    /// Publications accepted (API and clients).
    pub publications: AtomicU64,
    /// Messages queued to connections.
    pub messages_queued: AtomicU64,
    /// Connections closed because their queue overflowed (3008).
    pub slow_disconnects: AtomicU64,
    /// Commands handled from clients.
    pub commands: AtomicU64,
    /// Error replies sent to clients.
    pub command_errors: AtomicU64,
    /// Disconnects by the server for protocol violations (3501).
    pub bad_requests: AtomicU64,
    /// Recoveries attempted on subscribe.
    pub recoveries: AtomicU64,
    /// Recoveries that failed (`recovered:false` or 112).
    pub recoveries_failed: AtomicU64,
}

impl Metrics {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
