//! Failed admin logins per client address: after `admin.login_attempts_per_minute` failures
//! in a minute, further attempts get 429 until the minute since the first failure has passed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// The window failures are counted in.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; older windows are dropped first when it is reached.
const MAX_TRACKED: usize = 10_000;

/// Counts failed logins per address. Not on a hot path: one short lock per login.
#[derive(Debug)]
pub struct LoginLimiter {
    per_minute: u32,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginLimiter {
    /// A limiter allowing `per_minute` failures per address per minute.
    pub fn new(per_minute: u32) -> Self {
        LoginLimiter {
            per_minute,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may try to log in now; when not, how long until it may.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let map = self.failures.lock();
        match map.get(&ip) {
            Some((start, n)) if now.duration_since(*start) < WINDOW && *n >= self.per_minute => {
                Err(WINDOW - now.duration_since(*start))
            }
            _ => Ok(()),
        }
    }

    /// Records a failed login of `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut map = self.failures.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if map.len() >= MAX_TRACKED
                && let Some(oldest) = map.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// Forgets the failures of `ip` (after a successful login).
    pub fn succeeded(&self, ip: IpAddr) {
        self.failures.lock().remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn blocks_after_the_limit_for_the_rest_of_the_minute() {
        let l = LoginLimiter::new(2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        l.failed(a);
        assert!(l.check(a).is_ok());
        l.failed(a);
        assert!(l.check(a).is_err());
        assert!(l.check(b).is_ok(), "per address");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(l.check(a).is_ok(), "the window passed");
        l.failed(a);
        l.failed(a);
        assert!(l.check(a).is_err());
        l.succeeded(a);
        assert!(l.check(a).is_ok());
    }
}
