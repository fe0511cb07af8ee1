//! The real centrifuge-python and cent SDKs against pushwire: the scenarios in `sdk-tests/python/`
//! (install them with `scripts/setup-sdks.sh`).

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
