//! Redis Cluster mode against the real cluster of scripts/start-redis-topologies.sh (three
//! masters 7001-7003 and three replicas 7004-7006 at creation; roles move with failovers):
//! channels spread over every master, on the slot their partition's hash tag names, two
//! engines deliver to each other over sharded PUB/SUB, a killed master is replaced by its
//! replica and the service resumes, and bad cluster addresses fail the start naming the key.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::*;
use pushwire_core::engine::{Broker, PresenceManager};
use pushwire_engine_redis::keys::Keys;
use pushwire_engine_redis::slots::{key_slot, partition_tags};
use pushwire_engine_redis::{RedisConfig, RedisEngine};

/// Slot ranges of the masters: (first, last, "host:port").
async fn slot_owners() -> Vec<(u16, u16, String)> {
    let mut conn = cluster_nodes().await.remove(0);
    let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut out = Vec::new();
    for range in slots {
        let redis::Value::Array(parts) = range else {
            continue;
        };
        let first: u16 = redis::from_redis_value_ref(&parts[0]).unwrap();
        let last: u16 = redis::from_redis_value_ref(&parts[1]).unwrap();
        let redis::Value::Array(master) = &parts[2] else {
            continue;
        };
        let host: String = redis::from_redis_value_ref(&master[0]).unwrap();
        let port: u16 = redis::from_redis_value_ref(&master[1]).unwrap();
        out.push((first, last, format!("{host}:{port}")));
    }
    out
}

fn owner(owners: &[(u16, u16, String)], slot: u16) -> String {
    owners
        .iter()
        .find(|(a, b, _)| (*a..=*b).contains(&slot))
        .map(|(_, _, m)| m.clone())
        .unwrap_or_else(|| panic!("slot {slot} has no master"))
}

async fn at(node: &str) -> redis::aio::MultiplexedConnection {
    redis_at(&format!("redis://{node}")).await
}

/// 600 channels: each one's keys live on the master that serves its partition's slot (and
/// only there), every master holds some, the node's shard subscriptions sit on those masters,
/// and a second engine receives every publication of every channel.
#[tokio::test]
async fn cluster_channels_spread_over_all_three_masters_and_reach_every_node() {
    let _cluster = cluster_reader().await;
    let cfg = cluster_config();
    let keys = Keys::cluster(&cfg.prefix, partition_tags(cfg.sharded_pub_sub_partitions));
    let (a, _rec_a, engine_a) = broker(&cfg).await;
    let (b, rec_b, _engine_b) = broker(&cfg).await;
    let channels: Vec<String> = (0..600).map(|i| format!("cl:{i}")).collect();
    for c in &channels {
        b.subscribe(c).await.unwrap();
    }
    for c in &channels {
        let out = a.publish(c, publication(7), &history(10)).await.unwrap();
        assert_eq!(out.position.unwrap().offset, 1, "{c}");
    }
    engine_a
        .presence()
        .add("cl:1", info("u", "c1"))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            rec_b.publications.lock().len() >= channels.len()
        })
        .await,
        "node b received {} of {} publications",
        rec_b.publications.lock().len(),
        channels.len()
    );
    let owners = slot_owners().await;
    let masters: std::collections::BTreeSet<String> =
        owners.iter().map(|(_, _, m)| m.clone()).collect();
    assert_eq!(masters.len(), 3, "three masters: {owners:?}");
    let mut per_master: BTreeMap<String, usize> = BTreeMap::new();
    for c in &channels {
        let stream = keys.stream(c);
        let slot = key_slot(&stream);
        let master = owner(&owners, slot);
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&stream)
            .query_async(&mut at(&master).await)
            .await
            .unwrap();
        assert_eq!(exists, 1, "{stream} on {master} (slot {slot})");
        let server_slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&stream)
            .query_async(&mut at(&master).await)
            .await
            .unwrap();
        assert_eq!(server_slot, slot, "Redis agrees on the slot of {stream}");
        assert_eq!(
            key_slot(&keys.pubsub(c)),
            slot,
            "shard channel on the same slot"
        );
        *per_master.entry(master).or_default() += 1;
    }
    assert_eq!(
        per_master.len(),
        3,
        "channels on every master: {per_master:?}"
    );
    assert!(
        per_master.values().all(|n| *n > 100),
        "spread evenly: {per_master:?}"
    );
    // Shard subscriptions: each master lists exactly the channels of its slots.
    let mut subscribed = 0;
    for master in &masters {
        let names: Vec<String> = redis::cmd("PUBSUB")
            .arg("SHARDCHANNELS")
            .arg(format!("{}.pub.*", cfg.prefix))
            .query_async(&mut at(master).await)
            .await
            .unwrap();
        for n in &names {
            assert_eq!(owner(&owners, key_slot(n)), *master, "{n}");
        }
        subscribed += names.len();
    }
    assert_eq!(subscribed, channels.len());
    // Presence and history reads go to the channel's slot too.
    let present = engine_a.presence().presence("cl:1").await.unwrap();
    assert!(present.contains_key("c1"));
    for c in channels.iter().take(30) {
        let page = b
            .history(
                c,
                pushwire_core::engine::HistoryQuery {
                    since: None,
                    limit: 10,
                    reverse: false,
                    meta_ttl: Duration::from_secs(3600),
                },
            )
            .await
            .unwrap();
        assert_eq!(page.publications.len(), 1, "{c}");
    }
    cleanup(&cfg).await;
}

