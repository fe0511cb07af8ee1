//! `POST /api/<method>`: one JSON object in, `{"result":…}` or `{"error":…}` out.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pushwire_core::Node;

use super::dispatch::dispatch;
use super::error::ApiError;
use super::method::Method;
use super::reply::{envelope, json_response, ok_json};
use super::request::{object, BodyError, Refused};

/// Header that selects the transport error mode for one request.
const ERROR_MODE_HEADER: &str = "x-centrifugo-error-mode";

/// How errors travel in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    /// HTTP 200 with `{"error":{…}}` (the default).
    Body,
    /// An HTTP status per code with the bare error object as the body.
    Transport,
}

impl ErrorMode {
    /// The mode of a request: `X-Centrifugo-Error-Mode: transport`, or the configured
    /// default (`http_api.error_mode`).
    pub fn of(headers: &HeaderMap, default: crate::config::ApiErrorMode) -> ErrorMode {
        let transport = headers
            .get(ERROR_MODE_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("transport"));
        if transport || default == crate::config::ApiErrorMode::Transport {
            ErrorMode::Transport
        } else {
            ErrorMode::Body
        }
    }
}

/// Handles one method call. A body that is not a JSON object, or params of the wrong shape,
/// get 400 with a plain-text body. `batch` answers with the bare `{"replies":[…]}`: Centrifugo's
/// batch response has no `result` wrapper, and cent 5.x reads `replies` at the top level.
pub async fn handle(node: &Node, method: Method, mode: ErrorMode, body: Bytes) -> Response {
    let params = match object(&body) {
        Ok(params) => params,
        Err(e) => return Refused::BAD_REQUEST.mark(e.into_response()),
    };
    let outcome = dispatch(node, method, Some(params)).await;
    match (&outcome, mode) {
        (Err(ApiError::InvalidParams), _) => BodyError("invalid params").into_response(),
        (Ok(result), _) if method == Method::Batch => {
            json_response(StatusCode::OK, result.get().as_bytes().to_vec())
        }
        (Err(e), ErrorMode::Transport) => match serde_json::to_vec(&e.body()) {
            Ok(body) => json_response(e.http_status(), body),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        _ => ok_json(&envelope(&outcome)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_mode_header_and_default() {
        use crate::config::ApiErrorMode;
        let mut h = HeaderMap::new();
        assert_eq!(ErrorMode::of(&h, ApiErrorMode::Body), ErrorMode::Body);
        assert_eq!(
            ErrorMode::of(&h, ApiErrorMode::Transport),
            ErrorMode::Transport
        );
        h.insert(ERROR_MODE_HEADER, "Transport".parse().expect("value"));
        assert_eq!(ErrorMode::of(&h, ApiErrorMode::Body), ErrorMode::Transport);
        h.insert(ERROR_MODE_HEADER, "any".parse().expect("value"));
        assert_eq!(ErrorMode::of(&h, ApiErrorMode::Body), ErrorMode::Body);
    }
}
