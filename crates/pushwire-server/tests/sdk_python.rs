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
