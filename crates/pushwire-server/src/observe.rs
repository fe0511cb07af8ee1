//! Health and metrics endpoints.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use pushwire_core::metrics::Metrics;

use crate::app::AppState;

/// `GET /health`: 200 `{}` while the node serves, 503 once it shuts down.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    if state.node.shutdown_token().is_cancelled() {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "{}")
    } else {
        (axum::http::StatusCode::OK, "{}")
    }
}

/// `GET /metrics`: Prometheus text exposition of the node's counters and gauges.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let node = &state.node;
    let m = node.metrics();
    let info = node.info();
    const COUNTER: &str = "counter";
    const GAUGE: &str = "gauge";
    let rows: [(&str, &str, &str, u64); 14] = [
        (
            "connections_accepted_total",
            COUNTER,
            "Connections accepted.",
            Metrics::get(&m.connections_accepted),
        ),
        (
            "clients",
            GAUGE,
            "Connected clients.",
            info.num_clients.into(),
        ),
        (
            "users",
            GAUGE,
            "Distinct connected users.",
            info.num_users.into(),
        ),
        (
            "channels",
            GAUGE,
            "Channels with subscribers on this node.",
            info.num_channels.into(),
        ),
        (
            "subscriptions",
            GAUGE,
            "Subscriptions on this node.",
            info.num_subs.into(),
        ),
        (
            "publications_total",
            COUNTER,
            "Publications accepted.",
            Metrics::get(&m.publications),
        ),
        (
            "commands_total",
            COUNTER,
            "Client commands handled.",
            Metrics::get(&m.commands),
        ),
        (
            "messages_queued_total",
            COUNTER,
            "Publications, joins and leaves queued to connections by the hub.",
            Metrics::get(&m.messages_queued),
        ),
        (
            "command_errors_total",
            COUNTER,
            "Error replies sent to clients.",
            Metrics::get(&m.command_errors),
        ),
        (
            "bad_request_disconnects_total",
            COUNTER,
            "Connections closed for protocol violations (3501).",
            Metrics::get(&m.bad_requests),
        ),
        (
            "slow_disconnects_total",
            COUNTER,
            "Connections closed because their queue overflowed (3008).",
            Metrics::get(&m.slow_disconnects),
        ),
        (
            "recoveries_total",
            COUNTER,
            "Recoveries attempted on subscribe.",
            Metrics::get(&m.recoveries),
        ),
        (
            "recoveries_failed_total",
            COUNTER,
            "Recoveries that could not deliver every missed publication.",
            Metrics::get(&m.recoveries_failed),
        ),
        (
            "uptime_seconds",
            GAUGE,
            "Seconds since start.",
            info.uptime.into(),
        ),
    ];
    let mut out = String::with_capacity(2048);
    for (name, kind, help, value) in rows {
        let _ = writeln!(out, "# HELP pushwire_{name} {help}");
        let _ = writeln!(out, "# TYPE pushwire_{name} {kind}");
        let _ = writeln!(out, "pushwire_{name} {value}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
