//! A circuit breaker per proxy: after `failures` consecutive failed calls it opens for
//! `open_for`, failing calls at once; then one trial call goes through (half-open): success
//! closes it, failure opens it again.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    trial: bool,
}

/// The breaker of one proxy.
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
    /// Half-open: this call is the trial.
    Trial,
    /// Open: fail at once.
    Refuse,
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

    /// Records the outcome of a call that went to the backend.
    pub fn record(&self, ok: bool) {
        let mut st = self.state.lock();
        if ok {
            *st = State::default();
            return;
        }
        st.failures = st.failures.saturating_add(1);
        if st.trial || (self.threshold > 0 && st.failures >= self.threshold) {
            st.trial = false;
            st.open_until = Some(Instant::now() + self.open_for);
        }
    }

    /// A trial call that ended without reaching the backend (no slot): let another try.
    pub fn abandon_trial(&self) {
        self.state.lock().trial = false;
    }

    /// Whether the breaker is open (or half-open) now.
    pub fn is_open(&self) -> bool {
        self.state.lock().open_until.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_then_one_trial_closes_it() {
        let b = Breaker::new(2, Duration::from_secs(1));
        b.record(false);
        assert_eq!(b.permit(), Permit::Pass);
        b.record(false);
        assert_eq!(b.permit(), Permit::Refuse);
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(b.permit(), Permit::Trial);
        assert_eq!(b.permit(), Permit::Refuse, "one trial at a time");
        b.record(false);
        assert_eq!(b.permit(), Permit::Refuse, "failed trial reopens");
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(b.permit(), Permit::Trial);
        b.record(true);
        assert_eq!(b.permit(), Permit::Pass);
        assert!(!b.is_open());
    }
}
