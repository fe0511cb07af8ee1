//! Redis Sentinel: real master + replica + three sentinels (scripts/start-redis-topologies.sh:
//! master name `pwmaster`, sentinels 26391-26393, Redis 6393/6394, either may be the master).
//! The engine finds the master through the sentinels, follows it across `SENTINEL FAILOVER`,
//! resubscribes and tells the node to resync; bad settings fail the start naming the key.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pushwire_core::engine::{Broker, HistoryQuery};
use pushwire_engine_redis::{RedisConfig, RedisEngine};

const SENTINELS: [&str; 3] = ["127.0.0.1:26391", "127.0.0.1:26392", "127.0.0.1:26393"];
const MASTER: &str = "pwmaster";

fn sentinel_config() -> RedisConfig {
    RedisConfig {
        sentinel_address: SENTINELS.iter().map(|s| (*s).to_owned()).collect(),
        sentinel_master_name: MASTER.into(),
        reconnect_min_delay: Duration::from_millis(50),
        reconnect_max_delay: Duration::from_millis(500),
        ..config()
    }
}

async fn sentinel(addr: &str) -> redis::aio::MultiplexedConnection {
    redis_at(&format!("redis://{addr}")).await
}

/// The master every sentinel names, once they agree and it has a replica in sync.
async fn healthy_master() -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut masters = BTreeSet::new();
        for s in SENTINELS {
            let addr: Option<(String, String)> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER)
                .query_async(&mut sentinel(s).await)
                .await
                .unwrap_or_else(|e| {
                    panic!("these tests need Redis Sentinel at {s} (scripts/services.sh): {e}")
                });
            masters.insert(addr.map(|(h, p)| format!("{h}:{p}")));
        }
        let replicas: Vec<BTreeMap<String, String>> = redis::cmd("SENTINEL")
            .arg("REPLICAS")
            .arg(MASTER)
            .query_async(&mut sentinel(SENTINELS[0]).await)
            .await
            .unwrap();
        let in_sync = replicas.iter().any(|r| {
            r.get("flags").map(String::as_str) == Some("slave")
                && r.get("master-link-status").map(String::as_str) == Some("ok")
        });
        if let (1, Some(Some(master)), true) = (masters.len(), masters.first(), in_sync) {
            return master.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sentinels never agreed on a master with an in-sync replica: {masters:?} {replicas:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A broker with a recording handler on the Sentinel deployment whose master is `master`.
async fn sentinel_broker(
    cfg: &RedisConfig,
    master: &str,
) -> (
    Arc<pushwire_engine_redis::RedisBroker>,
    Arc<Recorder>,
    RedisEngine,
) {
    let engine = engine(cfg).await;
    let broker = engine.broker();
    let rec = Arc::new(Recorder {
        node_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    });
    broker.set_handler(&rec.node_id, rec.clone());
    let name = format!("{}.node.{}", cfg.prefix, rec.node_id);
    let conn = &mut redis_at(&format!("redis://{master}")).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            let (_, n): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&name)
                .query_async(&mut conn.clone())
                .await
                .unwrap();
            n > 0
        })
        .await,
        "control channel subscribed on the master"
    );
    (broker, rec, engine)
}

