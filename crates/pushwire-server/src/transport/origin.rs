//! Origin checks for browser connections.
//!
//! `client.allowed_origins` holds origin patterns (`https://app.example.com`,
//! `https://*.example.com`, or `*` for any). An empty list rejects every request that carries
//! an `Origin` header, so only non-browser clients connect until origins are configured.
//!
//! Every connection endpoint (WebSocket, uni WebSocket, HTTP-stream, SSE, `/emulation`, uni
//! SSE, uni HTTP-stream, long-poll and poll) asks [`OriginPolicy::allows_request`] before
//! anything else and answers 403 when it says no. A request without `Origin` comes from a
//! non-browser client (browsers always send it on cross-origin requests and on WebSocket
//! handshakes) and passes. An `Origin` that is not text, or more than one `Origin` header, is
//! refused: it is never what a browser sends, and reading only the first would let a second
//! one slip through a proxy that checks the other.

use axum::http::{header, HeaderMap};
use regex::Regex;

/// Compiled origin patterns.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    any: bool,
    patterns: Vec<Regex>,
}

impl OriginPolicy {
    /// Compiles `patterns` (validated non-empty by the configuration).
    pub fn new(patterns: &[String]) -> Self {
        let any = patterns.iter().any(|p| p.trim() == "*");
        let patterns = patterns
            .iter()
            .filter(|p| p.trim() != "*")
            .map(|p| {
                let escaped = regex::escape(&p.trim().to_ascii_lowercase()).replace(r"\*", "[^/]*");
                Regex::new(&format!("^{escaped}$")).expect("escaped pattern is a valid regex")
            })
            .collect();
        OriginPolicy { any, patterns }
    }

    /// Whether a request with these headers may connect (see the module docs).
    pub fn allows_request(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(header::ORIGIN).iter();
        let Some(first) = values.next() else {
            return true;
        };
        if values.next().is_some() {
            return false;
        }
        first.to_str().is_ok_and(|o| self.allows(Some(o)))
    }

    /// Whether a request with this `Origin` header (if any) may connect.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self.any {
            return true;
        }
        let origin = origin.to_ascii_lowercase();
        self.patterns.iter().any(|p| p.is_match(&origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_rejects_browsers_only() {
        let p = OriginPolicy::new(&[]);
        assert!(p.allows(None));
        assert!(!p.allows(Some("http://localhost:3000")));
    }

    #[test]
    fn patterns() {
        let p = OriginPolicy::new(&[
            "https://*.example.com".into(),
            "http://localhost:3000".into(),
        ]);
        assert!(p.allows(Some("https://app.example.com")));
        assert!(p.allows(Some("HTTP://LOCALHOST:3000")));
        assert!(!p.allows(Some("https://example.com.evil.io")));
        assert!(!p.allows(Some("http://localhost:3001")));
        assert!(OriginPolicy::new(&["*".into()]).allows(Some("http://x")));
    }

    #[test]
    fn request_headers() {
        use axum::http::HeaderValue;
        let p = OriginPolicy::new(&["https://app.example.com".into()]);
        let mut h = HeaderMap::new();
        assert!(p.allows_request(&h), "no Origin: not a browser");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://app.example.com"),
        );
        assert!(p.allows_request(&h));
        h.append(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!p.allows_request(&h), "two Origin headers");
        let mut h = HeaderMap::new();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_bytes(b"https://app.example.com\xff").unwrap(),
        );
        assert!(!p.allows_request(&h), "Origin that is not text");
        let evil = OriginPolicy::new(&["*".into()]);
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(
            evil.allows_request(&h),
            "`*` allows everything, `null` included"
        );
        assert!(!p.allows(Some("null")));
    }
}
