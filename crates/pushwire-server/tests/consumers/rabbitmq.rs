//! The RabbitMQ consumer end to end: events published with `lapin` reach a real
//! centrifuge-python subscriber in order; poison messages are dead-lettered through the
//! queue's dead-letter exchange while later messages still flow; route mode builds channels
//! from the routing key, a header and a body field, and tags publications with the event type
//! for a tags filter; a broker that is down at start is retried while the node serves; a node
//! killed (SIGKILL) mid-stream and restarted delivers every event exactly once from the
//! client's point of view (Redis engine).
//!
//! Needs RabbitMQ on 127.0.0.1:5672 (guest/guest), Redis on 127.0.0.1:6379 and the SDKs
//! (`scripts/setup-sdks.sh`).

use crate::consumers_common;

use std::time::Duration;

use consumers_common::*;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use pushwire_consumers::rabbitmq::RabbitMqSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::node_process::{run_python_at, NodeProcess};
use pushwire_test_support::sdk::{run_in, sdk_dir};
use pushwire_test_support::{TestServer, WsClient};
use serde_json::json;

const AMQP_ADDR: &str = "127.0.0.1:5672";

fn amqp_url(addr: &str) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

/// A producer connection with publisher confirms; a clear failure when RabbitMQ is down.
async fn producer() -> (Connection, Channel) {
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
    (conn, ch)
}

/// Publishes and waits for the broker's confirm.
async fn produce(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    ch.basic_publish(exchange, key, BasicPublishOptions::default(), body, props)
        .await
        .expect("basic.publish")
        .await
        .expect("publisher confirm");
}

/// Persistent message properties with `message_id`.
fn with_id(id: String) -> BasicProperties {
    BasicProperties::default()
        .with_message_id(id.into())
        .with_delivery_mode(2)
}

