//! TLS with Redis Sentinel and Redis Cluster, against private TLS-only deployments started by
//! each test (one self-signed certificate for `localhost` and `127.0.0.1`,
//! `pushwire_test_support::tls_topology`): nodes connect through TLS sentinels to a TLS master
//! and through a TLS cluster, and deliver each other's publications; an untrusted certificate
//! stops the start naming the key that should have trusted it; a failover over TLS (three TLS
//! sentinels promote the TLS replica) loses no acknowledged publication.

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use pushwire_server::config::EngineKind;
use pushwire_server::ServerConfig;
use pushwire_test_support::tls_topology::{cli, TlsCluster, TlsSentinels};
use pushwire_test_support::{eventually, TestServer};
use serde_json::{json, Value};

/// `engine.redis` on the TLS sentinels of `s`, trusting their certificate for both the
/// sentinels and the master.
fn on_sentinels(c: &mut ServerConfig, s: &TlsSentinels) {
    c.engine.kind = EngineKind::Redis;
    // Under Sentinel the address only lends its scheme (TLS) and credentials.
    c.engine.redis.address = "rediss://127.0.0.1:6379".into();
    c.engine.redis.tls_ca_pem_file = s.ca_file();
    c.engine.redis.sentinel_address = s.sentinel_addresses();
    c.engine.redis.sentinel_master_name = TlsSentinels::MASTER_NAME.into();
    c.engine.redis.sentinel_tls.enabled = true;
    c.engine.redis.sentinel_tls.server_ca_pem_file = s.ca_file();
    c.engine.redis.connect_timeout = Duration::from_secs(2);
    c.engine.redis.reconnect_min_delay = Duration::from_millis(20);
    c.engine.redis.reconnect_max_delay = Duration::from_millis(200);
}

/// Two nodes on one TLS master found through a TLS sentinel: a client of node A receives what
/// node B publishes (PUB/SUB over TLS) and the history read on B holds it (commands over TLS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_reach_a_tls_master_through_tls_sentinels_and_deliver() {
    let s = TlsSentinels::start(1).await;
    let a = TestServer::start_with(|c| {
        on_sentinels(c, &s);
        c.channel.namespaces.push(ns("tls", recovering(100)));
    })
    .await;
    let b = TestServer::start_with(|c| {
        on_sentinels(c, &s);
        c.channel.namespaces.push(ns("tls", recovering(100)));
    })
    .await;
    let (mut ws, _) = anon(&a).await;
    subscribe(&mut ws, "tls:sentinel").await;
    let r = api_publish(&b, "tls:sentinel", json!({"over": "tls"}), json!({})).await;
    assert!(r["result"].is_object(), "{r}");
    assert_eq!(
        ws.next_publication("tls:sentinel").await["data"],
        json!({"over": "tls"})
    );
    let (offsets, _, _) = stored(&b, "tls:sentinel").await;
    assert_eq!(offsets, vec![1], "history over TLS");
    a.stop().await;
    b.stop().await;
}

/// Without the sentinels' root, the start fails naming `engine.redis.sentinel_tls`; with it
/// but without the master's root, naming `engine.redis.tls_ca_pem_file`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_sentinel_or_master_certificate_stops_the_start_naming_the_key() {
    let s = TlsSentinels::start(1).await;
    for (unset, key) in [
        ("sentinel", "engine.redis.sentinel_tls.server_ca_pem_file"),
        ("master", "engine.redis.tls_ca_pem_file"),
    ] {
        let mut config = pushwire_test_support::test_config();
        on_sentinels(&mut config, &s);
        config.engine.redis.connect_timeout = Duration::from_millis(500);
        config.engine.redis.command_timeout = Duration::from_secs(1);
        match unset {
            "sentinel" => config.engine.redis.sentinel_tls.server_ca_pem_file = String::new(),
            _ => config.engine.redis.tls_ca_pem_file = String::new(),
        }
        config.validate().expect("valid: the system roots apply");
        let Err(e) = pushwire_server::engine::build_node(&config, "tls-test".into(), None).await
        else {
            panic!("the system roots do not trust the test certificate ({unset})");
        };
        let text = format!("{e:#}");
        assert!(text.contains(key), "{unset}: {text}");
    }
}

