//! Helpers for the queue-consumer end-to-end tests (`pushwire-server/tests/consumers/`):
//! unique names, waiting for an SDK subscriber, the stream top of a channel, reading the result
//! of `sdk-tests/python/consume_ordered.py`, the throughput measurement.

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};

use crate::node_process::NodeProcess;

/// A name no other run uses (process id and clock), lower-case hex.
pub fn unique_name() -> String {
    pushwire_testkit::unique("")
}

/// Polls `presence_stats` through `api` (e.g. `|b| server.api("presence_stats", b)`) until
/// `channel` has a subscriber, i.e. the SDK is ready; panics after 20 s.
pub async fn wait_subscribed<F, Fut>(channel: &str, api: F)
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = (u16, Value)>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = api(json!({"channel": channel})).await;
        if body["result"]["num_clients"].as_u64().unwrap_or(0) > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the SDK never subscribed to {channel}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `n`s `consume_ordered.py` received, in order (`RESULT.ns`).
pub fn received_ns(result: &Value) -> Vec<u64> {
    result["ns"]
        .as_array()
        .expect("RESULT.ns")
        .iter()
        .map(|v| v.as_u64().expect("n"))
        .collect()
}

/// The stream top offset of `channel` on `node` (0 when it cannot be read).
pub async fn history_top(node: &NodeProcess, channel: &str) -> u64 {
    let (_, body) = node
        .api("history", json!({"channel": channel, "limit": 0}))
        .await;
    body["result"]["offset"].as_u64().unwrap_or(0)
}

/// Events per second from a consumer's start until a WebSocket subscriber of `channel` holds
/// all `n` events (`data.n` = 1..=n, checked in order): subscribes on `server`, starts
/// `config` on its node with [`pushwire_consumers::start`], waits, stops it. The events must
/// already be in the source. Prints `THROUGHPUT <type>: …`.
pub async fn measure_throughput(
    server: &crate::TestServer,
    channel: &str,
    config: pushwire_consumers::ConsumerConfig,
    n: u64,
) -> f64 {
    let kind = config.consumer_type.as_str();
    let (mut ws, _) = crate::WsClient::connected(&server.ws_url(), None).await;
    let reply = ws.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(reply.get("error").is_none(), "{reply}");
    let stop = tokio_util::sync::CancellationToken::new();
    let started = std::time::Instant::now();
    let consumers = pushwire_consumers::start(
        server.node().clone(),
        pushwire_server::api::consumer::ConsumerApi::shared(server.node().clone()),
        &[config],
        stop,
    );
    for i in 1..=n {
        let p = tokio::time::timeout(Duration::from_secs(60), ws.next_publication(channel))
            .await
            .unwrap_or_else(|_| panic!("stalled after {} of {n}", i - 1));
        assert_eq!(p["data"]["n"], json!(i), "order");
    }
    let elapsed = started.elapsed();
    consumers.stop().await;
    let rate = n as f64 / elapsed.as_secs_f64();
    println!("THROUGHPUT {kind}: {n} events in {elapsed:?}: {rate:.0} events/s");
    rate
}

/// `PUSHWIRE_CONSUMER_BENCH_N`, default 20000: events per throughput run.
pub fn bench_n() -> u64 {
    std::env::var("PUSHWIRE_CONSUMER_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}
