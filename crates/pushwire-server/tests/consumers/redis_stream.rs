//! The Redis Streams consumer end to end. The shared scenarios (`consumers_common`) over
//! [`RedisStream`]: entries `XADD`ed with the `redis` crate reach a real centrifuge-python
//! subscriber in order (route mode: channel from the stream name, event type as tag) and
//! poison entries go to the dead-letter stream while later entries still flow; API commands
//! other than publish act on connections; Redis down at start is retried while the node
//! serves; a node killed (SIGKILL) mid-stream and restarted delivers every event exactly once
//! from the client's point of view (Redis engine). Here only: entries stuck with a dead
//! consumer of the group are claimed (`XAUTOCLAIM`); an engine outage is retried without
//! acknowledging; the consumer pauses while the node is overloaded; Debezium envelopes, Avro
//! and Protobuf bodies; a source that hangs degrades visibly and loses nothing.
//!
//! Needs Redis on 127.0.0.1:6379 and the SDKs (`scripts/setup-sdks.sh`).

use crate::consumers_common;

use std::time::Duration;

use consumers_common::source::{with_mode, Redelivering, Sent, Source};
use consumers_common::*;
use pushwire_consumers::redis_stream::RedisStreamSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::{TestServer, WsClient};
use redis::aio::MultiplexedConnection;
use serde_json::json;

const REDIS_ADDR: &str = "127.0.0.1:6379";

async fn redis_conn() -> MultiplexedConnection {
    require_service(REDIS_ADDR, "Redis").await;
    redis::Client::open(REDIS_URL)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

/// `XADD stream * payload <body>`; the entry id.
async fn xadd(conn: &mut MultiplexedConnection, stream: &str, body: &[u8]) -> String {
    redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("payload")
        .arg(body)
        .query_async(conn)
        .await
        .expect("XADD")
}

/// A redis_stream consumer `name` on `streams` (group `pushwire`).
fn consumer(name: &str, address: &str, streams: &[&str]) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(name, ConsumerType::RedisStream);
    c.redis_stream = Some(RedisStreamSettings {
        address: address.into(),
        streams: streams.iter().map(|s| s.to_string()).collect(),
        block: Duration::from_millis(200),
        ..Default::default()
    });
    c.retry_backoff_min = Duration::from_millis(50);
    c.retry_backoff_max = Duration::from_millis(500);
    c
}

/// Waits until group `pushwire` exists on `stream` with a consumer in it.
async fn wait_group(conn: &mut MultiplexedConnection, stream: &str) {
    wait_until(
        &format!("consumer group on {stream}"),
        Duration::from_secs(20),
        || {
            let mut conn = conn.clone();
            async move {
                let groups: redis::RedisResult<redis::streams::StreamInfoGroupsReply> =
                    redis::cmd("XINFO")
                        .arg("GROUPS")
                        .arg(stream)
                        .query_async(&mut conn)
                        .await;
                groups.is_ok_and(|g| {
                    g.groups
                        .iter()
                        .any(|g| g.name == "pushwire" && g.consumers > 0)
                })
            }
        },
    )
    .await;
}

async fn cleanup(conn: &mut MultiplexedConnection, keys: &[String]) {
    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query_async(conn).await;
}

/// A stream of the local Redis named for one test, read by group `pushwire`.
struct RedisStream {
    stream: String,
    conn: MultiplexedConnection,
}

impl RedisStream {
    /// Stream `rs-<prefix>-<unique>` (the consumer creates the group); a clear failure when
    /// Redis is down.
    async fn new(prefix: &str) -> RedisStream {
        RedisStream {
            stream: format!("rs-{prefix}-{}", unique()),
            conn: redis_conn().await,
        }
    }
}

impl Source for RedisStream {
    const ADDR: &'static str = REDIS_ADDR;
    /// Not JSON, and an entry without the `payload` field.
    const POISON: u64 = 2;
    /// The entry id.
    type Receipt = String;
    type Poison = ();

