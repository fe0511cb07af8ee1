//! The node's metrics as one Prometheus exposition. Names, types and labels are listed in
//! docs/observability.md; every value is read from atomics (plus one registry count), so a
//! scrape never waits for the hub.

use pushwire_core::metrics::{Metrics, COMMANDS, TRANSPORTS};
use pushwire_core::Node;

use super::process::ProcessStats;
use super::text::Exposition;
use crate::api::method::Method;

/// Renders every metric of `node` and the process.
pub fn render(node: &Node, process: &ProcessStats) -> String {
    let mut e = Exposition::new();
    node_metrics(&mut e, node);
    process_metrics(&mut e, process);
    e.finish()
}

fn code_label(code: u32) -> String {
    code.to_string()
}

fn node_metrics(e: &mut Exposition, node: &Node) {
    let m = node.metrics();
    let gauges = node.hub().gauges();
    let (clients, users) = node.registry().counts();
    let get = Metrics::get;
    e.family(
        "pushwire_build_info",
        "gauge",
        "Build of this node: version, target and profile (always 1).",
        [(
            vec![
                ("version", pushwire_core::node::VERSION.to_owned()),
                ("target_os", std::env::consts::OS.to_owned()),
                ("target_arch", std::env::consts::ARCH.to_owned()),
                (
                    "profile",
                    if cfg!(debug_assertions) {
                        "debug"
                    } else {
                        "release"
                    }
                    .to_owned(),
                ),
            ],
            1,
        )],
    );
    e.gauge(
        "pushwire_uptime_seconds",
        "Seconds since start.",
        node.uptime().as_secs(),
    );
    e.counter(
        "pushwire_connections_accepted_total",
        "Connections accepted (every transport).",
        get(&m.connections_accepted),
    );
    let by_transport = |f: &dyn Fn(usize) -> u64| -> Vec<(Vec<(&str, String)>, u64)> {
        TRANSPORTS
            .iter()
            .enumerate()
            .map(|(i, t)| (vec![("transport", (*t).to_owned())], f(i)))
            .collect()
    };
    e.family(
        "pushwire_connections",
        "gauge",
        "Open connections by transport, authenticated or not.",
        by_transport(&|i| m.open_connections(i)),
    );
    e.family(
        "pushwire_connections_opened_total",
        "counter",
        "Connections opened by transport.",
        by_transport(&|i| get(&m.transports[i].opened)),
    );
    e.gauge(
        "pushwire_clients",
        "Connected (authenticated) clients.",
        clients,
    );
    e.gauge("pushwire_users", "Distinct connected users.", users);
    e.gauge(
        "pushwire_queued_bytes",
        "Bytes queued to all connections and not written yet (the outboxes' gauge).",
        node.outboxes().queued_bytes() as u64,
    );
    e.gauge(
        "pushwire_channels",
        "Channels with subscribers on this node.",
        gauges.num_channels(),
    );
    e.family(
        "pushwire_subscriptions",
        "gauge",
        "Subscriptions on this node by the subscriber's transport.",
        by_transport(&|i| gauges.subscriptions_of(i)),
    );
    e.counter(
        "pushwire_publications_total",
        "Publications accepted (server API and clients).",
        get(&m.publications),
    );
    e.counter(
        "pushwire_messages_queued_total",
        "Publications, joins and leaves queued to connections by the hub.",
        get(&m.messages_queued),
    );
    e.family(
        "pushwire_messages_delivered_total",
        "counter",
        "Messages written to connections by transport (replies and pushes).",
        by_transport(&|i| get(&m.transports[i].messages_delivered)),
    );
    e.family(
        "pushwire_bytes_delivered_total",
        "counter",
        "Bytes of the delivered messages by transport (before transport framing).",
        by_transport(&|i| get(&m.transports[i].bytes_delivered)),
    );
    e.histogram(
        "pushwire_delivery_latency_seconds",
        "Publication fanned out by the hub to written to the connection, per write (the oldest publication of the write).",
        &m.delivery_latency.snapshot(),
        1e9,
    );
    e.histogram(
        "pushwire_queue_drained_bytes",
        "Bytes queued for a connection when its writer drained them (per-connection queue size).",
        &m.drained_bytes.snapshot(),
        1.0,
    );
    e.counter(
        "pushwire_commands_total",
        "Client commands handled.",
        get(&m.commands),
    );
    e.counter(
        "pushwire_command_errors_total",
        "Error replies sent to clients.",
        get(&m.command_errors),
    );
    let mut results = Vec::new();
    for (i, method) in COMMANDS.iter().enumerate() {
        let (codes, overflow) = m.command_results[i].snapshot();
        for (code, n) in codes {
            results.push((
                vec![("method", (*method).to_owned()), ("code", code_label(code))],
                n,
            ));
        }
        if overflow > 0 {
            results.push((
                vec![("method", (*method).to_owned()), ("code", "other".into())],
                overflow,
            ));
        }
    }
    e.family(
        "pushwire_command_results_total",
        "counter",
        "Client commands by method and result code (0 success, 1xx error reply, 3xxx disconnect).",
        results,
    );
    let mut api = Vec::new();
    for method in Method::ALL {
        let (codes, overflow) = m.api_requests[method.index()].snapshot();
        for (code, n) in codes {
            api.push((
                vec![
                    ("method", method.name().to_owned()),
                    ("code", code_label(code)),
                ],
                n,
            ));
        }
        if overflow > 0 {
            api.push((
                vec![
                    ("method", method.name().to_owned()),
                    ("code", "other".into()),
                ],
                overflow,
            ));
        }
    }
    e.family(
        "pushwire_api_requests_total",
        "counter",
        "Server API calls (batch commands included) by method and result code (0 success).",
        api,
    );
    let refused: Vec<(Vec<(&str, String)>, u64)> = pushwire_core::metrics::API_REFUSALS
        .iter()
        .zip(&m.api_refused)
        .map(|(reason, n)| (vec![("reason", (*reason).to_owned())], Metrics::get(n)))
        .collect();
    e.family(
        "pushwire_api_refused_total",
        "counter",
        "Server API requests refused before a method ran: wrong key, malformed body, unknown method, body too large.",
        refused,
    );
    let (codes, overflow) = m.disconnects.snapshot();
    let mut disconnects: Vec<(Vec<(&str, String)>, u64)> = codes
        .into_iter()
        .map(|(code, n)| (vec![("code", code_label(code))], n))
        .collect();
    if overflow > 0 {
        disconnects.push((vec![("code", "other".into())], overflow));
    }
    e.family(
        "pushwire_disconnects_total",
        "counter",
        "Closed connections by disconnect code (3000: the peer went away).",
        disconnects,
    );
    e.counter(
        "pushwire_slow_disconnects_total",
        "Connections closed because their queue overflowed (3008).",
        get(&m.slow_disconnects),
    );
    e.counter(
        "pushwire_websocket_compressed_connections_total",
        "WebSocket connections that negotiated permessage-deflate (websocket.compression).",
        get(&m.websocket_compressed),
    );
    e.counter(
        "pushwire_subscriptions_shed_total",
        "Subscriptions unsubscribed with 2500 instead of closing their slow connection \
         (slow_subscriber_policy = resubscribe).",
        get(&m.subscriptions_shed),
    );
    e.counter(
        "pushwire_bad_request_disconnects_total",
        "Connections closed for protocol violations (3501).",
        get(&m.bad_requests),
    );
    e.counter(
        "pushwire_recoveries_total",
        "Recoveries attempted on subscribe.",
        get(&m.recoveries),
    );
    e.counter(
        "pushwire_recoveries_failed_total",
        "Recoveries that could not deliver every missed publication.",
        get(&m.recoveries_failed),
    );
}

fn process_metrics(e: &mut Exposition, p: &ProcessStats) {
    if let Some(v) = p.cpu_seconds {
        e.counter(
            "process_cpu_seconds_total",
            "User and system CPU time, seconds.",
            v,
        );
    }
    if let Some(v) = p.resident_bytes {
        e.gauge(
            "process_resident_memory_bytes",
            "Resident memory, bytes.",
            v,
        );
    }
    if let Some(v) = p.virtual_bytes {
        e.gauge("process_virtual_memory_bytes", "Virtual memory, bytes.", v);
    }
    if let Some(v) = p.open_fds {
        e.gauge("process_open_fds", "Open file descriptors.", v);
    }
    if let Some(v) = p.max_fds {
        e.gauge("process_max_fds", "Limit on open file descriptors.", v);
    }
    if let Some(v) = p.threads {
        e.gauge("process_threads", "OS threads.", v);
    }
    if let Some(v) = p.start_time_seconds {
        e.gauge(
            "process_start_time_seconds",
            "Start time since the Unix epoch, seconds.",
            v,
        );
    }
}
