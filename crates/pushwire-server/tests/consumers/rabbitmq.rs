//! The RabbitMQ consumer end to end. The shared scenarios (`consumers_common`) over
//! [`RabbitMq`]: events published with `lapin` reach a real centrifuge-python subscriber in
//! order and poison messages are dead-lettered through the queue's dead-letter exchange while
//! later messages still flow; API commands other than publish act on connections; a broker
//! that is down at start is retried while the node serves; a node killed (SIGKILL) mid-stream
//! and restarted delivers every event exactly once from the client's point of view (Redis
//! engine). Here only: route mode builds channels from the routing key, a header and a body
//! field, and tags publications with the event type for a tags filter.
//!
//! Needs RabbitMQ on 127.0.0.1:5672 (guest/guest), Redis on 127.0.0.1:6379 and the SDKs
//! (`scripts/setup-sdks.sh`).

use crate::consumers_common;

use std::time::Duration;

use consumers_common::source::{with_mode, Redelivering, Sent, Source};
use consumers_common::*;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use pushwire_consumers::rabbitmq::RabbitMqSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::sdk::{run_in, sdk_dir};
use pushwire_test_support::TestServer;
use serde_json::json;

const AMQP_ADDR: &str = "127.0.0.1:5672";

fn amqp_url(addr: &str) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

/// A queue of the local RabbitMQ named for one test, with a producer connection that waits
/// for publisher confirms.
struct RabbitMq {
    id: String,
    queue: String,
    conn: Connection,
    ch: Channel,
}

impl RabbitMq {
    /// Queue `pw-<prefix>-<unique>` (declared by the consumer); a clear failure when RabbitMQ
    /// is down.
    async fn new(prefix: &str) -> RabbitMq {
        require_service(AMQP_ADDR, "RabbitMQ").await;
        let props = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current());
        let conn = Connection::connect(&amqp_url(AMQP_ADDR), props)
            .await
            .expect("connect to RabbitMQ as guest/guest");
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let id = unique();
        let queue = format!("pw-{prefix}-{id}");
        RabbitMq {
            id,
            queue,
            conn,
            ch,
        }
    }

    /// Publishes to `exchange` with routing key `key` and waits for the broker's confirm.
    async fn publish(&self, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
        self.ch
            .basic_publish(exchange, key, BasicPublishOptions::default(), body, props)
            .await
            .expect("basic.publish")
            .await
            .expect("publisher confirm");
    }
}

/// Persistent message properties with `message_id`.
fn with_id(id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_message_id(id.into())
        .with_delivery_mode(2)
}

/// A rabbitmq consumer named `name` on `queue` (dead-lettering to `<queue>.dlx`).
fn consumer(name: &str, url: &str, queue: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(name, ConsumerType::Rabbitmq);
    c.rabbitmq = Some(RabbitMqSettings {
        url: url.into(),
        queue: queue.into(),
        prefetch: 50,
        dead_letter_exchange: format!("{queue}.dlx"),
        ..Default::default()
    });
    c.retry_backoff_min = Duration::from_millis(50);
    c.retry_backoff_max = Duration::from_millis(500);
    c
}

/// Poison for a consumer in command mode: not JSON, a publish to an unknown namespace, an
/// unknown method.
const POISON: [&[u8]; 3] = [
    b"not json {",
    br#"{"method":"publish","payload":{"channel":"nowhere:x","data":{"n":0}}}"#,
    br#"{"method":"explode","payload":{}}"#,
];

impl Source for RabbitMq {
    const ADDR: &'static str = AMQP_ADDR;
    const POISON: u64 = POISON.len() as u64;
    type Receipt = ();
    type Poison = ();

    fn consumer(
        &self,
        name: &str,
        addr: &str,
        namespace: &str,
        mode: Mode,
    ) -> (ConsumerConfig, String) {
        let channel = format!("{namespace}:rmq-{}", self.id);
        let config = consumer(name, &amqp_url(addr), &self.queue);
        (with_mode(config, mode, &channel), channel)
    }

    /// Until the consumer declared the queue and is attached to it.
    async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            // A passive declare of a missing queue closes its channel: a fresh one each time.
            let ch = self.conn.create_channel().await.expect("channel");
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            if let Ok(q) = ch
                .queue_declare(&self.queue, passive, FieldTable::default())
                .await
                && q.consumer_count() > 0
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the pushwire consumer never attached to queue {}",
                self.queue
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// To the queue through the default exchange, persistent, `key` as `message_id`.
    async fn produce(&self, body: &[u8], key: &str) {
        self.publish("", &self.queue, body, with_id(key)).await;
    }

    async fn produce_poison(&self) {
        for (i, p) in POISON.iter().enumerate() {
            let key = format!("{}-poison-{i}", self.id);
            self.publish("", &self.queue, p, with_id(&key)).await;
        }
    }

