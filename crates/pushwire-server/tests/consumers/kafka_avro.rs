//! Binary payloads through the Kafka path, against tansu (a Kafka-compatible broker), arriving
//! as JSON at real centrifuge-python subscribers:
//! - Avro in the Confluent wire format (magic byte, schema id, datum) whose schemas come from a
//!   schema registry URL: looked up once per id and cached; while the registry is down, a
//!   record with a schema id not seen yet waits (retried, never lost, never reordered: records
//!   of known ids behind it wait too) and `/health` names the consumer as degraded; once the
//!   registry is back it is delivered and `/health` clears; a record with an unknown schema id
//!   (the registry answers 404) is dead-lettered to the dead-letter topic with the reason;
//! - Protobuf with a descriptor set file; a truncated message is dead-lettered.
//!
//! The schema registry is a small server in this file speaking the Confluent registry HTTP API
//! (`POST /subjects/<subject>/versions`, `GET /schemas/ids/<id>`): no registry implementation
//! can be installed from the package registries this project uses (see docs/consumers.md:
//! Karapace is not on PyPI, Confluent's and Apicurio's are Maven builds, crates.io's
//! Confluent-compatible one is yanked and the other serves its own API).
//!
//! Needs tansu on 127.0.0.1:9092 (`scripts/start-tansu.sh`) and the SDKs.

use crate::kafka::{create_topics, first_record, BROKER};

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pushwire_consumers::kafka::KafkaSettings;
use pushwire_consumers::payload::{PayloadFormat, PayloadSettings};
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::consume::{received_ns, unique_name, wait_subscribed};
use pushwire_test_support::node_process::free_port;
use pushwire_test_support::sdk::{run_in, sdk_dir};
use pushwire_test_support::TestServer;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A schema registry speaking the Confluent HTTP API, on a fixed port that can go down (nothing
/// listens, connections are refused) and come back with the same schemas.
struct TestRegistry {
    port: u16,
    schemas: Arc<Mutex<Vec<String>>>,
    task: Option<JoinHandle<()>>,
}

impl TestRegistry {
    async fn start() -> TestRegistry {
        let mut r = TestRegistry {
            port: free_port(),
            schemas: Arc::default(),
            task: None,
        };
        r.up().await;
        r
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the registry port");
        let schemas = self.schemas.clone();
        self.task = Some(tokio::spawn(async move {
            // Connection tasks live in this set: aborting the accept task cuts them.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((s, _)) = listener.accept().await {
                connections.spawn(answer(s, schemas.clone()));
            }
        }));
    }

    async fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Registers `schema` under `subject` the way a producer's serializer does; its id.
    async fn register(&self, subject: &str, schema: &Value) -> u32 {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/subjects/{subject}/versions", self.url()))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(json!({"schema": schema.to_string()}).to_string())
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("register answer");
        answer["id"].as_u64().expect("id") as u32
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// One HTTP/1.1 request on `s`, answered, then the connection is closed.
async fn answer(mut s: TcpStream, schemas: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = &buf[head_end..head_end + length];
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, reply) = match (method, path.split('/').collect::<Vec<_>>().as_slice()) {
        ("GET", ["", "schemas", "ids", id]) => {
            let schema = id
                .parse::<usize>()
                .ok()
                .and_then(|i| schemas.lock().get(i.wrapping_sub(1)).cloned());
            match schema {
                Some(schema) => (200, json!({ "schema": schema })),
                None => (
                    404,
                    json!({"error_code": 40403, "message": format!("Schema {id} not found")}),
                ),
            }
        }
        ("POST", ["", "subjects", _subject, "versions"]) => {
            let schema = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["schema"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut all = schemas.lock();
            let id = match all.iter().position(|s| *s == schema) {
                Some(i) => i + 1,
                None => {
                    all.push(schema);
                    all.len()
                }
            };
            (200, json!({ "id": id }))
        }
        _ => (
            404,
            json!({"error_code": 404, "message": "HTTP 404 Not Found"}),
        ),
    };
    let reply = reply.to_string();
    let response = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/vnd.schemaregistry.v1+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        if status == 200 { "OK" } else { "Not Found" },
        reply.len()
    );
    let _ = s.write_all(response.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// Produces `bodies` to `topic` in order, waiting for each acknowledgement.
async fn produce(p: &FutureProducer, topic: &str, bodies: Vec<Vec<u8>>) {
    for body in bodies {
        let record = FutureRecord::<(), [u8]>::to(topic).payload(&body[..]);
        p.send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("produced");
    }
}

/// A route-mode Kafka consumer of `topic` into `channel` with `payload`.
fn consumer(name: &str, topic: &str, channel: &str, payload: PayloadSettings) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(name, ConsumerType::Kafka);
    c.mode = Mode::Route;
    c.route = RouteConfig {
        channel: channel.into(),
        tag_field: String::new(),
        skip_history: false,
    };
    c.payload = payload;
    c.retry_backoff_max = Duration::from_millis(300);
    c.kafka = Some(KafkaSettings {
        brokers: vec![BROKER.into()],
        topics: vec![topic.into()],
        consumer_group: format!("pushwire-{topic}"),
        dead_letter_topic: format!("{topic}-dl"),
        session_timeout: Duration::from_secs(6),
        commit_interval: Duration::from_millis(200),
        ..Default::default()
    });
    c
}

/// Avro's zig-zag varint of a long.
fn avro_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A Confluent-framed Avro `Order` record: v1 `{n, status}`, v2 adds `note` (`["null",
/// "string"]`, null here).
fn avro_order(schema_id: u32, n: i64, v2: bool) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&schema_id.to_be_bytes());
    avro_long(&mut out, n);
    avro_long(&mut out, 4);
    out.extend_from_slice(b"paid");
    if v2 {
        avro_long(&mut out, 0);
    }
    out
}