/// Waits until the consumer declared `queue` and is attached to it.
async fn wait_consumer(conn: &Connection, queue: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // A passive declare of a missing queue closes its channel: a fresh one each time.
        let ch = conn.create_channel().await.expect("channel");
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if let Ok(q) = ch
            .queue_declare(queue, passive, FieldTable::default())
            .await
        {
            if q.consumer_count() > 0 {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pushwire consumer never attached to queue {queue}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

async fn cleanup(conn: &Connection, queue: &str) {
    let ch = conn.create_channel().await.expect("channel");
    for q in [queue.to_owned(), format!("{queue}.dead_letter")] {
        let _ = ch.queue_delete(&q, QueueDeleteOptions::default()).await;
    }
    let _ = ch
        .exchange_delete(&format!("{queue}.dlx"), ExchangeDeleteOptions::default())
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_events_reach_a_python_subscriber_in_order_and_poison_is_dead_lettered() {
    let id = unique();
    let queue = format!("pw-orders-{id}");
    let channel = format!("chat:rmq-{id}");
    let (conn, ch) = producer().await;
    let config = consumer("orders", &amqp_url(AMQP_ADDR), &queue);
    let server = TestServer::start_with(|c| c.consumers = vec![config]).await;
    wait_consumer(&conn, &queue).await;

    const N: u64 = 40;
    let poison: [&[u8]; 3] = [
        b"not json {",
        br#"{"method":"publish","payload":{"channel":"nowhere:x","data":{"n":0}}}"#,
        br#"{"method":"explode","payload":{}}"#,
    ];
    let (dir, count) = (sdk_dir(), N.to_string());
    let python = dir.join(".venv/bin/python");
    let args = ["python/consume_ordered.py", &channel, &count, "30"];
    let sdk = run_in(&python, &dir, &args, &server);
    let produce_all = async {
        wait_subscribed(&channel, |b| server.api("presence_stats", b)).await;
        for n in 1..=N {
            let body = publish_command(&channel, n);
            produce(&ch, "", &queue, &body, with_id(format!("{id}-{n}"))).await;
            if n == 10 {
                for (i, p) in poison.iter().enumerate() {
                    produce(&ch, "", &queue, p, with_id(format!("{id}-poison-{i}"))).await;
                }
            }
        }
    };
    let (run, ()) = tokio::join!(sdk, produce_all);
    assert_eq!(
        ns(&run.result()),
        (1..=N).collect::<Vec<_>>(),
        "events in order"
    );

    // The three poison messages went through the dead-letter exchange, untouched.
    let mut dead = Vec::new();
    while let Some(m) = ch
        .basic_get(
            &format!("{queue}.dead_letter"),
            BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic.get")
    {
        dead.push(m.delivery.data.clone());
    }
    assert_eq!(dead, poison.iter().map(|p| p.to_vec()).collect::<Vec<_>>());

    let labels = "{consumer=\"orders\",type=\"rabbitmq\"}";
    let scrape = Scrape::of(&server).await;
    let metric = |m: &str| scrape.count(&format!("pushwire_consumer_{m}{labels}"));
    assert_eq!(metric("published_total"), N);
    assert_eq!(metric("dead_lettered_total"), 3);
    assert_eq!(metric("received_total"), N + 3);
    assert_eq!(metric("duplicates_total"), 0);
    server.stop().await;
    cleanup(&conn, &queue).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_route_mode_builds_channels_and_tags_for_a_tags_filter() {
    let id = unique();
    let queue = format!("pw-route-{id}");
    let exchange = format!("pw-ex-{id}");
    let key = format!("shop{id}");
    let (conn, ch) = producer().await;
    let mut config = consumer("route", &amqp_url(AMQP_ADDR), &queue);
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
    wait_consumer(&conn, &queue).await;
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
            produce(&ch, &exchange, &key, body.as_bytes(), props).await;
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
    cleanup(&conn, &queue).await;
    let _ = ch
        .exchange_delete(&exchange, ExchangeDeleteOptions::default())
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_api_commands_other_than_publish_act_on_connections() {
    let id = unique();
    let queue = format!("pw-cmd-{id}");
    let channel = format!("chat:cmd-{id}");
    let (conn, ch) = producer().await;
    let server = TestServer::start_with(|c| {
        c.consumers = vec![consumer("cmd", &amqp_url(AMQP_ADDR), &queue)]
    })
    .await;
    wait_consumer(&conn, &queue).await;
    let user = format!("u{id}");
    let token = pushwire_test_support::token(json!({"sub": user}));
    let (mut ws, _) = WsClient::connected(&server.ws_url(), Some(&token)).await;
    let reply = ws.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(reply.get("error").is_none(), "{reply}");

    // broadcast, then unsubscribe the user from the channel, then disconnect them.
    let commands = [
        json!({"method": "broadcast", "payload": {"channels": [channel], "data": {"n": 1}}}),
        json!({"method": "unsubscribe", "payload": {"user": user, "channel": channel}}),
        json!({"method": "disconnect", "payload": {"user": user, "disconnect": {"code": 4501, "reason": "bye"}}}),
    ];
    for (i, c) in commands.iter().enumerate() {
        let body = c.to_string();
        produce(
            &ch,
            "",
            &queue,
            body.as_bytes(),
            with_id(format!("{id}-{i}")),
        )
        .await;
    }
    let p = ws.next_publication(&channel).await;
    assert_eq!(p["data"]["n"], json!(1));
    let unsub = loop {
        let m = ws.next_message().await.expect("open");
        if m["push"]["unsubscribe"].is_object() {
            break m;
        }
    };
    assert_eq!(unsub["push"]["channel"], json!(channel), "{unsub}");
    let (code, reason) = ws.expect_close().await;
    assert_eq!((code, reason.as_str()), (4501, "bye"));
    server.stop().await;
    cleanup(&conn, &queue).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_down_at_start_is_retried_with_backoff_while_the_node_serves() {
    let id = unique();
    let queue = format!("pw-late-{id}");
    let channel = format!("chat:late-{id}");
    let (conn, ch) = producer().await;
    let mut broker = LateBroker::new(AMQP_ADDR);
    let config = consumer(
        "late",
        &amqp_url(&format!("127.0.0.1:{}", broker.port)),
        &queue,
    );
    let server = TestServer::start_with(|c| c.consumers = vec![config]).await;

    // The broker is down: the node still serves clients and the API.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (mut ws, _) = WsClient::connected(&server.ws_url(), None).await;
    let reply = ws.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(
        reply.get("error").is_none(),
        "subscribe while the broker is down: {reply}"
    );
    server.publish(&channel, json!({"n": 0})).await;
    let labels = "{consumer=\"late\",type=\"rabbitmq\"}";
    let scrape = Scrape::of(&server).await;
    assert_eq!(scrape.get(&format!("pushwire_consumer_lag{labels}")), -1.0);
    assert_eq!(
        scrape.count(&format!("pushwire_consumer_received_total{labels}")),
        0
    );

    // The broker comes up: the consumer connects on a later retry and events flow.
    broker.open().await;
    wait_consumer(&conn, &queue).await;
    for n in 1..=5u64 {
        produce(
            &ch,
            "",
            &queue,
            &publish_command(&channel, n),
            with_id(format!("{id}-{n}")),
        )
        .await;
    }
    for n in 0..=5u64 {
        let p = ws.next_publication(&channel).await;
        assert_eq!(p["data"]["n"], json!(n), "{p}");
    }
    server.stop().await;
    cleanup(&conn, &queue).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_node_killed_mid_stream_delivers_every_event_exactly_once() {
    let id = unique();
    let queue = format!("pw-kill-{id}");
    let channel = format!("big:rmq-kill-{id}");
    let (conn, ch) = producer().await;
    let mut config = redis_engine_config(&id);
    config.consumers = vec![consumer("orders", &amqp_url(AMQP_ADDR), &queue)];
    let mut node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;
    wait_consumer(&conn, &queue).await;

    let (ws, http) = (node.ws_url(), node.http_url());
    let count = KILL_N.to_string();
    let args = ["python/consume_ordered.py", &channel, &count, "40"];
    let sdk = run_python_at(&args, &ws, &http);
    let produce_all = async {
        wait_subscribed(&channel, |b| node.api("presence_stats", b)).await;
        for n in 1..=KILL_N {
            let body = publish_command(&channel, n);
            produce(&ch, "", &queue, &body, with_id(format!("{id}-{n}"))).await;
            if n == KILL_AT {
                // Let the consumer get into the middle of what was written, then crash it.
                tokio::time::sleep(Duration::from_millis(30)).await;
                node.kill().await;
                // Events it had already published come again (a publisher retry, or a
                // delivery whose ack the crash lost): same message ids.
                for r in REDELIVER_FROM..=KILL_AT {
                    let body = publish_command(&channel, r);
                    produce(&ch, "", &queue, &body, with_id(format!("{id}-{r}"))).await;
                }
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
    let labels = "{consumer=\"orders\",type=\"rabbitmq\"}";
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
    cleanup(&conn, &queue).await;
}
