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
    let mut out = String::with_capacity(2048);
    let mut line = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP pushwire_{name} {help}");
        let _ = writeln!(out, "# TYPE pushwire_{name} {kind}");
        let _ = writeln!(out, "pushwire_{name} {value}");
    };
    line(
        "connections_accepted_total",
        "counter",
        "Connections accepted.",
        Metrics::get(&m.connections_accepted),
    );
    line(
        "clients",
        "gauge",
        "Connected clients.",
        info.num_clients as u64,
    );
    line(
        "users",
        "gauge",
        "Distinct connected users.",
        info.num_users as u64,
    );
    line(
        "channels",
        "gauge",
        "Channels with subscribers on this node.",
        info.num_channels as u64,
    );
    line(
        "subscriptions",
        "gauge",
        "Subscriptions on this node.",
        info.num_subs as u64,
    );
    line(
        "publications_total",
        "counter",
        "Publications accepted.",
        Metrics::get(&m.publications),
    );
    line(
        "commands_total",
        "counter",
        "Client commands handled.",
        Metrics::get(&m.commands),
    );
    line(
        "messages_queued_total",
        "counter",
        "Publications, joins and leaves queued to connections by the hub.",
        Metrics::get(&m.messages_queued),
    );
    line(
        "command_errors_total",
        "counter",
        "Error replies sent to clients.",
        Metrics::get(&m.command_errors),
    );
    line(
        "bad_request_disconnects_total",
        "counter",
        "Connections closed for protocol violations (3501).",
        Metrics::get(&m.bad_requests),
    );
    line(
        "slow_disconnects_total",
        "counter",
        "Connections closed because their queue overflowed (3008).",
        Metrics::get(&m.slow_disconnects),
    );
    line(
        "recoveries_total",
        "counter",
        "Recoveries attempted on subscribe.",
        Metrics::get(&m.recoveries),
    );
    line(
        "recoveries_failed_total",
        "counter",
        "Recoveries that could not deliver every missed publication.",
        Metrics::get(&m.recoveries_failed),
    );
    line(
        "uptime_seconds",
        "gauge",
        "Seconds since start.",
        info.uptime as u64,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
