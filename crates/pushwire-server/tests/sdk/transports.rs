//! Real SDKs over every transport: centrifuge-js 5.8 in Node 20 (`sdk-tests/browser/
//! node-scenario.mjs`) over WebSocket, HTTP-streaming and SSE, with transport fallback and the
//! protobuf build; centrifuge-python with protobuf (`sdk-tests/python-pb/scenario.py`).
//!
//! Each scenario connects, subscribes with recovery to a fresh `chat:` channel, receives an API
//! publication, publishes from the client, is disconnected by the server (API `disconnect`,
//! 3011), misses three publications, and must recover exactly those, in order.
//!
//! `scripts/setup-browser.sh` installs `sdk-tests/browser/node_modules`; `scripts/setup-sdks.sh`
//! installs the Python venv. A missing install fails the test, it never skips.

use std::path::Path;

use pushwire_test_support::sdk::{assert_history, repo_root, require, run_in};
use pushwire_test_support::TestServer;
use serde_json::{json, Value};

/// Runs `sdk-tests/browser/node-scenario.mjs <case>` with `node` from `PATH`.
async fn node_case(case: &str, server: &TestServer) -> Value {
    let dir = repo_root().join("sdk-tests/browser");
    for pkg in ["centrifuge", "ws", "eventsource"] {
        require(
            &dir.join(format!("node_modules/{pkg}/package.json")),
            &format!("npm package {pkg} for sdk-tests/browser"),
            "scripts/setup-browser.sh",
        );
    }
    run_in(
        Path::new("node"),
        &dir,
        &["node-scenario.mjs", case],
        server,
    )
    .await
    .result()
}

/// What every recovery scenario must have seen, and what the server must keep.
async fn assert_recovered(server: &TestServer, result: &Value, transport: &str) {
    assert_eq!(result["transport"], json!(transport), "{result}");
    assert_eq!(result["recovered"], json!(true), "{result}");
    assert_eq!(
        result["offsets"],
        json!([1, 2, 3, 4, 5, 6]),
        "each publication once, in order, the missed ones recovered: {result}"
    );
    assert_history(server, result, &[1, 2, 3, 4, 5, 6]).await;
}

#[tokio::test]
async fn js_websocket_recovers_after_server_disconnect() {
    let server = TestServer::start().await;
    let result = node_case("websocket", &server).await;
    assert_recovered(&server, &result, "websocket").await;
    server.stop().await;
}

#[tokio::test]
async fn js_http_stream_recovers_after_server_disconnect() {
    let server = TestServer::start().await;
    let result = node_case("http_stream", &server).await;
    assert_recovered(&server, &result, "http_stream").await;
    server.stop().await;
}

#[tokio::test]
async fn js_sse_recovers_after_server_disconnect() {
    let server = TestServer::start().await;
    let result = node_case("sse", &server).await;
    assert_recovered(&server, &result, "sse").await;
    server.stop().await;
}

#[tokio::test]
async fn js_falls_back_from_blocked_websocket_to_http_stream() {
    let server = TestServer::start().await;
    let result = node_case("fallback-http_stream", &server).await;
    assert_recovered(&server, &result, "http_stream").await;
    server.stop().await;
}

#[tokio::test]
async fn js_falls_back_to_sse_when_websocket_and_http_stream_are_blocked() {
    let server = TestServer::start().await;
    let result = node_case("fallback-sse", &server).await;
    assert_recovered(&server, &result, "sse").await;
    server.stop().await;
}

#[tokio::test]
async fn js_protobuf_build_over_websocket() {
    let server = TestServer::start().await;
    let result = node_case("protobuf-websocket", &server).await;
    assert_eq!(result["protobuf"], json!(true));
    assert_recovered(&server, &result, "websocket").await;
    server.stop().await;
}

#[tokio::test]
async fn python_protobuf_connect_subscribe_publish_and_recover() {
    let server = TestServer::start().await;
    let root = repo_root();
    let python = root.join("sdk-tests/.venv/bin/python");
    require(
        &python,
        "the Python venv with centrifuge-python",
        "scripts/setup-sdks.sh",
    );
    let result = run_in(
        &python,
        &root.join("sdk-tests/python-pb"),
        &["scenario.py"],
        &server,
    )
    .await
    .result();
    assert_eq!(result["protobuf"], json!(true), "{result}");
    assert_recovered(&server, &result, "websocket").await;
    server.stop().await;
}

/// centrifuge-js subscribes with `delta: 'fossil'` (scenario.mjs `deltaScenario`): 200
/// publications of a 2 KB document made with API `delta: true` are reconstructed exactly, half
/// live, a quarter recovered after a server-side disconnect, the rest live again; almost all of
/// them travel as deltas and the bytes received are a small fraction of the decoded ones. A
/// subscription asking for fossil in a namespace that does not allow it works without delta.
async fn delta_case(case: &str) {
    let server = TestServer::start_with(pushwire_test_support::add_delta_namespace).await;
    let result = node_case(case, &server).await;
    let stats = &result["stats"];
    assert_eq!(stats["numPublications"], json!(200), "{result}");
    // Full: the first publication, the first recovered one and the first after the
    // resubscribe (the channel left this node's hub meanwhile).
    assert!(stats["numFullPayloads"].as_u64().unwrap() <= 3, "{result}");
    assert!(
        stats["numDeltaPayloads"].as_u64().unwrap() >= 197,
        "{result}"
    );
    let received = stats["bytesReceived"].as_f64().unwrap();
    let decoded = stats["bytesDecoded"].as_f64().unwrap();
    assert!(received * 10.0 < decoded, "fewer bytes: {result}");
    assert_eq!(
        result["plainStats"]["numPublications"],
        json!(0),
        "{result}"
    );
    // History keeps full payloads without the internal delta mark.
    let (status, history) = server
        .api(
            "history",
            json!({"channel": result["channel"], "limit": 1, "reverse": true}),
        )
        .await;
    assert_eq!(status, 200, "{history}");
    let last = &history["result"]["publications"][0];
    assert_eq!(last["data"]["seq"], json!(200), "{history}");
    assert!(last.get("delta").is_none(), "{history}");
    server.stop().await;
}

#[tokio::test]
async fn js_fossil_delta_over_websocket() {
    delta_case("delta-websocket").await;
}

#[tokio::test]
async fn js_fossil_delta_protobuf_over_websocket() {
    delta_case("delta-protobuf-websocket").await;
}

#[tokio::test]
async fn js_fossil_delta_over_http_stream() {
    delta_case("delta-http_stream").await;
}
