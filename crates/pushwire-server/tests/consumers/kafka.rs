//! The Kafka consumer end to end, against tansu (a Kafka-compatible broker): events produced
//! with `rdkafka` reach a real centrifuge-python subscriber in order; a poison record is
//! produced to the dead-letter topic and later records still flow; a node killed (SIGKILL)
//! mid-stream and started again loses and doubles nothing from the client's point of view
//! (Redis engine: history, epoch and idempotency keys survive the restart; the consumer
//! group resumes from the committed offsets).
//!
//! Needs tansu on 127.0.0.1:9092 (`scripts/start-tansu.sh`), Redis on 127.0.0.1:6379 and the
//! SDKs (`scripts/setup-sdks.sh`).

use std::time::Duration;

use pushwire_consumers::kafka::KafkaSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_server::config::EngineKind;
use pushwire_test_support::consume::{
    bench_n, consumer_metric, history_top, keep_history, measure_throughput, metrics_text,
    received_ns, unique_name, wait_subscribed,
};
use pushwire_test_support::node_process::{run_python_at, NodeProcess};
use pushwire_test_support::sdk::{run_in, sdk_dir};
use pushwire_test_support::{test_config, TestServer};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

const BROKER: &str = "127.0.0.1:9092";
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Fails clearly when nothing listens on the broker port.
fn require_broker() {
    assert!(
        std::net::TcpStream::connect_timeout(
            &BROKER.parse().expect("addr"),
            Duration::from_secs(2)
        )
        .is_ok(),
        "no Kafka broker on {BROKER}: run scripts/start-tansu.sh (tansu, memory storage)"
    );
}

/// Creates `topics` (one partition each: order is per partition).
async fn create_topics(topics: &[&str]) {
    require_broker();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap_or_else(|e| panic!("create topics on {BROKER}: {e}"));
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

/// A producer that keeps the order of what it is given (one request in flight).
fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "1")
        .set("linger.ms", "2")
        .create()
        .expect("producer")
}

/// Produces `bodies` to `topic` in order and waits for every acknowledgement; the offsets.
async fn produce(p: &FutureProducer, topic: &str, bodies: Vec<Vec<u8>>) -> Vec<i64> {
    let mut pending = Vec::new();
    for body in &bodies {
        let record = FutureRecord::<(), [u8]>::to(topic).payload(&body[..]);
        pending.push(p.send_result(record).map_err(|(e, _)| e).expect("enqueue"));
    }
    let mut offsets = Vec::new();
    for d in pending {
        let delivery = d.await.expect("delivery").expect("produced");
        offsets.push(delivery.offset);
    }
    offsets
}

/// An event with `n`, as the producer writes it.
fn event(n: u64) -> Vec<u8> {
    json!({"type": "order", "n": n}).to_string().into_bytes()
}

