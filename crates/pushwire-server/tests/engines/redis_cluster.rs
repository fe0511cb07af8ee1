//! The Redis engine on a real Redis Cluster (`engine.redis.cluster_address`; three masters and
//! three replicas on 7001-7006, scripts/start-redis-topologies.sh): two nodes deliver each
//! other's publications in channels on every master over sharded PUB/SUB, the control plane
//! works (`info` lists both nodes, `channels` surveys them), a client recovers what it missed
//! across a node restart, and a plain Redis as `cluster_address` stops the start naming the
//! key. A missing cluster fails these tests.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::redis_common::unique_prefix;
use common::*;
use pushwire_engine_redis::keys::Keys;
use pushwire_engine_redis::slots::{key_slot, partition_tags};
use pushwire_server::config::EngineKind;
use pushwire_server::{RunningServer, ServerConfig};
use pushwire_test_support::{test_config, TestServer};
use serde_json::{json, Value};

const SEEDS: [&str; 3] = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"];
const ALL: [&str; 6] = [
    "127.0.0.1:7001",
    "127.0.0.1:7002",
    "127.0.0.1:7003",
    "127.0.0.1:7004",
    "127.0.0.1:7005",
    "127.0.0.1:7006",
];

/// Counts this test among the users of the cluster (pushwire-engine-redis's tests/cluster.rs
/// kills a master only when none is left, and its lock keeps new ones out meanwhile). The
/// count is given back on drop.
struct ClusterReader;

const KILL_LOCK: &str = "pushwire-test-cluster-failover-lock";
const READERS: &str = "pushwire-test-cluster-readers";

async fn cluster_reader() -> ClusterReader {
    let mut conn = redis::Client::open("redis://127.0.0.1:6379")
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("these tests need the main Redis at 127.0.0.1:6379");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let locked: bool = redis::cmd("EXISTS")
            .arg(KILL_LOCK)
            .query_async(&mut conn)
            .await
            .expect("EXISTS");
        if !locked {
            let _: i64 = redis::cmd("INCR")
                .arg(READERS)
                .query_async(&mut conn)
                .await
                .expect("INCR");
            let _: i64 = redis::cmd("PEXPIRE")
                .arg(READERS)
                .arg(300_000)
                .query_async(&mut conn)
                .await
                .expect("PEXPIRE");
            let locked: bool = redis::cmd("EXISTS")
                .arg(KILL_LOCK)
                .query_async(&mut conn)
                .await
                .expect("EXISTS");
            if !locked {
                return ClusterReader;
            }
            let _: i64 = redis::cmd("DECR")
                .arg(READERS)
                .query_async(&mut conn)
                .await
                .expect("DECR");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster reader lock"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Drop for ClusterReader {
    fn drop(&mut self) {
        if let Ok(mut conn) =
            redis::Client::open("redis://127.0.0.1:6379").and_then(|c| c.get_connection())
        {
            let _: redis::RedisResult<i64> = redis::cmd("DECR").arg(READERS).query(&mut conn);
        }
    }
}

fn on_cluster(c: &mut ServerConfig, prefix: &str) {
    c.engine.kind = EngineKind::Redis;
    c.engine.redis.cluster_address = SEEDS.iter().map(|s| (*s).to_owned()).collect();
    c.engine.redis.prefix = prefix.into();
    c.engine.redis.reconnect_min_delay = Duration::from_millis(20);
    c.engine.redis.reconnect_max_delay = Duration::from_millis(200);
}

async fn node(prefix: &str) -> TestServer {
    let prefix = prefix.to_owned();
    TestServer::start_with(move |c| on_cluster(c, &prefix)).await
}

async fn conn(node: &str) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{node}")).ok()?;
    tokio::time::timeout(
        Duration::from_secs(1),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()
}

/// The master serving `slot` (asked with `CLUSTER SLOTS`).
async fn master_of(slot: u16) -> String {
    for node in ALL {
        let Some(mut c) = conn(node).await else {
            continue;
        };
        let slots: Vec<(u16, u16, (String, u16))> = match redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Vec<redis::Value>>(&mut c)
            .await
        {
            Ok(v) => v
                .into_iter()
                .filter_map(|r| {
                    let redis::Value::Array(p) = r else {
                        return None;
                    };
                    let first: u16 = redis::from_redis_value_ref(&p[0]).ok()?;
                    let last: u16 = redis::from_redis_value_ref(&p[1]).ok()?;
                    let redis::Value::Array(m) = &p[2] else {
                        return None;
                    };
                    let host: String = redis::from_redis_value_ref(&m[0]).ok()?;
                    let port: u16 = redis::from_redis_value_ref(&m[1]).ok()?;
                    Some((first, last, (host, port)))
                })
                .collect(),
            Err(_) => continue,
        };
        if let Some((_, _, (h, p))) = slots.iter().find(|(a, b, _)| (*a..=*b).contains(&slot)) {
            return format!("{h}:{p}");
        }
    }
    panic!("these tests need the Redis Cluster on 7001-7006 (scripts/start-redis-topologies.sh)")
}

async fn cleanup(prefix: &str) {
    for node in ALL {
        let Some(mut c) = conn(node).await else {
            continue;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}.*"))
            .query_async(&mut c)
            .await
            .unwrap_or_default();
        for k in keys {
            let _: Result<i64, _> = redis::cmd("DEL").arg(&k).query_async(&mut c).await;
        }
    }
}

fn ns_of(publications: &Value) -> Vec<u64> {
    publications
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["data"]["n"].as_u64()).collect())
        .unwrap_or_default()
}

