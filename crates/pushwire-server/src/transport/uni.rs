//! Unidirectional HTTP transports: the client sends one ConnectRequest and only receives.
//!
//! - `POST /connection/uni_http_stream` with a JSON ConnectRequest body (`{}` is fine): a
//!   stream of bare JSON pushes, one per line.
//! - `GET /connection/uni_sse?cf_connect=<ConnectRequest JSON>` (or `POST` with the body):
//!   bare pushes as SSE events. Events that move a stream position carry it as their `id:`;
//!   a reconnecting `EventSource` sends it back in `Last-Event-ID`, which becomes recovery
//!   hints in `connect.subs`, so a plain browser `EventSource` misses nothing.
//!
//! Channels come from server-side subscriptions: the token's `channels`, `connect.subs`
//! entries the client may subscribe to, and the API `subscribe`.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use pushwire_core::{Client, TransportKind};
use pushwire_protocol::{ConnectRequest, Protocol};

use super::positions::Positions;
use super::sse::{accept, SseQuery};
use super::{admit, cors, stream};
use crate::state::AppState;

async fn start(
    state: &AppState,
    kind: TransportKind,
    payload: &[u8],
    last_event_id: Option<&str>,
    headers: &HeaderMap,
) -> Result<std::sync::Arc<Client>, Response> {
    let mut req: ConnectRequest = serde_json::from_slice(payload).map_err(|e| {
        (StatusCode::BAD_REQUEST, format!("bad connect request: {e}")).into_response()
    })?;
    if let Some(id) = last_event_id {
        for (channel, (offset, epoch)) in Positions::parse_last_event_id(id) {
            let entry = req.subs.entry(channel).or_default();
            entry.recover = true;
            entry.offset = offset;
            entry.epoch = epoch;
        }
    }
    let client =
        admit::client(state, headers, kind, Protocol::Json).map_err(IntoResponse::into_response)?;
    if let Err(d) = client.connect_unidirectional(req).await {
        client.disconnect(d);
    }
    Ok(client)
}

/// `POST /connection/uni_http_stream`.
pub async fn http_stream(State(state): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = admit::origin(&state, &h) {
        return r;
    }
    let payload = if body.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        body
    };
    let client = match start(&state, TransportKind::UniHttpStream, &payload, None, &h).await {
        Ok(c) => c,
        Err(r) => return cors::decorate(&h, r),
    };
    stream::response(client, stream::Framing::JsonLines, &state, &h)
}

/// `GET|POST /connection/uni_sse`.
pub async fn sse(
    State(state): State<AppState>,
    method: Method,
    Query(query): Query<SseQuery>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let payload = match accept(&state, &method, &query, &h, &body, false) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let last = h.get("last-event-id").and_then(|v| v.to_str().ok());
    let client = match start(&state, TransportKind::UniSse, &payload, last, &h).await {
        Ok(c) => c,
        Err(r) => return cors::decorate(&h, r),
    };
    stream::response(client, stream::Framing::SseWithIds, &state, &h)
}
