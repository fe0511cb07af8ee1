//! Connection attempts per IP: a token bucket per address, refilled at
//! `http_server.connect_rate_per_ip` per second up to `http_server.connect_burst_per_ip`.
//!
//! An attempt over the limit gets `429 Too Many Requests` with `Retry-After: 1` before any
//! upgrade, stream or client is created; SDKs treat it as a failed transport and reconnect
//! with backoff. IPv6 addresses count per /64 (one host usually owns a whole /64), IPv4-mapped
//! IPv6 addresses as IPv4.
//!
//! The map is bounded by `http_server.connect_rate_max_ips`: when it is full, buckets that have
//! refilled completely (indistinguishable from absent ones) are swept, at most once a second;
//! if it is still full, new addresses share one overflow bucket, so a flood from many addresses
//! cannot grow memory, and it limits itself before it limits the addresses already tracked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

use crate::config::HttpServerConfig;
use crate::limits::client_ip::ClientIp;
use axum::Extension;

/// Per-IP connect rate limiter.
#[derive(Debug)]
pub struct ConnectRate {
    rate: f64,
    burst: f64,
    max_ips: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    buckets: HashMap<IpAddr, Bucket>,
    overflow: Bucket,
    last_sweep: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Refills for the time since the last use, then takes one token if there is one.
    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn is_full_at(&self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * rate >= burst
    }
}

impl ConnectRate {
    /// A limiter for `http_server.connect_rate_per_ip` / `connect_burst_per_ip` /
    /// `connect_rate_max_ips`; a rate of 0 allows everything.
    pub fn new(cfg: &HttpServerConfig) -> Self {
        let now = Instant::now();
        ConnectRate {
            rate: f64::from(cfg.connect_rate_per_ip),
            burst: f64::from(cfg.connect_burst_per_ip),
            max_ips: cfg.connect_rate_max_ips,
            inner: Mutex::new(Inner {
                buckets: HashMap::new(),
                overflow: Bucket {
                    tokens: f64::from(cfg.connect_burst_per_ip),
                    at: now,
                },
                last_sweep: now,
            }),
        }
    }

    /// Whether one more attempt from `ip` is allowed at `now`.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let key = bucket_key(ip);
        let (rate, burst) = (self.rate, self.burst);
        let mut inner = self.inner.lock();
        if let Some(b) = inner.buckets.get_mut(&key) {
            return b.take(rate, burst, now);
        }
        if inner.buckets.len() >= self.max_ips
            && now.saturating_duration_since(inner.last_sweep) >= Duration::from_secs(1)
        {
            inner.last_sweep = now;
            inner.buckets.retain(|_, b| !b.is_full_at(rate, burst, now));
        }
        if inner.buckets.len() >= self.max_ips {
            return inner.overflow.take(rate, burst, now);
        }
        let mut b = Bucket {
            tokens: burst,
            at: now,
        };
        let allowed = b.take(rate, burst, now);
        inner.buckets.insert(key, b);
        allowed
    }

    /// Addresses tracked now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.inner.lock().buckets.len()
    }
}

/// IPv4 as is (IPv4-mapped IPv6 too), IPv6 reduced to its /64.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Middleware for the connection endpoints: 429 when the peer's address is over its rate.
/// Preflight `OPTIONS` requests are not connection attempts and pass.
pub async fn middleware(
    State(limiter): State<Arc<ConnectRate>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() != Method::OPTIONS && !limiter.allow(ip, Instant::now()) {
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            "too many connection attempts",
        )
            .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, burst: u32, max_ips: usize) -> ConnectRate {
        ConnectRate::new(&HttpServerConfig {
            connect_rate_per_ip: rate,
            connect_burst_per_ip: burst,
            connect_rate_max_ips: max_ips,
            ..Default::default()
        })
    }

    #[test]
    fn burst_then_rate_per_ip() {
        let l = limiter(10, 3, 100);
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| l.allow(a, t0)));
        assert!(!l.allow(a, t0));
        assert!(l.allow(b, t0), "another address has its own bucket");
        assert!(l.allow(a, t0 + Duration::from_millis(100)));
        assert!(!l.allow(a, t0 + Duration::from_millis(100)));
    }

    #[test]
    fn zero_rate_allows_everything() {
        let l = limiter(0, 1, 1);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!((0..1000).all(|_| l.allow(a, Instant::now())));
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let l = limiter(1, 1, 100);
        let t0 = Instant::now();
        assert!(l.allow("2001:db8::1".parse().unwrap(), t0));
        assert!(!l.allow("2001:db8::2".parse().unwrap(), t0));
        assert!(l.allow("2001:db8:0:1::1".parse().unwrap(), t0));
        assert!(l.allow("10.0.0.9".parse().unwrap(), t0));
        assert!(!l.allow("::ffff:10.0.0.9".parse().unwrap(), t0));
    }

    #[test]
    fn map_is_bounded_and_overflow_shares_one_bucket() {
        let l = limiter(1, 2, 10);
        let t0 = Instant::now();
        for i in 0..10u8 {
            assert!(l.allow(IpAddr::from([10, 0, 0, i]), t0));
        }
        assert_eq!(l.tracked(), 10);
        // Full: new addresses share the overflow bucket (burst 2).
        assert!(l.allow("10.0.1.1".parse().unwrap(), t0));
        assert!(l.allow("10.0.1.2".parse().unwrap(), t0));
        assert!(!l.allow("10.0.1.3".parse().unwrap(), t0));
        assert_eq!(l.tracked(), 10);
        // Two seconds later the old buckets have refilled and are swept.
        let t2 = t0 + Duration::from_secs(2);
        assert!(l.allow("10.0.1.4".parse().unwrap(), t2));
        assert_eq!(l.tracked(), 1);
    }
}
