//! Waiting for a condition in a test: every variant the suites used is one of these two.

use std::future::Future;
use std::time::Duration;

/// How often a condition is checked.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// Checks `cond` every [`POLL_EVERY`] until it holds or `within` has passed; returns whether
/// it held (the caller decides what a timeout means).
pub async fn poll_until<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Checks `cond` every [`POLL_EVERY`] until it holds; panics with "timed out waiting until
/// `what`" after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        poll_until(within, cond).await,
        "timed out waiting until {what}"
    );
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn poll_until_sees_a_condition_that_turns_true_and_gives_up_on_one_that_never_does() {
        let calls = AtomicU32::new(0);
        let held = poll_until(Duration::from_secs(1), || async {
            calls.fetch_add(1, Ordering::Relaxed) >= 3
        })
        .await;
        assert!(held);
        assert_eq!(calls.load(Ordering::Relaxed), 4);
        let started = tokio::time::Instant::now();
        assert!(!poll_until(Duration::from_millis(100), || async { false }).await);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "timed out waiting until the moon is cheese")]
    async fn eventually_names_what_it_waited_for() {
        eventually("the moon is cheese", Duration::from_millis(50), || async {
            false
        })
        .await;
    }
}
