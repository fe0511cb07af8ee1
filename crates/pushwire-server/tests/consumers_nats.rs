//! The NATS JetStream consumer end to end: events written to a stream with `async-nats` reach
//! a real centrifuge-python subscriber in order; a poison message is dead-lettered and later
//! messages still flow; a node killed (SIGKILL) mid-stream and started again loses and
//! doubles nothing from the client's point of view (Redis engine: history, epoch and
//! idempotency keys survive the restart).
//!
//! Needs NATS with JetStream on 127.0.0.1:4222, Redis on 127.0.0.1:6379 and the SDKs
//! (`scripts/setup-sdks.sh`).

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use pushwire_consumers::nats_jetstream::NatsJetStreamSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_server::config::EngineKind;
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::node_process::{run_python_at, NodeProcess};
use pushwire_test_support::sdk::{run_in, sdk_dir};
use pushwire_test_support::{test_config, TestServer};
use serde_json::{json, Value};

const NATS_URL: &str = "nats://127.0.0.1:4222";
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A name no other run uses.
fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{:x}{:x}", std::process::id(), nanos & 0xff_ffff_ffff)
}

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

/// Polls `presence_stats` through `api` until `channel` has a subscriber (the SDK is ready).
async fn wait_subscribed<F, Fut>(channel: &str, api: F)
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = (u16, Value)>,
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

/// Lets the `chat:` namespace keep, and a resubscribe recover, up to `size` publications, so
/// a subscriber that falls behind while the node is down can recover all of them.
fn keep_history(config: &mut pushwire_server::ServerConfig, size: usize) {
    config.client.recovery_max_publication_limit = size;
    for ns in &mut config.channel.namespaces {
        if ns.name == "chat" {
            ns.options.history_size = size;
        }
    }
}

/// The stream top offset of `channel` on `node`.
async fn history_top(node: &NodeProcess, channel: &str) -> u64 {
    let (_, body) = node
        .api("history", json!({"channel": channel, "limit": 0}))
        .await;
    body["result"]["offset"].as_u64().unwrap_or(0)
}

fn ns(result: &Value) -> Vec<u64> {
    result["ns"]
        .as_array()
        .expect("RESULT.ns")
        .iter()
        .map(|v| v.as_u64().expect("n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_events_reach_a_python_subscriber_in_order_and_poison_is_dead_lettered() {
    let id = unique();
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
    assert_eq!(ns(&result), (1..=N).collect::<Vec<_>>(), "events in order");

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

#[tokio::test(flavor = "multi_thread")]
async fn nats_node_killed_mid_stream_delivers_every_event_exactly_once() {
    let id = unique();
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
        ns(&result),
        (1..=N).collect::<Vec<_>>(),
        "every event exactly once, in order\n{}",
        node.log()
    );
    assert!(
        result["resubscribes"].as_u64().unwrap_or(0) >= 1,
        "the SDK reconnected to the restarted node and recovered: {result}"
    );
    drop(node);
    let _ = js.delete_stream(&stream).await;
}
