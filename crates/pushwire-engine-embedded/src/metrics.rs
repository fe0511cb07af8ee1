//! [`EmbeddedMetrics`]: what the embedded engine did, as lock-free counters and gauges a
//! metrics scrape reads (`pushwire_embedded_*` in `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

use pushwire_core::engine::EngineMetric;

/// Counters and gauges of one embedded engine. Every update is one relaxed atomic operation.
#[derive(Debug, Default)]
pub struct EmbeddedMetrics {
    /// Publications stored (or, without history, delivered) and delivered; duplicates and
    /// stale versions are not counted.
    pub publications: AtomicU64,
    /// Publishes that failed: a store error (I/O, disk full) or the `max_size` cap.
    pub publish_errors: AtomicU64,
    /// Publishes refused because the store was above `engine.embedded.max_size` (also counted
    /// in `publish_errors`).
    pub full_rejections: AtomicU64,
    /// Durable commits (each one fsync of the store).
    pub durable_commits: AtomicU64,
    /// Size of the data file in bytes (updated after every write).
    pub disk_bytes: AtomicU64,
    /// Bytes the store's pages occupy inside the file (measured at each sweep, and when the file
    /// grows past `max_size`); what `max_size` is compared with.
    pub used_bytes: AtomicU64,
    /// Channel streams held (measured at each sweep).
    pub streams: AtomicU64,
}

impl EmbeddedMetrics {
    /// Adds one to `counter` (relaxed).
    #[inline]
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets a gauge (relaxed).
    #[inline]
    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    /// The current value of a counter or gauge (relaxed).
    #[inline]
    pub fn get(value: &AtomicU64) -> u64 {
        value.load(Ordering::Relaxed)
    }

    /// Every figure as the engine families of `/metrics` (`pushwire_embedded_*`).
    pub fn families(&self) -> Vec<EngineMetric> {
        let get = EmbeddedMetrics::get;
        vec![
            EngineMetric::counter(
                "pushwire_embedded_publications_total",
                "Publications stored and delivered by the embedded engine (duplicates and stale versions excluded).",
                get(&self.publications),
            ),
            EngineMetric::counter(
                "pushwire_embedded_publish_errors_total",
                "Publishes that failed in the embedded store (I/O, disk full, max_size).",
                get(&self.publish_errors),
            ),
            EngineMetric::counter(
                "pushwire_embedded_full_rejections_total",
                "Publishes refused because the store used more than engine.embedded.max_size.",
                get(&self.full_rejections),
            ),
            EngineMetric::counter(
                "pushwire_embedded_durable_commits_total",
                "Durable (fsynced) commits of the embedded store.",
                get(&self.durable_commits),
            ),
            EngineMetric::gauge(
                "pushwire_embedded_disk_bytes",
                "Size of the embedded store's data file in bytes.",
                get(&self.disk_bytes),
            ),
            EngineMetric::gauge(
                "pushwire_embedded_used_bytes",
                "Bytes occupied by the embedded store's pages (compared with engine.embedded.max_size).",
                get(&self.used_bytes),
            ),
            EngineMetric::gauge(
                "pushwire_embedded_streams",
                "Channel streams held by the embedded store.",
                get(&self.streams),
            ),
        ]
    }
}
