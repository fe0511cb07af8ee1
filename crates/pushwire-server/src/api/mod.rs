//! The server HTTP API (`/api/<method>` and the legacy `/api`), shaped like Centrifugo's so
//! that `cent` (Python) and `cent.js` work unchanged.
//!
//! Layout:
//! - [`auth`]: the API key check, a layer on every API route.
//! - [`handler`]: `POST /api/<method>` and the transport error mode; [`legacy`]: `POST /api`.
//! - [`dispatch`]: the one code path from a [`method::Method`] and its params to a result;
//!   [`consumer`]: the same path for the consumers' `api_command` mode.
//! - The methods: [`publish`] (and broadcast), [`batch`], [`history`], [`presence`],
//!   [`channels`] (with `pushwire_core::glob` patterns), [`info`], [`rpc`], [`users`] (disconnect,
//!   unsubscribe).
//! - [`request`]: body and params decoding; [`reply`]: response envelopes; [`error`]: codes.
//!
//! Status codes: 401 (empty body) without a valid key, 405 for anything but POST, 413 beyond
//! `http_api.max_body_size`, 400 (plain text) for a body that is not a JSON object, 404 for
//! an unknown method path; otherwise 200 with `{"result":…}` or `{"error":{"code","message"}}`.

pub mod auth;
pub mod batch;
pub mod channels;
pub mod consumer;
pub mod dispatch;
pub mod error;
pub mod handler;
pub mod history;
pub mod info;
pub mod legacy;
pub mod method;
pub mod presence;
pub mod publish;
pub mod reply;
pub mod request;
pub mod rpc;
pub mod server_side;
pub mod users;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;

use crate::state::AppState;
use method::Method;

/// Routes of the server API: `POST /api/<method>` for every [`Method`] and `POST /api`.
pub fn routes(state: &AppState) -> Router<AppState> {
    let mut router = Router::new().route(
        "/api",
        post(|State(state): State<AppState>, body: Bytes| async move {
            legacy::handle(&state.node, body).await
        }),
    );
    for method in Method::ALL {
        router = router.route(
            &format!("/api/{}", method.name()),
            post(
                move |State(state): State<AppState>, headers: HeaderMap, body: Bytes| async move {
                    let mode = handler::ErrorMode::of(&headers, state.config.http_api.error_mode);
                    handler::handle(&state.node, method, mode, body).await
                },
            ),
        );
    }
    // Any other name under /api: 404, counted as an unknown method (after the key check).
    router = router.route(
        "/api/{unknown}",
        post(|| async {
            request::Refused::UNKNOWN_METHOD
                .mark((axum::http::StatusCode::NOT_FOUND, "unknown API method").into_response())
        }),
    );
    router
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .layer(DefaultBodyLimit::max(state.config.http_api.max_body_size))
}
