//! A channel's hash slot moves to another master while a client is subscribed and publications
//! keep coming (resharding by hand, as `redis-cli --cluster reshard` does it: `CLUSTER SETSLOT
//! IMPORTING/MIGRATING`, `MIGRATE` of the slot's keys, `SETSLOT NODE`), on a private 3-master
//! TLS cluster. The old master drops the node's shard subscription (`SUNSUBSCRIBE`), the node
//! resyncs the channel (3010) and the client, resubscribing with recovery, ends with every
//! publication the API acknowledged, before, during and after the move.

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use pushwire_engine_redis::keys::Keys;
use pushwire_engine_redis::slots::{key_slot, partition_tags};
use pushwire_server::config::EngineKind;
use pushwire_test_support::tls_topology::{cli, TlsCluster};
use pushwire_test_support::{eventually, TestServer};
use serde_json::{json, Value};

const PREFIX: &str = "pwmove";

/// The port of the master serving `slot`, from `CLUSTER NODES` as `port` sees it.
async fn owner(cluster: &TlsCluster, port: u16, slot: u16) -> Option<u16> {
    let nodes = cli(cluster.cert(), port, &["CLUSTER", "NODES"]).await;
    nodes.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !fields.get(2)?.contains("master") {
            return None;
        }
        let serves = fields[8..].iter().any(|range| {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            match (a.parse::<u16>(), b.parse::<u16>()) {
                (Ok(a), Ok(b)) => (a..=b).contains(&slot),
                _ => false,
            }
        });
        let addr = fields[1].split('@').next()?;
        serves.then(|| addr.rsplit_once(':')?.1.parse().ok())?
    })
}

async fn node_id(cluster: &TlsCluster, port: u16) -> String {
    cli(cluster.cert(), port, &["CLUSTER", "MYID"])
        .await
        .trim()
        .to_owned()
}

