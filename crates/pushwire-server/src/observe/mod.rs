//! Operators' view of a node: `/health`, `/metrics` (Prometheus text), and the figures the
//! admin page polls.
//!
//! Files: [`exposition`] (the metric table), [`engine`] (the engine's and the control plane's
//! families),
//! [`text`] (the exposition format), [`process`] (`/proc/self` figures), [`stats`] (the admin
//! page's JSON numbers).

pub mod admission;
pub mod engine;
pub mod exposition;
pub mod lifecycle;
pub mod process;
pub mod stats;
pub mod text;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use crate::state::AppState;

/// `GET /health`: 200 while the node serves, 503 once it shuts down. The body is `{}`, or
/// `{"degraded":[…]}` naming what works only partly (the engine, e.g. a Redis PUB/SUB
/// connection that is reconnecting; a lifecycle sink whose last delivery failed;
/// `memory_budget` while new connections are refused for memory; `consumer <name>: …` while a
/// consumer waits on something, e.g. an unreachable schema registry): the node
/// still serves its clients, so the status stays 200 and a load balancer keeps it.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    if state.node.shutdown_token().is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "{}".to_owned());
    }
    let mut degraded: Vec<String> = state.node.broker().degraded().into_iter().collect();
    degraded.extend(
        state
            .lifecycle
            .degraded()
            .into_iter()
            .map(|name| format!("lifecycle sink {name}")),
    );
    if state.admission.over_budget() {
        degraded.push("memory_budget".to_owned());
    }
    degraded.extend(state.consumers.degraded());
    if degraded.is_empty() {
        (StatusCode::OK, "{}".to_owned())
    } else {
        let body = serde_json::json!({ "degraded": degraded }).to_string();
        (StatusCode::OK, body)
    }
}

/// `GET /metrics`: Prometheus text exposition of the node, the process, the consumers, the
/// engine and the control plane. The `/proc` reads run on the blocking pool; the node's
/// and the engine's figures are atomics, so a scrape never holds up fan-out.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let process = tokio::task::spawn_blocking(process::read)
        .await
        .unwrap_or_default();
    let mut text = exposition::render(&state.node, &process);
    state.consumers.render_prometheus(&mut text);
    engine::render(&mut text, &state.node);
    lifecycle::render(&mut text, &state.node, &state.lifecycle);
    admission::render(&mut text, &state.admission);
    if let Some(p) = &state.proxies {
        crate::proxy::render::render(&mut text, p);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