/// A plain Redis (no cluster support) given as `cluster_address`: the start fails, naming
/// the key.
#[tokio::test]
async fn a_plain_redis_as_cluster_address_fails_the_start_naming_the_key() {
    let cfg = RedisConfig {
        cluster_address: vec!["127.0.0.1:6379".into()],
        ..config()
    };
    cfg.validate("engine.redis").unwrap();
    let started = Instant::now();
    let err = RedisEngine::connect(&cfg).await.unwrap_err().to_string();
    assert!(err.contains("engine.redis.cluster_address"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15), "bounded");
}

/// Nothing listens at the seeds: the start fails within its bound, naming the key.
#[tokio::test]
async fn an_unreachable_cluster_fails_the_start_within_bounds() {
    let cfg = RedisConfig {
        cluster_address: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
        ..config()
    };
    let started = Instant::now();
    let err = RedisEngine::connect(&cfg).await.unwrap_err().to_string();
    assert!(err.contains("engine.redis.cluster_address"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15), "bounded");
}

/// Waits until every replica of the cluster is in sync with its master (a replica that just
/// rejoined would not be promoted).
async fn replicas_in_sync() {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut synced = 0;
        for node in CLUSTER {
            let Ok(client) = redis::Client::open(format!("redis://{node}")) else {
                continue;
            };
            let Ok(Ok(mut c)) = tokio::time::timeout(
                Duration::from_secs(1),
                client.get_multiplexed_async_connection(),
            )
            .await
            else {
                continue;
            };
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            if info.contains("role:slave")
                && info.contains("master_link_status:up")
                && info.contains("master_sync_in_progress:0")
            {
                synced += 1;
            }
        }
        if synced >= 3 {
            return;
        }
        assert!(Instant::now() < deadline, "{synced} of 3 replicas in sync");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Restarts whatever cluster process is down (it rejoins as a replica) and waits until the
/// cluster serves every slot again.
fn restore_cluster() {
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/start-redis-topologies.sh"
    );
    let status = std::process::Command::new("bash")
        .arg(root)
        .status()
        .expect("run start-redis-topologies.sh");
    assert!(status.success(), "start-redis-topologies.sh");
}

async fn cluster_state_ok(node: &str) -> bool {
    let client = redis::Client::open(format!("redis://{node}")).unwrap();
    let Ok(Ok(mut conn)) = tokio::time::timeout(
        Duration::from_secs(1),
        client.get_multiplexed_async_connection(),
    )
    .await
    else {
        return false;
    };
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    info.contains("cluster_state:ok")
}

