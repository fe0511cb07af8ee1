//! The engine's own families (whatever [`Broker::metrics`](pushwire_core::engine::Broker::metrics)
//! reports, e.g. `pushwire_redis_*`) and the control plane's (`pushwire_cluster_*`). This file
//! names no engine: each engine lists its figures itself. Meanings are in
//! docs/observability.md.

use pushwire_core::cluster::ClusterMetrics;
use pushwire_core::engine::{EngineMetric, EngineMetricKind};
use pushwire_core::Node;

use super::text::Exposition;

/// Appends the engine's families and the control plane's to `out`.
pub fn render(out: &mut String, node: &Node) {
    let mut e = Exposition::default();
    render_engine(&mut e, &node.broker().metrics());
    let m = node.cluster().metrics();
    let get = ClusterMetrics::get;
    e.gauge(
        "pushwire_cluster_nodes",
        "Live nodes this node knows, itself included.",
        node.cluster().peers().live().len() + 1,
    );
    e.counter(
        "pushwire_cluster_control_received_total",
        "Control messages received from the engine (own broadcasts included).",
        get(&m.received),
    );
    e.counter(
        "pushwire_cluster_control_sent_total",
        "Control messages this node published.",
        get(&m.sent),
    );
    e.counter(
        "pushwire_cluster_control_send_errors_total",
        "Control messages the engine did not take (the API call answered 100).",
        get(&m.send_errors),
    );
    e.counter(
        "pushwire_cluster_control_invalid_total",
        "Control messages dropped as undecodable or of an unknown version.",
        get(&m.invalid),
    );
    e.counter(
        "pushwire_cluster_control_dropped_total",
        "Control messages dropped because node.control_queue_size were waiting.",
        get(&m.dropped),
    );
    e.counter(
        "pushwire_cluster_requests_rejected_total",
        "Requests from other nodes dropped because node.max_requests_in_flight were running.",
        get(&m.requests_rejected),
    );
    e.counter(
        "pushwire_cluster_surveys_total",
        "Surveys of the other nodes (channels).",
        get(&m.surveys),
    );
    e.counter(
        "pushwire_cluster_surveys_partial_total",
        "Surveys that ended at node.survey_timeout before every live node answered.",
        get(&m.surveys_partial),
    );
    e.counter(
        "pushwire_cluster_emulation_forwarded_total",
        "/emulation bodies forwarded to the node that owns the session.",
        get(&m.emulation_forwarded),
    );
    e.counter(
        "pushwire_cluster_emulation_forward_failed_total",
        "Forwarded /emulation bodies the owning node did not answer (answered 503).",
        get(&m.emulation_forward_failed),
    );
    out.push_str(&e.finish());
}

fn render_engine(e: &mut Exposition, metrics: &[EngineMetric]) {
    for m in metrics {
        match m.kind {
            EngineMetricKind::Counter => e.counter(m.name, m.help, m.value),
            EngineMetricKind::Gauge => e.gauge(m.name, m.help, m.value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_engine_families_by_kind() {
        let mut e = Exposition::default();
        render_engine(
            &mut e,
            &[
                EngineMetric::counter("pushwire_x_total", "X.", 3),
                EngineMetric::gauge("pushwire_x_up", "Up.", 1),
            ],
        );
        let out = e.finish();
        assert!(out.contains("# TYPE pushwire_x_total counter\n"), "{out}");
        assert!(out.contains("\npushwire_x_total 3\n"), "{out}");
        assert!(out.contains("# TYPE pushwire_x_up gauge\n"), "{out}");
        assert!(out.contains("\npushwire_x_up 1\n"), "{out}");
    }
}