/// A protobuf `shop.v1.Order { int32 n = 1; string status = 2; }`.
fn proto_order(n: u8) -> Vec<u8> {
    vec![0x08, n, 0x12, 4, b'p', b'a', b'i', b'd']
}

/// The descriptor set of `shop.v1.Order`, written to `path`.
fn write_descriptor_set(path: &std::path::Path) {
    use prost::Message as _;
    use prost_types::{
        field_descriptor_proto::Type, DescriptorProto, FieldDescriptorProto, FileDescriptorProto,
        FileDescriptorSet,
    };
    let field = |name: &str, number: i32, t: Type| FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        r#type: Some(t as i32),
        json_name: Some(name.into()),
        label: Some(1),
        ..Default::default()
    };
    let set = FileDescriptorSet {
        file: vec![FileDescriptorProto {
            name: Some("shop.proto".into()),
            package: Some("shop.v1".into()),
            syntax: Some("proto3".into()),
            message_type: vec![DescriptorProto {
                name: Some("Order".into()),
                field: vec![field("n", 1, Type::Int32), field("status", 2, Type::String)],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    std::fs::write(path, set.encode_to_vec()).expect("descriptor set");
}

async fn health(server: &TestServer) -> String {
    reqwest::get(format!("{}/health", server.http_url()))
        .await
        .expect("GET /health")
        .text()
        .await
        .expect("health body")
}

async fn history_ns(server: &TestServer, channel: &str) -> Vec<u64> {
    let (_, h) = server
        .api("history", json!({"channel": channel, "limit": -1}))
        .await;
    h["result"]["publications"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["data"]["n"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_avro_via_a_schema_registry_and_protobuf_arrive_as_json_at_python_subscribers() {
    let id = unique_name();
    let (avro_topic, proto_topic) = (format!("pwavro-{id}"), format!("pwproto-{id}"));
    let (avro_dl, proto_dl) = (format!("{avro_topic}-dl"), format!("{proto_topic}-dl"));
    create_topics(&[&avro_topic, &proto_topic, &avro_dl, &proto_dl]).await;
    let mut registry = TestRegistry::start().await;
    let v1 = json!({"type": "record", "name": "Order", "namespace": "shop.v1", "fields": [
        {"name": "n", "type": "long"}, {"name": "status", "type": "string"}]});
    let v2 = json!({"type": "record", "name": "Order", "namespace": "shop.v1", "fields": [
        {"name": "n", "type": "long"}, {"name": "status", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": null}]});
    let subject = format!("{avro_topic}-value");
    let (id1, id2) = (
        registry.register(&subject, &v1).await,
        registry.register(&subject, &v2).await,
    );
    assert_ne!(id1, id2);
    let dir = std::env::temp_dir().join(format!("pushwire-kafka-avro-{id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let desc = dir.join("shop.desc");
    write_descriptor_set(&desc);

    let (avro_channel, proto_channel) = (format!("chat:avro-{id}"), format!("chat:proto-{id}"));
    let avro = consumer(
        "avro",
        &avro_topic,
        &avro_channel,
        PayloadSettings {
            format: PayloadFormat::Avro,
            schema_registry_url: registry.url(),
            schema_registry_timeout: Duration::from_secs(1),
            schema_registry_retries: 1,
            ..Default::default()
        },
    );
    let proto = consumer(
        "proto",
        &proto_topic,
        &proto_channel,
        PayloadSettings {
            format: PayloadFormat::Protobuf,
            descriptor_set_file: desc.display().to_string(),
            message: "shop.v1.Order".into(),
            ..Default::default()
        },
    );
    let server = TestServer::start_with(|c| c.consumers = vec![avro, proto]).await;
    let sdk = sdk_dir();
    let python = sdk.join(".venv/bin/python");
    // Avro: 1-20 except 16 (unknown schema id, dead-lettered); Protobuf: 1-20.
    let avro_args = ["python/consume_ordered.py", &avro_channel, "19", "60"];
    let proto_args = ["python/consume_ordered.py", &proto_channel, "20", "60"];
    let avro_sdk = run_in(&python, &sdk, &avro_args, &server);
    let proto_sdk = run_in(&python, &sdk, &proto_args, &server);
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "1")
        .create()
        .expect("producer");
    let write = async {
        wait_subscribed(&avro_channel, |b| server.api("presence_stats", b)).await;
        wait_subscribed(&proto_channel, |b| server.api("presence_stats", b)).await;
        let mut bodies: Vec<Vec<u8>> = (1..=20).map(proto_order).collect();
        bodies.insert(10, proto_order(99)[..5].to_vec());
        produce(&p, &proto_topic, bodies).await;

        produce(
            &p,
            &avro_topic,
            (1..=10).map(|n| avro_order(id1, n, false)).collect(),
        )
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while history_ns(&server, &avro_channel).await.len() < 10 {
            assert!(tokio::time::Instant::now() < deadline, "avro 1-10 routed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Registry down: a record of schema id2 (never looked up) waits, and so do the
        // records of the cached id1 behind it.
        registry.down().await;
        let mut bodies = vec![avro_order(id2, 11, true)];
        bodies.extend((12..=15).map(|n| avro_order(id1, n, false)));
        produce(&p, &avro_topic, bodies).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let h = health(&server).await;
            if h.contains("consumer avro") && h.contains("schema registry") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/health degraded while the registry is down: {h}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            history_ns(&server, &avro_channel).await,
            (1..=10).collect::<Vec<_>>(),
            "nothing past the waiting record while the registry is down"
        );
        registry.up().await;
        let mut bodies = vec![avro_order(999, 16, false)];
        bodies.extend((17..=20).map(|n| avro_order(id1, n, false)));
        produce(&p, &avro_topic, bodies).await;
    };
    let (avro_run, proto_run, ()) = tokio::join!(avro_sdk, proto_sdk, write);
    let mut want: Vec<u64> = (1..=20).collect();
    assert_eq!(
        received_ns(&proto_run.result()),
        want,
        "protobuf records as JSON, in order"
    );
    want.retain(|n| *n != 16);
    assert_eq!(
        received_ns(&avro_run.result()),
        want,
        "avro records as JSON, in order, none lost while the registry was down"
    );
    let (_, h) = server
        .api(
            "history",
            json!({"channel": avro_channel, "limit": 1, "reverse": true}),
        )
        .await;
    assert_eq!(
        h["result"]["publications"][0]["data"],
        json!({"n": 20, "status": "paid"}),
        "decoded to JSON: {h}"
    );

    let (body, headers) = first_record(&avro_dl, &format!("check-avro-{id}")).await;
    assert_eq!(body, avro_order(999, 16, false), "the record as it was");
    let reason = headers
        .iter()
        .find(|(k, _)| k == "pushwire-dead-letter-reason")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(
        reason.contains("unknown schema id 999") && reason.contains(&registry.url()),
        "reason: {reason:?}"
    );
    let (_, headers) = first_record(&proto_dl, &format!("check-proto-{id}")).await;
    assert!(
        headers.iter().any(
            |(k, v)| k == "pushwire-dead-letter-reason" && v.contains("protobuf shop.v1.Order")
        ),
        "{headers:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let h = health(&server).await;
        if h == "{}" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/health clears once the registry answers: {h}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
