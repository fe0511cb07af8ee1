//! The Kafka consumer end to end, against tansu (a Kafka-compatible broker). The shared
//! scenarios (`consumers_common`) over [`Kafka`]: events produced with `rdkafka` reach a real
//! centrifuge-python subscriber in order and a poison record is produced to the dead-letter
//! topic (with why and where it came from) while later records still flow; a node killed
//! (SIGKILL) mid-burst and started again loses and doubles nothing from the client's point of
//! view (Redis engine: history, epoch and idempotency keys survive the restart; the consumer
//! group resumes from the committed offsets). Here only: each partition is processed in
//! offset order; the throughput benchmark.
//!
//! Needs tansu on 127.0.0.1:9092 (`scripts/start-tansu.sh`), Redis on 127.0.0.1:6379 and the
//! SDKs (`scripts/setup-sdks.sh`).

use crate::consumers_common::source::{with_mode, Source};
use crate::consumers_common::{kill, ordered};

use std::time::Duration;

use pushwire_consumers::kafka::KafkaSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::consume::{bench_n, measure_throughput, unique_name};
use pushwire_test_support::TestServer;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

/// The local Kafka-compatible broker (tansu).
pub(crate) const BROKER: &str = "127.0.0.1:9092";

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
pub(crate) async fn create_topics(topics: &[&str]) {
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

/// The first record of `topic` and its headers.
pub(crate) async fn first_record(topic: &str, group: &str) -> (Vec<u8>, Vec<(String, String)>) {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("reader");
    c.subscribe(&[topic]).expect("subscribe");
    let m = tokio::time::timeout(Duration::from_secs(20), c.recv())
        .await
        .unwrap_or_else(|_| panic!("a record in {topic} within 20 s"))
        .expect("record");
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (m.payload().unwrap_or_default().to_vec(), headers)
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

/// A topic (one partition) and its dead-letter topic on the local broker, named for one test.
struct Kafka {
    id: String,
    topic: String,
    dl_topic: String,
    producer: FutureProducer,
}

impl Kafka {
    /// Topics `pw<prefix>-<unique>` and `…-dl`, created; a clear failure when no broker runs.
    async fn new(prefix: &str) -> Kafka {
        let id = unique_name();
        let (topic, dl_topic) = (format!("pw{prefix}-{id}"), format!("pw{prefix}-{id}-dl"));
        create_topics(&[&topic, &dl_topic]).await;
        Kafka {
            id,
            topic,
            dl_topic,
            producer: producer(),
        }
    }
}

impl Source for Kafka {
    const ADDR: &'static str = BROKER;
    /// Not JSON.
    const POISON: u64 = 1;
    /// The record's offset.
    type Receipt = i64;
    /// The poison record's offset.
    type Poison = i64;

    /// In route mode every record goes to `<namespace>:kafka-<id>`.
    fn consumer(
        &self,
        name: &str,
        addr: &str,
        namespace: &str,
        mode: Mode,
    ) -> (ConsumerConfig, String) {
        let channel = format!("{namespace}:kafka-{}", self.id);
        let mut config = consumer(name, &self.topic, &channel, &self.dl_topic);
        if let Some(k) = config.kafka.as_mut() {
            k.brokers = vec![addr.into()];
        }
        (with_mode(config, mode, &channel), channel)
    }

    /// Nothing to wait for: a new consumer group reads the topic from its start.
    async fn wait_ready(&self) {}

    async fn produce(&self, body: &[u8], _key: &str) -> i64 {
        produce(&self.producer, &self.topic, vec![body.to_vec()]).await[0]
    }

    /// In chunks of 100, each pipelined.
    async fn produce_all(&self, messages: &[(Vec<u8>, String)]) {
        for chunk in messages.chunks(100) {
            let bodies = chunk.iter().map(|(b, _)| b.clone()).collect();
            produce(&self.producer, &self.topic, bodies).await;
        }
    }

    async fn produce_poison(&self) -> i64 {
        self.produce(b"not json {", "").await
    }

    /// The poison record is in the dead-letter topic, with why and where it came from.
    async fn assert_dead_lettered(&self, poison_offset: i64) {
        let group = format!("check-{}", self.id);
        let (payload, headers) = first_record(&self.dl_topic, &group).await;
        assert_eq!(payload, b"not json {");
        let header = |name: &str| {
            let found = headers.iter().find(|(k, _)| k == name);
            found.map(|(_, v)| v.clone()).unwrap_or_default()
        };
        assert!(
            header("pushwire-dead-letter-reason").contains("not JSON"),
            "reason header: {headers:?}"
        );
        assert_eq!(header("pushwire-source-topic"), self.topic);
        assert_eq!(header("pushwire-source-offset"), poison_offset.to_string());
    }

    /// The topics stay (tansu keeps them in memory).
    async fn cleanup(&self) {}
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_events_reach_a_python_subscriber_in_order_and_poison_is_dead_lettered() {
    let source = Kafka::new("t").await;
    ordered::events_in_order_and_poison_dead_lettered(&source, Mode::Route).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_node_killed_mid_stream_delivers_every_event_exactly_once() {
    let source = Kafka::new("k").await;
    kill::killed_mid_burst_delivers_every_event_once(&source, Mode::Route).await;
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
