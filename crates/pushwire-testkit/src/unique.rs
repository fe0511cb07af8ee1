//! Names that do not collide between tests running in parallel (nextest runs each test in its
//! own process) or between runs sharing a Redis, a broker or a database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `prefix` followed by the process id, the time in microseconds and a counter, each in
/// lower-case hex: unique per call, and (being alphanumeric after the prefix) usable in
/// channel names, Redis keys, queue, topic, subject and table names.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default();
    format!(
        "{prefix}{:x}{:x}{:x}",
        std::process::id(),
        micros & 0xff_ffff_ffff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_calls_never_give_the_same_name() {
        let a = super::unique("t");
        let b = super::unique("t");
        assert_ne!(a, b);
        assert!(a.starts_with('t'));
        assert!(a[1..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
