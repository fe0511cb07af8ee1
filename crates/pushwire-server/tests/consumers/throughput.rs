//! Throughput of each consumer source, queue → subscriber: `N` events are put into the
//! source first, a WebSocket subscriber joins the channel, then the consumer starts; the figure
//! is events per second from the consumer's start until the subscriber holds the last event.
//! Memory engine. Ignored by default; run in release mode:
//! `cargo nextest run --release -p pushwire-server --test consumers -E 'test(/^throughput::/)' --run-ignored only --no-capture`.
//! `PUSHWIRE_CONSUMER_BENCH_N` sets `N` (default 20000).

use crate::consumers_common;

use consumers_common::*;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use pushwire_consumers::postgresql_outbox::PostgresOutboxSettings;
use pushwire_consumers::rabbitmq::RabbitMqSettings;
use pushwire_consumers::redis_stream::RedisStreamSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType};
use pushwire_test_support::consume::{bench_n, measure_throughput};
use pushwire_test_support::TestServer;

async fn big_server() -> TestServer {
    TestServer::start_with(|c| {
        *c = config();
        c.client.queue_max_size = 64 << 20;
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run in release mode"]
async fn throughput_rabbitmq() {
    require_service("127.0.0.1:5672", "RabbitMQ").await;
    let (id, n) = (unique(), bench_n());
    let queue = format!("pw-bench-{id}");
    let channel = format!("big:rabbitmq-{id}");
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current());
    let conn = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", props)
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(&queue, durable, FieldTable::default())
        .await
        .expect("declare");
    let mut confirms = Vec::with_capacity(n as usize);
    for i in 1..=n {
        let body = publish_command(&channel, i);
        let props = BasicProperties::default().with_message_id(format!("{id}-{i}").into());
        confirms.push(
            ch.basic_publish("", &queue, BasicPublishOptions::default(), &body, props)
                .await
                .expect("publish"),
        );
    }
    for c in confirms {
        c.await.expect("confirm");
    }
    let server = big_server().await;
    let mut c = ConsumerConfig::new("bench", ConsumerType::Rabbitmq);
    c.rabbitmq = Some(RabbitMqSettings {
        queue: queue.clone(),
        prefetch: 500,
        ..Default::default()
    });
    measure_throughput(&server, &channel, c, n).await;
    server.stop().await;
    let _ = ch.queue_delete(&queue, QueueDeleteOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run in release mode"]
async fn throughput_redis_stream() {
    require_service("127.0.0.1:6379", "Redis").await;
    let (id, n) = (unique(), bench_n());
    let stream = format!("rs-bench-{id}");
    let channel = format!("big:redis_stream-{id}");
    let mut conn = redis::Client::open(REDIS_URL)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    for chunk in (1..=n).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("payload")
                .arg(publish_command(&channel, *i))
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.expect("XADD pipeline");
    }
    let server = big_server().await;
    let mut c = ConsumerConfig::new("bench", ConsumerType::RedisStream);
    c.redis_stream = Some(RedisStreamSettings {
        streams: vec![stream.clone()],
        batch_size: 500,
        ..Default::default()
    });
    measure_throughput(&server, &channel, c, n).await;
    server.stop().await;
    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&stream).query_async(&mut conn).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run in release mode"]
async fn throughput_postgresql_outbox() {
    require_service("127.0.0.1:5432", "PostgreSQL").await;
    let (id, n) = (unique(), bench_n());
    let table = format!("outbox_bench_{id}");
    let channel = format!("big:postgresql_outbox-{id}");
    let (pg, connection) = tokio_postgres::connect(
        "host=127.0.0.1 user=postgres dbname=test",
        tokio_postgres::NoTls,
    )
    .await
    .expect("postgres");
    tokio::spawn(connection);
    pg.batch_execute(&format!(
        "CREATE TABLE {table} (id bigserial PRIMARY KEY, method text NOT NULL DEFAULT 'publish', \
         payload jsonb NOT NULL, partition integer NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT now())"
    ))
    .await
    .expect("create outbox");
    pg.execute(
        &format!(
            "INSERT INTO {table} (payload) SELECT jsonb_build_object('channel', $1::text, 'data', jsonb_build_object('n', g)) \
             FROM generate_series(1, $2::bigint) g ORDER BY g"
        ),
        &[&channel, &(n as i64)],
    )
    .await
    .expect("fill outbox");
    let server = big_server().await;
    let mut c = ConsumerConfig::new("bench", ConsumerType::PostgresqlOutbox);
    c.postgresql_outbox = Some(PostgresOutboxSettings {
        dsn: "host=127.0.0.1 user=postgres dbname=test".into(),
        table: table.clone(),
        batch_size: 500,
        ..Default::default()
    });
    measure_throughput(&server, &channel, c, n).await;
    server.stop().await;
    let _ = pg
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {table}_dead_letter; DROP FUNCTION IF EXISTS {table}_notify();"))
        .await;
}
