//! The Redis engine end to end: two nodes sharing one Redis prefix deliver each other's
//! publications and see each other's presence; history, epochs and idempotency keys survive a
//! restart of every node, so a client recovers exactly what it missed; a lost PUB/SUB
//! connection makes the node disconnect its subscribers with 3010 so they recover.
//!
//! Needs the real Redis at 127.0.0.1:6379: a missing Redis fails these tests.

#[path = "channels_common.rs"]
mod common;

use std::time::Duration;

use common::*;
use pushwire_server::config::EngineKind;
use pushwire_server::{RunningServer, ServerConfig};
use pushwire_test_support::{test_config, TestServer};
use serde_json::{json, Value};

const REDIS: &str = "redis://127.0.0.1:6379";

async fn redis() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(REDIS).expect("redis url");
    match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => panic!(
            "the Redis engine tests need a real Redis at {REDIS} (redis-server --daemonize yes \
             --bind 127.0.0.1 --port 6379 --save '' --appendonly no): {e}"
        ),
    }
}

fn unique_prefix() -> String {
    format!("pwtest.{}", uuid_like())
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}{:x}", std::process::id())
}

fn on_redis(c: &mut ServerConfig, prefix: &str) {
    c.engine.kind = EngineKind::Redis;
    c.engine.redis.address = REDIS.into();
    c.engine.redis.prefix = prefix.into();
    c.engine.redis.reconnect_min_delay = Duration::from_millis(20);
    c.engine.redis.reconnect_max_delay = Duration::from_millis(200);
}

/// A node on the shared Redis prefix (fails clearly when Redis is missing).
async fn node(prefix: &str) -> TestServer {
    drop(redis().await);
    TestServer::start_with(|c| on_redis(c, prefix)).await
}

async fn cleanup(prefix: &str) {
    let mut conn = redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}.*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}

