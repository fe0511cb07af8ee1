//! Pacing: when the n-th event of a fixed-rate sequence is due.

use std::time::Duration;

/// Offset from the start at which event `n` is due at `rate` events per second (rate 0 is
/// treated as 1).
pub(crate) fn schedule_offset(n: u64, rate: u32) -> Duration {
    let nanos = u128::from(n) * 1_000_000_000 / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule() {
        assert_eq!(schedule_offset(0, 20), Duration::ZERO);
        assert_eq!(schedule_offset(20, 20), Duration::from_secs(1));
        assert_eq!(schedule_offset(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(schedule_offset(3, 3), Duration::from_secs(1));
        assert_eq!(schedule_offset(5, 0), Duration::from_secs(5));
    }
}
