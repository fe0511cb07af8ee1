//! Publishing through the server HTTP API at a fixed rate: `publish` to one channel, or
//! `broadcast` to many.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::pace::schedule_offset;
use crate::stats::{unix_nanos, Stats};

/// Publish requests in flight at once; beyond that the publisher falls behind its rate.
pub(crate) const MAX_IN_FLIGHT: usize = 64;
/// Timeout of one publish request.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most channels in one `broadcast` request.
pub(crate) const BROADCAST_CHUNK: usize = 1000;

/// Where publications go.
pub(crate) enum Channels {
    /// `publish` to this channel.
    One(String),
    /// `broadcast` to these channels, split into requests of at most [`BROADCAST_CHUNK`].
    Many(Vec<String>),
}

/// What to publish and where.
pub(crate) struct PublishPlan {
    /// `http://HOST/api/` (the method name is appended).
    pub(crate) api_base: String,
    /// Sent as `X-API-Key`.
    pub(crate) api_key: String,
    /// Target channels.
    pub(crate) channels: Channels,
    /// Publications per second (per channel).
    pub(crate) rate: u32,
    /// Publications per channel.
    pub(crate) count: u64,
    /// Approximate size of each `data` object.
    pub(crate) payload_bytes: usize,
    /// `data` is a realistic document ([`document_body`]) instead of a padded object.
    pub(crate) document: bool,
    /// Publish with `delta: true`.
    pub(crate) delta: bool,
}

/// What the publisher achieved.
#[derive(Debug, Default)]
pub(crate) struct PublishOutcome {
    /// Publications the server accepted, one per channel.
    pub(crate) sent: u64,
    /// Failed publications (a failed request counts once per channel it carried).
    pub(crate) errors: u64,
    /// The first failure.
    pub(crate) first_error: Option<String>,
    /// Wall time from the first request to the last response.
    pub(crate) secs: f64,
    /// Stopped before the plan was done (`abort`).
    pub(crate) aborted: bool,
}

/// Result of one request: accepted and failed publications, and an error description.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestOutcome {
    /// Publications accepted.
    pub(crate) ok: u64,
    /// Publications refused or lost with the request.
    pub(crate) failed: u64,
    /// What went wrong first.
    pub(crate) error: Option<String>,
}

impl PublishOutcome {
    /// Adds one request's outcome.
    pub(crate) fn record(&mut self, r: RequestOutcome) {
        self.sent += r.ok;
        self.errors += r.failed;
        if let Some(e) = r.error {
            self.first_error.get_or_insert(e);
        }
    }
}

#[derive(Deserialize)]
struct ApiReply {
    error: Option<serde_json::Value>,
    result: Option<BroadcastResult>,
}

#[derive(Deserialize)]
struct BroadcastResult {
    #[serde(default)]
    responses: Vec<ApiReplyItem>,
}

#[derive(Deserialize)]
struct ApiReplyItem {
    error: Option<serde_json::Value>,
}

/// One prepared request target: the URL and the body prefix (everything before `"data":`).
struct Request {
    url: Arc<str>,
    head: Arc<str>,
    channels: u64,
}

/// Sends `plan.count` rounds, round `n` scheduled at `n / rate` seconds; each publication
/// carries `seq = n` and its send time `ts` in Unix nanoseconds. Accepted publications are
/// added to `stats` as they are confirmed. Stops early when `abort` turns true.
pub(crate) async fn publish(
    plan: PublishPlan,
    stats: Arc<Stats>,
    abort: watch::Receiver<bool>,
) -> Result<PublishOutcome, String> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let requests = prepare(&plan)?;
    let api_key: Arc<str> = plan.api_key.into();
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let mut outcome = PublishOutcome::default();
    let start = Instant::now();

    'rounds: for seq in 0..plan.count {
        tokio::time::sleep_until(start + schedule_offset(seq, plan.rate)).await;
        for req in &requests {
            if *abort.borrow() {
                outcome.aborted = true;
                break 'rounds;
            }
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break 'rounds;
            };
            let (client, url, head, api_key, stats) = (
                client.clone(),
                req.url.clone(),
                req.head.clone(),
                api_key.clone(),
                stats.clone(),
            );
            let (channels, payload_bytes) = (req.channels, plan.payload_bytes);
            let (document, delta) = (plan.document, plan.delta);
            tasks.spawn(async move {
                let ts = unix_nanos();
                let mut body = if document {
                    document_body(&head, ts, seq, payload_bytes)
                } else {
                    request_body(&head, ts, seq, payload_bytes)
                };
                if delta {
                    body.pop();
                    body.push_str(r#","delta":true}"#);
                }
                let result = send(&client, &url, &api_key, body, channels).await;
                stats.add_sent(result.ok);
                drop(permit);
                result
            });
        }
        while let Some(done) = tasks.try_join_next() {
            outcome.record(done.unwrap_or_else(join_failure));
        }
    }
    while let Some(done) = tasks.join_next().await {
        outcome.record(done.unwrap_or_else(join_failure));
    }
    outcome.secs = start.elapsed().as_secs_f64();
    Ok(outcome)
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "an `unwrap_or_else` adapter: it is handed the error by value"
)]
pub(crate) fn join_failure(e: tokio::task::JoinError) -> RequestOutcome {
    RequestOutcome {
        ok: 0,
        failed: 1,
        error: Some(format!("publish task: {e}")),
    }
}