/// Node A's client subscribes to one channel per master; node B publishes; the client gets
/// it. `info` lists both nodes and `channels` on B sees A's subscriptions (control plane over
/// the cluster). A stops, B publishes again, A comes back: the client recovers exactly what
/// it missed from the channel's master.
#[tokio::test]
async fn two_nodes_on_a_redis_cluster_deliver_survey_and_recover_across_a_node_restart() {
    let _cluster = cluster_reader().await;
    let prefix = unique_prefix();
    let keys = Keys::cluster(&prefix, partition_tags(16));
    let a = node(&prefix).await;
    let b = node(&prefix).await;
    // One channel per master.
    let mut channels = Vec::new();
    let mut masters = BTreeSet::new();
    for i in 0..200 {
        let ch = format!("chat:c{i}");
        let m = master_of(key_slot(&keys.stream(&ch))).await;
        if masters.insert(m) {
            channels.push(ch);
        }
        if masters.len() == 3 {
            break;
        }
    }
    assert_eq!(channels.len(), 3, "channels on three masters: {masters:?}");
    let (mut c, _) = anon(&a).await;
    let mut epochs = Vec::new();
    for ch in &channels {
        let sub = subscribe(&mut c, ch).await;
        epochs.push(sub["epoch"].as_str().expect("epoch").to_owned());
        b.publish(ch, json!({"n": 1})).await;
        let p = c.next_publication(ch).await;
        assert_eq!(
            (p["offset"].clone(), p["data"]["n"].clone()),
            (json!(1), json!(1)),
            "{ch}"
        );
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            let (_, body) = b.api("info", json!({})).await;
            body["result"]["nodes"].as_array().map_or(0, Vec::len) == 2
        })
        .await,
        "info lists both nodes"
    );
    let (status, body) = b.api("channels", json!({})).await;
    assert_eq!(status, 200, "{body}");
    for ch in &channels {
        assert_eq!(
            body["result"]["channels"][ch]["num_clients"],
            json!(1),
            "{ch}: {body}"
        );
    }
    // A goes away; the client is told to reconnect.
    a.stop().await;
    let (code, _) = c.expect_close().await;
    assert_eq!(code, 3001);
    for ch in &channels {
        b.publish(ch, json!({"n": 2})).await;
    }
    let a2 = node(&prefix).await;
    let (mut c, _) = anon(&a2).await;
    for (ch, epoch) in channels.iter().zip(&epochs) {
        let r = subscribe_with(
            &mut c,
            json!({"channel": ch, "recover": true, "offset": 1, "epoch": epoch}),
        )
        .await;
        assert_eq!(r["recovered"], json!(true), "{ch}: {r}");
        assert_eq!(ns_of(&r["publications"]), [2], "{ch}");
        b.publish(ch, json!({"n": 3})).await;
        assert_eq!(c.next_publication(ch).await["offset"], json!(3), "{ch}");
    }
    a2.stop().await;
    b.stop().await;
    cleanup(&prefix).await;
}

/// `engine.redis.cluster_address` naming a plain Redis (no cluster support): the node does
/// not start, and the error names the key.
#[tokio::test]
async fn a_node_with_a_plain_redis_as_cluster_address_does_not_start() {
    let mut config = test_config();
    on_cluster(&mut config, &unique_prefix());
    config.engine.redis.cluster_address = vec!["127.0.0.1:6379".into()];
    config.validate().expect("valid config");
    let err = match RunningServer::start(config).await {
        Ok(_) => panic!("started on a plain Redis as a cluster"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("engine.redis.cluster_address"), "{err}");
}
