//! [`Circuit`]: the circuit breaker of one shard's command connection
//! (`engine.redis.circuit_breaker`), so a Redis that hangs costs one `command_timeout` per
//! `failures` commands instead of one per command.
//!
//! Every command of the shard ([`crate::conn::RedisConn`]) asks the circuit first. Closed: the
//! command goes to Redis and its outcome is recorded — a timeout, I/O or connection error is
//! a failure; an answer, even an error reply (a script error, `NOSCRIPT`, `WRONGTYPE`), is a
//! success, since Redis answered. After `failures` consecutive failures the circuit opens:
//! for `open_for` every command fails at once with [`CircuitOpen`] (the engine turns it into
//! `EngineError::Unavailable`, "redis circuit open"), then one trial command goes through;
//! its success closes the circuit, its failure opens it again.
//!
//! One warn line when the circuit opens, one info line when it closes; refused commands are
//! only counted (`pushwire_redis_circuit_refused_total`), and the open circuits are a gauge
//! (`pushwire_redis_circuit_open`) and a `/health` degradation.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pushwire_core::breaker::{Breaker, Change, Permit};
use pushwire_core::config::CircuitBreakerConfig;
use pushwire_core::engine::EngineError;
use redis::{ErrorKind, RedisError, RedisResult};

use crate::metrics::RedisMetrics;

/// Why a command was refused without reaching Redis: the shard's circuit is open. Its source
/// is the failure that opened (or last reopened) the circuit.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{failures} consecutive failures on {shard}; its commands fail at once for {open_for:?} at a time")]
pub struct CircuitOpen {
    /// The shard (its address) whose circuit is open.
    pub shard: String,
    /// Consecutive failures recorded when the command was refused.
    pub failures: u32,
    /// `engine.redis.circuit_breaker.open_for`.
    pub open_for: Duration,
    /// The last failure before the refusal.
    #[source]
    pub last: Option<RedisError>,
}

/// The circuit of one shard's command connection; shared by every clone of that connection.
#[derive(Debug)]
pub(crate) struct Circuit {
    breaker: Breaker,
    shard: String,
    metrics: Arc<RedisMetrics>,
    last: Mutex<Option<RedisError>>,
}

/// How an outcome feeds the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Redis answered (a value or an error reply).
    Answered,
    /// Redis did not answer: timeout, I/O or connection error.
    Failed,
    /// Says nothing about Redis (a client-side error).
    Neither,
}

/// What `result` says about the shard's Redis.
pub(crate) fn verdict<T>(result: &RedisResult<T>) -> Verdict {
    match result {
        Ok(_) => Verdict::Answered,
        Err(e) => match e.kind() {
            ErrorKind::Io | ErrorKind::ClusterConnectionNotFound | ErrorKind::Parse => {
                Verdict::Failed
            }
            ErrorKind::Server(_) | ErrorKind::Extension => Verdict::Answered,
            _ => Verdict::Neither,
        },
    }
}

impl Circuit {
    /// A closed circuit for the shard named `shard` (its address, for logs and errors).
    pub(crate) fn new(
        config: &CircuitBreakerConfig,
        shard: impl Into<String>,
        metrics: Arc<RedisMetrics>,
    ) -> Arc<Circuit> {
        Arc::new(Circuit {
            breaker: Breaker::new(config.failures, config.open_for),
            shard: shard.into(),
            metrics,
            last: Mutex::new(None),
        })
    }

