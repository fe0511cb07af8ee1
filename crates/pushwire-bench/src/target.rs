//! The server under test: its URLs, the loopback rule and a reachability probe.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::BenchError;

/// How long the reachability probe waits for a TCP connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A parsed `--url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `https`/`wss` given.
    pub(crate) tls: bool,
    /// Host without brackets (`127.0.0.1`, `::1`, `localhost`).
    pub(crate) host: String,
    /// `host:port` as given (brackets kept), the part used in URLs.
    pub(crate) authority: String,
    /// Port, explicit or the scheme's default.
    pub(crate) port: u16,
    /// Where the server API is called (`--api-url`), when not at this target: e.g. one node
    /// of a cluster while the connections go through its load balancer.
    pub(crate) api: Option<Box<Target>>,
}

impl Target {
    /// Parses `scheme://host[:port][/]` with scheme http, https, ws or wss.
    pub(crate) fn parse(url: &str) -> Result<Target, BenchError> {
        let bad = |why: &str| Err(BenchError::InvalidArgs(format!("--url {url:?}: {why}")));
        let Some((scheme, rest)) = url.split_once("://") else {
            return bad("no scheme (expected http://HOST:PORT)");
        };
        let tls = match scheme {
            "http" | "ws" => false,
            "https" | "wss" => true,
            _ => return bad("unsupported scheme"),
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return bad("expected only HOST:PORT after the scheme");
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return bad("unclosed [");
            };
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => match p.parse() {
                Ok(p) => p,
                Err(_) => return bad("bad port"),
            },
            None if tls => 443,
            None => 80,
        };
        if host.is_empty() {
            return bad("no host");
        }
        Ok(Target {
            tls,
            host: host.to_owned(),
            authority: authority.to_owned(),
            port,
            api: None,
        })
    }

    /// `localhost` or a loopback IP literal.
    pub(crate) fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// `ws://HOST/connection/websocket`.
    pub(crate) fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/connection/websocket", self.authority)
    }

    /// `http://HOST/api/METHOD` (of the `--api-url` target when given).
    pub(crate) fn api_url(&self, method: &str) -> String {
        if let Some(api) = &self.api {
            return api.api_url(method);
        }
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/api/{method}", self.authority)
    }

    /// Opens (and closes) one TCP connection: a server that is down fails here, before any
    /// load is generated.
    pub(crate) async fn probe(&self) -> Result<(), BenchError> {
        let addr = (self.host.as_str(), self.port);
        let down = |reason: String| BenchError::ServerDown {
            target: self.authority.clone(),
            reason,
        };
        match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(down(e.to_string())),
            Err(_) => Err(down(format!("no answer within {PROBE_TIMEOUT:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:9000/").unwrap();
        assert_eq!(t.ws_url(), "ws://127.0.0.1:9000/connection/websocket");
        assert_eq!(t.api_url("publish"), "http://127.0.0.1:9000/api/publish");
        assert_eq!(t.port, 9000);
        assert!(t.is_loopback());
        let t = Target::parse("ws://localhost").unwrap();
        assert_eq!(t.api_url("broadcast"), "http://localhost/api/broadcast");
        assert_eq!(t.port, 80);
        let t = Target::parse("https://h").unwrap();
        assert_eq!(t.ws_url(), "wss://h/connection/websocket");
        assert_eq!(t.port, 443);
        assert!(!t.is_loopback());
        let t = Target::parse("http://[::1]:5").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 5));
        assert!(t.is_loopback());
        assert!(Target::parse("127.0.0.2:1").is_err());
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("http://").is_err());
        assert!(Target::parse("http://h:x").is_err());
        assert!(Target::parse("http://h/path").is_err());
        assert!(Target::parse("http://127.0.0.2:1").unwrap().is_loopback());
    }

    #[tokio::test]
    async fn probe_reports_a_closed_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = Target::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        t.probe().await.unwrap();
        drop(listener);
        let err = t.probe().await.unwrap_err();
        assert!(matches!(err, BenchError::ServerDown { .. }), "{err}");
        assert!(err.to_string().contains("refused"), "{err}");
    }
}
