//! `pushwire pub CHANNEL DATA`: publish through the server HTTP API (`POST <api-url>/publish`).
//!
//! `DATA` is one JSON value; `-` reads standard input and publishes every non-empty line as
//! one publication, in order. Errors (invalid JSON, an API error reply, a non-200 status, an
//! unreachable server) are reported on standard error; the exit code is non-zero when any
//! publication failed. Each successful publication prints nothing, so the command stays quiet
//! in pipelines.

use std::io::BufRead;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::value::RawValue;

/// `pushwire pub` options.
#[derive(Debug, clap::Args)]
pub struct PubArgs {
    /// Channel to publish into.
    pub channel: String,
    /// The publication: one JSON value, or `-` to publish each line of standard input.
    pub data: String,
    /// Server API base URL (the method name is appended).
    #[arg(
        long,
        env = "PUSHWIRE_API_URL",
        default_value = "http://127.0.0.1:8000/api"
    )]
    pub api_url: String,
    /// API key (`http_api.key`), sent as `X-API-Key`.
    #[arg(long, env = "PUSHWIRE_API_KEY")]
    pub api_key: Option<String>,
    /// Timeout of each API call, in seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

/// Publishes one JSON value; the error says what the API answered.
async fn publish(
    http: &reqwest::Client,
    args: &PubArgs,
    url: &str,
    data: &str,
) -> anyhow::Result<()> {
    let data: &RawValue = serde_json::from_str(data).context("DATA is not valid JSON")?;
    let body = serde_json::json!({ "channel": args.channel, "data": data });
    let mut req = http
        .post(url)
        .timeout(Duration::from_secs(args.timeout))
        .json(&body);
    if let Some(key) = &args.api_key {
        req = req.header("X-API-Key", key);
    }
    let resp = req.send().await.with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("POST {url}: HTTP {status} {}", text.trim());
    }
    let reply: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("POST {url}: not JSON: {text}"))?;
    if let Some(e) = reply.get("error") {
        bail!("publish failed: {} ({})", e["message"], e["code"]);
    }
    Ok(())
}

/// Runs `pushwire pub`.
pub async fn run(args: PubArgs) -> anyhow::Result<()> {
    let url = format!("{}/publish", args.api_url.trim_end_matches('/'));
    reqwest::Url::parse(&url).with_context(|| format!("invalid --api-url `{}`", args.api_url))?;
    let http = reqwest::Client::new();
    if args.data != "-" {
        return publish(&http, &args, &url, &args.data).await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(64);
    let reader = tokio::task::spawn_blocking(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    let (mut ok, mut failed) = (0u64, 0u64);
    while let Some(line) = rx.recv().await {
        let line = line.context("reading standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        match publish(&http, &args, &url, &line).await {
            Ok(()) => ok += 1,
            Err(e) => {
                failed += 1;
                eprintln!("publication {}: {e:#}", ok + failed);
            }
        }
    }
    let _ = reader.await;
    if failed > 0 {
        bail!("{failed} of {} publications failed", ok + failed);
    }
    Ok(())
}
