//! One-off server API calls (the reconnect storm's `disconnect`).

use std::time::Duration;

/// Timeout of one API call.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs `body` to `url` with `X-API-Key`; `Err` describes a transport error, a non-200 or an
/// `error` reply.
pub(crate) async fn call(url: &str, api_key: &str, body: serde_json::Value) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(API_TIMEOUT)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let resp = client
        .post(url)
        .header("X-API-Key", api_key)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url}: HTTP {status}: {text}"));
    }
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) if v.get("error").is_none() => Ok(()),
        Ok(v) => Err(format!("{url}: API error: {}", v["error"])),
        Err(e) => Err(format!("{url}: bad reply ({e}): {text}")),
    }
}
