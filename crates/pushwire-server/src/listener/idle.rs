//! Idle HTTP/2 connections (`http_server.http2_idle_timeout`).
//!
//! HTTP/1 has `header_read_timeout` between requests; an HTTP/2 connection can stay open with no
//! stream at all, holding a `max_connections` permit and its buffers for as long as the peer
//! likes. [`InFlight`] counts the requests of one connection whose response body is still being
//! sent (a streaming transport counts until it ends); [`InFlight::idle_for`] tells the
//! connection's watchdog how long there has been none, and the watchdog shuts the connection
//! down gracefully (GOAWAY) once that reaches the timeout.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::body::Body;
use axum::response::Response;
use http_body_util::BodyExt;

/// Requests in flight on one connection, and since when there have been none.
#[derive(Debug)]
pub struct InFlight {
    base: Instant,
    active: AtomicUsize,
    /// Milliseconds after `base` when `active` last dropped to zero.
    idle_since_ms: AtomicU64,
}

impl InFlight {
    /// A connection with no request yet (idle from now).
    pub fn new() -> Arc<InFlight> {
        Arc::new(InFlight {
            base: Instant::now(),
            active: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts a request until the returned guard is dropped.
    pub fn start(self: &Arc<Self>) -> RequestGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    /// How long the connection has had no request in flight; `None` while one is.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.idle_since_ms.load(Ordering::Acquire);
        Some(Duration::from_millis(self.now_ms().saturating_sub(since)))
    }

    /// Ties `guard` to the response: it is released when the body has been sent or dropped.
    pub fn hold_until_sent(response: Response, guard: RequestGuard) -> Response {
        response.map(|body| {
            Body::new(body.map_frame(move |frame| {
                let _held = &guard;
                frame
            }))
        })
    }

    /// Resolves once the connection has been idle for `timeout` (checked at a quarter of it).
    pub async fn idle_timeout(&self, timeout: Duration) {
        let tick = (timeout / 4).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(tick).await;
            if self.idle_for().is_some_and(|idle| idle >= timeout) {
                return;
            }
        }
    }
}

/// One request in flight; see [`InFlight::start`].
#[derive(Debug)]
pub struct RequestGuard(Arc<InFlight>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let f = &self.0;
        // Stamp before the count reaches zero, so a watchdog never sees zero with an old stamp.
        f.idle_since_ms.store(f.now_ms(), Ordering::Release);
        f.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_only_without_requests() {
        let f = InFlight::new();
        let g = f.start();
        assert_eq!(f.idle_for(), None);
        let r = InFlight::hold_until_sent(Response::new(Body::from("x")), g);
        assert_eq!(f.idle_for(), None, "held by the unsent body");
        drop(r);
        assert!(f.idle_for().is_some());
        let t = Duration::from_secs(5);
        tokio::time::timeout(t * 2, f.idle_timeout(t))
            .await
            .expect("idle connection times out");
    }
}
