//! permessage-deflate with real peers: centrifuge-python (its `websockets` transport offers the
//! extension by default) and headless Chromium (which always offers it), against a server with
//! `websocket.compression` on. Each must negotiate the extension (the handshake answer the
//! client saw, and the server's count of compressed connections) and exchange ~2 KB documents
//! both ways. Needs `scripts/setup-sdks.sh` and `scripts/setup-browser.sh`; a missing install
//! fails, it never skips.

use std::path::Path;

use pushwire_core::metrics::Metrics;
use pushwire_test_support::sdk::{repo_root, require, run_in, run_python};
use pushwire_test_support::TestServer;
use serde_json::json;

const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

fn compressed(server: &TestServer) -> u64 {
    Metrics::get(&server.node().metrics().websocket_compressed)
}

#[tokio::test(flavor = "multi_thread")]
async fn python_negotiates_permessage_deflate_and_exchanges_documents() {
    let server = TestServer::start_with(|c| c.websocket.compression = true).await;
    let result = run_python("python/deflate.py", &server).await.result();
    assert_eq!(result["extensions"], json!([ANSWER, ANSWER]), "{result}");
    assert_eq!(result["received"], json!(21));
    assert_eq!(compressed(&server), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_gets_no_extension_when_compression_is_off() {
    let server = TestServer::start().await;
    let result = run_python("python/deflate.py", &server).await.result();
    assert_eq!(result["extensions"], json!([null, null]), "{result}");
    assert_eq!(result["received"], json!(21));
    assert_eq!(compressed(&server), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_negotiates_permessage_deflate_and_exchanges_documents() {
    let server = TestServer::start_with(|c| c.websocket.compression = true).await;
    let dir = repo_root().join("sdk-tests/browser");
    for pkg in ["playwright-core", "centrifuge"] {
        require(
            &dir.join(format!("node_modules/{pkg}/package.json")),
            pkg,
            "scripts/setup-browser.sh",
        );
    }
    require(
        Path::new("/usr/bin/chromium"),
        "Chromium",
        "scripts/setup-browser.sh",
    );
    let result = run_in(
        Path::new("node"),
        &dir,
        &["browser.mjs", "deflate"],
        &server,
    )
    .await
    .result();
    assert_eq!(result["extensions"], json!(ANSWER), "{result}");
    assert_eq!(result["received"], json!(11), "{result}");
    assert!(
        result["userAgent"]
            .as_str()
            .is_some_and(|ua| ua.contains("HeadlessChrome")),
        "{result}"
    );
    // The raw WebSocket and centrifuge-js's.
    assert_eq!(compressed(&server), 2);
    server.stop().await;
}
