//! Bidirectional emulation over HTTP-streaming: `POST /connection/http_stream`.
//!
//! The request body holds the first commands (the connect); the response is an endless
//! stream of replies: JSON lines, or varint-delimited protobuf when the request's
//! `Content-Type` is `application/octet-stream`. Later commands arrive through `/emulation`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use pushwire_core::TransportKind;
use pushwire_protocol::Protocol;

use super::{admit, cors, stream};
use crate::state::AppState;

/// Whether the request asks for protobuf (`Content-Type: application/octet-stream`).
pub fn wants_protobuf(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/octet-stream"))
}

/// `POST /connection/http_stream`.
pub async fn handler(State(state): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = admit::origin(&state, &h) {
        return r;
    }
    let protocol = if wants_protobuf(&h) {
        Protocol::Protobuf
    } else {
        Protocol::Json
    };
    let client = match admit::client(&state, &h, TransportKind::HttpStream, protocol) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
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
