//! [`RedisMetrics`]: what the Redis engine did, as lock-free counters a metrics scrape reads.
//!
//! One instance per [`RedisEngine`](crate::RedisEngine), shared by its broker, its PUB/SUB
//! connection and its presence manager. Every update is one relaxed atomic operation: nothing
//! waits, and the delivery path pays one increment per received PUB/SUB message. Counters
//! only grow (from 0 at connect); they count this node's calls, not the whole Redis.

use std::sync::atomic::{AtomicU64, Ordering};

use pushwire_core::engine::EngineMetric;

/// Counters of one Redis engine. Read them with [`RedisMetrics::get`]; the server renders them
/// as the `pushwire_redis_*` families of `/metrics` (docs/observability.md).
#[derive(Debug, Default)]
pub struct RedisMetrics {
    /// Publications Redis accepted and sent: a `publish` whose publish script (or, for a
    /// channel with neither history nor idempotency key, whose `PUBLISH`) succeeded and was
    /// not suppressed (a duplicate idempotency key or a stale version). Join and leave
    /// messages are not counted.
    pub publications: AtomicU64,
    /// `publish` calls that failed in Redis (connection, timeout, script error or a malformed
    /// reply; the publication may or may not have been stored) or that an open circuit
    /// refused (not stored).
    pub publish_errors: AtomicU64,
    /// `history` calls (API and client history, and the reads of subscribe with recovery or
    /// positioning), counted once each whether they succeed or not.
    pub history_reads: AtomicU64,
    /// `history` calls that failed in Redis or returned a malformed reply. A position whose
    /// epoch no longer matches is an answer, not an error, and is not counted.
    pub history_errors: AtomicU64,
    /// Presence operations that failed in Redis: add, remove, presence and presence stats
    /// reads, and each channel whose periodic refresh failed.
    pub presence_errors: AtomicU64,
    /// Messages received on the node's PUB/SUB connection (publications, joins and leaves of
    /// every channel the node subscribes to), counted before they are decoded.
    pub pubsub_messages: AtomicU64,
    /// Times the PUB/SUB connection was lost and re-established (resubscribed), i.e. times
    /// the resync hook fired. Counted before the hook runs.
    pub pubsub_reconnects: AtomicU64,
    /// Control messages between nodes that could not be PUBLISHed.
    pub control_errors: AtomicU64,
    /// Per-user connection count operations that failed in Redis (add, remove, refresh).
    pub connection_count_errors: AtomicU64,
    /// How many shards' PUB/SUB connections are up (each from connect until it is found
    /// lost, and again from a successful resubscribe). With one Redis: 1 or 0.
    pub pubsub_connected: AtomicU64,
    /// How many shards (Redis addresses) the engine uses.
    pub pubsub_shards: AtomicU64,
    /// How many shards' command circuits are open (or half-open): their commands fail at
    /// once (`engine.redis.circuit_breaker`). 0 while every shard answers.
    pub circuit_open: AtomicU64,
    /// Commands refused at once by an open circuit, without reaching Redis (each call of
    /// the node counts once per command it would have sent).
    pub circuit_refused: AtomicU64,
}

impl RedisMetrics {
    /// Adds one to `counter` (relaxed).
    #[inline]
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value of `counter` or gauge (relaxed).
    #[inline]
    pub fn get(value: &AtomicU64) -> u64 {
        value.load(Ordering::Relaxed)
    }