/// Serialises the tests that fail the shared Sentinel set over (also those of other test
/// binaries, e.g. pushwire-server's engine_redis): a key on the main Redis, `SET NX PX`.
async fn sentinel_lock() -> String {
    let token = uuid::Uuid::new_v4().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let got: Option<String> = redis::cmd("SET")
            .arg("pushwire-test-sentinel-lock")
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(90_000)
            .query_async(&mut redis().await)
            .await
            .unwrap();
        if got.is_some() {
            return token;
        }
        assert!(tokio::time::Instant::now() < deadline, "sentinel lock");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn sentinel_unlock(token: &str) {
    let _: i64 = redis::Script::new(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0",
    )
    .key("pushwire-test-sentinel-lock")
    .arg(token)
    .invoke_async(&mut redis().await)
    .await
    .unwrap();
}

/// `SENTINEL FAILOVER`, retried while the sentinels are still busy with a previous one.
async fn failover() {
    for _ in 0..100 {
        let r: redis::RedisResult<String> = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER)
            .query_async(&mut sentinel(SENTINELS[0]).await)
            .await;
        match r {
            Ok(_) => return,
            Err(e) => eprintln!("SENTINEL FAILOVER: {e}; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("SENTINEL FAILOVER never accepted");
}

/// 1,000 publications at 100/s while the master fails over: every publication the engine
/// acknowledged reaches the subscribing node live or is in the new master's history (what a
/// client recovers after the resync's 3010); any acknowledged publication missing from both,
/// or stored under an offset that now holds another one, is lost by Redis' asynchronous
/// replication and is counted, never ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_loses_no_acknowledged_publication_silently() {
    let lock = sentinel_lock().await;
    let before = healthy_master().await;
    let cfg = sentinel_config();
    let (sub, rec, _se) = sentinel_broker(&cfg, &before).await;
    let (publisher, _, _pe) = sentinel_broker(&cfg, &before).await;
    let channel = "failover";
    sub.subscribe(channel).await.unwrap();

    const TOTAL: u64 = 1000;
    let publishing = {
        let publisher = publisher.clone();
        tokio::spawn(async move {
            let mut acked = BTreeMap::new();
            let mut failed = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            for n in 1..=TOTAL {
                tick.tick().await;
                match publisher
                    .publish(channel, publication(n), &history(2000))
                    .await
                {
                    Ok(out) => {
                        acked.insert(n, out.position.unwrap().offset);
                    }
                    Err(_) => failed += 1,
                }
            }
            (acked, failed)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    failover().await;
    let (acked, failed) = publishing.await.unwrap();
    let after = healthy_master().await;
    assert_ne!(before, after, "the master changed");
    assert!(
        !rec.resyncs.lock().is_empty(),
        "the subscribing node was told to resync after the failover"
    );
    assert!(
        rec.resyncs
            .lock()
            .iter()
            .all(|r| r == &[channel.to_owned()]),
        "{:?}",
        rec.resyncs.lock()
    );

    // What a client ends with: everything received live, plus the history it recovers.
    let page = sub
        .history(
            channel,
            HistoryQuery {
                since: None,
                limit: 5000,
                reverse: false,
                meta_ttl: Duration::from_secs(60),
            },
        )
        .await
        .unwrap();
    let stored: BTreeMap<u64, u64> = page
        .publications
        .iter()
        .map(|p| (p.offset, n_of(p)))
        .collect();
    let live: BTreeSet<u64> = rec
        .publications
        .lock()
        .iter()
        .map(|(_, p)| n_of(p))
        .collect();
    let mut lost = Vec::new();
    for (n, offset) in &acked {
        if stored.get(offset) != Some(n) {
            lost.push((*n, *offset));
        }
    }
    let missing: Vec<u64> = acked
        .keys()
        .filter(|n| !live.contains(n) && !stored.values().any(|s| s == *n))
        .copied()
        .collect();
    eprintln!(
        "sentinel failover {before} -> {after}: {} acknowledged, {failed} refused while failing \
         over, {} live, {} stored; lost by asynchronous replication: {} {:?}",
        acked.len(),
        live.len(),
        stored.len(),
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert_eq!(acked.len() as u64 + failed, TOTAL);
    assert!(
        acked.len() as u64 >= TOTAL - 200,
        "the engine follows the new master quickly ({failed} refused)"
    );
    assert!(
        missing.len() <= lost.len(),
        "every publication missing for a client is among the counted losses: {missing:?}"
    );
    assert!(
        lost.len() <= 5,
        "asynchronous replication lost only the last writes before the switch: {lost:?}"
    );
    cleanup_sentinel(&cfg).await;
    sentinel_unlock(&lock).await;
}

async fn cleanup_sentinel(cfg: &RedisConfig) {
    let master = healthy_master().await;
    let url = format!("redis://{master}");
    let conn = &mut redis_at(&url).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}.*", cfg.prefix))
        .query_async(conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(conn)
            .await
            .unwrap();
    }
}

/// A master name the sentinels do not know fails the start naming
/// `engine.redis.sentinel_master_name`; sentinels that do not answer name
/// `engine.redis.sentinel_address`. Neither hangs.
#[tokio::test]
async fn bad_sentinel_settings_fail_the_start_naming_the_key() {
    let wrong_name = RedisConfig {
        sentinel_master_name: "nosuchmaster".into(),
        ..sentinel_config()
    };
    let err = tokio::time::timeout(Duration::from_secs(15), RedisEngine::connect(&wrong_name))
        .await
        .expect("no hang")
        .unwrap_err()
        .to_string();
    assert!(err.contains("engine.redis.sentinel_master_name"), "{err}");
    assert!(err.contains("nosuchmaster"), "{err}");

    let nobody = RedisConfig {
        sentinel_address: vec!["127.0.0.1:1".into()],
        ..sentinel_config()
    };
    let err = tokio::time::timeout(Duration::from_secs(15), RedisEngine::connect(&nobody))
        .await
        .expect("no hang")
        .unwrap_err()
        .to_string();
    assert!(err.contains("engine.redis.sentinel_address"), "{err}");
}

/// A plain Redis given as a sentinel is no sentinel: the start fails naming the key.
#[tokio::test]
async fn a_plain_redis_as_sentinel_fails_the_start() {
    let plain = RedisConfig {
        sentinel_address: vec!["127.0.0.1:6379".into()],
        ..sentinel_config()
    };
    let err = tokio::time::timeout(Duration::from_secs(15), RedisEngine::connect(&plain))
        .await
        .expect("no hang")
        .unwrap_err()
        .to_string();
    assert!(err.contains("engine.redis.sentinel"), "{err}");
}