/// Two nodes on a private 3-master TLS-only Redis Cluster (`rediss://` seeds, the private
/// root in `tls_ca_pem_file`): a client of node A receives what node B publishes in 16
/// channels spread over the partitions (and so, in practice, over the masters), and history
/// answers over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_a_tls_cluster_deliver_each_others_publications() {
    let cluster = TlsCluster::start(3).await;
    let setup = |c: &mut ServerConfig| {
        c.engine.kind = EngineKind::Redis;
        c.engine.redis.address = "rediss://127.0.0.1:6379".into();
        c.engine.redis.cluster_address = cluster.seeds();
        c.engine.redis.tls_ca_pem_file = cluster.ca_file();
        c.engine.redis.connect_timeout = Duration::from_secs(2);
        c.engine.redis.reconnect_min_delay = Duration::from_millis(20);
        c.engine.redis.reconnect_max_delay = Duration::from_millis(200);
        c.channel.namespaces.push(ns("tls", recovering(100)));
    };
    let a = TestServer::start_with(setup).await;
    let b = TestServer::start_with(setup).await;
    let (mut ws, _) = anon(&a).await;
    let channels: Vec<String> = (0..16).map(|i| format!("tls:c{i}")).collect();
    for ch in &channels {
        subscribe(&mut ws, ch).await;
    }
    for (n, ch) in channels.iter().enumerate() {
        let r = api_publish(&b, ch, json!({"n": n}), json!({})).await;
        assert!(r["result"].is_object(), "{ch}: {r}");
        assert_eq!(
            ws.next_publication(ch).await["data"],
            json!({"n": n}),
            "{ch}"
        );
        let (offsets, _, _) = stored(&a, ch).await;
        assert_eq!(offsets, vec![1], "{ch}: history over TLS");
    }
    // Without the private root the start fails naming the cluster.
    let mut config = pushwire_test_support::test_config();
    setup(&mut config);
    config.engine.redis.tls_ca_pem_file = String::new();
    config.engine.redis.connect_timeout = Duration::from_millis(500);
    config.engine.redis.command_timeout = Duration::from_secs(1);
    let Err(e) = pushwire_server::engine::build_node(&config, "tls-test".into(), None).await else {
        panic!("the system roots do not trust the test certificate");
    };
    assert!(
        format!("{e:#}").contains("engine.redis.cluster_address"),
        "{e:#}"
    );
    a.stop().await;
    b.stop().await;
}

/// Three TLS sentinels fail the TLS master over to its replica (`SENTINEL FAILOVER`) while the
/// API publishes every 20 ms: the node follows the new master (over TLS), its client is
/// resynced (3010) or keeps receiving, and ends with every acknowledged publication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_over_tls_loses_no_acknowledged_publication() {
    let s = TlsSentinels::start(3).await;
    let server = TestServer::start_with(|c| {
        on_sentinels(c, &s);
        c.channel.namespaces.push(ns("tls", recovering(10_000)));
        c.client.recovery_max_publication_limit = 10_000;
    })
    .await;
    let ch = "tls:failover";
    let (mut c, _) = anon(&server).await;
    let r = subscribe_with(&mut c, json!({"channel": ch, "recover": true})).await;
    let epoch = r["epoch"].as_str().expect("epoch").to_owned();

    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let refused = Arc::new(Mutex::new(0usize));
    let stop = tokio_util::sync::CancellationToken::new();
    let publisher = {
        let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
        let api = format!("{}/api/publish", server.http_url());
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("client");
            let mut n = 0u64;
            while !stop.is_cancelled() {
                let body: Value = http
                    .post(&api)
                    .header("X-API-Key", pushwire_test_support::API_KEY)
                    .json(&json!({"channel": "tls:failover", "data": {"n": n}}))
                    .send()
                    .await
                    .expect("an answer")
                    .json()
                    .await
                    .expect("json");
                if body["result"].is_object() {
                    acked.lock().push(n);
                } else {
                    *refused.lock() += 1;
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
    let sentinel = s.sentinels[0].port;
    let out = cli(
        s.cert(),
        sentinel,
        &["SENTINEL", "FAILOVER", TlsSentinels::MASTER_NAME],
    )
    .await;
    assert_eq!(out.trim(), "OK", "SENTINEL FAILOVER: {out:?}");
    let replica = s.replica.port.to_string();
    eventually(
        "the sentinels name the replica as master",
        Duration::from_secs(30),
        || async {
            cli(
                s.cert(),
                sentinel,
                &[
                    "SENTINEL",
                    "GET-MASTER-ADDR-BY-NAME",
                    TlsSentinels::MASTER_NAME,
                ],
            )
            .await
            .lines()
            .any(|l| l.trim() == replica)
        },
    )
    .await;
    let switched_at = acked.lock().len();
    eventually(
        "40 publications acknowledged after the switch",
        Duration::from_secs(30),
        || async { acked.lock().len() >= switched_at + 40 },
    )
    .await;
    stop.cancel();
    publisher.await.expect("publisher");
    let acked = acked.lock().clone();
    eprintln!(
        "TLS failover: {} acknowledged, {} refused",
        acked.len(),
        refused.lock()
    );

    let last = *acked.last().expect("acked");
    let mut received = BTreeSet::new();
    let mut offset = 0u64;
    let mut resynced = false;
    while !received.contains(&last) {
        let Some(m) = c.read_one().await else {
            resynced = true;
            break;
        };
        if m["push"]["pub"].is_object() {
            let p = &m["push"]["pub"];
            received.insert(p["data"]["n"].as_u64().expect("n"));
            offset = p["offset"].as_u64().unwrap_or(offset);
        } else if m["push"]["disconnect"].is_object() {
            assert_eq!(m["push"]["disconnect"]["code"], json!(3010), "{m}");
            resynced = true;
            break;
        }
    }
    eprintln!(
        "TLS failover: {} live before the end (resynced: {resynced})",
        received.len()
    );
    let mut live = c;
    if !received.contains(&last) {
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
        live = again;
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
    // Live again, from the promoted replica.
    let r = api_publish(&server, ch, json!({"n": "after"}), json!({})).await;
    assert!(r["result"].is_object(), "{r}");
    assert_eq!(live.next_publication(ch).await["data"]["n"], json!("after"));
    server.stop().await;
}