    /// Every counter and gauge as the engine families of `/metrics` (`pushwire_redis_*`).
    pub fn families(&self) -> Vec<EngineMetric> {
        let get = RedisMetrics::get;
        vec![
            EngineMetric::counter(
                "pushwire_redis_publications_total",
                "Publications Redis accepted and sent over PUB/SUB (duplicates and stale versions excluded).",
                get(&self.publications),
            ),
            EngineMetric::counter(
                "pushwire_redis_publish_errors_total",
                "Publications that failed in Redis (connection, timeout, script error) or were refused by an open circuit.",
                get(&self.publish_errors),
            ),
            EngineMetric::counter(
                "pushwire_redis_history_reads_total",
                "History reads (API, client history, subscribe with recovery or positioning).",
                get(&self.history_reads),
            ),
            EngineMetric::counter(
                "pushwire_redis_history_errors_total",
                "History reads that failed in Redis (an epoch mismatch is not an error).",
                get(&self.history_errors),
            ),
            EngineMetric::counter(
                "pushwire_redis_presence_errors_total",
                "Presence operations that failed in Redis (add, remove, read, periodic refresh).",
                get(&self.presence_errors),
            ),
            EngineMetric::counter(
                "pushwire_redis_control_errors_total",
                "Control messages between nodes that could not be published to Redis.",
                get(&self.control_errors),
            ),
            EngineMetric::counter(
                "pushwire_redis_connection_count_errors_total",
                "Per-user connection count operations that failed in Redis (add, remove, refresh).",
                get(&self.connection_count_errors),
            ),
            EngineMetric::counter(
                "pushwire_redis_pubsub_messages_total",
                "Messages received on the node's PUB/SUB connection (publications, joins, leaves).",
                get(&self.pubsub_messages),
            ),
            EngineMetric::counter(
                "pushwire_redis_pubsub_reconnects_total",
                "Times the PUB/SUB connection was lost and re-established (subscribers resynced with 3010).",
                get(&self.pubsub_reconnects),
            ),
            EngineMetric::gauge(
                "pushwire_redis_pubsub_connected",
                "Shards whose PUB/SUB connection is up (1 with one Redis; 0 while it reconnects).",
                get(&self.pubsub_connected),
            ),
            EngineMetric::gauge(
                "pushwire_redis_circuit_open",
                "Shards whose command circuit breaker is open: their commands fail at once (engine.redis.circuit_breaker).",
                get(&self.circuit_open),
            ),
            EngineMetric::counter(
                "pushwire_redis_circuit_refused_total",
                "Commands refused at once by an open circuit breaker, without reaching Redis.",
                get(&self.circuit_refused),
            ),
            EngineMetric::gauge(
                "pushwire_redis_shards",
                "Redis shards the engine uses (entries of engine.redis.address).",
                get(&self.pubsub_shards),
            ),
        ]
    }

    /// Counts one shard's PUB/SUB connection as up (`true`) or down (`false`) in the
    /// [`RedisMetrics::pubsub_connected`] gauge. Each controller calls it alternately.
    #[inline]
    pub fn set_pubsub_connected(&self, up: bool) {
        if up {
            self.pubsub_connected.fetch_add(1, Ordering::Relaxed);
        } else {
            self.pubsub_connected.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Sets [`RedisMetrics::pubsub_shards`].
    pub fn set_pubsub_shards(&self, n: usize) {
        self.pubsub_shards.store(n as u64, Ordering::Relaxed);
    }

    /// Whether some shard's PUB/SUB connection is down.
    pub fn pubsub_degraded(&self) -> bool {
        Self::get(&self.pubsub_connected) < Self::get(&self.pubsub_shards)
    }

    /// Why the engine works only partly (`/health`): PUB/SUB connections down, command
    /// circuits open; `None` when everything is up.
    pub fn degraded(&self) -> Option<String> {
        let mut why = Vec::new();
        if self.pubsub_degraded() {
            why.push("redis pub/sub disconnected (reconnecting)".to_owned());
        }
        let open = Self::get(&self.circuit_open);
        if open > 0 {
            why.push(format!(
                "redis circuit open on {open} of {} shards (commands fail at once)",
                Self::get(&self.pubsub_shards)
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_start_at_zero_and_count_each_increment() {
        let m = RedisMetrics::default();
        assert_eq!(RedisMetrics::get(&m.publications), 0);
        RedisMetrics::inc(&m.publications);
        RedisMetrics::inc(&m.publications);
        assert_eq!(RedisMetrics::get(&m.publications), 2);
        m.set_pubsub_connected(true);
        assert_eq!(RedisMetrics::get(&m.pubsub_connected), 1);
        m.set_pubsub_connected(false);
        assert_eq!(RedisMetrics::get(&m.pubsub_connected), 0);
    }

    #[test]
    fn an_open_circuit_or_a_lost_pubsub_connection_degrades() {
        let m = RedisMetrics::default();
        m.set_pubsub_shards(2);
        m.set_pubsub_connected(true);
        m.set_pubsub_connected(true);
        assert_eq!(m.degraded(), None);
        m.circuit_open.store(1, Ordering::Relaxed);
        let why = m.degraded().expect("degraded");
        assert!(why.contains("redis circuit open on 1 of 2 shards"), "{why}");
        m.set_pubsub_connected(false);
        let why = m.degraded().expect("degraded");
        assert!(why.contains("pub/sub") && why.contains("circuit"), "{why}");
    }
}