/// The requests of one round.
fn prepare(plan: &PublishPlan) -> Result<Vec<Request>, String> {
    match &plan.channels {
        Channels::One(channel) => Ok(vec![Request {
            url: format!("{}publish", plan.api_base).into(),
            head: format!(r#"{{"channel":{}"#, to_json(channel)?).into(),
            channels: 1,
        }]),
        Channels::Many(channels) => channels
            .chunks(BROADCAST_CHUNK)
            .map(|chunk| {
                Ok(Request {
                    url: format!("{}broadcast", plan.api_base).into(),
                    head: format!(r#"{{"channels":{}"#, to_json(chunk)?).into(),
                    channels: chunk.len() as u64,
                })
            })
            .collect(),
    }
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| e.to_string())
}

/// One publish or broadcast request carrying `channels` publications.
pub(crate) async fn send(
    client: &reqwest::Client,
    url: &str,
    api_key: &str,
    body: String,
    channels: u64,
) -> RequestOutcome {
    let failed = |error: String| RequestOutcome {
        ok: 0,
        failed: channels,
        error: Some(error),
    };
    let resp = match client
        .post(url)
        .header("X-API-Key", api_key)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(resp) => resp,
        Err(e) => return failed(format!("publish request: {e}")),
    };
    let status = resp.status();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return failed(format!("publish response: {e}")),
    };
    if !status.is_success() {
        return failed(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    parse_reply(&bytes, channels)
}

/// Counts accepted and failed publications in a `publish` or `broadcast` reply.
fn parse_reply(bytes: &[u8], channels: u64) -> RequestOutcome {
    let failed = |error: String| RequestOutcome {
        ok: 0,
        failed: channels,
        error: Some(error),
    };
    let reply = match serde_json::from_slice::<ApiReply>(bytes) {
        Ok(r) => r,
        Err(e) => {
            return failed(format!(
                "bad publish response ({e}): {}",
                String::from_utf8_lossy(bytes)
            ))
        }
    };
    if let Some(e) = reply.error {
        return failed(format!("API error: {e}"));
    }
    let Some(BroadcastResult { responses }) = reply.result.filter(|_| channels > 1) else {
        return RequestOutcome {
            ok: channels,
            ..Default::default()
        };
    };
    let mut out = RequestOutcome::default();
    for item in &responses {
        match &item.error {
            None => out.ok += 1,
            Some(e) => {
                out.failed += 1;
                out.error.get_or_insert_with(|| format!("API error: {e}"));
            }
        }
    }
    let missing = channels.saturating_sub(responses.len() as u64);
    if missing > 0 {
        out.failed += missing;
        out.error
            .get_or_insert_with(|| format!("broadcast reply lacks {missing} responses"));
    }
    out
}

/// Request body `HEAD,"data":{"ts":…,"seq":…,"pad":"xx…"}}` whose `data` object is padded to
/// `payload_bytes` (or left minimal when that is smaller). `head` is the start of the JSON
/// object up to the target: `{"channel":"c"` or `{"channels":[…]`.
pub(crate) fn request_body(head: &str, ts: u64, seq: u64, payload_bytes: usize) -> String {
    let data = padded_data(ts, seq, payload_bytes);
    let mut body = String::with_capacity(16 + head.len() + data.len());
    body.push_str(head);
    body.push_str(r#","data":"#);
    body.push_str(&data);
    body.push('}');
    body
}

/// The publication's `data` object `{"ts":…,"seq":…,"pad":"xx…"}`, padded to `payload_bytes`
/// (or left minimal when that is smaller).
pub(crate) fn padded_data(ts: u64, seq: u64, payload_bytes: usize) -> String {
    let data_head = format!(r#"{{"ts":{ts},"seq":{seq},"pad":""#);
    const TAIL: &str = r#""}"#;
    let pad = payload_bytes.saturating_sub(data_head.len() + TAIL.len());
    let mut data = String::with_capacity(data_head.len() + pad + TAIL.len());
    data.push_str(&data_head);
    data.extend(std::iter::repeat_n('x', pad));
    data.push_str(TAIL);
    data
}

/// Request body `HEAD,"data":{"ts":…,"seq":…,"rows":[…]}}`: a dashboard of rows that fills
/// about `payload_bytes`, where each publication changes `ts`, `seq`, one row's `price` and
/// another row's `volume` — what delta compression and permessage-deflate are for.
fn document_body(head: &str, ts: u64, seq: u64, payload_bytes: usize) -> String {
    use std::fmt::Write as _;
    const ROW: usize = 100;
    let rows = (payload_bytes.saturating_sub(48) / ROW).max(1) as u64;
    let mut body = String::with_capacity(head.len() + payload_bytes + 64);
    body.push_str(head);
    let _ = write!(body, r#","data":{{"ts":{ts},"seq":{seq},"rows":["#);
    for i in 0..rows {
        let price = if i == seq % rows {
            1000 + seq
        } else {
            1000 + i
        };
        let volume = if i == (seq + 5) % rows {
            seq * 7
        } else {
            i * 100
        };
        if i > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"id":{i},"name":"instrument {i:03}","venue":"primary exchange, continuous","price":{price},"volume":{volume}}}"#
        );
    }
    body.push_str("]}}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_fills_the_payload_and_changes_a_few_fields() {
        let a: serde_json::Value =
            serde_json::from_str(&document_body(r#"{"channel":"c""#, 1, 7, 2048)).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(&document_body(r#"{"channel":"c""#, 2, 8, 2048)).unwrap();
        let len = serde_json::to_string(&a["data"]).unwrap().len();
        assert!((1800..=2100).contains(&len), "{len}");
        assert_eq!(a["data"]["seq"], 7);
        let rows = |v: &serde_json::Value| v["data"]["rows"].as_array().unwrap().clone();
        let changed = rows(&a)
            .iter()
            .zip(rows(&b))
            .filter(|(x, y)| *x != y)
            .count();
        assert!(changed <= 4, "{changed} rows changed");
    }

    fn data_len(body: &str) -> usize {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        serde_json::to_string(&v["data"]).unwrap().len()
    }

    #[test]
    fn body_is_padded_to_payload_size() {
        let ts = 1_700_000_000_123_456_789;
        let body = request_body(r#"{"channel":"bench""#, ts, 7, 64);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["channel"], "bench");
        assert_eq!(v["data"]["ts"], ts);
        assert_eq!(v["data"]["seq"], 7);
        assert_eq!(data_len(&body), 64);
        assert_eq!(
            data_len(&request_body(r#"{"channel":"b""#, ts, 123_456, 1000)),
            1000
        );
    }

    #[test]
    fn small_payload_keeps_fields() {
        let body = request_body(r#"{"channel":"bench""#, 1, 2, 0);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"]["pad"], "");
        assert_eq!(v["data"]["seq"], 2);
    }

    #[test]
    fn broadcast_requests_are_chunked() {
        let plan = PublishPlan {
            api_base: "http://h/api/".into(),
            api_key: String::new(),
            channels: Channels::Many((0..2500).map(|i| format!("c-{i}")).collect()),
            rate: 1,
            count: 1,
            payload_bytes: 0,
            document: false,
            delta: false,
        };
        let reqs = prepare(&plan).unwrap();
        assert_eq!(reqs.len(), 3);
        assert_eq!(&*reqs[0].url, "http://h/api/broadcast");
        assert_eq!(
            reqs.iter().map(|r| r.channels).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        let body = request_body(&reqs[2].head, 1, 2, 0);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["channels"][0], "c-2000");
        assert_eq!(v["data"]["seq"], 2);
    }

    #[test]
    fn replies_are_counted_per_channel() {
        assert_eq!(
            parse_reply(br#"{"result":{}}"#, 1),
            RequestOutcome {
                ok: 1,
                ..Default::default()
            }
        );
        let r = parse_reply(br#"{"error":{"code":102,"message":"unknown channel"}}"#, 1);
        assert_eq!((r.ok, r.failed), (0, 1));
        assert!(r.error.unwrap().contains("102"));
        let r = parse_reply(
            br#"{"result":{"responses":[{"result":{}},{"error":{"code":102}},{"result":{}}]}}"#,
            4,
        );
        assert_eq!((r.ok, r.failed), (2, 2));
        assert!(r.error.unwrap().contains("102"));
        assert_eq!(parse_reply(b"nope", 3).failed, 3);
    }
}