    /// The poison went through the dead-letter exchange to `<queue>.dead_letter`, untouched.
    async fn assert_dead_lettered(&self, (): ()) {
        let mut dead = Vec::new();
        while let Some(m) = self
            .ch
            .basic_get(
                &format!("{}.dead_letter", self.queue),
                BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get")
        {
            dead.push(m.delivery.data.clone());
        }
        assert_eq!(dead, POISON.iter().map(|p| p.to_vec()).collect::<Vec<_>>());
    }

    async fn cleanup(&self) {
        let ch = self.conn.create_channel().await.expect("channel");
        for q in [self.queue.clone(), format!("{}.dead_letter", self.queue)] {
            let _ = ch.queue_delete(&q, QueueDeleteOptions::default()).await;
        }
        let _ = ch
            .exchange_delete(
                &format!("{}.dlx", self.queue),
                ExchangeDeleteOptions::default(),
            )
            .await;
    }
}

impl Redelivering for RabbitMq {
    /// Published again with the same message ids (a publisher retry, or a delivery whose ack
    /// the crash lost).
    async fn redeliver(&self, sent: &[Sent<()>], from: usize) {
        for s in &sent[from..] {
            self.produce(&s.body, &s.key).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_events_reach_a_python_subscriber_in_order_and_poison_is_dead_lettered() {
    let source = RabbitMq::new("orders").await;
    ordered::events_in_order_and_poison_dead_lettered(&source, Mode::ApiCommand).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_api_commands_other_than_publish_act_on_connections() {
    let source = RabbitMq::new("cmd").await;
    commands::api_commands_other_than_publish_act_on_connections(&source).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_down_at_start_is_retried_with_backoff_while_the_node_serves() {
    let source = RabbitMq::new("late").await;
    late::down_at_start_is_retried_while_the_node_serves(&source, Mode::ApiCommand).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_node_killed_mid_stream_delivers_every_event_exactly_once() {
    let source = RabbitMq::new("kill").await;
    kill::killed_node_delivers_every_event_once(&source, Mode::ApiCommand).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_route_mode_builds_channels_and_tags_for_a_tags_filter() {
    let source = RabbitMq::new("route").await;
    let exchange = format!("pw-ex-{}", source.id);
    let key = format!("shop{}", source.id);
    let mut config = consumer("route", &amqp_url(AMQP_ADDR), &source.queue);
    config.mode = Mode::Route;
    config.route = RouteConfig {
        channel: "tags:{header.tenant}-{region}.{subject}".into(),
        tag_field: "type".into(),
        skip_history: false,
    };
    if let Some(r) = config.rabbitmq.as_mut() {
        r.exchange = exchange.clone();
        r.routing_keys = vec!["#".into()];
    }
    let server = TestServer::start_with(|c| c.consumers = vec![config]).await;
    source.wait_ready().await;
    let channel = format!("tags:acme-eu.{key}");

    const N: u64 = 30;
    let (dir, paid) = (sdk_dir(), (N / 2).to_string());
    let python = dir.join(".venv/bin/python");
    let args = [
        "python/consume.py",
        &channel,
        &paid,
        "--tag",
        "type=paid",
        "--timeout",
        "30",
    ];
    let sdk = run_in(&python, &dir, &args, &server);
    let produce_all = async {
        wait_subscribed(&channel, |b| server.api("presence_stats", b)).await;
        let mut headers = FieldTable::default();
        headers.insert("tenant".into(), AMQPValue::LongString("acme".into()));
        for n in 1..=N {
            let kind = if n % 2 == 0 { "paid" } else { "created" };
            let body = json!({"n": n, "type": kind, "region": "eu"}).to_string();
            // No message id: the idempotency key is the content hash.
            let props = BasicProperties::default().with_headers(headers.clone());
            source
                .publish(&exchange, &key, body.as_bytes(), props)
                .await;
        }
    };
    let (run, ()) = tokio::join!(sdk, produce_all);
    let result = run.result();
    let evens: Vec<u64> = (1..=N).filter(|n| n % 2 == 0).collect();
    assert_eq!(ns(&result), evens, "only the paid events, in order");
    for t in result["tags"].as_array().expect("RESULT.tags") {
        assert_eq!(t, &json!({"type": "paid"}));
    }
    // Every event reached history (the filter is per subscriber).
    let history = server
        .node()
        .history(&channel, -1, None, false)
        .await
        .expect("history");
    assert_eq!(history.publications.len() as u64, N);
    server.stop().await;
    source.cleanup().await;
    let _ = source
        .ch
        .exchange_delete(&exchange, ExchangeDeleteOptions::default())
        .await;
}
