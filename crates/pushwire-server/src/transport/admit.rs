//! The preamble every transport runs before a connection exists, in one place: the origin
//! check (403 `origin not allowed`), the shutting-down answer (503), and the new [`Client`]
//! of the transport's kind with the request headers the proxies forward.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pushwire_core::{Client, TransportInfo, TransportKind};
use pushwire_protocol::Protocol;

use crate::state::AppState;

/// 403 `origin not allowed` unless the request's `Origin` is allowed (`client.allowed_origins`).
pub fn origin(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    super::cors::check(&state.origins, headers)
}

/// The node is shutting down and takes no new connection; answered with 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShuttingDown;

impl IntoResponse for ShuttingDown {
    fn into_response(self) -> Response {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    }
}

/// [`ShuttingDown`] once the node's shutdown began: no new connection from then on.
pub fn accepting(state: &AppState) -> Result<(), ShuttingDown> {
    if state.node.shutdown_token().is_cancelled() {
        Err(ShuttingDown)
    } else {
        Ok(())
    }
}

/// A new client of `kind` speaking `protocol`, keeping the headers of `headers` that some
/// proxy forwards; [`ShuttingDown`] once the node's shutdown began.
pub fn client(
    state: &AppState,
    headers: &HeaderMap,
    kind: TransportKind,
    protocol: Protocol,
) -> Result<Arc<Client>, ShuttingDown> {
    accepting(state)?;
    let kept = super::forward::kept(&state.node, headers);
    Ok(build(state, kind, protocol, &kept))
}

/// The client itself, for a transport that checked [`accepting`] earlier and kept the
/// forwarded headers ([`super::forward::kept`]) across an upgrade.
pub fn build(
    state: &AppState,
    kind: TransportKind,
    protocol: Protocol,
    kept: &[(String, String)],
) -> Arc<Client> {
    Client::with_headers(
        state.node.clone(),
        TransportInfo { kind, protocol },
        super::forward::pairs(kept),
    )
}
