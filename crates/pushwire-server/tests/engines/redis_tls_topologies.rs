//! TLS with Redis Sentinel and Redis Cluster, against private TLS-only deployments started by
//! each test (one self-signed certificate for `localhost` and `127.0.0.1`,
//! `pushwire_test_support::tls_topology`): nodes connect through TLS sentinels to a TLS master
//! and through a TLS cluster, and deliver each other's publications; an untrusted certificate
//! stops the start naming the key that should have trusted it.

use crate::common;

use std::time::Duration;

use common::*;
use pushwire_server::config::EngineKind;
use pushwire_server::ServerConfig;
use pushwire_test_support::tls_topology::{TlsCluster, TlsSentinels};
use pushwire_test_support::TestServer;
use serde_json::json;

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
/// root in `tls_ca_pem_file`): a client of node A receives what node B publishes in channels
/// spread over the partitions (so over every master), and history answers over TLS.
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