/// A master with a replica is killed (SIGKILL) while node A publishes 20/s into channels on
/// every master and node B is subscribed: node B is told to resync (its connection to that
/// master dropped) and reports itself degraded, the replica is promoted, publishing works again, and after B
/// resubscribes it receives new publications in every channel. Publications the API
/// acknowledged but the history lacks afterwards were lost by Redis' asynchronous
/// replication (written on the killed master, not yet on its replica): counted and printed.
#[tokio::test]
async fn killing_a_master_promotes_its_replica_and_service_resumes() {
    let cluster = cluster_writer().await;
    restore_cluster();
    replicas_in_sync().await;
    let cfg = RedisConfig {
        reconnect_min_delay: Duration::from_millis(50),
        reconnect_max_delay: Duration::from_millis(500),
        ..cluster_config()
    };
    let keys = Keys::cluster(&cfg.prefix, partition_tags(cfg.sharded_pub_sub_partitions));
    let (a, _rec_a, engine_a) = broker(&cfg).await;
    let (b, rec_b, engine_b) = broker(&cfg).await;
    let owners = slot_owners().await;
    // One channel per master.
    let mut by_master: BTreeMap<String, String> = BTreeMap::new();
    for i in 0.. {
        let c = format!("fo:{i}");
        by_master
            .entry(owner(&owners, key_slot(&keys.stream(&c))))
            .or_insert(c);
        if by_master.len() == 3 {
            break;
        }
    }
    let victim = by_master.keys().next().unwrap().clone();
    let victim_channel = by_master[&victim].clone();
    for c in by_master.values() {
        b.subscribe(c).await.unwrap();
    }
    let pid: String = {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut at(&victim).await)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .unwrap()
            .trim()
            .to_owned()
    };
    // Publish 20/s into every channel; kill the victim after 1 s.
    let mut acked: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    let mut failed = 0;
    let started = Instant::now();
    let mut killed_at = None;
    let mut resumed_after = None;
    let mut n = 0u64;
    // Node B's health, sampled every 20 ms meanwhile (publishes block during the failover).
    let watched = engine_b.broker();
    let watcher = tokio::spawn(async move {
        loop {
            if let Some(why) = watched.degraded() {
                return why;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    while started.elapsed() < Duration::from_secs(25) {
        n += 1;
        if killed_at.is_none() && started.elapsed() > Duration::from_secs(1) {
            let status = std::process::Command::new("kill")
                .arg("-9")
                .arg(&pid)
                .status()
                .unwrap();
            assert!(status.success());
            killed_at = Some(Instant::now());
        }
        let r = tokio::time::timeout(
            Duration::from_secs(6),
            a.publish(&victim_channel, publication(n), &history(1000)),
        )
        .await;
        match r {
            Ok(Ok(out)) => {
                acked
                    .entry(victim_channel.clone())
                    .or_default()
                    .push((out.position.unwrap().offset, n));
                if let (Some(k), None) = (killed_at, resumed_after) {
                    resumed_after = Some(k.elapsed());
                }
            }
            _ => failed += 1,
        }
        if resumed_after.is_some() && started.elapsed() > Duration::from_secs(8) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resumed_after = resumed_after.expect("publishing resumed after the failover");
    let saw_degraded = tokio::time::timeout(Duration::from_secs(1), watcher)
        .await
        .ok()
        .and_then(Result::ok);
    assert_eq!(
        saw_degraded.as_deref(),
        Some("redis pub/sub disconnected (reconnecting)"),
        "node b's health was degraded while the master was gone"
    );
    // The replica took over: the victim's slot has another master now.
    let owners_after = slot_owners().await;
    let new_master = owner(&owners_after, key_slot(&keys.stream(&victim_channel)));
    assert_ne!(new_master, victim, "a replica was promoted");
    // Node B was told its PUB/SUB lost continuity.
    assert!(
        eventually(Duration::from_secs(10), || async {
            !rec_b.resyncs.lock().is_empty()
        })
        .await,
        "node b resynced"
    );
    // Health: up again once every partition's master answers.
    assert!(
        eventually(Duration::from_secs(15), || async {
            engine_b.broker().degraded().is_none()
        })
        .await,
        "node b's pub/sub reported up again"
    );
    // B resubscribes (as the hub does after 3010) and receives new publications everywhere.
    for c in by_master.values() {
        b.subscribe(c).await.unwrap();
    }
    rec_b.publications.lock().clear();
    for c in by_master.values() {
        a.publish(c, publication(1_000_000), &history(1000))
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            let got = rec_b.publications.lock();
            by_master
                .values()
                .all(|c| got.iter().any(|(ch, p)| ch == c && n_of(p) == 1_000_000))
        })
        .await,
        "node b receives in every channel after the failover"
    );
    // Which acknowledged publications did asynchronous replication lose?
    let page = b
        .history(
            &victim_channel,
            pushwire_core::engine::HistoryQuery {
                since: None,
                limit: 2000,
                reverse: false,
                meta_ttl: Duration::from_secs(3600),
            },
        )
        .await
        .unwrap();
    // By (offset, payload): after a loss the new master hands out the lost offsets again.
    let kept: std::collections::HashSet<(u64, u64)> = page
        .publications
        .iter()
        .map(|p| (p.offset, n_of(p)))
        .collect();
    let acked = acked.remove(&victim_channel).unwrap_or_default();
    let lost: Vec<(u64, u64)> = acked
        .iter()
        .copied()
        .filter(|o| !kept.contains(o))
        .collect();
    println!(
        "cluster failover: {} publications acknowledged, {} failed during the failover, {} \
         acknowledged but lost by asynchronous replication {:?}; publishing resumed {:?} \
         after the kill",
        acked.len(),
        failed,
        lost.len(),
        lost,
        resumed_after
    );
    assert!(
        lost.len() <= 3,
        "at most what the replica had not received when the master died: {lost:?}"
    );
    drop((a, b, engine_a, engine_b));
    restore_cluster();
    assert!(
        eventually(Duration::from_secs(20), || async {
            cluster_state_ok("127.0.0.1:7001").await
        })
        .await
    );
    cleanup(&cfg).await;
    drop(cluster);
}
