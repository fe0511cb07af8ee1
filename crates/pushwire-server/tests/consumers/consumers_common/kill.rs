//! Shared scenarios: a node killed (SIGKILL) mid-stream and started again delivers every
//! event exactly once, in order, from the client's point of view (Redis engine: history,
//! epoch and idempotency keys survive the restart).

use std::time::Duration;

use pushwire_consumers::Mode;
use pushwire_test_support::consume::history_top;
use pushwire_test_support::node_process::{run_python_at, NodeProcess};

use super::source::{body, labels, Redelivering, Sent, Source};
use super::{
    metric_at, ns, redis_engine_config, unique, wait_subscribed, KILL_AT, KILL_N, REDELIVER_FROM,
    RESTART_AT,
};

/// Events in the burst scenario.
const BURST_N: u64 = 1500;
/// The burst scenario kills the node once this many events are in history.
const BURST_KILL_AT: u64 = 400;

/// 300 events at about one per 5 ms; the node is killed after event 120 and started again
/// after event 180; meanwhile the source hands events 91..=120 to the consumer again
/// ([`Redelivering::redeliver`]), as after a crash between publish and acknowledgement. A
/// centrifuge-python subscriber gets 1..=300 once each, in order, having resubscribed; the
/// restarted node counts the redeliveries as duplicates suppressed by the idempotency key.
pub async fn killed_node_delivers_every_event_once<S: Redelivering>(source: &S, mode: Mode) {
    let (consumer, channel) = source.consumer("orders", S::ADDR, "big", mode);
    let labels = labels(&consumer);
    let mut config = redis_engine_config(&unique());
    config.consumers = vec![consumer];
    let mut node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;
    source.wait_ready().await;

    let (ws, http) = (node.ws_url(), node.http_url());
    let count = KILL_N.to_string();
    let args = ["python/consume_ordered.py", &channel, &count, "40"];
    let sdk = run_python_at(&args, &ws, &http);
    let produce_all = async {
        wait_subscribed(&channel, |b| node.api("presence_stats", b)).await;
        let mut sent = Vec::new();
        for n in 1..=KILL_N {
            let (body, key) = (body(mode, &channel, n), format!("{channel}-{n}"));
            let receipt = source.produce(&body, &key).await;
            sent.push(Sent { body, key, receipt });
            if n == KILL_AT {
                // Let the consumer get into the middle of what was written, then crash it.
                tokio::time::sleep(Duration::from_millis(30)).await;
                node.kill().await;
                source.redeliver(&sent, REDELIVER_FROM as usize - 1).await;
            }
            if n == RESTART_AT {
                node.restart().await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (run, ()) = tokio::join!(sdk, produce_all);
    let result = run.result();
    assert_eq!(
        ns(&result),
        (1..=KILL_N).collect::<Vec<_>>(),
        "every event exactly once, in order\n{}",
        node.log()
    );
    assert!(
        result["resubscribes"].as_u64().unwrap_or(0) >= 1,
        "the SDK reconnected to the restarted node and recovered: {result}"
    );
    let dups = metric_at(
        &node.http_url(),
        &format!("pushwire_consumer_duplicates_total{labels}"),
    )
    .await;
    assert!(
        dups > KILL_AT - REDELIVER_FROM,
        "redeliveries suppressed by the idempotency key: {dups}"
    );
    drop(node);
    source.cleanup().await;
}

/// 1500 events written as fast as the source takes them; once 400 are in history the node is
/// killed (messages fetched, some processed and not yet acknowledged or committed) and
/// started again 300 ms later. A centrifuge-python subscriber gets 1..=1500 once each, in
/// order, having resubscribed; the restarted node re-read what the dead one had not
/// acknowledged: nothing failed, what it received is what it published plus the duplicates
/// its idempotency keys suppressed, and it resumed mid-stream.
pub async fn killed_mid_burst_delivers_every_event_once<S: Source>(source: &S, mode: Mode) {
    let (consumer, channel) = source.consumer("burst", S::ADDR, "big", mode);
    let labels = labels(&consumer);
    let mut config = redis_engine_config(&unique());
    // A subscriber that falls behind while the node is down recovers all of it.
    config.client.recovery_max_publication_limit = 10_000;
    config.consumers = vec![consumer];
    let mut node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;

    let (ws, http) = (node.ws_url(), node.http_url());
    let count = BURST_N.to_string();
    let args = ["python/consume_ordered.py", &channel, &count, "45"];
    let sdk = run_python_at(&args, &ws, &http);
    let driver = async {
        wait_subscribed(&channel, |b| node.api("presence_stats", b)).await;
        let messages: Vec<(Vec<u8>, String)> = (1..=BURST_N)
            .map(|n| (body(mode, &channel, n), format!("{channel}-{n}")))
            .collect();
        let write = source.produce_all(&messages);
        // Crash the node while the consumer is in the middle of the burst, start it again.
        let crash = async {
            while history_top(&node, &channel).await < BURST_KILL_AT {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            node.kill().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            node.restart().await;
        };
        tokio::join!(write, crash);
    };
    let (run, ()) = tokio::join!(sdk, driver);
    let result = run.result();
    assert_eq!(
        ns(&result),
        (1..=BURST_N).collect::<Vec<_>>(),
        "every event exactly once, in order\n{}",
        node.log()
    );
    assert!(
        result["resubscribes"].as_u64().unwrap_or(0) >= 1,
        "the SDK reconnected to the restarted node and recovered: {result}"
    );
    let http = node.http_url();
    let value = |name: &str| {
        let series = format!("pushwire_consumer_{name}{labels}");
        let http = http.clone();
        async move { metric_at(&http, &series).await }
    };
    let (received, published, duplicates, failed) = (
        value("received_total").await,
        value("published_total").await,
        value("duplicates_total").await,
        value("failed_total").await,
    );
    println!("restarted node: received {received}, published {published}, duplicates {duplicates}");
    assert_eq!(failed, 0);
    assert_eq!(received, published + duplicates);
    assert!(
        published > 0 && published < BURST_N,
        "the restarted node resumed mid-stream"
    );
    drop(node);
    source.cleanup().await;
}
