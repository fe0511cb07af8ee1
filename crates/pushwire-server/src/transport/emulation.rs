//! `POST /emulation`: commands for an HTTP-streaming or SSE session.
//!
//! JSON body `{"session","node","data"}` where `data` is a string of newline-joined commands,
//! or a protobuf `EmulationRequest` with `Content-Type: application/octet-stream`. The replies
//! travel on the session's stream, never in this response.
//!
//! The session may live on another node (the request landed there through a load balancer
//! without sticky sessions): the body is then forwarded to the owning node over the control
//! plane, and its answer decides the status.
//!
//! Status codes: 204 accepted (also when the session no longer exists: its stream has ended),
//! 400 undecodable body or a protocol that differs from the session stream's, 404 no live
//! node with that id, 503 the owning node did not answer within `node.survey_timeout` (it
//! died or the engine is down; centrifuge-js closes the transport and reconnects on 404 and
//! 5xx), 413 body too large, 403 origin not allowed.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pushwire_core::node::EmulationOutcome;
use serde::Deserialize;

use super::{cors, http_stream::wants_protobuf};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
struct JsonEmulation {
    #[serde(default)]
    session: String,
    #[serde(default)]
    node: String,
    #[serde(default)]
    data: String,
}

/// `POST /emulation`.
pub async fn handler(State(state): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = cors::check(&state.origins, &h) {
        return r;
    }
    let decoded = if wants_protobuf(&h) {
        pushwire_protocol::decode_emulation_request(&body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<JsonEmulation>(&body)
            .map(|r| (r.node, r.session, Bytes::from(r.data)))
            .map_err(|e| e.to_string())
    };
    let (node, session, data) = match decoded {
        Ok(d) => d,
        Err(e) => {
            return cors::decorate(&h, (StatusCode::BAD_REQUEST, e).into_response());
        }
    };
    let outcome = state
        .node
        .emulation(&node, &session, wants_protobuf(&h), data)
        .await;
    let response = match outcome {
        EmulationOutcome::Accepted => StatusCode::NO_CONTENT.into_response(),
        EmulationOutcome::ProtocolMismatch => (
            StatusCode::BAD_REQUEST,
            "protocol differs from the stream's",
        )
            .into_response(),
        EmulationOutcome::UnknownNode => (StatusCode::NOT_FOUND, "unknown node").into_response(),
        EmulationOutcome::Unreachable => {
            (StatusCode::SERVICE_UNAVAILABLE, "node unreachable").into_response()
        }
    };
    cors::decorate(&h, response)
}
/// `OPTIONS /emulation`.
pub async fn options(State(state): State<AppState>, h: HeaderMap) -> Response {
    cors::preflight(&state.origins, &h, "POST, OPTIONS")
}