    /// Runs `call` (one command or pipeline to this shard) unless the circuit is open, and
    /// records its outcome. Refused: a [`CircuitOpen`] wrapped in an I/O [`RedisError`]
    /// (the only error the connection trait can return), turned back by [`refusal`].
    pub(crate) async fn run<T>(
        &self,
        call: impl Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        let permit = self.breaker.permit();
        if permit == Permit::Refuse {
            RedisMetrics::inc(&self.metrics.circuit_refused);
            return Err(RedisError::from(std::io::Error::other(self.open_error())));
        }
        let mut trial = TrialGuard {
            breaker: &self.breaker,
            armed: permit == Permit::Trial,
        };
        let result = call.await;
        trial.armed = false;
        match verdict(&result) {
            Verdict::Answered => self.changed(self.breaker.record(true)),
            Verdict::Failed => {
                if let Err(e) = &result {
                    *self.last.lock() = Some(e.clone());
                }
                self.changed(self.breaker.record(false));
            }
            Verdict::Neither => {
                if permit == Permit::Trial {
                    self.breaker.abandon_trial();
                }
            }
        }
        result
    }

    /// Whether the circuit is open (or half-open) now.
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        self.breaker.is_open()
    }

    fn open_error(&self) -> CircuitOpen {
        CircuitOpen {
            shard: self.shard.clone(),
            failures: self.breaker.failures(),
            open_for: self.breaker.open_for(),
            last: self.last.lock().clone(),
        }
    }

    /// Logs and counts an opening or closing.
    fn changed(&self, change: Option<Change>) {
        match change {
            Some(Change::Opened) => {
                self.metrics.circuit_open.fetch_add(1, Ordering::Relaxed);
                let last = self.last.lock().clone();
                tracing::warn!(
                    shard = %self.shard,
                    failures = self.breaker.failures(),
                    last_error = last.as_ref().map(|e| e.to_string()).unwrap_or_default(),
                    "redis circuit open: commands to this shard fail at once for {:?}, then one trial",
                    self.breaker.open_for()
                );
            }
            Some(Change::Closed) => {
                self.metrics.circuit_open.fetch_sub(1, Ordering::Relaxed);
                *self.last.lock() = None;
                tracing::info!(shard = %self.shard, "redis circuit closed: Redis answers again");
            }
            None => {}
        }
    }
}

/// Lets another command try when a trial is dropped before its outcome (a caller's own
/// timeout, a cancelled request), so the circuit is never stuck half-open.
struct TrialGuard<'a> {
    breaker: &'a Breaker,
    armed: bool,
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.abandon_trial();
        }
    }
}

/// The [`CircuitOpen`] inside `e` when `e` is a refusal of [`Circuit::run`].
pub(crate) fn refusal(e: &RedisError) -> Option<&CircuitOpen> {
    if !e.is_io_error() {
        return None;
    }
    // The redis crate keeps the I/O error behind an `Arc<dyn Error>` as the source.
    let source = std::error::Error::source(e)?;
    let io = source
        .downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()
        .and_then(|inner| (**inner).downcast_ref::<std::io::Error>())
        .or_else(|| source.downcast_ref::<std::io::Error>())?;
    io.get_ref()?.downcast_ref::<CircuitOpen>()
}

