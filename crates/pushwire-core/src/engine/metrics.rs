//! Engine figures reported generically: an engine lists its counters and gauges, and the
//! server's `/metrics` renders them without knowing which engine it runs on.

/// Counter (only grows) or gauge (goes up and down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMetricKind {
    /// A monotonically increasing count.
    Counter,
    /// A current value.
    Gauge,
}

/// One figure of an engine, with its Prometheus name (`pushwire_<engine>_...`) and help text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineMetric {
    /// Full Prometheus family name, e.g. `pushwire_redis_publications_total`.
    pub name: &'static str,
    /// One-line help text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: EngineMetricKind,
    /// Current value.
    pub value: u64,
}

impl EngineMetric {
    /// A counter.
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> EngineMetric {
        EngineMetric {
            name,
            help,
            kind: EngineMetricKind::Counter,
            value,
        }
    }

    /// A gauge.
    pub fn gauge(name: &'static str, help: &'static str, value: u64) -> EngineMetric {
        EngineMetric {
            name,
            help,
            kind: EngineMetricKind::Gauge,
            value,
        }
    }
}
