//! Counters keyed by a numeric code (a reply or disconnect code), lock-free.
//!
//! Codes are few and bounded (protocol error and disconnect codes), so each table is a small
//! array of slots claimed with a compare-and-swap the first time a code is seen; counting is a
//! relaxed add. A code seen when every slot is taken goes to the overflow counter, rendered as
//! `code="other"`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const EMPTY: u32 = u32::MAX;

#[derive(Debug)]
struct Slot {
    code: AtomicU32,
    count: AtomicU64,
}

/// Counts per code, up to `SLOTS` distinct codes.
#[derive(Debug)]
pub struct CodeCounts<const SLOTS: usize> {
    slots: [Slot; SLOTS],
    overflow: AtomicU64,
}

impl<const SLOTS: usize> Default for CodeCounts<SLOTS> {
    fn default() -> Self {
        CodeCounts {
            slots: std::array::from_fn(|_| Slot {
                code: AtomicU32::new(EMPTY),
                count: AtomicU64::new(0),
            }),
            overflow: AtomicU64::new(0),
        }
    }
}

impl<const SLOTS: usize> CodeCounts<SLOTS> {
    /// Adds `n` to `code`'s counter.
    pub fn add(&self, code: u32, n: u64) {
        for slot in &self.slots {
            let mut seen = slot.code.load(Ordering::Acquire);
            if seen == EMPTY {
                seen = match slot.code.compare_exchange(
                    EMPTY,
                    code,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => code,
                    Err(winner) => winner,
                };
            }
            if seen == code {
                slot.count.fetch_add(n, Ordering::Relaxed);
                return;
            }
        }
        self.overflow.fetch_add(n, Ordering::Relaxed);
    }

    /// Every code seen with its count, by code; then the overflow count.
    pub fn snapshot(&self) -> (Vec<(u32, u64)>, u64) {
        let mut out: Vec<(u32, u64)> = self
            .slots
            .iter()
            .filter_map(|s| {
                let code = s.code.load(Ordering::Acquire);
                (code != EMPTY).then(|| (code, s.count.load(Ordering::Relaxed)))
            })
            .collect();
        out.sort_unstable();
        (out, self.overflow.load(Ordering::Relaxed))
    }

    /// The count of one code (0 if never seen).
    pub fn get(&self, code: u32) -> u64 {
        self.slots
            .iter()
            .find(|s| s.code.load(Ordering::Acquire) == code)
            .map_or(0, |s| s.count.load(Ordering::Relaxed))
    }

    /// Sum over every code, overflow included.
    pub fn total(&self) -> u64 {
        let (codes, overflow) = self.snapshot();
        codes.iter().map(|(_, n)| n).sum::<u64>() + overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_code_and_overflows() {
        let c = CodeCounts::<2>::default();
        c.add(3000, 1);
        c.add(3008, 2);
        c.add(3000, 1);
        c.add(3501, 5);
        assert_eq!(c.snapshot(), (vec![(3000, 2), (3008, 2)], 5));
        assert_eq!(c.get(3000), 2);
        assert_eq!(c.get(1), 0);
        assert_eq!(c.total(), 9);
    }

    #[test]
    fn concurrent_claims_agree() {
        let c = std::sync::Arc::new(CodeCounts::<8>::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u32 {
                        c.add(i % 4, 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let (codes, overflow) = c.snapshot();
        assert_eq!(codes, vec![(0, 1000), (1, 1000), (2, 1000), (3, 1000)]);
        assert_eq!(overflow, 0);
    }
}
