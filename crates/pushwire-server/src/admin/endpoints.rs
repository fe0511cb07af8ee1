//! The admin page's data: `GET /admin/api/stats` and `POST /admin/api/<method>`, the latter
//! through the server API's own handler, so the page can do exactly what the API can.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::AdminState;
use crate::api::handler::{handle, ErrorMode};
use crate::api::method::Method;
use crate::observe::{process, stats::NodeStats};

/// The node's live numbers ([`NodeStats`]).
pub async fn stats(State(admin): State<AdminState>) -> Response {
    let process = tokio::task::spawn_blocking(process::read)
        .await
        .unwrap_or_default();
    let engine = admin.app.config.engine.kind.name();
    Json(NodeStats::read(&admin.app.node, engine, &process)).into_response()
}

/// Runs server API method `method` with the JSON body as params; the answer is the API's
/// (`{"result":…}` or `{"error":…}`). 404 for an unknown method.
pub async fn call(
    State(admin): State<AdminState>,
    Path(method): Path<String>,
    body: Bytes,
) -> Response {
    let Some(method) = Method::from_name(&method) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    handle(&admin.app.node, method, ErrorMode::Body, body).await
}
