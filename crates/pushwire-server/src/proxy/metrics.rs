//! Per-proxy figures for `/metrics` (`pushwire_proxy_*`, label `proxy`) and the failure log
//! that speaks at most once per interval per proxy.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use pushwire_core::metrics::Histogram;
use pushwire_core::proxy::ProxyError;
use tokio::time::Instant;

/// Latency buckets in nanoseconds: 1 ms … 10 s.
const LATENCY_BOUNDS: &[u64] = &[
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// How often a failing proxy is logged (failures in between are counted in the next line).
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Counters of one proxy. Lock-free except the log limiter, taken only on failures.
#[derive(Debug)]
pub struct ProxyMetrics {
    /// Calls made to the backend.
    pub requests: AtomicU64,
    /// Calls that got no usable answer (timeout, connection, status, body).
    pub errors: AtomicU64,
    /// Calls refused without reaching the backend (no slot in time, breaker open).
    pub rejected: AtomicU64,
    /// Calls at the backend now.
    pub in_flight: AtomicI64,
    /// Duration of calls that reached the backend.
    pub latency: Histogram,
    log: Mutex<LogLimiter>,
}

#[derive(Debug, Default)]
struct LogLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            latency: Histogram::new(LATENCY_BOUNDS),
            log: Mutex::new(LogLimiter::default()),
        }
    }
}

impl ProxyMetrics {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Logs a failed call of proxy `name` at warn, at most once per interval; the line says
    /// how many failures were not logged since the previous one.
    pub fn log_failure(&self, name: &str, error: &ProxyError) {
        if let Some(suppressed) = self.log.lock().admit(Instant::now()) {
            tracing::warn!(proxy = name, error = %error, suppressed, "proxy call failed");
        }
    }
}

impl LogLimiter {
    /// Whether a failure at `now` is logged: `Some(failures not logged since the last line)`,
    /// or `None` within the interval (the failure is counted for the next line).
    fn admit(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < LOG_INTERVAL)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Tracks one call in flight; decrements on drop.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicI64);

impl<'a> InFlight<'a> {
    /// Counts a call in.
    pub fn enter(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_are_logged_once_per_interval_with_the_count_in_between() {
        let mut l = LogLimiter::default();
        assert_eq!(l.admit(Instant::now()), Some(0));
        assert_eq!(l.admit(Instant::now()), None);
        assert_eq!(l.admit(Instant::now()), None);
        tokio::time::advance(LOG_INTERVAL).await;
        assert_eq!(l.admit(Instant::now()), Some(2));
        assert_eq!(l.admit(Instant::now()), None);
    }
}
