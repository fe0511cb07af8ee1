//! The request headers a new client keeps for the proxies to forward (`http_headers` of the
//! proxies in use). Nothing is kept, and nothing allocated, when no proxy forwards headers.

use axum::http::HeaderMap;
use pushwire_core::Node;

/// Headers of `headers` that some proxy forwards, as owned `(name, value)` pairs.
pub fn kept(node: &Node, headers: &HeaderMap) -> Vec<(String, String)> {
    let wanted = node.forwarded_headers();
    if wanted.is_empty() {
        return Vec::new();
    }
    headers
        .iter()
        .filter(|(k, _)| wanted.iter().any(|w| w == k.as_str()))
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

/// Borrowed view of [`kept`]'s pairs for `Client::with_headers`.
pub fn pairs(kept: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    kept.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}
