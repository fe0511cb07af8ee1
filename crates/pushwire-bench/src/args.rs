//! Command-line options of `pushwire bench`.

use anyhow::{bail, Result};

/// Options of `pushwire bench`: how many subscribers to open, how fast to publish and what to
/// measure.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Server base URL (http://HOST:PORT); the WebSocket URL is derived from it.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// HTTP API key, sent as `X-API-Key` with every publish.
    #[arg(long, default_value = "")]
    pub api_key: String,
    /// Connection JWT sent in `connect`; anonymous connect when absent.
    #[arg(long)]
    pub token: Option<String>,
    /// Number of WebSocket subscribers to open.
    #[arg(long, default_value_t = 1000)]
    pub connections: u32,
    /// Channel every subscriber joins and every publication goes to.
    #[arg(long, default_value = "bench")]
    pub channel: String,
    /// Publications per second.
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// Seconds of publishing (or of holding the connections with `--idle`).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Approximate size in bytes of each publication's `data` object (padded).
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,
    /// Connections opened per second (0: as fast as possible).
    #[arg(long, default_value_t = 2000)]
    pub connect_rate: u32,
    /// Seconds to wait after all subscribers are in before measuring or publishing.
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// Only connect, subscribe and hold for `--duration` (memory measurement); no publishing.
    #[arg(long)]
    pub idle: bool,
    /// Server process id: its VmRSS is read before connecting and after all are subscribed.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    /// Rejects option combinations that cannot run.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.rate == 0 && !self.idle {
            bail!("--rate must be at least 1 (or use --idle)");
        }
        if self.channel.is_empty() {
            bail!("--channel must not be empty");
        }
        Ok(())
    }

    /// Total number of publications: `rate × duration`.
    pub(crate) fn publications(&self) -> u64 {
        u64::from(self.rate) * self.duration
    }

    /// `ws://HOST/connection/websocket` derived from `--url`.
    pub(crate) fn ws_url(&self) -> Result<String> {
        let (scheme, rest) = split_scheme(&self.url)?;
        let ws = if is_tls(scheme) { "wss" } else { "ws" };
        Ok(format!("{ws}://{rest}/connection/websocket"))
    }

    /// `http://HOST/api/publish` derived from `--url`.
    pub(crate) fn publish_url(&self) -> Result<String> {
        let (scheme, rest) = split_scheme(&self.url)?;
        let http = if is_tls(scheme) { "https" } else { "http" };
        Ok(format!("{http}://{rest}/api/publish"))
    }
}

fn is_tls(scheme: &str) -> bool {
    matches!(scheme, "https" | "wss")
}

/// Splits `scheme://rest` (trailing `/` dropped from `rest`), accepting http(s) and ws(s).
fn split_scheme(url: &str) -> Result<(&str, &str)> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("--url {url:?} has no scheme (expected http://HOST:PORT)");
    };
    if !matches!(scheme, "http" | "https" | "ws" | "wss") {
        bail!("--url {url:?}: unsupported scheme {scheme:?}");
    }
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        bail!("--url {url:?} has no host");
    }
    Ok((scheme, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> BenchArgs {
        Cli::parse_from(std::iter::once("bench").chain(args.iter().copied())).bench
    }

    #[test]
    fn defaults() {
        let a = parse(&[]);
        assert_eq!(a.url, "http://127.0.0.1:8000");
        assert_eq!(a.api_key, "");
        assert_eq!(a.token, None);
        assert_eq!(a.connections, 1000);
        assert_eq!(a.channel, "bench");
        assert_eq!(a.rate, 20);
        assert_eq!(a.duration, 10);
        assert_eq!(a.payload_bytes, 64);
        assert_eq!(a.connect_rate, 2000);
        assert_eq!(a.warmup, 1);
        assert!(!a.idle && !a.json);
        assert_eq!(a.server_pid, None);
        assert_eq!(a.publications(), 200);
        a.validate().unwrap();
    }

    #[test]
    fn urls() {
        let a = parse(&["--url", "http://127.0.0.1:9000/"]);
        assert_eq!(
            a.ws_url().unwrap(),
            "ws://127.0.0.1:9000/connection/websocket"
        );
        assert_eq!(
            a.publish_url().unwrap(),
            "http://127.0.0.1:9000/api/publish"
        );
        let a = parse(&["--url", "ws://localhost:1"]);
        assert_eq!(a.publish_url().unwrap(), "http://localhost:1/api/publish");
        let a = parse(&["--url", "https://h"]);
        assert_eq!(a.ws_url().unwrap(), "wss://h/connection/websocket");
        assert!(parse(&["--url", "127.0.0.1:8000"]).ws_url().is_err());
        assert!(parse(&["--url", "ftp://x"]).ws_url().is_err());
        assert!(parse(&["--url", "http://"]).ws_url().is_err());
    }

    #[test]
    fn flags_and_validation() {
        let a = parse(&[
            "--idle",
            "--rate",
            "0",
            "--server-pid",
            "42",
            "--json",
            "--token",
            "t",
        ]);
        assert!(a.idle && a.json);
        assert_eq!(a.server_pid, Some(42));
        assert_eq!(a.token.as_deref(), Some("t"));
        a.validate().unwrap();
        assert!(parse(&["--rate", "0"]).validate().is_err());
    }
}
