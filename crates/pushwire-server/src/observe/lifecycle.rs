//! The lifecycle families (`pushwire_lifecycle_*`): events made by type, records dropped,
//! engine errors, and per sink what was delivered, retried, refused, dropped and is waiting.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pushwire_core::Node;

use super::text::Exposition;
use crate::lifecycle::{kind_names, Sink, Sinks};

/// Appends the lifecycle families to `out` (nothing when lifecycle events are off).
pub fn render(out: &mut String, node: &Node, sinks: &Sinks) {
    let lifecycle = node.lifecycle();
    if !lifecycle.enabled() {
        return;
    }
    let m = lifecycle.metrics();
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut e = Exposition::default();
    e.family(
        "pushwire_lifecycle_events_total",
        "counter",
        "Lifecycle events made by this node, by type.",
        kind_names().map(|(i, name)| (vec![("type", name.to_owned())], get(&m.events[i]))),
    );
    e.counter(
        "pushwire_lifecycle_dropped_total",
        "Lifecycle records dropped because lifecycle.queue_size were waiting.",
        get(&m.dropped),
    );
    e.counter(
        "pushwire_lifecycle_engine_errors_total",
        "Engine calls of the lifecycle task (occupancy, heartbeat, sweep) that failed.",
        get(&m.engine_errors),
    );
    let per_sink = |f: &dyn Fn(&Sink) -> u64| {
        sinks
            .sinks()
            .iter()
            .map(|s| (vec![("sink", s.name.clone())], f(s)))
            .collect::<Vec<_>>()
    };
    let flag = |b: &AtomicBool| u64::from(b.load(Ordering::Relaxed));
    e.family(
        "pushwire_lifecycle_sink_delivered_total",
        "counter",
        "Events a sink acknowledged.",
        per_sink(&|s| get(&s.stats.delivered)),
    );
    e.family(
        "pushwire_lifecycle_sink_failures_total",
        "counter",
        "Delivery attempts that failed and were retried.",
        per_sink(&|s| get(&s.stats.failures)),
    );
    e.family(
        "pushwire_lifecycle_sink_refused_total",
        "counter",
        "Events a sink refused for good (webhook 4xx).",
        per_sink(&|s| get(&s.stats.refused)),
    );
    e.family(
        "pushwire_lifecycle_sink_dropped_total",
        "counter",
        "Events dropped because the sink's spool was full (oldest first).",
        per_sink(&|s| get(&s.spool.dropped)),
    );
    e.family(
        "pushwire_lifecycle_sink_spooled",
        "gauge",
        "Events waiting for the sink.",
        per_sink(&|s| s.spool.len() as u64),
    );
    e.family(
        "pushwire_lifecycle_sink_degraded",
        "gauge",
        "1 while the sink's last delivery failed.",
        per_sink(&|s| flag(&s.stats.degraded)),
    );
    out.push_str(&e.finish());
}
