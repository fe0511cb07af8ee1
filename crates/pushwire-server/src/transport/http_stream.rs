//! Bidirectional emulation over HTTP-streaming: `POST /connection/http_stream`.
//!
//! The request body holds the first commands (the connect); the response is an endless
//! stream of replies: JSON lines, or varint-delimited protobuf when the request's
//! `Content-Type` is `application/octet-stream`. Later commands arrive through `/emulation`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pushwire_core::{Client, TransportInfo};
use pushwire_protocol::Protocol;

use super::{cors, stream};
use crate::app::AppState;

/// Whether the request asks for protobuf (`Content-Type: application/octet-stream`).
pub fn wants_protobuf(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/octet-stream"))
}

/// `POST /connection/http_stream`.
pub async fn handler(State(state): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = cors::check(&state.origins, &h) {
        return r;
    }
    if state.node.shutdown_token().is_cancelled() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let protocol = if wants_protobuf(&h) {
        Protocol::Protobuf
    } else {
        Protocol::Json
    };
    let client = Client::with_headers(
        state.node.clone(),
        TransportInfo {
            name: "http_stream",
            protocol,
            unidirectional: false,
            emulated: true,
        },
        super::forward::pairs(&super::forward::kept(&state.node, &h)),
    );
    if let Err(d) = client.handle_frame(&body).await {
        client.disconnect(d);
    }
    let framing = match protocol {
        Protocol::Json => stream::Framing::JsonLines,
        Protocol::Protobuf => stream::Framing::Protobuf,
    };
    stream::response(client, framing, &state, &h)
}

/// `OPTIONS` on the streaming endpoints.
pub async fn options(State(state): State<AppState>, h: HeaderMap) -> Response {
    cors::preflight(&state.origins, &h, "POST, OPTIONS")
}
