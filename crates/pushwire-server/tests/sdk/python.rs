//! The real centrifuge-python and cent SDKs against pushwire: the scenarios in `sdk-tests/python/`
//! (install them with `scripts/setup-sdks.sh`).

use std::path::Path;

use pushwire_test_support::node_process::{run_python_at, NodeProcess};
use pushwire_test_support::sdk::{assert_history, eventually, run_python};
use pushwire_test_support::TestServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn python_basic_publish_and_token_connect() {
    let server = TestServer::start().await;
    let result = run_python("python/basic.py", &server).await.result();
    assert_eq!(result["user"], json!("user-42"));
    assert_ne!(result["anonymous_client"], result["token_client"]);
    eventually("both SDK clients are gone", || {
        server.node().info().num_clients == 0
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_recovers_missed_publications_after_a_cut() {
    let server = TestServer::start().await;
    let result = run_python("python/recovery.py", &server).await.result();
    assert_eq!(result["recovered"], json!(true));
    assert_eq!(result["missed_offsets"], json!([2, 3, 4]));
    assert_history(&server, &result, &[1, 2, 3, 4, 5]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_gap_beyond_history_is_not_recovered() {
    let server = TestServer::start().await;
    let result = run_python("python/gap.py", &server).await.result();
    assert_eq!(result["recovered"], json!(false));
    assert_eq!(result["missed_offsets"], json!([2, 3, 4, 5, 6, 7]));
    assert_history(&server, &result, &[6, 7, 8]).await;
    server.stop().await;
}

/// Issue 14: `slow_subscriber_policy = "resubscribe"`: a connection behind a slow link, one of
/// its two channels flooded past its queue; only that subscription is shed (2500), the SDK
/// recovers it with `recovered: true` and no gap, the other channel loses nothing and the
/// connection stays (sdk-tests/python/slow_resubscribe.py). Also asserted here: the shedding
/// was counted and no connection was closed as slow.
#[tokio::test(flavor = "multi_thread")]
async fn python_slow_subscription_is_shed_and_recovered_while_the_connection_stays() {
    use pushwire_core::config::{ChannelOptions, NamespaceConfig, SlowSubscriberPolicy};
    let server = TestServer::start_with(|c| {
        c.client.queue_max_size = 256 * 1024;
        c.client.reply_max_size = 32 * 1024 * 1024;
        c.client.recovery_max_publication_limit = 10_000;
        c.websocket.write_timeout = std::time::Duration::from_secs(5);
        c.channel.namespaces.push(NamespaceConfig {
            name: "slow".into(),
            options: ChannelOptions {
                history_size: 5000,
                history_ttl: std::time::Duration::from_secs(300),
                force_recovery: true,
                slow_subscriber_policy: SlowSubscriberPolicy::Resubscribe,
                ..c.channel.without_namespace.clone()
            },
        });
    })
    .await;
    let result = run_python("python/slow_resubscribe.py", &server)
        .await
        .result();
    assert_eq!(result["shed_code"], json!(2500));
    let m = server.node().metrics();
    assert!(pushwire_core::metrics::Metrics::get(&m.subscriptions_shed) >= 1);
    assert_eq!(pushwire_core::metrics::Metrics::get(&m.slow_disconnects), 0);
    server.stop().await;
}

/// A server started from an unchanged Centrifugo v6 `config.json` (token, origins, API key,
/// admin, `prometheus.enabled`, `health.enabled`, a chat namespace) serves the SDK scenario.
#[tokio::test(flavor = "multi_thread")]
async fn python_against_an_unchanged_centrifugo_config_file() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/centrifugo/sdk-centrifugo-v6.json");
    let before = std::fs::read(&file).unwrap();
    let node = NodeProcess::start_file(env!("CARGO_BIN_EXE_pushwire"), &file, &[]).await;
    let run = run_python_at(
        &["python/centrifugo_config.py"],
        &node.ws_url(),
        &node.http_url(),
    )
    .await;
    let result = run.result();
    assert_eq!(result["presence"], json!(["alice", "bob"]));
    assert_eq!(result["history"], json!(2));
    // prometheus.enabled and health.enabled carried over; admin is on (login page served).
    let http = reqwest::Client::new();
    for path in ["/metrics", "/health", "/admin"] {
        let status = http
            .get(format!("{}{path}", node.http_url()))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{path}: {status}\n{}", node.log());
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the file is left as it is"
    );
}

/// centrifuge-python with `delta=fossil` rebuilds 100 delta publications exactly; where the
/// namespace does not allow fossil the subscription works without delta.
#[tokio::test(flavor = "multi_thread")]
async fn python_fossil_delta() {
    let server = TestServer::start_with(pushwire_test_support::add_delta_namespace).await;
    let result = run_python("python/delta.py", &server).await.result();
    assert_eq!(result["rebuilt"], json!(100));
    assert_eq!(result["plain_delta"], json!(false));
    server.stop().await;
}
