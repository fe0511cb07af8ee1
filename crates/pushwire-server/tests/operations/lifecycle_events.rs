//! Lifecycle events end to end: a real HTTP receiver on loopback (verifying each body's
//! HMAC-SHA256 signature, able to fail on demand), real WebSocket clients, real Redis for the
//! cluster-wide events and the Redis stream sink, real `pushwire serve` processes for a node
//! killed with SIGKILL.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use parking_lot::Mutex;
use pushwire_server::config::{EngineKind, SinkConfig, SinkKind};
use pushwire_server::ServerConfig;
use pushwire_test_support::node_process::NodeProcess;
use pushwire_test_support::{test_config, token, TestServer, WsClient};
use serde_json::{json, Value};

const SECRET: &str = "lifecycle-test-secret-0123456789";
const REDIS: &str = "redis://127.0.0.1:6379";
const PUSHWIRE: &str = env!("CARGO_BIN_EXE_pushwire");

/// A webhook receiver: keeps every event of every correctly signed body; answers 503 while
/// `down`; counts bodies whose signature is wrong.
#[derive(Clone, Default)]
struct Receiver {
    events: Arc<Mutex<Vec<Value>>>,
    down: Arc<AtomicBool>,
    refused_while_down: Arc<AtomicU64>,
    /// Answer 400 to everything (a permanent refusal).
    reject: Arc<AtomicBool>,
    rejected: Arc<AtomicU64>,
    bad_signatures: Arc<AtomicU64>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if r.reject.load(Ordering::SeqCst) {
        r.rejected.fetch_add(1, Ordering::SeqCst);
        return StatusCode::BAD_REQUEST;
    }
    if r.down.load(Ordering::SeqCst) {
        r.refused_while_down.fetch_add(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let sig = headers
        .get("x-pushwire-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let expected = format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, &body).as_ref())
    );
    if sig != expected {
        r.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    let batch: Vec<Value> = serde_json::from_slice(&body).expect("a JSON array of events");
    r.events.lock().extend(batch);
    StatusCode::OK
}

impl Receiver {
    async fn start() -> (Receiver, SocketAddr) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route("/events", post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, addr)
    }

    fn of(&self, kind: &str) -> Vec<Value> {
        self.events
            .lock()
            .iter()
            .filter(|e| e["type"] == kind)
            .cloned()
            .collect()
    }

    fn count(&self, kind: &str) -> usize {
        self.of(kind).len()
    }

    async fn wait(&self, what: &str, within: Duration, cond: impl Fn(&Receiver) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !cond(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: {:?}",
                self.summary()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn summary(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for e in self.events.lock().iter() {
            *m.entry(e["type"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
        m
    }
}

fn webhook(addr: SocketAddr) -> SinkConfig {
    SinkConfig {
        kind: SinkKind::Webhook,
        name: "hook".into(),
        url: format!("http://{addr}/events"),
        secret: SECRET.into(),
        batch_interval: Duration::from_millis(20),
        retry_min_delay: Duration::from_millis(50),
        retry_max_delay: Duration::from_millis(500),
        ..Default::default()
    }
}

fn with_lifecycle(c: &mut ServerConfig, sinks: Vec<SinkConfig>) {
    c.lifecycle.enabled = true;
    c.lifecycle.sinks = sinks;
    c.http_server.connect_rate_per_ip = 0;
}

fn on_redis(c: &mut ServerConfig, prefix: &str) {
    c.engine.kind = EngineKind::Redis;
    c.engine.redis.address = REDIS.into();
    c.engine.redis.prefix = prefix.into();
    c.node.info_interval = Duration::from_millis(200);
    c.node.info_ttl = Duration::from_secs(2);
}

fn prefix() -> String {
    format!("pwlife.{}", uuid::Uuid::new_v4().simple())
}

async fn subscribed(url: &str, user: &str, channel: &str) -> WsClient {
    let tok = token(json!({"sub": user, "exp": pushwire_test_support::now() + 3600}));
    let (mut ws, _) = WsClient::connected(url, Some(&tok)).await;
    let r = ws.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(r["subscribe"].is_object(), "{r}");
    ws
}

#[tokio::test]
async fn a_thousand_clients_give_exactly_the_expected_events_in_sequence() {
    let (rx, addr) = Receiver::start().await;
    let server = TestServer::start_with(|c| with_lifecycle(c, vec![webhook(addr)])).await;
    let mut clients = Vec::new();
    for i in 0..1000 {
        clients.push(
            subscribed(
                &server.ws_url(),
                &format!("u{i}"),
                &format!("life-{}", i % 10),
            )
            .await,
        );
    }
    rx.wait("connects and subscribes", Duration::from_secs(20), |r| {
        r.count("subscribe") == 1000 && r.count("channel_occupied") == 10
    })
    .await;
    // Half leave: every client of channels life-0 … life-4.
    let mut kept = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        if i % 10 < 5 {
            drop(c);
        } else {
            kept.push(c);
        }
    }
    rx.wait("half disconnect", Duration::from_secs(20), |r| {
        r.count("disconnect") == 500 && r.count("channel_vacated") == 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count("connect"), 1000);
    assert_eq!(rx.count("subscribe"), 1000);
    assert_eq!(rx.count("unsubscribe"), 500);
    assert_eq!(rx.count("disconnect"), 500);
    assert_eq!(rx.count("channel_occupied"), 10);
    assert_eq!(rx.count("channel_vacated"), 5);
    let mut vacated: Vec<String> = rx
        .of("channel_vacated")
        .iter()
        .map(|e| e["channel"].as_str().unwrap().to_owned())
        .collect();
    vacated.sort();
    assert_eq!(vacated, ["life-0", "life-1", "life-2", "life-3", "life-4"]);
    for d in rx.of("disconnect") {
        assert_eq!(d["code"], 3000, "the peer went away: {d}");
        assert!(d["user"].as_str().is_some_and(|u| u.starts_with('u')));
    }
    // One node, one sequence: 1, 2, 3, … in delivery order, ids unique.
    let events = rx.events.lock().clone();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    let ids: std::collections::HashSet<&str> =
        events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len());
    assert_eq!(rx.bad_signatures.load(Ordering::SeqCst), 0);
    drop(kept);
    server.stop().await;
}

#[tokio::test]
async fn a_webhook_that_was_down_gets_every_event_afterwards() {
    let (rx, addr) = Receiver::start().await;
    rx.down.store(true, Ordering::SeqCst);
    let server = TestServer::start_with(|c| with_lifecycle(c, vec![webhook(addr)])).await;
    let mut clients = Vec::new();
    for i in 0..50 {
        clients.push(subscribed(&server.ws_url(), &format!("d{i}"), "down-chan").await);
    }
    drop(clients);
    // Failing for a while: retried, /health and /metrics say so, the API answers at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rx.refused_while_down.load(Ordering::SeqCst) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no retries");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = reqwest::get(format!("{}/health", server.http_url()))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"degraded": ["lifecycle sink hook"]})
    );
    let started = tokio::time::Instant::now();
    let (status, _) = server.api("info", json!({})).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    let m = reqwest::get(format!("{}/metrics", server.http_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |family: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{family}{{sink=\"hook\"}} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{family} missing:\n{m}"))
    };
    assert_eq!(value("pushwire_lifecycle_sink_degraded"), 1);
    assert!(
        value("pushwire_lifecycle_sink_spooled") >= 100,
        "events wait in the spool"
    );
    assert!(value("pushwire_lifecycle_sink_failures_total") >= 3);
    assert_eq!(value("pushwire_lifecycle_sink_delivered_total"), 0);
    rx.down.store(false, Ordering::SeqCst);
    rx.wait(
        "everything after the outage",
        Duration::from_secs(10),
        |r| {
            r.count("connect") == 50
                && r.count("subscribe") == 50
                && r.count("unsubscribe") == 50
                && r.count("disconnect") == 50
                && r.count("channel_occupied") == 1
                && r.count("channel_vacated") == 1
        },
    )
    .await;
    let health = reqwest::get(format!("{}/health", server.http_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(health, "{}");
    assert_eq!(rx.bad_signatures.load(Ordering::SeqCst), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_webhook_4xx_is_not_retried_and_is_counted() {
    let (rx, addr) = Receiver::start().await;
    rx.reject.store(true, Ordering::SeqCst);
    let sink = SinkConfig {
        batch_size: 1000,
        batch_interval: Duration::from_millis(200),
        ..webhook(addr)
    };
    let server = TestServer::start_with(|c| with_lifecycle(c, vec![sink])).await;
    let c = subscribed(&server.ws_url(), "r1", "chat:r").await;
    drop(c);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let m = reqwest::get(format!("{}/metrics", server.http_url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let refused: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix("pushwire_lifecycle_sink_refused_total{sink=\"hook\"} "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if refused >= 6 {
            break refused;
        }
        assert!(tokio::time::Instant::now() < deadline, "{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        refused, 6,
        "connect, subscribe, occupied, unsubscribe, vacated, disconnect"
    );
    let attempts = rx.rejected.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        rx.rejected.load(Ordering::SeqCst),
        attempts,
        "a refused batch is not sent again"
    );
    assert!(rx.events.lock().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn occupied_and_vacated_are_cluster_wide() {
    let (rx, addr) = Receiver::start().await;
    let p = prefix();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let p = p.clone();
        nodes.push(
            TestServer::start_with(move |c| {
                on_redis(c, &p);
                with_lifecycle(c, vec![webhook(addr)]);
            })
            .await,
        );
    }
    let a = subscribed(&nodes[0].ws_url(), "ua", "chat:shared").await;
    rx.wait("occupied", Duration::from_secs(5), |r| {
        r.count("channel_occupied") == 1
    })
    .await;
    let b = subscribed(&nodes[1].ws_url(), "ub", "chat:shared").await;
    rx.wait("b subscribed", Duration::from_secs(5), |r| {
        r.count("subscribe") == 2
    })
    .await;
    drop(a); // B still holds the channel.
    rx.wait("a left", Duration::from_secs(5), |r| {
        r.count("disconnect") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count("channel_vacated"), 0, "{:?}", rx.summary());
    drop(b);
    rx.wait("vacated", Duration::from_secs(5), |r| {
        r.count("channel_vacated") == 1
    })
    .await;
    let occupied = &rx.of("channel_occupied")[0];
    let vacated = &rx.of("channel_vacated")[0];
    assert_eq!(occupied["channel"], "chat:shared");
    assert_eq!(vacated["channel"], "chat:shared");
    assert_ne!(occupied["node"], vacated["node"], "first on A, last on B");
    assert_eq!(rx.count("channel_occupied"), 1);
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test]
async fn a_killed_node_is_announced_lost_and_its_channels_vacated() {
    let (rx, addr) = Receiver::start().await;
    let p = prefix();
    let config = |name: &str| {
        let mut c = test_config();
        on_redis(&mut c, &p);
        with_lifecycle(&mut c, vec![webhook(addr)]);
        c.node.name = name.into();
        c
    };
    let a = NodeProcess::start(PUSHWIRE, config("a")).await;
    let mut b = NodeProcess::start(PUSHWIRE, config("b")).await;
    let _held = subscribed(&a.ws_url(), "x", "chat:both").await;
    let mut on_b = Vec::new();
    for i in 0..20 {
        on_b.push(subscribed(&b.ws_url(), &format!("b{i}"), "chat:only-b").await);
        on_b.push(subscribed(&b.ws_url(), &format!("c{i}"), "chat:both").await);
    }
    rx.wait("b's clients in", Duration::from_secs(10), |r| {
        r.count("subscribe") == 41
    })
    .await;
    let b_node = rx
        .of("subscribe")
        .iter()
        .find(|e| e["channel"] == "chat:only-b")
        .map(|e| e["node"].clone())
        .unwrap();
    b.kill().await;
    let killed = tokio::time::Instant::now();
    rx.wait("node_lost", Duration::from_secs(10), |r| {
        r.count("node_lost") == 1 && r.count("channel_vacated") == 1
    })
    .await;
    let lost = &rx.of("node_lost")[0];
    assert_eq!(lost["lost_node"], b_node);
    assert_ne!(lost["node"], b_node, "announced by the survivor");
    assert_eq!(rx.of("channel_vacated")[0]["channel"], "chat:only-b");
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "within info_ttl and a sweep"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.count("node_lost"), 1, "announced once");
    drop(on_b);
    drop(a);
}

#[tokio::test]
async fn events_land_in_a_redis_stream() {
    let stream = format!("pwlife.stream.{}", uuid::Uuid::new_v4().simple());
    let sink = SinkConfig {
        kind: SinkKind::RedisStream,
        name: "stream".into(),
        address: REDIS.into(),
        stream: stream.clone(),
        batch_interval: Duration::from_millis(20),
        events: vec![
            pushwire_core::lifecycle::EventKind::Connect,
            pushwire_core::lifecycle::EventKind::Disconnect,
        ],
        ..Default::default()
    };
    let server = TestServer::start_with(|c| with_lifecycle(c, vec![sink])).await;
    drop(subscribed(&server.ws_url(), "s1", "chat:s").await);
    let mut conn = redis::Client::open(REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the lifecycle tests need Redis at 127.0.0.1:6379");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let events: Vec<Value> = loop {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(&stream)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let events: Vec<Value> = entries
            .iter()
            .map(|(_, fields)| serde_json::from_str(&fields[0].1).unwrap())
            .collect();
        if events.len() >= 2 || tokio::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["connect", "disconnect"],
        "only the selected types, in order"
    );
    assert_eq!(events[0]["user"], "s1");
    let _: i64 = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    server.stop().await;
}

/// The example consumer of docs/lifecycle.md (sdk-tests/python/lifecycle_consumer.py) as the
/// webhook; returns it (killed on drop) and its address.
async fn example_consumer() -> (pushwire_test_support::sdk_live::LiveScript, SocketAddr) {
    let port = pushwire_test_support::node_process::free_port();
    let mut script = pushwire_test_support::sdk_live::LiveScript::python(
        &["python/lifecycle_consumer.py", &port.to_string(), SECRET],
        "http://127.0.0.1:1",
    );
    script
        .line("READY", Duration::from_secs(10), |l| l == "READY")
        .await;
    (script, SocketAddr::from(([127, 0, 0, 1], port)))
}

async fn online(consumer: SocketAddr) -> Value {
    reqwest::get(format!("http://{consumer}/online"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_online(consumer: SocketAddr, within: Duration, expected: usize) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let v = online(consumer).await;
        if v["connections"] == expected {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {expected} online, the consumer has {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_example_consumer_converges_after_a_node_is_killed() {
    let (_consumer, addr) = example_consumer().await;
    let p = prefix();
    let config = |name: &str| {
        let mut c = test_config();
        on_redis(&mut c, &p);
        with_lifecycle(&mut c, vec![webhook(addr)]);
        c.node.name = name.into();
        c
    };
    let a = NodeProcess::start(PUSHWIRE, config("a")).await;
    let mut b = NodeProcess::start(PUSHWIRE, config("b")).await;
    let mut clients = Vec::new();
    for i in 0..30 {
        clients.push(subscribed(&a.ws_url(), &format!("a{i}"), "chat:x").await);
    }
    for i in 0..40 {
        clients.push(subscribed(&b.ws_url(), &format!("b{i}"), "chat:x").await);
    }
    wait_online(addr, Duration::from_secs(10), 70).await;
    b.kill().await;
    let killed = tokio::time::Instant::now();
    let table = wait_online(addr, Duration::from_secs(10), 30).await;
    let users = table["users"].as_object().unwrap();
    assert!(users.keys().all(|u| u.starts_with('a')), "{table}");
    assert_eq!(table["nodes"].as_array().unwrap().len(), 1);
    // node.info_ttl (2 s) + one heartbeat interval, with room for a busy machine.
    assert!(
        killed.elapsed() < Duration::from_secs(6),
        "{:?}",
        killed.elapsed()
    );
    drop(clients);
    drop(a);
}

#[tokio::test]
async fn snapshots_alone_rebuild_the_table_of_a_consumer_that_missed_the_connects() {
    let (_consumer, addr) = example_consumer().await;
    let sink = SinkConfig {
        // The consumer never hears of a connect: only snapshots can tell it who is online.
        events: vec![
            pushwire_core::lifecycle::EventKind::Snapshot,
            pushwire_core::lifecycle::EventKind::Disconnect,
        ],
        ..webhook(addr)
    };
    let server = TestServer::start_with(|c| {
        with_lifecycle(c, vec![sink]);
        c.lifecycle.snapshot_interval = Duration::from_secs(1);
    })
    .await;
    let mut clients = Vec::new();
    for i in 0..25 {
        clients.push(subscribed(&server.ws_url(), &format!("s{i}"), "chat:y").await);
    }
    let table = wait_online(addr, Duration::from_secs(5), 25).await;
    assert_eq!(table["users"]["s7"], 1);
    clients.truncate(10);
    wait_online(addr, Duration::from_secs(5), 10).await;
    drop(clients);
    server.stop().await;
}

/// Connect and disconnect events of one client, through `sink`, on a fresh node.
async fn connect_and_leave_through(sink: SinkConfig) -> TestServer {
    let sink = SinkConfig {
        batch_interval: Duration::from_millis(20),
        events: vec![
            pushwire_core::lifecycle::EventKind::Connect,
            pushwire_core::lifecycle::EventKind::Disconnect,
        ],
        ..sink
    };
    let server = TestServer::start_with(|c| with_lifecycle(c, vec![sink])).await;
    drop(subscribed(&server.ws_url(), "k1", "chat:k").await);
    server
}

#[tokio::test]
async fn events_land_in_a_nats_jetstream_subject() {
    use async_nats::jetstream;
    let name = format!("PWLIFE{}", uuid::Uuid::new_v4().simple());
    let subject = format!("pwlife.{name}");
    let client = async_nats::connect("nats://127.0.0.1:4222")
        .await
        .expect("the lifecycle tests need NATS with JetStream at 127.0.0.1:4222");
    let js = jetstream::new(client);
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .expect("create stream (JetStream enabled?)");
    let server = connect_and_leave_through(SinkConfig {
        kind: SinkKind::NatsJetstream,
        name: "nats".into(),
        address: "nats://127.0.0.1:4222".into(),
        subject: subject.clone(),
        ..Default::default()
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut events = Vec::new();
    while events.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "{events:?}");
        events.clear();
        for seq in 1..=2 {
            if let Ok(m) = stream.get_raw_message(seq).await {
                events.push(serde_json::from_slice::<Value>(&m.payload).unwrap());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events[0]["type"], "connect");
    assert_eq!(events[1]["type"], "disconnect");
    assert_eq!(events[1]["user"], "k1");
    js.delete_stream(&name).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn events_land_in_a_kafka_topic_keyed_by_node() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;
    const BROKER: &str = "127.0.0.1:9092";
    assert!(
        std::net::TcpStream::connect(BROKER).is_ok(),
        "no Kafka broker on {BROKER}: run scripts/start-tansu.sh"
    );
    let topic = format!("pwlife-{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .create()
        .unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let server = connect_and_leave_through(SinkConfig {
        kind: SinkKind::Kafka,
        name: "kafka".into(),
        address: BROKER.into(),
        topic: topic.clone(),
        ..Default::default()
    })
    .await;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("group.id", format!("g-{topic}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut events = Vec::new();
    while events.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("events in the topic")
            .unwrap();
        let e: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        assert_eq!(
            m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            e["node"].as_str().map(str::to_owned),
            "keyed by node"
        );
        events.push(e);
    }
    assert_eq!(events[0]["type"], "connect");
    assert_eq!(events[1]["type"], "disconnect");
    server.stop().await;
}
