//! Per-connection command rate limit: a token bucket refilled at `client.command_rate_limit`
//! per second up to `client.command_burst`. A command over the limit is answered with 111
//! (too many requests, temporary: SDKs retry later); the connection stays open.

use std::sync::OnceLock;

use tokio::time::Instant;

/// A token bucket, 16 bytes (with an `Instant` it took 24, in every connection).
#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    tokens: f32,
    /// Last refill, nanoseconds since a process-wide epoch.
    last: u64,
}

fn nanos(i: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    i.saturating_duration_since(*EPOCH.get_or_init(Instant::now))
        .as_nanos() as u64
}

impl Bucket {
    pub(super) fn full(burst: u32) -> Self {
        Bucket {
            tokens: burst as f32,
            last: nanos(Instant::now()),
        }
    }

    /// Takes one token; false when empty. `rate == 0` disables the limit.
    pub(super) fn take(&mut self, rate: u32, burst: u32, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        let now = nanos(now);
        let elapsed = now.saturating_sub(self.last) as f32 / 1e9;
        self.last = now.max(self.last);
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
        let _ = nanos(Instant::now()); // the epoch precedes t0, as for a real connection
        let t0 = Instant::now();
        let mut b = Bucket {
            tokens: 3.0,
            last: nanos(t0),
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
