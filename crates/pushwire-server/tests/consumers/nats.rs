//! The NATS JetStream consumer end to end: events written to a stream with `async-nats` reach
//! a real centrifuge-python subscriber in order; a poison message is dead-lettered and later
//! messages still flow; a node killed (SIGKILL) mid-stream and started again loses and
//! doubles nothing from the client's point of view (Redis engine: history, epoch and
//! idempotency keys survive the restart).
//!
//! Needs NATS with JetStream on 127.0.0.1:4222, Redis on 127.0.0.1:6379 and the SDKs
//! (`scripts/setup-sdks.sh`).

use crate::consumers_common;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use pushwire_consumers::nats_jetstream::NatsJetStreamSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_server::config::EngineKind;
use pushwire_test_support::consume::{
    bench_n, consumer_metric, history_top, keep_history, measure_throughput, metrics_text,
    received_ns, unique_name, wait_subscribed,
};
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::node_process::{run_python_at, NodeProcess};
use pushwire_test_support::sdk::{run_in, sdk_dir};
use pushwire_test_support::{test_config, TestServer, WsClient};
use serde_json::json;

const NATS_URL: &str = "nats://127.0.0.1:4222";
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// JetStream on the local NATS; a clear failure when it is not running.
async fn jetstream() -> jetstream::Context {
    let client = async_nats::connect(NATS_URL).await.unwrap_or_else(|e| {
        panic!("NATS is not reachable at {NATS_URL} ({e}): start `nats-server -js -a 127.0.0.1` (see ../shared/reference/real-peers.md)")
    });
    jetstream::new(client)
}

/// A stream `name` capturing `subjects`, created fresh.
async fn create_stream(js: &jetstream::Context, name: &str, subjects: Vec<String>) {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("create stream {name} (is JetStream enabled, -js?): {e}"));
}

/// Publishes `body` to `subject` and waits for the stream's acknowledgement; the stream
/// sequence.
async fn produce(js: &jetstream::Context, subject: &str, body: Vec<u8>) -> u64 {
    js.publish(subject.to_owned(), body.into())
        .await
        .expect("publish")
        .await
        .expect("stream ack")
        .sequence
}

/// An event with `n`, as the producer writes it.
fn event(n: u64) -> Vec<u8> {
    json!({"type": "order", "n": n}).to_string().into_bytes()
}

