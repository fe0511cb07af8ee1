//! Per-consumer counters, rendered in `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of one consumer. Relaxed atomics.
#[derive(Debug)]
pub struct ConsumerMetrics {
    /// Messages taken from the source (redeliveries count again).
    pub received: AtomicU64,
    /// Messages applied: publications made (or other API commands executed).
    pub published: AtomicU64,
    /// Messages suppressed as duplicates by the idempotency key (already in history).
    pub duplicates: AtomicU64,
    /// Processing failures: poison messages and transient failures (retried).
    pub failed: AtomicU64,
    /// Poison messages handed to the source's dead-letter mechanism.
    pub dead_lettered: AtomicU64,
    /// Messages waiting in the source for this consumer, when the source exposes it; -1 unknown.
    pub lag: AtomicI64,
    /// Times the consumer paused fetching because the node was overloaded.
    pub paused: AtomicU64,
    /// Why the consumer works only partly (e.g. its schema registry is unreachable, so
    /// messages wait); `None` when healthy. Shown in `/health`.
    degraded: Reason,
    /// Why the consumer's source (broker, database, Redis) cannot be read now: set when a
    /// session fails, cleared when the next one connects. Shown in `/health` and as
    /// `pushwire_consumer_source_up`.
    source_down: Reason,
}

/// An optional reason, readable without the lock on every message.
#[derive(Debug, Default)]
struct Reason {
    text: parking_lot::Mutex<Option<String>>,
    set: std::sync::atomic::AtomicBool,
}

impl Reason {
    /// Sets or clears the reason; whether it changed.
    fn set(&self, why: Option<String>) -> bool {
        if why.is_none() && !self.set.load(Ordering::Relaxed) {
            return false;
        }
        let mut text = self.text.lock();
        self.set.store(why.is_some(), Ordering::Relaxed);
        let changed = *text != why;
        *text = why;
        changed
    }

    fn get(&self) -> Option<String> {
        if !self.set.load(Ordering::Relaxed) {
            return None;
        }
        self.text.lock().clone()
    }
}

impl Default for ConsumerMetrics {
    fn default() -> Self {
        ConsumerMetrics {
            received: AtomicU64::new(0),
            published: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            lag: AtomicI64::new(-1),
            paused: AtomicU64::new(0),
            degraded: Reason::default(),
            source_down: Reason::default(),
        }
    }
}

impl ConsumerMetrics {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Marks the consumer degraded with `why`, or healthy again with `None`.
    pub fn set_degraded(&self, why: Option<String>) {
        let text = why.clone();
        if self.degraded.set(why) {
            match text {
                Some(w) => tracing::warn!(reason = %w, "consumer degraded"),
                None => tracing::info!("consumer no longer degraded"),
            }
        }
    }

    /// Marks the consumer's source unreachable with `why` (its session failed; the source
    /// logs the reconnect), or reachable again with `None` (a session connected).
    pub fn set_source_down(&self, why: Option<String>) {
        let back = why.is_none();
        if self.source_down.set(why) && back {
            tracing::info!("consumer source reachable again");
        }
    }

    /// Whether the source was reachable at the last attempt.
    pub fn source_up(&self) -> bool {
        self.source_down.get().is_none()
    }

    /// Why the consumer is degraded, if it is: its source is down, or (e.g.) its schema
    /// registry is.
    pub fn degraded(&self) -> Option<String> {
        match (self.source_down.get(), self.degraded.get()) {
            (Some(down), _) => Some(format!("source unavailable: {down}")),
            (None, other) => other,
        }
    }

    /// Sets the lag gauge (-1 = unknown).
    pub fn set_lag(&self, lag: i64) {
        self.lag.store(lag, Ordering::Relaxed);
    }
}

/// The metrics of every started consumer: cheap to clone, read by the `/metrics` endpoint.
#[derive(Debug, Clone, Default)]
pub struct MetricsRegistry {
    entries: Arc<Vec<(String, &'static str, Arc<ConsumerMetrics>)>>,
}

impl MetricsRegistry {
    /// A registry over these (name, type, metrics) entries.
    pub fn new(entries: Vec<(String, &'static str, Arc<ConsumerMetrics>)>) -> Self {
        MetricsRegistry {
            entries: Arc::new(entries),
        }
    }

    /// (name, type, metrics) of every consumer.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'static str, &Arc<ConsumerMetrics>)> {
        self.entries.iter().map(|(n, t, m)| (n.as_str(), *t, m))
    }