/// Moves `slot` from the master on `from` to the one on `to`, keys included.
async fn move_slot(cluster: &TlsCluster, slot: u16, from: u16, to: u16) {
    let cert = cluster.cert();
    let (from_id, to_id) = (node_id(cluster, from).await, node_id(cluster, to).await);
    let s = slot.to_string();
    let ok = |out: String, what: &str| assert!(out.trim() == "OK", "{what}: {out:?}");
    ok(
        cli(cert, to, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id]).await,
        "IMPORTING",
    );
    ok(
        cli(cert, from, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id]).await,
        "MIGRATING",
    );
    loop {
        let keys = cli(cert, from, &["CLUSTER", "GETKEYSINSLOT", &s, "100"]).await;
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let port = to.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend(keys);
        ok(cli(cert, from, &args).await, "MIGRATE");
    }
    // The new owner first (it bumps its epoch), then the old one, then the rest.
    ok(
        cli(cert, to, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]).await,
        "SETSLOT NODE (new owner)",
    );
    ok(
        cli(cert, from, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]).await,
        "SETSLOT NODE (old owner)",
    );
    for node in &cluster.nodes {
        if node.port != from && node.port != to {
            ok(
                cli(cert, node.port, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]).await,
                "SETSLOT NODE (other)",
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moving_to_another_master_loses_no_acknowledged_publication() {
    let cluster = TlsCluster::start(3).await;
    let server = TestServer::start_with(|c| {
        c.engine.kind = EngineKind::Redis;
        c.engine.redis.address = "rediss://127.0.0.1:6379".into();
        c.engine.redis.cluster_address = cluster.seeds();
        c.engine.redis.tls_ca_pem_file = cluster.ca_file();
        c.engine.redis.prefix = PREFIX.into();
        c.engine.redis.connect_timeout = Duration::from_secs(2);
        c.engine.redis.reconnect_min_delay = Duration::from_millis(20);
        c.engine.redis.reconnect_max_delay = Duration::from_millis(200);
        c.channel.namespaces.push(ns("move", recovering(10_000)));
        c.client.recovery_max_publication_limit = 10_000;
    })
    .await;
    let ch = "move:a";
    let keys = Keys::cluster(PREFIX, partition_tags(16));
    let slot = key_slot(&keys.stream(ch));
    let from = owner(&cluster, cluster.nodes[0].port, slot)
        .await
        .expect("the slot has a master");
    let to = cluster
        .nodes
        .iter()
        .map(|n| n.port)
        .find(|p| *p != from)
        .expect("another master");

    let (mut c, _) = anon(&server).await;
    let r = subscribe_with(&mut c, json!({"channel": ch, "recover": true})).await;
    let epoch = r["epoch"].as_str().expect("epoch").to_owned();

    // Publish every 20 ms until told to stop; keep what the API acknowledged.
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let errors = Arc::new(Mutex::new(Vec::<Value>::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let publisher = {
        let (acked, errors, stop) = (acked.clone(), errors.clone(), stop.clone());
        let api = format!("{}/api/publish", server.http_url());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u64;
            while !stop.is_cancelled() {
                let body: Value = http
                    .post(&api)
                    .header("X-API-Key", pushwire_test_support::API_KEY)
                    .json(&json!({"channel": "move:a", "data": {"n": n}}))
                    .send()
                    .await
                    .expect("an answer")
                    .json()
                    .await
                    .expect("json");
                if body["result"].is_object() {
                    acked.lock().push(n);
                } else {
                    errors.lock().push(body);
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    eventually(
        "20 publications acknowledged",
        Duration::from_secs(10),
        || async { acked.lock().len() >= 20 },
    )
    .await;
    move_slot(&cluster, slot, from, to).await;
    for node in &cluster.nodes {
        assert_eq!(
            owner(&cluster, node.port, slot).await,
            Some(to),
            "every node sees the slot on its new master"
        );
    }
    let moved_at = acked.lock().len();
    eventually(
        "40 publications acknowledged after the move",
        Duration::from_secs(20),
        || async { acked.lock().len() >= moved_at + 40 },
    )
    .await;
    stop.cancel();
    publisher.await.expect("publisher");
    let acked = acked.lock().clone();
    let errors = errors.lock().clone();
    eprintln!(
        "slot {slot} moved {from} -> {to}; {} acknowledged, {} refused",
        acked.len(),
        errors.len()
    );

    // The client ends with every acknowledged publication: live, or recovered after its node
    // resynced the channel (3010 disconnect).
    let last = *acked.last().expect("acked");
    let mut received = BTreeSet::new();
    let mut offset = 0u64;
    let mut resynced = false;
    while !received.contains(&last) {
        match tokio::time::timeout(Duration::from_secs(5), c.read_one()).await {
            Ok(Some(m)) if m["push"]["pub"].is_object() => {
                let p = &m["push"]["pub"];
                received.insert(p["data"]["n"].as_u64().expect("n"));
                offset = p["offset"].as_u64().unwrap_or(offset);
            }
            Ok(Some(m)) if m["push"]["disconnect"].is_object() => {
                assert_eq!(m["push"]["disconnect"]["code"], json!(3010), "{m}");
                resynced = true;
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                resynced = true;
                break;
            }
            Err(_) => break,
        }
    }
    eprintln!(
        "live: {} of {} (resynced: {resynced})",
        received.len(),
        acked.len()
    );
    if !received.contains(&last) {
        assert!(resynced, "the client got neither everything nor a resync");
        let (mut again, _) = anon(&server).await;
        let r = subscribe_with(
            &mut again,
            json!({"channel": ch, "recover": true, "offset": offset, "epoch": epoch}),
        )
        .await;
        assert_eq!(r["recovered"], json!(true), "{r}");
        for p in r["publications"].as_array().cloned().unwrap_or_default() {
            received.insert(p["data"]["n"].as_u64().expect("n"));
        }
        // And it keeps receiving from the new master.
        let r = api_publish(&server, ch, json!({"n": u64::MAX}), json!({})).await;
        assert!(r["result"].is_object(), "{r}");
        assert_eq!(
            again.next_publication(ch).await["data"]["n"],
            json!(u64::MAX)
        );
    } else {
        let r = api_publish(&server, ch, json!({"n": u64::MAX}), json!({})).await;
        assert!(r["result"].is_object(), "{r}");
        assert_eq!(c.next_publication(ch).await["data"]["n"], json!(u64::MAX));
    }
    let missing: Vec<u64> = acked
        .iter()
        .filter(|n| !received.contains(n))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?} (resynced: {resynced})"
    );
    server.stop().await;
}
