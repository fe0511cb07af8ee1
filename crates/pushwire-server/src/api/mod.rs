//! The server HTTP API (`/api/<method>` and the legacy `/api`).

use axum::Router;

use crate::app::AppState;

/// Routes of the server API.
pub fn routes(_state: &AppState) -> Router<AppState> {
    Router::new()
}