/// A refusal as the node sees it: `EngineError::Unavailable` ("redis circuit open").
pub(crate) fn unavailable(open: &CircuitOpen) -> EngineError {
    EngineError::unavailable("redis circuit open", open.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(failures: u32) -> CircuitBreakerConfig {
        CircuitBreakerConfig {
            failures,
            open_for: Duration::from_secs(1),
        }
    }

    fn timeout() -> RedisError {
        RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_open_it_then_calls_fail_at_once_with_the_cause_kept() {
        let metrics = Arc::new(RedisMetrics::default());
        let c = Circuit::new(&config(3), "redis://shard-a", metrics.clone());
        for _ in 0..3 {
            let r: RedisResult<()> = c.run(async { Err(timeout()) }).await;
            assert!(r.unwrap_err().is_timeout());
        }
        assert!(c.is_open());
        assert_eq!(RedisMetrics::get(&metrics.circuit_open), 1);
        let mut reached = false;
        let r: RedisResult<()> = c
            .run(async {
                reached = true;
                Ok(())
            })
            .await;
        assert!(!reached, "an open circuit does not call Redis");
        let e = r.unwrap_err();
        let open = refusal(&e).expect("a refusal");
        assert_eq!(open.failures, 3);
        assert!(open.last.as_ref().expect("cause").is_timeout());
        let engine = crate::error::backend(e);
        assert!(
            matches!(engine, EngineError::Unavailable { .. }),
            "{engine}"
        );
        assert!(
            engine.to_string().contains("redis circuit open"),
            "{engine}"
        );
        assert_eq!(RedisMetrics::get(&metrics.circuit_refused), 1);

        tokio::time::advance(Duration::from_millis(1001)).await;
        let r: RedisResult<&str> = c.run(async { Ok("PONG") }).await;
        assert_eq!(r.unwrap(), "PONG", "the trial goes through");
        assert!(!c.is_open(), "a successful trial closes it");
        assert_eq!(RedisMetrics::get(&metrics.circuit_open), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn reply_errors_do_not_open_it() {
        let metrics = Arc::new(RedisMetrics::default());
        let c = Circuit::new(&config(2), "redis://shard-a", metrics.clone());
        let replies = [
            redis::ServerErrorKind::ResponseError,
            redis::ServerErrorKind::NoScript,
            redis::ServerErrorKind::ExecAbort,
            redis::ServerErrorKind::ResponseError,
        ];
        for (i, kind) in replies.into_iter().enumerate() {
            let e = RedisError::from((ErrorKind::Server(kind), "reply", format!("#{i}")));
            assert_eq!(verdict::<()>(&Err(e.clone())), Verdict::Answered);
            let r: RedisResult<()> = c.run(async { Err(e) }).await;
            assert!(
                refusal(&r.unwrap_err()).is_none(),
                "reply {i} reached Redis"
            );
        }
        let wrongtype = RedisError::from((
            ErrorKind::Extension,
            "WRONGTYPE",
            "Operation against a key holding the wrong kind of value".to_owned(),
        ));
        for _ in 0..5 {
            let r: RedisResult<()> = c.run(async { Err(wrongtype.clone()) }).await;
            assert!(refusal(&r.unwrap_err()).is_none());
        }
        assert!(!c.is_open(), "error replies never open the circuit");
        assert_eq!(RedisMetrics::get(&metrics.circuit_open), 0);

        // A reply between timeouts resets the count: failures must be consecutive.
        let _: RedisResult<()> = c.run(async { Err(timeout()) }).await;
        let _: RedisResult<()> = c
            .run(async {
                Err(RedisError::from((
                    ErrorKind::Server(redis::ServerErrorKind::NoScript),
                    "NOSCRIPT",
                )))
            })
            .await;
        let _: RedisResult<()> = c.run(async { Err(timeout()) }).await;
        assert!(
            !c.is_open(),
            "1 timeout, a reply, 1 timeout: not 2 in a row"
        );
        let _: RedisResult<()> = c.run(async { Err(timeout()) }).await;
        assert!(c.is_open(), "2 timeouts in a row open it");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_zero_never_opens() {
        let metrics = Arc::new(RedisMetrics::default());
        let c = Circuit::new(&config(0), "redis://shard-a", metrics.clone());
        for _ in 0..50 {
            let r: RedisResult<()> = c.run(async { Err(timeout()) }).await;
            assert!(refusal(&r.unwrap_err()).is_none());
        }
        assert!(!c.is_open());
        assert_eq!(RedisMetrics::get(&metrics.circuit_refused), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_trial_lets_the_next_command_try() {
        let metrics = Arc::new(RedisMetrics::default());
        let c = Circuit::new(&config(1), "redis://shard-a", metrics);
        let _: RedisResult<()> = c.run(async { Err(timeout()) }).await;
        tokio::time::advance(Duration::from_millis(1001)).await;
        let hung = c.run(std::future::pending::<RedisResult<()>>());
        let cut = tokio::time::timeout(Duration::from_millis(10), hung).await;
        assert!(cut.is_err(), "the trial hung and was dropped");
        let r: RedisResult<()> = c.run(async { Ok(()) }).await;
        assert!(r.is_ok(), "the next command is the new trial");
        assert!(!c.is_open());
    }
}
