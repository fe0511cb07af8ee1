//! `rediss://` end to end, against a real TLS-only redis-server (started by the test with its
//! own certificate): the Redis engine carries publications and history over TLS, the Redis
//! Streams consumer reads over TLS, and an untrusted certificate stops the engine at start
//! with an error naming the address.

use std::time::Duration;

use pushwire_consumers::redis_stream::RedisStreamSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType};
use pushwire_server::config::EngineKind;
use pushwire_test_support::tls_redis::TlsRedis;
use pushwire_test_support::{TestServer, WsClient};
use serde_json::json;

#[tokio::test]
async fn engine_over_tls_delivers_and_keeps_history() {
    let redis = TlsRedis::start().await;
    let server = TestServer::start_with(|c| {
        c.engine.kind = EngineKind::Redis;
        c.engine.redis.address = redis.url().into();
        c.engine.redis.tls_ca_pem_file = redis.ca_file();
    })
    .await;
    let (mut ws, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = ws
        .command(json!({"subscribe": {"channel": "chat:tls"}}))
        .await;
    assert!(r["subscribe"].is_object(), "{r}");
    server.publish("chat:tls", json!({"over": "tls"})).await;
    assert_eq!(
        ws.next_publication("chat:tls").await["data"],
        json!({"over": "tls"})
    );
    let (_, h) = server
        .api("history", json!({"channel": "chat:tls", "limit": 10}))
        .await;
    assert_eq!(
        h["result"]["publications"][0]["data"],
        json!({"over": "tls"}),
        "{h}"
    );
    server.stop().await;
}

#[tokio::test]
async fn engine_refuses_an_untrusted_certificate_at_start() {
    let redis = TlsRedis::start().await;
    let mut config = pushwire_test_support::test_config();
    config.engine.kind = EngineKind::Redis;
    config.engine.redis.address = redis.url().into();
    config.engine.redis.connect_timeout = Duration::from_millis(500);
    let Err(e) = pushwire_server::engine::build_node(&config, "tls-test".into(), None).await else {
        panic!("the system roots do not trust the test certificate");
    };
    assert!(format!("{e:#}").contains(&redis.url()), "{e:#}");
}

#[tokio::test]
async fn redis_stream_consumer_reads_over_tls() {
    let redis = TlsRedis::start().await;
    let server = TestServer::start().await;
    let (mut ws, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = ws
        .command(json!({"subscribe": {"channel": "chat:queue"}}))
        .await;
    assert!(r["subscribe"].is_object(), "{r}");

    let mut consumer = ConsumerConfig::new("tls", ConsumerType::RedisStream);
    consumer.redis_stream = Some(RedisStreamSettings {
        address: redis.url(),
        tls_ca_pem_file: redis.ca_file(),
        streams: vec!["events".into()],
        block: Duration::from_millis(100),
        ..Default::default()
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let consumers = pushwire_consumers::start(
        server.node().clone(),
        pushwire_server::api::consumer::ConsumerApi::shared(server.node().clone()),
        &[consumer],
        stop,
    );

    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(std::fs::read(redis.ca_file()).unwrap()),
    };
    let mut conn = redis::Client::build_with_tls(redis.url(), certs)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("producer over TLS");
    let body = json!({"method": "publish", "payload": {"channel": "chat:queue", "data": {"n": 1}}});
    let _: String = redis::cmd("XADD")
        .arg("events")
        .arg("*")
        .arg("payload")
        .arg(body.to_string())
        .query_async(&mut conn)
        .await
        .expect("XADD");
    assert_eq!(
        ws.next_publication("chat:queue").await["data"],
        json!({"n": 1})
    );
    consumers.stop().await;
    server.stop().await;
}
