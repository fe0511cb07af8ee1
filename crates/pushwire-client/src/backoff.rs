//! Reconnect delays: exponential backoff with full jitter.
//!
//! `delay(n) = min(max, min_delay + uniform(0, min(max, min_delay · 2ⁿ)))` for attempt `n`
//! (0-based, the exponent capped at 31): the same formula as centrifuge-js. Every client draws its
//! own random point in a window that doubles with each failed attempt, so a thousand clients
//! cut at once spread their returns over the whole window instead of coming back in lockstep;
//! the `min_delay` floor keeps a client from ever retrying in a tight loop.

use std::time::Duration;

use rand::Rng;

/// Backoff settings. Defaults: `min_delay` 100 ms, `max_delay` 20 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Floor of every delay and base of the exponential window.
    pub min_delay: Duration,
    /// Cap of every delay.
    pub max_delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0 = first retry), drawn from `rng`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pushwire_client::Backoff;
    ///
    /// let b = Backoff::default();
    /// let d = b.delay(3, &mut rand::rng());
    /// assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(900));
    /// ```
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let min = self.min_delay.as_millis() as u64;
        let max = (self.max_delay.as_millis() as u64).max(min);
        let window = min.saturating_mul(1u64 << attempt.min(31)).min(max);
        let jitter = if window == 0 {
            0
        } else {
            rng.random_range(0..=window)
        };
        Duration::from_millis(min.saturating_add(jitter).min(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn grows_spreads_and_caps() {
        let b = Backoff::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 0..40u32 {
            let samples: Vec<u64> = (0..2000)
                .map(|_| b.delay(attempt, &mut rng).as_millis() as u64)
                .collect();
            let lo = *samples.iter().min().unwrap();
            let hi = *samples.iter().max().unwrap();
            let window = (100u64 << attempt.min(31)).min(20_000);
            // Floor and cap always hold.
            assert!(lo >= 100, "attempt {attempt}: {lo}");
            assert!(hi <= 20_000, "attempt {attempt}: {hi}");
            // Full jitter: the samples cover the window, not one point of it.
            let top = (100 + window).min(20_000);
            assert!(lo <= 100 + window / 10, "attempt {attempt}: min {lo}");
            assert!(
                hi >= top - window / 10,
                "attempt {attempt}: max {hi} of {top}"
            );
            // Spread: a wide range of distinct values (no lockstep).
            let mut distinct = samples.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert!(
                distinct.len() > 50,
                "attempt {attempt}: {} distinct",
                distinct.len()
            );
            // Mean near the middle of the window (uniform).
            let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64;
            if 100 + window <= 20_000 {
                let expect = 100.0 + window as f64 / 2.0;
                assert!(
                    (mean - expect).abs() < window as f64 * 0.1,
                    "attempt {attempt}: mean {mean} expected {expect}"
                );
            }
        }
    }

    #[test]
    fn custom_settings_and_degenerate_window() {
        let b = Backoff {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        };
        let mut rng = rand::rng();
        for a in 0..10 {
            let d = b.delay(a, &mut rng);
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(50));
        }
        let zero = Backoff {
            min_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        };
        assert_eq!(zero.delay(5, &mut rng), Duration::ZERO);
    }
}