    /// In route mode the channel is `<namespace>:<stream>` (the template's `{subject}`).
    fn consumer(
        &self,
        name: &str,
        addr: &str,
        namespace: &str,
        mode: Mode,
    ) -> (ConsumerConfig, String) {
        let channel = format!("{namespace}:{}", self.stream);
        let config = consumer(name, &format!("redis://{addr}"), &[&self.stream]);
        let template = format!("{namespace}:{{subject}}");
        (with_mode(config, mode, &template), channel)
    }

    async fn wait_ready(&self) {
        wait_group(&mut self.conn.clone(), &self.stream).await;
    }

    async fn produce(&self, body: &[u8], _key: &str) -> String {
        xadd(&mut self.conn.clone(), &self.stream, body).await
    }

    async fn produce_poison(&self) {
        let mut conn = self.conn.clone();
        xadd(&mut conn, &self.stream, b"not json {").await;
        let _: String = redis::cmd("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg("other")
            .arg("x")
            .query_async(&mut conn)
            .await
            .expect("XADD");
    }

    /// Both poison entries are in `<stream>:dead_letter` with why; nothing is left pending.
    async fn assert_dead_lettered(&self, (): ()) {
        let mut conn = self.conn.clone();
        let dead: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(format!("{}:dead_letter", self.stream))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .expect("XRANGE");
        assert_eq!(dead.ids.len(), 2, "{dead:?}");
        let error: String = dead.ids[0].get("pushwire_error").expect("pushwire_error");
        assert!(error.contains("not JSON"), "{error}");
        let payload: String = dead.ids[0].get("payload").expect("payload kept");
        assert_eq!(payload, "not json {");
        let error: String = dead.ids[1].get("pushwire_error").expect("pushwire_error");
        assert!(error.contains("no field \"payload\""), "{error}");
        let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg("pushwire")
            .query_async(&mut conn)
            .await
            .expect("XPENDING");
        assert_eq!(pending.count(), 0);
    }

    async fn cleanup(&self) {
        let keys = [self.stream.clone(), format!("{}:dead_letter", self.stream)];
        cleanup(&mut self.conn.clone(), &keys).await;
    }
}

impl Redelivering for RedisStream {
    /// Rewinds the group to the entry before `sent[from]`: what the dead node had already
    /// published is delivered again, as after a crash between publish and XACK.
    async fn redeliver(&self, sent: &[Sent<String>], from: usize) {
        let _: () = redis::cmd("XGROUP")
            .arg("SETID")
            .arg(&self.stream)
            .arg("pushwire")
            .arg(&sent[from - 1].receipt)
            .query_async(&mut self.conn.clone())
            .await
            .expect("XGROUP SETID");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stream_route_mode_in_order_and_poison_is_dead_lettered() {
    let source = RedisStream::new("ordered").await;
    ordered::events_in_order_and_poison_dead_lettered(&source, Mode::Route).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stream_api_commands_other_than_publish_act_on_connections() {
    let source = RedisStream::new("cmd").await;
    commands::api_commands_other_than_publish_act_on_connections(&source).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stream_down_at_start_is_retried_with_backoff_while_the_node_serves() {
    let source = RedisStream::new("late").await;
    late::down_at_start_is_retried_while_the_node_serves(&source, Mode::ApiCommand).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stream_node_killed_mid_stream_delivers_every_event_exactly_once() {
    let source = RedisStream::new("kill").await;
    kill::killed_node_delivers_every_event_once(&source, Mode::ApiCommand).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stream_claims_entries_stuck_with_a_dead_consumer() {
    let id = unique();
    let stream = format!("rs-claim-{id}");
    let channel = format!("chat:claim-{id}");
    let mut conn = redis_conn().await;
    // A consumer "ghost" read three entries and died before acknowledging them.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("pushwire")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("XGROUP CREATE");
    for n in 1..=3 {
        xadd(&mut conn, &stream, &publish_command(&channel, n)).await;
    }
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("pushwire")
        .arg("ghost")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .expect("ghost XREADGROUP");

    let mut config = consumer("claim", REDIS_URL, &[&stream]);
    if let Some(r) = config.redis_stream.as_mut() {
        r.claim_min_idle = Duration::from_millis(300);
        r.claim_interval = Duration::from_millis(200);
    }
    let server = TestServer::start_with(|c| c.consumers = vec![config]).await;
    let node = server.node().clone();
    let ch = channel.clone();
    wait_until(
        "the ghost's entries are claimed and published",
        Duration::from_secs(10),
        || {
            let (node, ch) = (node.clone(), ch.clone());
            async move {
                node.history(&ch, -1, None, false)
                    .await
                    .is_ok_and(|h| h.publications.len() == 3)
            }
        },
    )
    .await;
    let h = server
        .node()
        .history(&channel, -1, None, false)
        .await
        .expect("history");
    let got: Vec<_> = h
        .publications
        .iter()
        .map(|p| {
            serde_json::from_slice::<serde_json::Value>(p.data.as_bytes()).expect("json")["n"]
                .clone()
        })
        .collect();
    assert_eq!(got, vec![json!(1), json!(2), json!(3)]);
    let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("pushwire")
        .query_async(&mut conn)
        .await
        .expect("XPENDING");
    assert_eq!(pending.count(), 0, "claimed entries acknowledged");
    server.stop().await;
    cleanup(&mut conn, &[stream]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stream_engine_outage_is_retried_without_acknowledging_and_order_holds() {
    let id = unique();
    let stream = format!("rs-retry-{id}");
    let channel = format!("big:retry-{id}");
    let mut conn = redis_conn().await;
    // The node's engine reaches Redis through a line the test can cut; the consumer reads the
    // stream directly.
    let mut line = LateBroker::new(REDIS_ADDR);
    line.open().await;
    let mut c = redis_engine_config(&id);
    c.engine.redis.address = format!("redis://127.0.0.1:{}", line.port).into();
    c.consumers = vec![consumer("retry", REDIS_URL, &[&stream])];
    let server = TestServer::start_with(|cfg| *cfg = c).await;
    wait_group(&mut conn, &stream).await;
    xadd(&mut conn, &stream, &publish_command(&channel, 1)).await;
    let node = server.node().clone();
    let ch = channel.clone();
    let published = move |n: usize| {
        let (node, ch) = (node.clone(), ch.clone());
        async move {
            node.history(&ch, -1, None, false)
                .await
                .is_ok_and(|h| h.publications.len() == n)
        }
    };
    wait_until("event 1 published", Duration::from_secs(10), || {
        published(1)
    })
    .await;

    // The engine is down: events wait unacknowledged, retried with backoff.
    line.close().await;
    for n in 2..=4 {
        xadd(&mut conn, &stream, &publish_command(&channel, n)).await;
    }
    let labels = "{consumer=\"retry\",type=\"redis_stream\"}";
    let failed = format!("pushwire_consumer_failed_total{labels}");
    wait_until(
        "transient failures are retried",
        Duration::from_secs(10),
        || async { Scrape::of(&server).await.count_or_zero(&failed) >= 2 },
    )
    .await;
    let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("pushwire")
        .query_async(&mut conn)
        .await
        .expect("XPENDING");
    assert!(
        pending.count() >= 1,
        "the failing entry is not acknowledged"
    );
    let scrape = Scrape::of(&server).await;
    assert_eq!(
        scrape.count(&format!("pushwire_consumer_dead_lettered_total{labels}")),
        0,
        "a transient failure is not poison"
    );

    // The engine is back: the waiting events are published, in order, and acknowledged.
    line.open().await;
    wait_until(
        "events 2..4 published after the outage",
        Duration::from_secs(20),
        || published(4),
    )
    .await;
    let h = server
        .node()
        .history(&channel, -1, None, false)
        .await
        .expect("history");
    let got: Vec<_> = h
        .publications
        .iter()
        .map(|p| {
            serde_json::from_slice::<serde_json::Value>(p.data.as_bytes()).expect("json")["n"]
                .clone()
        })
        .collect();
    assert_eq!(got, vec![json!(1), json!(2), json!(3), json!(4)]);
    wait_until("everything acknowledged", Duration::from_secs(5), || {
        let mut conn = conn.clone();
        let stream = stream.clone();
        async move {
            let p: redis::RedisResult<redis::streams::StreamPendingReply> = redis::cmd("XPENDING")
                .arg(&stream)
                .arg("pushwire")
                .query_async(&mut conn)
                .await;
            p.is_ok_and(|p| p.count() == 0)
        }
    })
    .await;
    server.stop().await;
    cleanup(&mut conn, &[stream]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stream_consumer_pauses_while_the_node_is_overloaded() {
    let id = unique();
    let stream = format!("rs-bp-{id}");
    let (target, flood) = (format!("chat:bp-{id}"), format!("flood-{id}"));
    let mut conn = redis_conn().await;
    let mut config = consumer("bp", REDIS_URL, &[&stream]);
    config.pause_queued_bytes = 256 * 1024;
    let server = TestServer::start_with(|c| {
        c.client.queue_max_size = 256 << 20;
        c.websocket.write_timeout = Duration::from_secs(60);
        c.consumers = vec![config];
    })
    .await;
    wait_group(&mut conn, &stream).await;

    // A subscriber that stops reading: what the node sends it piles up in its queue.
    let (mut stuck, _) = WsClient::connected(&server.ws_url(), None).await;
    let reply = stuck
        .command(json!({"subscribe": {"channel": flood}}))
        .await;
    assert!(reply.get("error").is_none(), "{reply}");
    let chunk = "x".repeat(256 * 1024);
    let node = server.node().clone();
    let queued = || {
        node.registry()
            .all()
            .iter()
            .map(|c| c.outbox().queued_bytes())
            .sum::<usize>()
    };
    // Beyond what the kernel's socket buffers absorb.
    for _ in 0..400 {
        server.publish(&flood, json!({"blob": chunk})).await;
        if queued() > 4 << 20 {
            break;
        }
    }
    assert!(
        queued() > 4 << 20,
        "the stuck subscriber's queue did not grow: {}",
        queued()
    );

    // Overloaded: events wait in the stream, unread.
    for n in 1..=5 {
        xadd(&mut conn, &stream, &publish_command(&target, n)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(queued() > 256 * 1024, "still overloaded: {}", queued());
    let labels = "{consumer=\"bp\",type=\"redis_stream\"}";
    let scrape = Scrape::of(&server).await;
    assert!(
        scrape.count(&format!("pushwire_consumer_paused_total{labels}")) >= 1,
        "paused counted"
    );
    assert_eq!(
        scrape.count(&format!("pushwire_consumer_received_total{labels}")),
        0,
        "nothing taken while paused"
    );
    let h = server
        .node()
        .history(&target, -1, None, false)
        .await
        .expect("history");
    assert!(h.publications.is_empty(), "published while overloaded");

    // The stuck subscriber goes away: the consumer resumes.
    drop(stuck);
    let node = server.node().clone();
    let ch = target.clone();
    wait_until("the consumer resumes", Duration::from_secs(10), || {
        let (node, ch) = (node.clone(), ch.clone());
        async move {
            node.history(&ch, -1, None, false)
                .await
                .is_ok_and(|h| h.publications.len() == 5)
        }
    })
    .await;
    server.stop().await;
    cleanup(&mut conn, &[stream]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stream_debezium_envelopes_route_like_cdc_changes() {
    require_service(REDIS_ADDR, "Redis").await;
    let mut conn = redis_conn().await;
    let id = unique();
    let stream = format!("dbz-{id}");
    let table = format!("orders_{id}");
    let mut c = consumer("dbz", "redis://127.0.0.1:6379", &[&stream]);
    c.mode = Mode::Debezium;
    c.route = RouteConfig {
        channel: "chat:dbz-{table}-{row.id}".into(),
        tag_field: "op".into(),
        skip_history: false,
    };
    let server = TestServer::start_with(|cfg| cfg.consumers = vec![c]).await;
    wait_group(&mut conn, &stream).await;
    let channel = format!("chat:dbz-{table}-7");
    let (mut ws, _) = WsClient::connected(&server.ws_url(), None).await;
    let reply = ws.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(reply.get("error").is_none(), "{reply}");
    let source = json!({"connector": "postgresql", "db": "shop", "schema": "public", "table": table, "lsn": 42, "ts_ms": 1_700_000_000_000u64});
    let envelopes = [
        json!({"schema": {}, "payload": {"op": "c", "before": null, "after": {"id": 7, "status": "new"}, "source": source}}),
        json!({"payload": {"op": "u", "before": {"id": 7, "status": "new"}, "after": {"id": 7, "status": "paid"}, "source": source}}),
        json!({"op": "d", "before": {"id": 7, "status": "paid"}, "after": null, "source": source}),
    ];
    xadd(&mut conn, &stream, envelopes[0].to_string().as_bytes()).await;
    xadd(&mut conn, &stream, b"{\"not\": \"an envelope\"}").await;
    xadd(&mut conn, &stream, envelopes[1].to_string().as_bytes()).await;
    xadd(&mut conn, &stream, envelopes[2].to_string().as_bytes()).await;
    xadd(&mut conn, &stream, b"null").await; // the tombstone after a delete
    let want = [
        (
            "insert",
            json!({"id": 7, "status": "new"}),
            serde_json::Value::Null,
        ),
        (
            "update",
            json!({"id": 7, "status": "paid"}),
            json!({"id": 7, "status": "new"}),
        ),
        (
            "delete",
            json!({"id": 7, "status": "paid"}),
            serde_json::Value::Null,
        ),
    ];
    for (op, row, old) in want {
        let p = ws.next_publication(&channel).await;
        assert_eq!(
            (
                &p["data"]["op"],
                &p["data"]["row"],
                &p["data"]["old"],
                &p["tags"]["op"]
            ),
            (&json!(op), &row, &old, &json!(op)),
            "{p}"
        );
        assert_eq!(
            (&p["data"]["schema"], &p["data"]["table"], &p["data"]["lsn"]),
            (&json!("public"), &json!(table), &json!("42"))
        );
    }
    assert!(
        ws.silent_for(Duration::from_millis(500)).await,
        "the tombstone is not routed"
    );
    let labels = "{consumer=\"dbz\",type=\"redis_stream\"}";
    let scrape = Scrape::of(&server).await;
    assert_eq!(
        scrape.get(&format!("pushwire_consumer_dead_lettered_total{labels}")),
        1.0
    );
    assert_eq!(
        scrape.get(&format!("pushwire_consumer_published_total{labels}")),
        3.0
    );
    server.stop().await;
    let _: redis::RedisResult<()> = redis::cmd("DEL")
        .arg(&stream)
        .arg(format!("{stream}:dead_letter"))
        .query_async(&mut conn)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stream_avro_and_protobuf_bodies_arrive_as_json_and_undecodable_ones_dead_letter() {
    use prost::Message as _;
    use prost_types::{
        field_descriptor_proto::Type, DescriptorProto, FieldDescriptorProto, FileDescriptorProto,
        FileDescriptorSet,
    };
    use pushwire_consumers::payload::{PayloadFormat, PayloadSettings};
    require_service(REDIS_ADDR, "Redis").await;
    let mut conn = redis_conn().await;
    let id = unique();
    let dir = std::env::temp_dir().join(format!("pushwire-payload-{id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    // Avro schema id 7 in the local schema directory.
    std::fs::write(
        dir.join("7.avsc"),
        r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"status","type":"string"}]}"#,
    )
    .expect("schema");
    // Protobuf shop.v1.Order { int64 id = 1; string status = 2; } as a descriptor set.
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
                field: vec![
                    field("id", 1, Type::Int64),
                    field("status", 2, Type::String),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let desc = dir.join("shop.desc");
    std::fs::write(&desc, set.encode_to_vec()).expect("descriptor set");

    let (avro_stream, proto_stream) = (format!("avro-{id}"), format!("proto-{id}"));
    let mut avro = consumer("avro", "redis://127.0.0.1:6379", &[&avro_stream]);
    avro.mode = Mode::Route;
    avro.route.channel = format!("chat:avro-{id}");
    avro.payload = PayloadSettings {
        format: PayloadFormat::Avro,
        schema_dir: dir.display().to_string(),
        ..Default::default()
    };
    let mut proto = consumer("proto", "redis://127.0.0.1:6379", &[&proto_stream]);
    proto.mode = Mode::Route;
    proto.route.channel = format!("chat:proto-{id}");
    proto.payload = PayloadSettings {
        format: PayloadFormat::Protobuf,
        descriptor_set_file: desc.display().to_string(),
        message: "shop.v1.Order".into(),
        ..Default::default()
    };
    let server = TestServer::start_with(|cfg| cfg.consumers = vec![avro, proto]).await;
    wait_group(&mut conn, &avro_stream).await;
    wait_group(&mut conn, &proto_stream).await;
    let (mut ws, _) = WsClient::connected(&server.ws_url(), None).await;
    for ch in [format!("chat:avro-{id}"), format!("chat:proto-{id}")] {
        let reply = ws.command(json!({"subscribe": {"channel": ch}})).await;
        assert!(reply.get("error").is_none(), "{reply}");
    }
    // Confluent wire format: magic 0, schema id 7, then the datum {id: 42 (zigzag 0x54),
    // status: "paid" (length zigzag 0x08)}; then an unknown schema id 9.
    let datum = [0x54, 0x08, b'p', b'a', b'i', b'd'];
    let mut good = vec![0, 0, 0, 0, 7];
    good.extend_from_slice(&datum);
    let mut unknown = vec![0, 0, 0, 0, 9];
    unknown.extend_from_slice(&datum);
    xadd(&mut conn, &avro_stream, &unknown).await;
    xadd(&mut conn, &avro_stream, &good).await;
    xadd(&mut conn, &proto_stream, &[0x12, 9, b'x']).await;
    xadd(
        &mut conn,
        &proto_stream,
        &[0x08, 43, 0x12, 4, b'p', b'a', b'i', b'd'],
    )
    .await;
    // The two consumers run independently: their publications arrive in either order.
    let mut data = std::collections::BTreeMap::new();
    while data.len() < 2 {
        let m = ws.next_message().await.expect("connection open");
        if m["push"]["pub"].is_object() {
            let channel = m["push"]["channel"].as_str().unwrap_or_default().to_owned();
            data.insert(channel, m["push"]["pub"]["data"].clone());
        }
    }
    assert_eq!(
        data[&format!("chat:avro-{id}")],
        json!({"id": 42, "status": "paid"})
    );
    assert_eq!(
        data[&format!("chat:proto-{id}")],
        json!({"id": "43", "status": "paid"})
    );
    let scrape = Scrape::of(&server).await;
    for name in ["avro", "proto"] {
        let labels = format!("{{consumer=\"{name}\",type=\"redis_stream\"}}");
        assert_eq!(
            scrape.get(&format!("pushwire_consumer_dead_lettered_total{labels}")),
            1.0,
            "{name}"
        );
    }
    // The dead-letter entry says why.
    let dead: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{avro_stream}:dead_letter"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE");
    let reason: String = dead.ids[0].get("pushwire_error").expect("reason");
    assert!(reason.contains("unknown schema id 9"), "{reason}");
    server.stop().await;
    let _: redis::RedisResult<()> = redis::cmd("DEL")
        .arg(&avro_stream)
        .arg(&proto_stream)
        .arg(format!("{avro_stream}:dead_letter"))
        .arg(format!("{proto_stream}:dead_letter"))
        .query_async(&mut conn)
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 14 item 4: the consumer's Redis hangs (SIGSTOP, not dead) for the length of a few
/// command timeouts. The node keeps serving its clients at once; `/health` and
/// `pushwire_consumer_source_up` show the consumer's source down within the consumer's command
/// timeout (5 s plus its `block`); after SIGCONT the consumer reconnects by itself, `/health`
/// is healthy again, and every entry, including those added just before the hang, arrives
/// exactly once and in order.
#[tokio::test(flavor = "multi_thread")]
async fn redis_stream_source_that_hangs_degrades_visibly_and_loses_nothing() {
    use pushwire_test_support::stoppable::StoppableProcess;
    let redis = StoppableProcess::redis().await;
    let id = unique();
    let stream = format!("rs-hang-{id}");
    let channel = format!("chat:hang-{id}");
    let other = format!("chat:other-{id}");
    let mut conn = redis::Client::open(redis.redis_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("private redis");
    let server = TestServer::start_with(|c| {
        c.consumers = vec![consumer("hang", &redis.redis_url(), &[&stream])];
    })
    .await;
    wait_group(&mut conn, &stream).await;
    let (mut ws, _) = WsClient::connected(&server.ws_url(), None).await;
    let (mut bystander, _) = WsClient::connected(&server.ws_url(), None).await;
    for (c, ch) in [(&mut ws, &channel), (&mut bystander, &other)] {
        let r = c.command(json!({"subscribe": {"channel": ch}})).await;
        assert!(r.get("error").is_none(), "{r}");
    }
    for n in 1..=3 {
        xadd(&mut conn, &stream, &publish_command(&channel, n)).await;
    }
    // Entries 4 and 5 go in right before the hang: read, maybe not yet acknowledged.
    for n in 4..=5 {
        xadd(&mut conn, &stream, &publish_command(&channel, n)).await;
    }
    redis.stop();

    // The node serves its clients meanwhile, at once.
    let started = std::time::Instant::now();
    server.publish(&other, json!({"live": true})).await;
    let p = tokio::time::timeout(Duration::from_secs(5), bystander.next_publication(&other))
        .await
        .expect("a publication on another channel during the hang");
    assert_eq!(p["data"]["live"], json!(true));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the node answers while the consumer's Redis hangs ({:?})",
        started.elapsed()
    );

    // Visible: /health degraded naming the consumer, and the source gauge at 0.
    let http = reqwest::Client::new();
    let health = format!("{}/health", server.http_url());
    let up = "pushwire_consumer_source_up{consumer=\"hang\",type=\"redis_stream\"}";
    wait_until(
        "the hanging source shows in /health and /metrics",
        Duration::from_secs(30),
        || {
            let (http, health, server) = (http.clone(), health.clone(), &server);
            async move {
                let Ok(r) = http.get(&health).send().await else {
                    return false;
                };
                let body = r.text().await.unwrap_or_default();
                body.contains("consumer hang: source unavailable")
                    && Scrape::of(server).await.get(up) == 0.0
            }
        },
    )
    .await;

    // Thawed: the consumer comes back by itself and nothing is lost or doubled.
    redis.resume();
    for n in 6..=8 {
        xadd(&mut conn, &stream, &publish_command(&channel, n)).await;
    }
    let mut got = Vec::new();
    while got.len() < 8 {
        // (WsClient waits 5 s per read: the consumer reconnects within its backoff.)
        let p = ws.next_publication(&channel).await;
        got.push(p["data"]["n"].as_u64().expect("n"));
    }
    assert_eq!(
        got,
        (1..=8).collect::<Vec<u64>>(),
        "every entry once, in order"
    );
    wait_until("healthy again", Duration::from_secs(20), || {
        let (http, health, server) = (http.clone(), health.clone(), &server);
        async move {
            let healthy = http
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            healthy && Scrape::of(server).await.get(up) == 1.0
        }
    })
    .await;
    let extra =
        tokio::time::timeout(Duration::from_millis(500), ws.next_publication(&channel)).await;
    assert!(extra.is_err(), "nothing delivered twice: {extra:?}");
    server.stop().await;
}
