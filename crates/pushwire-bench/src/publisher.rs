//! Publishing through the server HTTP API at a fixed rate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::pace::schedule_offset;
use crate::stats::unix_nanos;

/// Publish requests in flight at once; beyond that the publisher falls behind its rate.
const MAX_IN_FLIGHT: usize = 64;
/// Timeout of one publish request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What to publish and where.
pub(crate) struct PublishPlan {
    /// `http://HOST/api/publish`.
    pub(crate) url: String,
    /// Sent as `X-API-Key`.
    pub(crate) api_key: String,
    /// Target channel.
    pub(crate) channel: String,
    /// Publications per second.
    pub(crate) rate: u32,
    /// Number of publications.
    pub(crate) count: u64,
    /// Approximate size of each `data` object.
    pub(crate) payload_bytes: usize,
}

/// What the publisher achieved.
#[derive(Debug, Default)]
pub(crate) struct PublishOutcome {
    /// Publications the API accepted.
    pub(crate) sent: u64,
    /// Failed publish requests.
    pub(crate) errors: u64,
    /// The first failure.
    pub(crate) first_error: Option<String>,
    /// Wall time from the first request to the last response.
    pub(crate) secs: f64,
}

impl PublishOutcome {
    fn record(&mut self, result: Result<(), String>) {
        match result {
            Ok(()) => self.sent += 1,
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

#[derive(Deserialize)]
struct ApiReply {
    error: Option<serde_json::Value>,
}

/// Sends `plan.count` publications, publication `n` scheduled at `n / rate` seconds, each
/// carrying `seq = n` and its send time `ts` in Unix nanoseconds.
pub(crate) async fn publish(plan: PublishPlan) -> Result<PublishOutcome> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .tcp_nodelay(true)
        .build()?;
    let channel_json: Arc<str> = serde_json::to_string(&plan.channel)?.into();
    let url: Arc<str> = plan.url.into();
    let api_key: Arc<str> = plan.api_key.into();
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let mut outcome = PublishOutcome::default();
    let start = Instant::now();

    for seq in 0..plan.count {
        let due = start + schedule_offset(seq, plan.rate);
        tokio::time::sleep_until(due).await;
        let permit = in_flight.clone().acquire_owned().await?;
        let (client, url, api_key, channel_json) = (
            client.clone(),
            url.clone(),
            api_key.clone(),
            channel_json.clone(),
        );
        let payload_bytes = plan.payload_bytes;
        tasks.spawn(async move {
            let body = publish_body(&channel_json, unix_nanos(), seq, payload_bytes);
            let result = send(&client, &url, &api_key, body).await;
            drop(permit);
            result
        });
        while let Some(done) = tasks.try_join_next() {
            outcome.record(done.map_err(|e| e.to_string()).and_then(|r| r));
        }
    }
    while let Some(done) = tasks.join_next().await {
        outcome.record(done.map_err(|e| e.to_string()).and_then(|r| r));
    }
    outcome.secs = start.elapsed().as_secs_f64();
    Ok(outcome)
}

/// One publish request; `Err` describes a transport error, a non-200 or an error reply.
async fn send(
    client: &reqwest::Client,
    url: &str,
    api_key: &str,
    body: String,
) -> Result<(), String> {
    let resp = client
        .post(url)
        .header("X-API-Key", api_key)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("publish request: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("publish response: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    match serde_json::from_slice::<ApiReply>(&bytes) {
        Ok(ApiReply { error: None }) => Ok(()),
        Ok(ApiReply { error: Some(e) }) => Err(format!("API error: {e}")),
        Err(e) => Err(format!(
            "bad publish response ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )),
    }
}

/// Request body `{"channel":…,"data":{"ts":…,"seq":…,"pad":"xx…"}}` whose `data` object is
/// padded to `payload_bytes` (or left minimal when that is smaller). `channel_json` is the
/// channel already encoded as a JSON string.
pub(crate) fn publish_body(channel_json: &str, ts: u64, seq: u64, payload_bytes: usize) -> String {
    let head = format!(r#"{{"ts":{ts},"seq":{seq},"pad":""#);
    const TAIL: &str = r#""}"#;
    let pad = payload_bytes.saturating_sub(head.len() + TAIL.len());
    let mut body = String::with_capacity(32 + channel_json.len() + head.len() + pad + 4);
    body.push_str(r#"{"channel":"#);
    body.push_str(channel_json);
    body.push_str(r#","data":"#);
    body.push_str(&head);
    body.extend(std::iter::repeat_n('x', pad));
    body.push_str(TAIL);
    body.push('}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_len(body: &str) -> usize {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        serde_json::to_string(&v["data"]).unwrap().len()
    }

    #[test]
    fn body_is_padded_to_payload_size() {
        let ts = 1_700_000_000_123_456_789;
        let body = publish_body(r#""bench""#, ts, 7, 64);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["channel"], "bench");
        assert_eq!(v["data"]["ts"], ts);
        assert_eq!(v["data"]["seq"], 7);
        assert_eq!(data_len(&body), 64);
        assert_eq!(data_len(&publish_body(r#""b""#, ts, 123_456, 1000)), 1000);
    }

    #[test]
    fn small_payload_keeps_fields() {
        let body = publish_body(r#""bench""#, 1, 2, 0);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"]["pad"], "");
        assert_eq!(v["data"]["seq"], 2);
    }
}
