//! Exponential backoff with full jitter for reconnect loops.

use std::time::Duration;

use rand::Rng;

/// Delays `rand(min ..= min(max, min · 2^attempt))`, so nodes that lost Redis together do
/// not reconnect in lockstep.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `min`, never above `max`.
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let (lo, hi) = (self.min.as_millis() as u64, ceiling.as_millis() as u64);
        Duration::from_millis(rand::rng().random_range(lo..=hi.max(lo)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_bounds() {
        let (min, max) = (Duration::from_millis(10), Duration::from_millis(200));
        let mut b = Backoff::new(min, max);
        for _ in 0..30 {
            let d = b.next_delay();
            assert!(d >= min && d <= max, "{d:?}");
        }
        assert!(Backoff::new(min, max).next_delay() <= min);
    }
}
