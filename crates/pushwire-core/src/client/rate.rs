//! Per-connection command rate limit: a token bucket refilled at `client.command_rate_limit`
//! per second up to `client.command_burst`. A command over the limit is answered with 111
//! (too many requests, temporary: SDKs retry later); the connection stays open.

use tokio::time::Instant;

/// A token bucket.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    tokens: f32,
    last: Instant,
}

impl Bucket {
    pub(super) fn full(burst: u32) -> Self {
        Bucket {
            tokens: burst as f32,
            last: Instant::now(),
        }
    }

    /// Takes one token; false when empty. `rate == 0` disables the limit.
    pub(super) fn take(&mut self, rate: u32, burst: u32, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f32();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate as f32).min(burst as f32);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = Bucket {
            tokens: 3.0,
            last: t0,
        };
        assert!(b.take(10, 3, t0));
        assert!(b.take(10, 3, t0));
        assert!(b.take(10, 3, t0));
        assert!(!b.take(10, 3, t0));
        assert!(b.take(10, 3, t0 + Duration::from_millis(100)));
        assert!(!b.take(10, 3, t0 + Duration::from_millis(100)));
        assert!(b.take(0, 0, t0), "rate 0 disables");
    }
}
