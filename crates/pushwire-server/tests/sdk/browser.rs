//! Headless Chromium against pushwire (`sdk-tests/browser/browser.mjs`, playwright-core driving
//! Debian's `/usr/bin/chromium`): centrifuge-js's browser bundle over WebSocket, HTTP-streaming
//! and SSE from a page on another origin; a plain `EventSource` on `/connection/uni_sse`; and a
//! plain `fetch` long-polling loop on `/connection/long_poll`. Each must receive every
//! publication across a server-side disconnect.
//!
//! `scripts/setup-browser.sh` installs Chromium and `sdk-tests/browser/node_modules`. A missing
//! install fails the test, it never skips.

use std::path::Path;

use pushwire_test_support::sdk::{assert_history, repo_root, require, run_in};
use pushwire_test_support::TestServer;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs `node browser.mjs <case>` in `sdk-tests/browser` against `server`; returns the JSON of
/// its `RESULT <json>` line.
async fn browser_case(case: &str, server: &TestServer) -> Value {
    let dir = repo_root().join("sdk-tests/browser");
    for pkg in ["playwright-core", "centrifuge"] {
        require(
            &dir.join(format!("node_modules/{pkg}/package.json")),
            pkg,
            "scripts/setup-browser.sh",
        );
    }
    require(Path::new(CHROMIUM), "Chromium", "scripts/setup-browser.sh");
    run_in(Path::new("node"), &dir, &["browser.mjs", case], server)
        .await
        .result()
}

async fn sdk_case(transport: &str) {
    let server = TestServer::start().await;
    let result = browser_case(&format!("sdk-{transport}"), &server).await;
    assert_eq!(result["transport"], json!(transport), "{result}");
    assert_eq!(result["recovered"], json!(true), "{result}");
    assert_eq!(result["offsets"], json!([1, 2, 3, 4, 5, 6]), "{result}");
    assert!(
        result["userAgent"]
            .as_str()
            .is_some_and(|ua| ua.contains("HeadlessChrome")),
        "ran in Chromium: {result}"
    );
    assert_history(&server, &result, &[1, 2, 3, 4, 5, 6]).await;
    server.stop().await;
}

#[tokio::test]
async fn chromium_centrifuge_js_websocket() {
    sdk_case("websocket").await;
}

#[tokio::test]
async fn chromium_centrifuge_js_http_stream() {
    sdk_case("http_stream").await;
}

/// centrifuge-js in Chromium with `delta: 'fossil'`: 200 publications reconstructed exactly
/// across a recovery, nearly all sent as deltas; no delta where the namespace does not allow it.
#[tokio::test]
async fn chromium_centrifuge_js_fossil_delta() {
    let server = TestServer::start_with(pushwire_test_support::add_delta_namespace).await;
    let result = browser_case("sdk-delta", &server).await;
    let stats = &result["stats"];
    assert_eq!(stats["numPublications"], json!(200), "{result}");
    assert!(
        stats["numDeltaPayloads"].as_u64().unwrap() >= 197,
        "{result}"
    );
    let (received, decoded) = (
        stats["bytesReceived"].as_f64().unwrap(),
        stats["bytesDecoded"].as_f64().unwrap(),
    );
    assert!(received * 10.0 < decoded, "{result}");
    assert_eq!(
        result["plainStats"]["numPublications"],
        json!(0),
        "{result}"
    );
    assert!(
        result["userAgent"]
            .as_str()
            .is_some_and(|ua| ua.contains("HeadlessChrome")),
        "ran in Chromium: {result}"
    );
    server.stop().await;
}

#[tokio::test]
async fn chromium_centrifuge_js_sse() {
    sdk_case("sse").await;
}

#[tokio::test]
async fn chromium_plain_eventsource_on_uni_sse_misses_nothing() {
    let server = TestServer::start().await;
    let result = browser_case("eventsource-uni-sse", &server).await;
    assert_eq!(result["offsets"], json!([1, 2, 3, 4, 5, 6, 7]), "{result}");
    assert!(result["opens"].as_u64() >= Some(2), "reconnected: {result}");
    server.stop().await;
}

#[tokio::test]
async fn chromium_plain_fetch_long_poll_misses_nothing() {
    let server = TestServer::start().await;
    let result = browser_case("long-poll-fetch", &server).await;
    assert_eq!(
        result["offsets"],
        json!([1, 2, 3, 4, 5, 6, 7, 8]),
        "{result}"
    );
    assert!(
        result["cutMs"].as_u64() < Some(5000),
        "the server ended the held poll: {result}"
    );
    server.stop().await;
}
