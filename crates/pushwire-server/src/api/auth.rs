//! The API key check, run before every API route.
//!
//! Where the key is read, first present wins: header `X-API-Key`, then
//! `Authorization: apikey <key>` (scheme case-insensitive), then the query `?api_key=`. Keys
//! are compared in constant time. A wrong or missing key, or an empty configured key (unless
//! `http_api.insecure`), gets 401 with an empty body.

use std::borrow::Cow;
use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::request::Refused;
use crate::state::AppState;

/// Middleware: passes the request on only with a valid key (401 otherwise), and counts the
/// requests refused before a method ran (`pushwire_api_refused_total`): a wrong key here, the
/// responses marked [`Refused`] by the handlers, and bodies over the size limit (413).
pub async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let api = &state.config.http_api;
    let metrics = state.node.metrics();
    if !(api.insecure || authorized(&api.key, request.headers(), request.uri())) {
        metrics.api_refused(Refused::UNAUTHORIZED.0);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let response = next.run(request).await;
    if let Some(r) = response.extensions().get::<Refused>() {
        metrics.api_refused(r.0);
    } else if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        metrics.api_refused(Refused::TOO_LARGE.0);
    }
    response
}

/// Whether the request carries `expected` (never true for an empty `expected`).
pub fn authorized(expected: &str, headers: &HeaderMap, uri: &Uri) -> bool {
    if expected.is_empty() {
        return false;
    }
    match presented_key(headers, uri) {
        Some(key) => bool::from(key.as_bytes().ct_eq(expected.as_bytes())),
        None => false,
    }
}

/// The key the request presents, from the first place that has one.
fn presented_key<'a>(headers: &'a HeaderMap, uri: &Uri) -> Option<Cow<'a, str>> {
    if let Some(value) = headers.get("x-api-key") {
        return value.to_str().ok().map(|v| Cow::Borrowed(v.trim()));
    }
    let from_authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("apikey").then(|| key.trim())
        });
    if let Some(key) = from_authorization {
        return Some(Cow::Borrowed(key));
    }
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .ok()
        .and_then(|Query(mut q)| q.remove("api_key"))
        .map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().expect("header value"));
        }
        h
    }

    fn uri(text: &str) -> Uri {
        text.parse().expect("uri")
    }

    #[test]
    fn sources_in_order() {
        let plain = uri("/api/info");
        assert!(authorized("k", &headers(&[("x-api-key", "k")]), &plain));
        assert!(authorized(
            "k",
            &headers(&[("authorization", "apikey k")]),
            &plain
        ));
        assert!(authorized(
            "k",
            &headers(&[("authorization", "ApiKey k")]),
            &plain
        ));
        assert!(authorized(
            "k",
            &HeaderMap::new(),
            &uri("/api/info?api_key=k")
        ));
        assert!(authorized(
            "a b",
            &HeaderMap::new(),
            &uri("/api/info?api_key=a%20b")
        ));
        // The first place with a key decides.
        assert!(!authorized(
            "k",
            &headers(&[("x-api-key", "bad"), ("authorization", "apikey k")]),
            &plain
        ));
        // Another scheme does not count as a key.
        assert!(authorized(
            "k",
            &headers(&[("authorization", "Bearer t")]),
            &uri("/api/info?api_key=k")
        ));
    }

    #[test]
    fn rejections() {
        let plain = uri("/api/info");
        assert!(!authorized("k", &HeaderMap::new(), &plain));
        assert!(!authorized("k", &headers(&[("x-api-key", "kk")]), &plain));
        assert!(!authorized(
            "k",
            &headers(&[("authorization", "k")]),
            &plain
        ));
        assert!(!authorized("", &headers(&[("x-api-key", "")]), &plain));
        assert!(!authorized("", &HeaderMap::new(), &uri("/api?api_key=")));
    }
}
