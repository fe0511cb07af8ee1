//! Origin checks for browser connections.
//!
//! `client.allowed_origins` holds origin patterns (`https://app.example.com`,
//! `https://*.example.com`, or `*` for any). An empty list rejects every request that carries
//! an `Origin` header, so only non-browser clients connect until origins are configured.

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
}
