//! Node-wide admission of new connections: a memory budget and a connect rate, so a node near
//! its memory limit or hit by a reconnect storm refuses new work instead of being OOM-killed or
//! melting, while its existing clients and the server API keep their service.
//!
//! - **Memory budget** (`node.memory_budget`, bytes, 0 = off): a sampler reads the process's
//!   resident set (RSS, which includes every queued message) every [`SAMPLE_EVERY`]. From
//!   [`HIGH_WATER`] of the budget new connections get `503` with `Retry-After`, until RSS falls
//!   under [`LOW_WATER`] (the gap keeps admission from flapping). `/health` names it in
//!   `degraded`; `/metrics` shows the budget, the RSS it compares and the refusals.
//! - **Node connect rate** (`http_server.connect_rate_per_node` per second, up to
//!   `connect_burst_per_node`, 0 = off): one token bucket for the whole node on top of the
//!   per-IP one; beyond it `503` with `Retry-After: 1`.
//!
//! Both apply to the endpoints that open a connection (the ones the per-IP rate covers);
//! `/emulation`, polls, the API and `/health` are never refused here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// How often RSS is sampled against the budget.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Share of `node.memory_budget` from which new connections are refused.
pub const HIGH_WATER: f64 = 0.90;
/// Share of the budget under which admission reopens.
pub const LOW_WATER: f64 = 0.80;

/// Why a connection attempt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The node is over its memory high-water mark.
    Memory,
    /// The node-wide connect rate is exhausted.
    Rate,
}

/// Node-wide admission state, shared by the middleware, the sampler and the observers.
#[derive(Debug)]
pub struct Admission {
    budget: u64,
    rss: AtomicU64,
    refusing: AtomicBool,
    rate: f64,
    burst: f64,
    bucket: Mutex<(f64, Instant)>,
    refused_memory: AtomicU64,
    refused_rate: AtomicU64,
}

impl Admission {
    /// Admission with `budget` bytes (0 = no memory limit) and `rate` connects per second up
    /// to `burst` (rate 0 = unlimited).
    pub fn new(budget: u64, rate: u32, burst: u32) -> Self {
        Admission {
            budget,
            rss: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
            rate: f64::from(rate),
            burst: f64::from(burst),
            bucket: Mutex::new((f64::from(burst), Instant::now())),
            refused_memory: AtomicU64::new(0),
            refused_rate: AtomicU64::new(0),
        }
    }

    /// Records a resident-set sample and moves between admitting and refusing.
    pub fn observe_rss(&self, rss: u64) {
        self.rss.store(rss, Ordering::Relaxed);
        if self.budget == 0 {
            return;
        }
        let used = rss as f64 / self.budget as f64;
        let was = self.refusing.load(Ordering::Relaxed);
        let now = if was {
            used >= LOW_WATER
        } else {
            used >= HIGH_WATER
        };
        if now != was {
            self.refusing.store(now, Ordering::Relaxed);
            if now {
                tracing::warn!(
                    rss,
                    budget = self.budget,
                    "node.memory_budget high-water mark reached: refusing new connections"
                );
            } else {
                tracing::info!(
                    rss,
                    budget = self.budget,
                    "memory back under the low-water mark: admitting again"
                );
            }
        }
    }

    /// Whether one more connection may open now (takes a rate token when it may).
    pub fn admit(&self, now: Instant) -> Result<(), Refusal> {
        if self.refusing.load(Ordering::Relaxed) {
            self.refused_memory.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Memory);
        }
        if self.rate > 0.0 {
            let mut b = self.bucket.lock();
            let elapsed = now.saturating_duration_since(b.1).as_secs_f64();
            b.0 = (b.0 + elapsed * self.rate).min(self.burst);
            b.1 = now;
            if b.0 < 1.0 {
                drop(b);
                self.refused_rate.fetch_add(1, Ordering::Relaxed);
                return Err(Refusal::Rate);
            }
            b.0 -= 1.0;
        }
        Ok(())
    }

    /// Whether new connections are refused for memory (for `/health`).
    pub fn over_budget(&self) -> bool {
        self.refusing.load(Ordering::Relaxed)
    }

    /// `node.memory_budget` in bytes (0 = off).
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// The last RSS sample in bytes.
    pub fn rss(&self) -> u64 {
        self.rss.load(Ordering::Relaxed)
    }

    /// Connection attempts refused so far: (memory, rate).
    pub fn refused(&self) -> (u64, u64) {
        (
            self.refused_memory.load(Ordering::Relaxed),
            self.refused_rate.load(Ordering::Relaxed),
        )
    }

    /// Samples RSS every [`SAMPLE_EVERY`] until `stop`; does nothing without a budget.
    pub async fn run_sampler(self: Arc<Self>, stop: CancellationToken) {
        if self.budget == 0 {
            return;
        }
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    if let Some(rss) = resident_bytes() {
                        self.observe_rss(rss);
                    }
                }
            }
        }
    }
}

/// The process's resident set in bytes (`VmRSS` of `/proc/self/status`).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Middleware for the connection endpoints: 503 with `Retry-After` when the node does not
/// admit one more connection. Preflight `OPTIONS` requests pass.
pub async fn middleware(
    State(admission): State<Arc<Admission>>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() != Method::OPTIONS
        && let Err(why) = admission.admit(Instant::now())
    {
        let (retry, text) = match why {
            Refusal::Memory => ("5", "node over its memory budget, retry later"),
            Refusal::Rate => ("1", "node connect rate exceeded, retry later"),
        };
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, text).into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(retry));
        return r;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_from_high_water_and_reopens_under_low_water() {
        let a = Admission::new(1000, 0, 0);
        let now = Instant::now();
        a.observe_rss(850);
        assert!(a.admit(now).is_ok());
        a.observe_rss(900);
        assert_eq!(a.admit(now), Err(Refusal::Memory));
        a.observe_rss(850);
        assert_eq!(
            a.admit(now),
            Err(Refusal::Memory),
            "between the marks: still refusing"
        );
        a.observe_rss(799);
        assert!(a.admit(now).is_ok());
        assert_eq!(a.refused(), (2, 0));
    }

    #[test]
    fn no_budget_never_refuses_for_memory() {
        let a = Admission::new(0, 0, 0);
        a.observe_rss(u64::MAX);
        assert!(a.admit(Instant::now()).is_ok());
    }

    #[test]
    fn node_rate_is_a_token_bucket() {
        let a = Admission::new(0, 10, 5);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(a.admit(t0).is_ok());
        }
        assert_eq!(a.admit(t0), Err(Refusal::Rate));
        // 10 per second: one more after 100 ms.
        assert!(a.admit(t0 + Duration::from_millis(100)).is_ok());
        assert_eq!(a.admit(t0 + Duration::from_millis(100)), Err(Refusal::Rate));
    }
}