fn ns_of(publications: &Value) -> Vec<u64> {
    publications
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["data"]["n"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_client_on_one_node_receives_what_another_node_publishes() {
    let prefix = unique_prefix();
    let a = node(&prefix).await;
    let b = node(&prefix).await;
    let ch = "chat:cross";
    let (mut c, client_id) = anon(&a).await;
    let sub = subscribe(&mut c, ch).await;
    let epoch = sub["epoch"].as_str().expect("positioned: epoch").to_owned();

    let r = b.publish(ch, json!({"n": 1})).await;
    assert_eq!(
        (r["offset"].clone(), r["epoch"].clone()),
        (json!(1), json!(epoch))
    );
    let p = c.next_publication(ch).await;
    assert_eq!(
        (p["data"]["n"].clone(), p["offset"].clone()),
        (json!(1), json!(1))
    );
    a.publish(ch, json!({"n": 2})).await;
    assert_eq!(c.next_publication(ch).await["offset"], json!(2));

    // Presence made on node A is visible through node B.
    let present = eventually(Duration::from_secs(5), || async {
        let (_, body) = b.api("presence", json!({"channel": ch})).await;
        body["result"]["presence"].get(&client_id).is_some()
    })
    .await;
    assert!(present, "node B sees the presence of node A's client");
    let (_, stats) = b.api("presence_stats", json!({"channel": ch})).await;
    assert_eq!(stats["result"]["num_clients"], json!(1), "{stats}");
    cleanup(&prefix).await;
}

#[tokio::test]
async fn after_every_node_restarts_a_client_recovers_each_missed_publication_once() {
    let prefix = unique_prefix();
    let a = node(&prefix).await;
    let b = node(&prefix).await;
    let ch = "chat:restart";
    let keyed = |n: u64| json!({"idempotency_key": format!("event-{n}")});

    let (mut c, _) = anon(&a).await;
    let epoch = subscribe(&mut c, ch).await["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned();
    for n in 1..=2 {
        api_publish(&b, ch, json!({ "n": n }), keyed(n)).await;
    }
    for n in 1..=2u64 {
        assert_eq!(c.next_publication(ch).await["offset"], json!(n));
    }

    // Node A goes away; its client is told to reconnect.
    a.stop().await;
    let (code, _) = c.expect_close().await;
    assert_eq!(code, 3001, "shutdown: reconnect");

    // Meanwhile: one new event, and a redelivery of an already published one (a consumer
    // that crashed between publish and ack).
    api_publish(&b, ch, json!({"n": 3}), keyed(3)).await;
    let dup = api_publish(&b, ch, json!({"n": 2}), keyed(2)).await;
    assert_eq!(
        dup["result"]["offset"],
        json!(2),
        "the earlier position: {dup}"
    );

    // Every node restarts: nothing of the stream lived in a node.
    b.stop().await;
    let a2 = node(&prefix).await;
    let dup = api_publish(&a2, ch, json!({"n": 3}), keyed(3)).await;
    assert_eq!(
        dup["result"]["offset"],
        json!(3),
        "key remembered across restarts: {dup}"
    );
    for n in 4..=5 {
        let r = api_publish(&a2, ch, json!({ "n": n }), keyed(n)).await;
        assert_eq!(
            r["result"]["epoch"],
            json!(epoch),
            "same stream after restarts"
        );
    }

    // The client reconnects with its last position and gets exactly what it missed.
    let (mut c, _) = anon(&a2).await;
    let r = subscribe_with(
        &mut c,
        json!({"channel": ch, "recover": true, "offset": 2, "epoch": epoch}),
    )
    .await;
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(offsets(&r["publications"]), [3, 4, 5]);
    assert_eq!(ns_of(&r["publications"]), [3, 4, 5], "each event once");
    api_publish(&a2, ch, json!({"n": 6}), keyed(6)).await;
    assert_eq!(c.next_publication(ch).await["offset"], json!(6));
    cleanup(&prefix).await;
}

/// Ids of PUB/SUB connections subscribed to exactly `subs` channels.
async fn pubsub_clients(subs: usize) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut redis().await)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .filter(|l| l.split(' ').any(|f| f == format!("sub={subs}")))
        .filter_map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn a_lost_pubsub_connection_makes_subscribers_reconnect_and_recover() {
    let prefix = unique_prefix();
    let a = node(&prefix).await;
    let b = node(&prefix).await;
    // 19 channels: an unusual count that identifies node A's PUB/SUB connection.
    const SUBS: usize = 19;
    let (mut c, _) = anon(&a).await;
    let mut epoch = String::new();
    for i in 0..SUBS {
        let r = subscribe(&mut c, &format!("chat:k{i}")).await;
        if i == 0 {
            epoch = r["epoch"].as_str().expect("epoch").to_owned();
        }
    }
    // Plus the node's two control channels.
    let ids = pubsub_clients(SUBS + 2).await;
    assert_eq!(ids.len(), 1, "node A's pub/sub connection: {ids:?}");
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&ids[0])
        .query_async(&mut redis().await)
        .await
        .expect("CLIENT KILL");
    // Published while node A may not be listening.
    b.publish("chat:k0", json!({"n": 1})).await;

    let (code, reason) = c.expect_close().await;
    assert_eq!((code, reason.as_str()), (3010, "insufficient state"));
    let (mut c, _) = anon(&a).await;
    let r = subscribe_with(
        &mut c,
        json!({"channel": "chat:k0", "recover": true, "offset": 0, "epoch": epoch}),
    )
    .await;
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(offsets(&r["publications"]), [1]);
    b.publish("chat:k0", json!({"n": 2})).await;
    assert_eq!(c.next_publication("chat:k0").await["offset"], json!(2));
    cleanup(&prefix).await;
}

#[tokio::test]
async fn a_node_does_not_start_without_its_redis() {
    let mut config = test_config();
    on_redis(&mut config, &unique_prefix());
    config.engine.redis.address = "redis://127.0.0.1:1".into();
    config.engine.redis.connect_timeout = Duration::from_millis(300);
    config.validate().expect("valid config");
    let err = match RunningServer::start(config).await {
        Ok(_) => panic!("started without Redis"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("engine.redis.address"), "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

/// The delta mark of an API publish crosses nodes through Redis: a fossil subscriber on node A
/// gets node B's publications as deltas it can apply, and history keeps full payloads.
#[tokio::test]
async fn fossil_deltas_cross_nodes_through_redis() {
    let prefix = unique_prefix();
    drop(redis().await);
    let with_delta = |c: &mut ServerConfig| {
        on_redis(c, &prefix);
        pushwire_test_support::add_delta_namespace(c);
    };
    let a = TestServer::start_with(with_delta).await;
    let b = TestServer::start_with(with_delta).await;
    let ch = "delta:cross";
    let (mut c, _) = anon(&a).await;
    let r = c
        .command(json!({"subscribe": {"channel": ch, "delta": "fossil"}}))
        .await;
    assert_eq!(r["subscribe"]["delta"], json!(true), "{r}");
    let doc = |n: u64| {
        let rows: Vec<Value> = (0..20)
            .map(|i| json!({"id": i, "name": format!("row {i}"), "v": if i == n % 20 { n } else { i }}))
            .collect();
        json!({"n": n, "rows": rows})
    };
    let mut base: Vec<u8> = Vec::new();
    let mut deltas = 0;
    for n in 1..=5 {
        let (status, body) = b
            .api(
                "publish",
                json!({"channel": ch, "data": doc(n), "delta": true}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let p = c.next_publication(ch).await;
        let text = p["data"]
            .as_str()
            .expect("data is a JSON string")
            .as_bytes()
            .to_vec();
        base = if p["delta"] == json!(true) {
            deltas += 1;
            pushwire_protocol::fossil::apply(&base, &text).expect("delta applies")
        } else {
            text
        };
        let rebuilt: Value = serde_json::from_slice(&base).unwrap();
        assert_eq!(rebuilt, doc(n));
    }
    assert_eq!(deltas, 4, "all but the first are deltas");
    let (_, h) = a.api("history", json!({"channel": ch, "limit": -1})).await;
    let pubs = h["result"]["publications"].as_array().unwrap();
    assert_eq!(pubs.len(), 5);
    assert!(pubs
        .iter()
        .all(|p| p.get("delta").is_none() && p["data"].is_object()));
    cleanup(&prefix).await;
}
