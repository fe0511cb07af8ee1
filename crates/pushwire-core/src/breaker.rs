//! A circuit breaker for calls to a backend that may hang or die (proxies, the Redis engine):
//! after `threshold` consecutive failed calls it opens for `open_for`, failing calls at once;
//! then one trial call goes through (half-open): success closes it, failure opens it again.
//!
//! The breaker only counts: the caller decides what a failure is (a proxy: any failed call;
//! the Redis engine: timeouts and connection errors, not Redis' reply errors) and reports each
//! outcome with [`Breaker::record`], which says when the circuit opened or closed so the
//! caller can log and count the change once.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    trial: bool,
}

/// One circuit breaker (for one proxy, one Redis shard, ...). Thread-safe; every method
/// takes a short lock and never waits.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

/// What a call may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Closed: go ahead.
    Pass,
    /// Half-open: this call is the trial. Its outcome must be [`Breaker::record`]ed, or
    /// [`Breaker::abandon_trial`] called when it never reached the backend.
    Trial,
    /// Open: fail at once.
    Refuse,
}

/// A change of the circuit's state, returned by [`Breaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It was closed and is open now (the `threshold`-th consecutive failure).
    Opened,
    /// It was open (or half-open) and is closed now (a call succeeded).
    Closed,
}

impl Breaker {
    /// A closed breaker; `threshold` 0 never opens.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Breaker {
            threshold,
            open_for,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether a call may go to the backend now.
    pub fn permit(&self) -> Permit {
        let mut st = self.state.lock();
        match st.open_until {
            None => Permit::Pass,
            Some(t) if Instant::now() < t || st.trial => Permit::Refuse,
            Some(_) => {
                st.trial = true;
                Permit::Trial
            }
        }
    }

    /// Records the outcome of a call that went to the backend; `Some` when this outcome
    /// opened or closed the circuit (a failed trial that reopens it is no change: it stays
    /// open).
    pub fn record(&self, ok: bool) -> Option<Change> {
        let mut st = self.state.lock();
        let was_open = st.open_until.is_some();
        if ok {
            *st = State::default();
            return was_open.then_some(Change::Closed);
        }
        st.failures = st.failures.saturating_add(1);
        if st.trial || (self.threshold > 0 && st.failures >= self.threshold) {
            st.trial = false;
            st.open_until = Some(Instant::now() + self.open_for);
            return (!was_open).then_some(Change::Opened);
        }
        None
    }

    /// A trial call that ended without reaching the backend (no slot, cancelled): let
    /// another try.
    pub fn abandon_trial(&self) {
        self.state.lock().trial = false;
    }

    /// Whether the breaker is open (or half-open) now.
    pub fn is_open(&self) -> bool {
        self.state.lock().open_until.is_some()
    }

    /// Consecutive failures recorded since the last success.
    pub fn failures(&self) -> u32 {
        self.state.lock().failures
    }

    /// How long an open breaker refuses calls before a trial.
    pub fn open_for(&self) -> Duration {
        self.open_for
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_then_one_trial_closes_it() {
        let b = Breaker::new(2, Duration::from_secs(1));
        assert_eq!(b.record(false), None);
        assert_eq!(b.permit(), Permit::Pass);
        assert_eq!(b.record(false), Some(Change::Opened));
        assert_eq!(b.permit(), Permit::Refuse);
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(b.permit(), Permit::Trial);
        assert_eq!(b.permit(), Permit::Refuse, "one trial at a time");
        assert_eq!(b.record(false), None, "failed trial reopens: no change");
        assert_eq!(b.permit(), Permit::Refuse, "failed trial reopens");
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(b.permit(), Permit::Trial);
        assert_eq!(b.record(true), Some(Change::Closed));
        assert_eq!(b.permit(), Permit::Pass);
        assert!(!b.is_open());
        assert_eq!(b.record(true), None, "closed stays closed");
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_trial_lets_the_next_call_try() {
        let b = Breaker::new(1, Duration::from_secs(1));
        assert_eq!(b.record(false), Some(Change::Opened));
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(b.permit(), Permit::Trial);
        b.abandon_trial();
        assert_eq!(b.permit(), Permit::Trial);
    }

    #[test]
    fn threshold_zero_never_opens() {
        let b = Breaker::new(0, Duration::from_secs(1));
        for _ in 0..100 {
            assert_eq!(b.record(false), None);
        }
        assert_eq!(b.permit(), Permit::Pass);
        assert_eq!(b.failures(), 100);
    }
}
