//! Bidirectional emulation over Server-Sent Events: `GET /connection/sse?cf_connect=<command>`
//! (or `POST` with the command as body). JSON only; each reply is one `data:` event. Later
//! commands arrive through `/emulation`.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use pushwire_core::TransportKind;
use pushwire_protocol::Protocol;
use serde::Deserialize;

use super::{admit, cors, stream};
use crate::state::AppState;

/// Query of the SSE endpoints.
#[derive(Debug, Default, Deserialize)]
pub struct SseQuery {
    /// The connect command (bidirectional) or ConnectRequest (unidirectional), as JSON.
    pub cf_connect: Option<String>,
    /// Protocol selector: only JSON is possible over SSE.
    pub cf_protocol: Option<String>,
    /// Protocol selector: only JSON is possible over SSE.
    pub format: Option<String>,
}

impl SseQuery {
    /// 400 when protobuf is requested: SSE carries text only.
    pub fn check_json(&self) -> Result<(), Response> {
        let pb = [self.cf_protocol.as_deref(), self.format.as_deref()]
            .into_iter()
            .any(|v| v == Some("protobuf"));
        if pb {
            Err((
                StatusCode::BAD_REQUEST,
                "protobuf is not supported over SSE",
            )
                .into_response())
        } else {
            Ok(())
        }
    }
}

/// The connect payload: `cf_connect` on GET, the body on POST; 400 when missing.
pub fn connect_payload(
    method: &Method,
    query: &SseQuery,
    body: &Bytes,
    required: bool,
) -> Result<Bytes, Response> {
    if *method == Method::POST && !body.is_empty() {
        return Ok(body.clone());
    }
    match &query.cf_connect {
        Some(c) => Ok(Bytes::from(c.clone())),
        None if required => {
            Err((StatusCode::BAD_REQUEST, "cf_connect is required").into_response())
        }
        None => Ok(Bytes::from_static(b"{}")),
    }
}

/// The checks every SSE endpoint makes before connecting: origin, JSON only, and the connect
/// payload (`required`: 400 without one; otherwise `{}`).
pub fn accept(
    state: &AppState,
    method: &Method,
    query: &SseQuery,
    h: &HeaderMap,
    body: &Bytes,
    required: bool,
) -> Result<Bytes, Response> {
    admit::origin(state, h)?;
    query.check_json()?;
    connect_payload(method, query, body, required)
}

/// `GET|POST /connection/sse`.
pub async fn handler(
    State(state): State<AppState>,
    method: Method,
    Query(query): Query<SseQuery>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let payload = match accept(&state, &method, &query, &h, &body, true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let client = match admit::client(&state, &h, TransportKind::Sse, Protocol::Json) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    if let Err(d) = client.handle_frame(&payload).await {
        client.disconnect(d);
    }
    stream::response(client, stream::Framing::Sse, &state, &h)
}

/// `OPTIONS /connection/sse`.
pub async fn options(State(state): State<AppState>, h: HeaderMap) -> Response {
    cors::preflight(&state.origins, &h, "GET, POST, OPTIONS")
}
