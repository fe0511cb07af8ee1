//! A fixed-bucket histogram of atomics: observing is a bucket search and two relaxed adds,
//! never a lock or an allocation.

use std::sync::atomic::{AtomicU64, Ordering};

/// A Prometheus-style histogram over integer observations (nanoseconds, bytes) with fixed
/// upper bounds. Readers get a consistent-enough view for scraping: each bucket is exact, a
/// scrape racing an observation may see the count and the sum one observation apart.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// One counter per bound plus `+Inf`.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

/// What a scrape reads from a [`Histogram`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Upper bounds, ascending, in the observation unit.
    pub bounds: &'static [u64],
    /// Cumulative counts per bound, then the total count (`+Inf`).
    pub cumulative: Vec<u64>,
    /// Sum of the observations.
    pub sum: u64,
}

impl Histogram {
    /// An empty histogram with these ascending upper bounds.
    pub fn new(bounds: &'static [u64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: u64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Number of observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The cumulative view a scrape renders.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        HistogramSnapshot {
            bounds: self.bounds,
            cumulative,
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_inclusive_and_cumulative() {
        let h = Histogram::new(&[10, 100]);
        for v in [1, 10, 11, 100, 1000] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.cumulative, vec![2, 4, 5]);
        assert_eq!(s.sum, 1122);
        assert_eq!(h.count(), 5);
    }
}
