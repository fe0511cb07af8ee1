//! CORS for the HTTP connection endpoints, following `client.allowed_origins`.
//!
//! An allowed `Origin` is reflected in `Access-Control-Allow-Origin` with
//! `Access-Control-Allow-Credentials: true`; a preflight gets 204 with the allowed methods and
//! `Access-Control-Max-Age: 300`. A request from an origin that is not allowed gets 403.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::origin::OriginPolicy;

/// The request's `Origin` header, if any.
pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
}

/// 403 unless the origin is allowed.
pub fn check(policy: &OriginPolicy, headers: &HeaderMap) -> Result<(), Response> {
    if policy.allows_request(headers) {
        Ok(())
    } else {
        Err((StatusCode::FORBIDDEN, "origin not allowed").into_response())
    }
}

/// Adds the CORS headers for an allowed origin to `response`.
pub fn decorate(headers: &HeaderMap, mut response: Response) -> Response {
    if let Some(o) = headers.get(header::ORIGIN) {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// The answer to a preflight `OPTIONS` request.
pub fn preflight(policy: &OriginPolicy, headers: &HeaderMap, methods: &'static str) -> Response {
    if let Err(r) = check(policy, headers) {
        return r;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    let requested = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(HeaderValue::from_static("content-type"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("300"),
    );
    decorate(headers, r)
}
