//! The real centrifuge-js and cent.js SDKs against pushwire: the scenarios in `sdk-tests/js/`
//! (install them with `scripts/setup-sdks.sh`).

use pushwire_test_support::sdk::{assert_history, eventually, run_node};
use pushwire_test_support::TestServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn js_basic_publish_and_token_connect() {
    let server = TestServer::start().await;
    let result = run_node("js/basic.mjs", &server).await.result();
    assert_eq!(result["user"], json!("user-42"));
    assert_ne!(result["anonymous_client"], result["token_client"]);
    eventually("both SDK clients are gone", || {
        server.node().info().num_clients == 0
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_recovers_missed_publications_after_a_cut() {
    let server = TestServer::start().await;
    let result = run_node("js/recovery.mjs", &server).await.result();
    assert_eq!(result["recovered"], json!(true));
    assert_eq!(result["missed_offsets"], json!([2, 3, 4]));
    assert_history(&server, &result, &[1, 2, 3, 4, 5]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_gap_beyond_history_is_not_recovered() {
    let server = TestServer::start().await;
    let result = run_node("js/gap.mjs", &server).await.result();
    assert_eq!(result["recovered"], json!(false));
    assert_eq!(result["missed_offsets"], json!([2, 3, 4, 5, 6, 7]));
    assert_history(&server, &result, &[6, 7, 8]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_cent_pipeline_uses_the_legacy_api_route() {
    let server = TestServer::start().await;
    let result = run_node("js/pipeline.mjs", &server).await.result();
    assert_history(&server, &result, &[1, 2]).await;
    server.stop().await;
}