    /// `consumer <name>: <why>` for every degraded consumer (for `/health`).
    pub fn degraded(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|(n, _, m)| m.degraded().map(|why| format!("consumer {n}: {why}")))
            .collect()
    }

    /// Appends the Prometheus text exposition of every consumer to `out`:
    /// `pushwire_consumer_{received,published,duplicates,failed,dead_lettered,paused}_total`
    /// and `pushwire_consumer_lag`, labelled `consumer` and `type`. Nothing when no consumer runs.
    pub fn render_prometheus(&self, out: &mut String) {
        if self.entries.is_empty() {
            return;
        }
        type Get = fn(&ConsumerMetrics) -> i64;
        let rows: [(&str, &str, &str, Get); 8] = [
            (
                "received_total",
                "counter",
                "Messages taken from the source.",
                |m| ConsumerMetrics::get(&m.received) as i64,
            ),
            (
                "published_total",
                "counter",
                "Messages applied (publications made).",
                |m| ConsumerMetrics::get(&m.published) as i64,
            ),
            (
                "duplicates_total",
                "counter",
                "Messages suppressed as duplicates by the idempotency key.",
                |m| ConsumerMetrics::get(&m.duplicates) as i64,
            ),
            (
                "failed_total",
                "counter",
                "Processing failures (poison and transient).",
                |m| ConsumerMetrics::get(&m.failed) as i64,
            ),
            (
                "dead_lettered_total",
                "counter",
                "Poison messages sent to the dead-letter destination.",
                |m| ConsumerMetrics::get(&m.dead_lettered) as i64,
            ),
            (
                "paused_total",
                "counter",
                "Pauses because the node was overloaded.",
                |m| ConsumerMetrics::get(&m.paused) as i64,
            ),
            (
                "lag",
                "gauge",
                "Messages waiting in the source (-1 unknown).",
                |m| m.lag.load(Ordering::Relaxed),
            ),
            (
                "source_up",
                "gauge",
                "1 while the source is reachable, 0 from a failed session until one connects.",
                |m| i64::from(m.source_up()),
            ),
        ];
        for (name, kind, help, get) in rows {
            let _ = writeln!(out, "# HELP pushwire_consumer_{name} {help}");
            let _ = writeln!(out, "# TYPE pushwire_consumer_{name} {kind}");
            for (consumer, ty, m) in self.iter() {
                let _ = writeln!(
                    out,
                    "pushwire_consumer_{name}{{consumer=\"{}\",type=\"{ty}\"}} {}",
                    escape(consumer),
                    get(m)
                );
            }
        }
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_rows() {
        let m = Arc::new(ConsumerMetrics::default());
        ConsumerMetrics::inc(&m.received);
        ConsumerMetrics::inc(&m.received);
        ConsumerMetrics::inc(&m.dead_lettered);
        let reg = MetricsRegistry::new(vec![("orders".into(), "rabbitmq", m)]);
        let mut out = String::new();
        reg.render_prometheus(&mut out);
        assert!(out
            .contains("pushwire_consumer_received_total{consumer=\"orders\",type=\"rabbitmq\"} 2"));
        assert!(out.contains(
            "pushwire_consumer_dead_lettered_total{consumer=\"orders\",type=\"rabbitmq\"} 1"
        ));
        assert!(out.contains("pushwire_consumer_lag{consumer=\"orders\",type=\"rabbitmq\"} -1"));
        assert!(out.contains("# TYPE pushwire_consumer_lag gauge"));
    }

    #[test]
    fn empty_registry_renders_nothing() {
        let mut out = String::new();
        MetricsRegistry::default().render_prometheus(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn degraded_consumers_are_listed_until_healthy() {
        let m = Arc::new(ConsumerMetrics::default());
        let r = MetricsRegistry::new(vec![("orders".into(), "kafka", m.clone())]);
        assert!(r.degraded().is_empty());
        m.set_degraded(Some("schema registry http://r: down".into()));
        assert_eq!(
            r.degraded(),
            vec!["consumer orders: schema registry http://r: down".to_owned()]
        );
        m.set_degraded(None);
        assert!(r.degraded().is_empty());
    }
}
