//! Done means: on the Redis engine `/metrics` reports what the engine did — publications sent,
//! PUB/SUB messages received, history reads, errors, PUB/SUB reconnects and whether the PUB/SUB
//! connection is up — as the `pushwire_redis_*` families, exactly for a scripted workload; on
//! the memory engine no such family is rendered.
//!
//! Needs the real Redis at 127.0.0.1:6379: a missing Redis fails these tests.

use std::time::Duration;

use pushwire_core::config::{ChannelOptions, NamespaceConfig};
use pushwire_server::ServerConfig;
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::{TestServer, WsClient};
use serde_json::json;

use crate::redis_common::{on_redis, redis, unique_prefix};

const PUBLICATIONS: u64 = 5;

const PUBLISHED: &str = "pushwire_redis_publications_total";
const PUBLISH_ERRORS: &str = "pushwire_redis_publish_errors_total";
const HISTORY_READS: &str = "pushwire_redis_history_reads_total";
const HISTORY_ERRORS: &str = "pushwire_redis_history_errors_total";
const PRESENCE_ERRORS: &str = "pushwire_redis_presence_errors_total";
const PUBSUB_MESSAGES: &str = "pushwire_redis_pubsub_messages_total";
const RECONNECTS: &str = "pushwire_redis_pubsub_reconnects_total";
const CONNECTED: &str = "pushwire_redis_pubsub_connected";

/// The test config on Redis under `prefix`, with fast PUB/SUB reconnects and a `metered:`
/// namespace: history (100, 300 s) and nothing that reads history or presence on subscribe,
/// so the only history read is the one the workload makes.
fn on_metered_redis(c: &mut ServerConfig, prefix: &str) {
    on_redis(c, prefix);
    c.channel.namespaces.push(NamespaceConfig {
        name: "metered".into(),
        options: ChannelOptions {
            history_size: 100,
            history_ttl: Duration::from_secs(300),
            allow_subscribe_for_client: true,
            allow_subscribe_for_anonymous: true,
            ..Default::default()
        },
    });
}

async fn node(prefix: &str) -> TestServer {
    drop(redis().await);
    TestServer::start_with(|c| on_metered_redis(c, prefix)).await
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

async fn subscribed(server: &TestServer, channels: &[String]) -> WsClient {
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    for ch in channels {
        let r = c.command(json!({"subscribe": {"channel": ch}})).await;
        assert!(r["subscribe"].is_object(), "subscribed to {ch}: {r}");
    }
    c
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

fn assert_no_errors(s: &Scrape) {
    for family in [PUBLISH_ERRORS, HISTORY_ERRORS, PRESENCE_ERRORS] {
        assert_eq!(s.count(family), 0, "{family}:\n{}", s.text);
    }
}

#[tokio::test]
async fn redis_counters_equal_the_workload() {
    let prefix = unique_prefix();
    let server = node(&prefix).await;
    let ch = "metered:feed";
    let mut c = subscribed(&server, &[ch.to_owned()]).await;

    let before = Scrape::of(&server).await;
    assert_eq!(before.count(CONNECTED), 1, "PUB/SUB up from the start");
    for family in [PUBLISHED, HISTORY_READS, PUBSUB_MESSAGES, RECONNECTS] {
        assert_eq!(before.count(family), 0, "{family} before the workload");
    }
    assert_no_errors(&before);
    assert!(
        before
            .text
            .contains("# TYPE pushwire_redis_pubsub_connected gauge\n"),
        "{}",
        before.text
    );
    assert!(
        before
            .text
            .contains("# TYPE pushwire_redis_publications_total counter\n"),
        "{}",
        before.text
    );

    for n in 1..=PUBLICATIONS {
        let r = server.publish(ch, json!({ "n": n })).await;
        assert_eq!(r["offset"], json!(n), "stored with history: {r}");
    }
    // Every publication came back over PUB/SUB before the scrape.
    for n in 1..=PUBLICATIONS {
        assert_eq!(c.next_publication(ch).await["offset"], json!(n));
    }
    let (status, body) = server
        .api("history", json!({"channel": ch, "limit": -1}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["result"]["publications"].as_array().map(Vec::len),
        Some(PUBLICATIONS as usize),
        "{body}"
    );

    let after = Scrape::of(&server).await;
    assert_eq!(after.count(PUBLISHED), PUBLICATIONS, "{}", after.text);
    assert_eq!(
        after.count(PUBSUB_MESSAGES),
        PUBLICATIONS,
        "one PUB/SUB message per publication (no other traffic under this prefix)"
    );
    assert_eq!(after.count(HISTORY_READS), 1, "{}", after.text);
    assert_eq!(after.count(CONNECTED), 1);
    assert_eq!(after.count(RECONNECTS), 0);
    assert_no_errors(&after);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn a_killed_pubsub_connection_counts_one_reconnect() {
    let prefix = unique_prefix();
    let server = node(&prefix).await;
    // 29 channels: an unusual count that identifies this node's PUB/SUB connection.
    const SUBS: usize = 29;
    let channels: Vec<String> = (0..SUBS).map(|i| format!("metered:k{i}")).collect();
    let mut c = subscribed(&server, &channels).await;
    let before = Scrape::of(&server).await;
    assert_eq!((before.count(RECONNECTS), before.count(CONNECTED)), (0, 1));

    // Plus the node's two control channels.
    let ids = pubsub_clients(SUBS + 2).await;
    assert_eq!(ids.len(), 1, "this node's PUB/SUB connection: {ids:?}");
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&ids[0])
        .query_async(&mut redis().await)
        .await
        .expect("CLIENT KILL");
    // The resync hook runs after the reconnect and disconnects the subscriber.
    let (code, _) = c.expect_close().await;
    assert_eq!(code, 3010, "insufficient state after the reconnect");

    let after = Scrape::of(&server).await;
    assert_eq!(after.count(RECONNECTS), 1, "{}", after.text);
    assert_eq!(after.count(CONNECTED), 1, "up again after the reconnect");
    assert_no_errors(&after);

    // Delivery resumes on the new connection and is counted there.
    let ch = &channels[0];
    let mut c = subscribed(&server, std::slice::from_ref(ch)).await;
    server.publish(ch, json!({"n": 1})).await;
    c.next_publication(ch).await;
    let last = Scrape::of(&server).await;
    assert_eq!(last.count(PUBSUB_MESSAGES), 1, "{}", last.text);
    assert_eq!(last.count(RECONNECTS), 1);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn the_memory_engine_renders_no_redis_family() {
    let server = TestServer::start().await;
    server.publish("chat:mem", json!({"n": 1})).await;
    let s = Scrape::of(&server).await;
    assert!(
        s.text.contains("pushwire_publications_total"),
        "a real scrape: {}",
        s.text
    );
    assert!(
        !s.text.contains("pushwire_redis_"),
        "no Redis family on the memory engine:\n{}",
        s.text
    );
}
