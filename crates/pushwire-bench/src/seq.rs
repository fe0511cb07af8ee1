//! Per-connection duplicate detection over publication sequence numbers.

/// How far behind the highest sequence number seen a late arrival can still be told apart
/// from a duplicate.
const WINDOW: u64 = 128;

/// Remembers which of the last [`WINDOW`] sequence numbers one connection has received.
/// O(1) memory per connection: pushes on one channel arrive (nearly) in order, so a sliding
/// bitset below the highest seen number is enough.
#[derive(Debug, Default, Clone)]
pub(crate) struct SeqWindow {
    /// Highest sequence number seen plus one; 0 before the first.
    next: u64,
    /// Bit `i` set: sequence number `next - 1 - i` was received.
    seen: u128,
}

impl SeqWindow {
    /// Records `seq`; `true` on its first delivery, `false` for a duplicate. Arrivals more than
    /// [`WINDOW`] behind the highest seen number cannot be checked and count as first.
    pub(crate) fn observe(&mut self, seq: u64) -> bool {
        if seq >= self.next {
            let shift = seq + 1 - self.next;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.next = seq + 1;
            return true;
        }
        let back = self.next - 1 - seq;
        if back >= WINDOW {
            return true;
        }
        let bit = 1u128 << back;
        let first = self.seen & bit == 0;
        self.seen |= bit;
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_duplicates() {
        let mut w = SeqWindow::default();
        assert!(w.observe(0));
        assert!(w.observe(1));
        assert!(!w.observe(1));
        assert!(!w.observe(0));
        assert!(w.observe(2));
    }

    #[test]
    fn gaps_and_late_arrivals() {
        let mut w = SeqWindow::default();
        assert!(w.observe(5));
        assert!(w.observe(3));
        assert!(!w.observe(3));
        assert!(w.observe(4));
        assert!(!w.observe(5));
        assert!(w.observe(200));
        assert!(!w.observe(200));
        assert!(w.observe(73), "exactly WINDOW-1 back is tracked");
        assert!(!w.observe(73));
        assert!(w.observe(72), "beyond the window counts as first");
    }

    #[test]
    fn big_jump_clears_window() {
        let mut w = SeqWindow::default();
        assert!(w.observe(1));
        assert!(w.observe(1000));
        assert!(w.observe(999));
        assert!(!w.observe(999));
    }
}