/// A route-mode NATS consumer `name` publishing every message of `stream` into `channel`
/// (tag `type`), dead-lettering to `dead_letter_subject`.
fn consumer(name: &str, stream: &str, subject: &str, channel: &str, dl: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(name, ConsumerType::NatsJetstream);
    c.mode = Mode::Route;
    c.route = RouteConfig {
        channel: channel.into(),
        tag_field: "type".into(),
        skip_history: false,
    };
    c.nats_jetstream = Some(NatsJetStreamSettings {
        url: NATS_URL.into(),
        stream: stream.into(),
        durable_consumer_name: "pushwire".into(),
        subjects: vec![subject.into()],
        ack_wait: Duration::from_secs(2),
        dead_letter_subject: dl.into(),
        ..Default::default()
    });
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_events_reach_a_python_subscriber_in_order_and_poison_is_dead_lettered() {
    let id = unique_name();
    let (stream, subject, dl_stream, dl_subject) = (
        format!("PWT_{id}"),
        format!("pwt_{id}.orders"),
        format!("PWT_{id}_DL"),
        format!("pwt_{id}_dl"),
    );
    let channel = format!("chat:nats-{id}");
    let js = jetstream().await;
    create_stream(&js, &stream, vec![format!("pwt_{id}.>")]).await;
    create_stream(&js, &dl_stream, vec![dl_subject.clone()]).await;

    let config = consumer("nats", &stream, &subject, &channel, &dl_subject);
    let server = TestServer::start_with(|c| c.consumers = vec![config]).await;
    const N: u64 = 40;
    const POISON_AFTER: u64 = 10;
    let (dir, count) = (sdk_dir(), N.to_string());
    let python = dir.join(".venv/bin/python");
    let args = ["python/consume_ordered.py", &channel, &count, "30"];
    let sdk = run_in(&python, &dir, &args, &server);
    let producer = async {
        wait_subscribed(&channel, |b| server.api("presence_stats", b)).await;
        let mut poison_seq = 0;
        for n in 1..=N {
            produce(&js, &subject, event(n)).await;
            if n == POISON_AFTER {
                poison_seq = produce(&js, &subject, b"not json {".to_vec()).await;
            }
        }
        poison_seq
    };
    let (run, poison_seq) = tokio::join!(sdk, producer);
    let result = run.result();
    assert_eq!(
        received_ns(&result),
        (1..=N).collect::<Vec<_>>(),
        "events in order"
    );

    // The poison message is in the dead-letter stream, with why and where it came from.
    let dead = js
        .get_stream(&dl_stream)
        .await
        .expect("dead-letter stream")
        .get_raw_message(1)
        .await
        .expect("one dead-lettered message");
    assert_eq!(&dead.payload[..], b"not json {");
    let headers = dead.headers;
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    assert!(
        header("Pushwire-Dead-Letter-Reason").contains("not JSON"),
        "{headers:?}"
    );
    assert_eq!(header("Pushwire-Source-Sequence"), poison_seq.to_string());
    assert_eq!(header("Pushwire-Source-Subject"), subject);

    // Counted, and nothing is left waiting.
    let labels = "{consumer=\"nats\",type=\"nats_jetstream\"}";
    let scrape = Scrape::of(&server).await;
    assert_eq!(
        scrape.count(&format!("pushwire_consumer_dead_lettered_total{labels}")),
        1
    );
    assert_eq!(
        scrape.count(&format!("pushwire_consumer_published_total{labels}")),
        N
    );
    assert_eq!(scrape.get(&format!("pushwire_consumer_lag{labels}")), 0.0);
    server.stop().await;
    for s in [&stream, &dl_stream] {
        let _ = js.delete_stream(s).await;
    }
}

/// The next `n` of the publications on `channel`, waiting at most 30 s.
async fn next_n(ws: &mut WsClient, channel: &str) -> u64 {
    let p = tokio::time::timeout(Duration::from_secs(30), ws.next_publication(channel))
        .await
        .expect("a publication within 30 s");
    p["data"]["n"].as_u64().expect("n")
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_down_at_start_and_mid_stream_is_retried_while_the_node_serves() {
    let id = unique_name();
    let (stream, subject) = (format!("PWL_{id}"), format!("pwl_{id}.orders"));
    let channel = format!("chat:nats-late-{id}");
    let js = jetstream().await;
    create_stream(&js, &stream, vec![format!("pwl_{id}.>")]).await;
    let mut broker = consumers_common::LateBroker::new("127.0.0.1:4222");
    let mut config = consumer("late", &stream, &subject, &channel, "");
    if let Some(s) = config.nats_jetstream.as_mut() {
        s.url = format!("nats://127.0.0.1:{}", broker.port);
    }
    let server = TestServer::start_with(|c| c.consumers = vec![config]).await;

    // NATS is down: the node still serves clients and the API; the lag is unknown.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (mut ws, _) = WsClient::connected(&server.ws_url(), None).await;
    let reply = ws.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(reply.get("error").is_none(), "{reply}");
    server.publish(&channel, json!({"n": 0})).await;
    let labels = "{consumer=\"late\",type=\"nats_jetstream\"}";
    let scrape = Scrape::of(&server).await;
    assert_eq!(scrape.get(&format!("pushwire_consumer_lag{labels}")), -1.0);
    assert_eq!(
        scrape.count(&format!("pushwire_consumer_received_total{labels}")),
        0
    );
    assert_eq!(next_n(&mut ws, &channel).await, 0);

    // NATS comes up: a later retry connects and the stored events flow, in order.
    for n in 1..=5 {
        produce(&js, &subject, event(n)).await;
    }
    broker.open().await;
    for n in 1..=5 {
        assert_eq!(next_n(&mut ws, &channel).await, n);
    }

    // An outage mid-stream: events written meanwhile arrive after it, in order, once.
    broker.close().await;
    for n in 6..=10 {
        produce(&js, &subject, event(n)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker.open().await;
    for n in 6..=10 {
        assert_eq!(next_n(&mut ws, &channel).await, n);
    }
    assert!(
        ws.silent_for(Duration::from_millis(500)).await,
        "no duplicates"
    );
    server.stop().await;
    let _ = js.delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_node_killed_mid_stream_delivers_every_event_exactly_once() {
    let id = unique_name();
    let (stream, subject) = (format!("PWK_{id}"), format!("pwk_{id}.orders"));
    let channel = format!("chat:nats-kill-{id}");
    let js = jetstream().await;
    create_stream(&js, &stream, vec![format!("pwk_{id}.>")]).await;

    let mut config = test_config();
    config.engine.kind = EngineKind::Redis;
    config.engine.redis.address = REDIS_URL.into();
    config.engine.redis.prefix = format!("pwk-{id}");
    config.consumers = vec![consumer("nats", &stream, &subject, &channel, "")];
    keep_history(&mut config, 10_000);
    let mut node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;

    const N: u64 = 1500;
    const KILL_AT: u64 = 400;
    let (ws, http) = (node.ws_url(), node.http_url());
    let count = N.to_string();
    let args = ["python/consume_ordered.py", &channel, &count, "40"];
    let sdk = run_python_at(&args, &ws, &http);
    let producer = async {
        wait_subscribed(&channel, |b| node.api("presence_stats", b)).await;
        let write = async {
            for n in 1..=N {
                produce(&js, &subject, event(n)).await;
            }
        };
        // Crash the node while the consumer is in the middle of the burst (messages pulled,
        // some processed and not yet acknowledged), and start it again.
        let crash = async {
            while history_top(&node, &channel).await < KILL_AT {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            node.kill().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            node.restart().await;
        };
        tokio::join!(write, crash);
    };
    let (run, ()) = tokio::join!(sdk, producer);
    let result = run.result();
    assert_eq!(
        received_ns(&result),
        (1..=N).collect::<Vec<_>>(),
        "every event exactly once, in order\n{}",
        node.log()
    );
    assert!(
        result["resubscribes"].as_u64().unwrap_or(0) >= 1,
        "the SDK reconnected to the restarted node and recovered: {result}"
    );
    // The restarted node got again what the killed one had pulled and not acknowledged: what
    // was already in history was suppressed by the idempotency key, nothing failed.
    let metrics = metrics_text(&node.http_url()).await;
    let value = |name: &str| consumer_metric(&metrics, name, "nats", "nats_jetstream") as u64;
    let (received, published, duplicates) = (
        value("received_total"),
        value("published_total"),
        value("duplicates_total"),
    );
    println!("restarted node: received {received}, published {published}, duplicates {duplicates}");
    assert_eq!(value("failed_total"), 0);
    assert_eq!(received, published + duplicates);
    assert!(
        published > 0 && published < N,
        "the restarted node resumed mid-stream"
    );
    drop(node);
    let _ = js.delete_stream(&stream).await;
}

/// Queue → subscriber throughput (memory engine): `PUSHWIRE_CONSUMER_BENCH_N` events are
/// stored in the stream first, then the consumer starts. Release mode:
/// `cargo nextest run --release -p pushwire-server --test consumers -E 'test(/^nats::/)' --run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run in release mode"]
async fn throughput_nats_jetstream() {
    let (id, n) = (unique_name(), bench_n());
    let (stream, subject) = (format!("PWB_{id}"), format!("pwb_{id}.orders"));
    let channel = format!("chat:nats-bench-{id}");
    let js = jetstream().await;
    create_stream(&js, &stream, vec![format!("pwb_{id}.>")]).await;
    let mut acks = Vec::new();
    for n in 1..=n {
        acks.push(
            js.publish(subject.clone(), event(n).into())
                .await
                .expect("publish"),
        );
        if acks.len() >= 1000 {
            for a in acks.drain(..) {
                a.await.expect("stream ack");
            }
        }
    }
    for a in acks {
        a.await.expect("stream ack");
    }
    let server = TestServer::start_with(|c| c.client.queue_max_size = 64 << 20).await;
    let config = consumer("bench", &stream, &subject, &channel, "");
    measure_throughput(&server, &channel, config, n).await;
    server.stop().await;
    let _ = js.delete_stream(&stream).await;
}