/// A route-mode Kafka consumer `name` publishing every record of `topic` into `channel`
/// (tag `type`), dead-lettering to `dl_topic`.
fn consumer(name: &str, topic: &str, channel: &str, dl_topic: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(name, ConsumerType::Kafka);
    c.mode = Mode::Route;
    c.route = RouteConfig {
        channel: channel.into(),
        tag_field: "type".into(),
        skip_history: false,
    };
    c.kafka = Some(KafkaSettings {
        brokers: vec![BROKER.into()],
        topics: vec![topic.into()],
        consumer_group: format!("pushwire-{topic}"),
        dead_letter_topic: dl_topic.into(),
        session_timeout: Duration::from_secs(6),
        lag_interval: Duration::from_millis(200),
        commit_interval: Duration::from_millis(200),
        ..Default::default()
    });
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_events_reach_a_python_subscriber_in_order_and_poison_is_dead_lettered() {
    let id = unique_name();
    let (topic, dl_topic) = (format!("pwt-{id}"), format!("pwt-{id}-dl"));
    let channel = format!("chat:kafka-{id}");
    create_topics(&[&topic, &dl_topic]).await;

    let config = consumer("kafka", &topic, &channel, &dl_topic);
    let server = TestServer::start_with(|c| c.consumers = vec![config]).await;
    const N: u64 = 40;
    const POISON_AFTER: u64 = 10;
    let (dir, count) = (sdk_dir(), N.to_string());
    let python = dir.join(".venv/bin/python");
    let args = ["python/consume_ordered.py", &channel, &count, "40"];
    let sdk = run_in(&python, &dir, &args, &server);
    let p = producer();
    let write = async {
        wait_subscribed(&channel, |b| server.api("presence_stats", b)).await;
        let mut bodies: Vec<Vec<u8>> = (1..=N).map(event).collect();
        bodies.insert(POISON_AFTER as usize, b"not json {".to_vec());
        produce(&p, &topic, bodies).await[POISON_AFTER as usize]
    };
    let (run, poison_offset) = tokio::join!(sdk, write);
    let result = run.result();
    assert_eq!(
        received_ns(&result),
        (1..=N).collect::<Vec<_>>(),
        "events in order"
    );

    // The poison record is in the dead-letter topic, with why and where it came from.
    let dl: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("group.id", format!("check-{id}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("dead-letter reader");
    dl.subscribe(&[&dl_topic]).expect("subscribe");
    let dead = tokio::time::timeout(Duration::from_secs(20), dl.recv())
        .await
        .expect("a dead-lettered record within 20 s")
        .expect("record");
    assert_eq!(dead.payload(), Some(&b"not json {"[..]));
    let headers = dead.headers().expect("headers");
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    assert!(
        header("pushwire-dead-letter-reason").contains("not JSON"),
        "reason header"
    );
    assert_eq!(header("pushwire-source-topic"), topic);
    assert_eq!(header("pushwire-source-offset"), poison_offset.to_string());

    // Counted, and the lag (from librdkafka statistics) drops to nothing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = metrics_text(&server.http_url()).await;
        let value = |name: &str| consumer_metric(&metrics, name, "kafka", "kafka");
        assert_eq!(value("dead_lettered_total"), 1);
        assert_eq!(value("published_total"), N as i64);
        if value("lag") == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lag never reached 0:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_partitions_are_each_processed_in_offset_order() {
    let id = unique_name();
    let topic = format!("pwp-{id}");
    require_broker();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .create()
        .expect("admin client");
    admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic")
        .remove(0)
        .expect("topic created");
    // One channel per partition, from the body's `p`.
    let config = consumer("kafka", &topic, &format!("chat:kafka-{id}-{{p}}"), "");
    let server = TestServer::start_with(|c| c.consumers = vec![config]).await;
    const PER_PARTITION: u64 = 30;
    let p = producer();
    let mut pending = Vec::new();
    for n in 1..=PER_PARTITION {
        for partition in 0..3 {
            let body = json!({"type": "order", "n": n, "p": partition}).to_string();
            let record = FutureRecord::<(), str>::to(&topic)
                .partition(partition)
                .payload(&body);
            pending.push(p.send_result(record).map_err(|(e, _)| e).expect("enqueue"));
        }
    }
    for d in pending {
        d.await.expect("delivery").expect("produced");
    }
    for partition in 0..3 {
        let channel = format!("chat:kafka-{id}-{partition}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let ns = loop {
            let (_, body) = server
                .api("history", json!({"channel": channel, "limit": 100}))
                .await;
            let ns: Vec<u64> = body["result"]["publications"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p["data"]["n"].as_u64()).collect())
                .unwrap_or_default();
            if ns.len() as u64 >= PER_PARTITION || tokio::time::Instant::now() >= deadline {
                break ns;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            ns,
            (1..=PER_PARTITION).collect::<Vec<_>>(),
            "partition {partition} in offset order"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_node_killed_mid_stream_delivers_every_event_exactly_once() {
    let id = unique_name();
    let topic = format!("pwk-{id}");
    let channel = format!("chat:kafka-kill-{id}");
    create_topics(&[&topic]).await;

    let mut config = test_config();
    config.engine.kind = EngineKind::Redis;
    config.engine.redis.address = REDIS_URL.into();
    config.engine.redis.prefix = format!("pwk-{id}");
    config.consumers = vec![consumer("kafka", &topic, &channel, "")];
    keep_history(&mut config, 10_000);
    let mut node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;

    const N: u64 = 1500;
    const KILL_AT: u64 = 400;
    let (ws, http) = (node.ws_url(), node.http_url());
    let count = N.to_string();
    let args = ["python/consume_ordered.py", &channel, &count, "45"];
    let sdk = run_python_at(&args, &ws, &http);
    let p = producer();
    let driver = async {
        wait_subscribed(&channel, |b| node.api("presence_stats", b)).await;
        let write = async {
            for chunk in (1..=N).collect::<Vec<_>>().chunks(100) {
                produce(&p, &topic, chunk.iter().map(|n| event(*n)).collect()).await;
            }
        };
        // Crash the node while the consumer is in the middle of the burst (records fetched,
        // some processed and their offsets not yet committed), and start it again.
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
    let (run, ()) = tokio::join!(sdk, driver);
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
    // The restarted node re-read what was processed after the last commit: suppressed by the
    // idempotency key, nothing failed.
    let metrics = metrics_text(&node.http_url()).await;
    let value = |name: &str| consumer_metric(&metrics, name, "kafka", "kafka") as u64;
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
}

/// Queue → subscriber throughput (memory engine): `PUSHWIRE_CONSUMER_BENCH_N` records are
/// produced first, then the consumer starts. Release mode:
/// `cargo nextest run --release -p pushwire-server --test consumers -E 'test(/^kafka::/)' --run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run in release mode"]
async fn throughput_kafka() {
    let (id, n) = (unique_name(), bench_n());
    let topic = format!("pwb-{id}");
    let channel = format!("chat:kafka-bench-{id}");
    create_topics(&[&topic]).await;
    let p = producer();
    for chunk in (1..=n).collect::<Vec<_>>().chunks(1000) {
        produce(&p, &topic, chunk.iter().map(|n| event(*n)).collect()).await;
    }
    let server = TestServer::start_with(|c| c.client.queue_max_size = 64 << 20).await;
    let config = consumer("bench", &topic, &channel, "");
    measure_throughput(&server, &channel, config, n).await;
    server.stop().await;
}
