//! Headless Chromium against pushwire (`sdk-tests/browser/browser.mjs`, playwright-core driving
//! Debian's `/usr/bin/chromium`): centrifuge-js's browser bundle over WebSocket, HTTP-streaming
//! and SSE from a page on another origin; a plain `EventSource` on `/connection/uni_sse`; and a
//! plain `fetch` long-polling loop on `/connection/long_poll`. Each must receive every
//! publication across a server-side disconnect.
//!
//! `scripts/setup-browser.sh` installs Chromium and `sdk-tests/browser/node_modules`. A missing
//! install fails the test, it never skips.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pushwire_test_support::{TestServer, API_KEY, SECRET};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How long one browser scenario may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate sits at crates/<name>")
        .join("sdk-tests/browser")
}

async fn read_all(mut r: impl AsyncRead + Unpin) -> String {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Runs `node browser.mjs <case>` in `sdk-tests/browser` against `server`; panics with the whole
/// output on failure or timeout; returns the JSON of its `RESULT <json>` line.
async fn browser_case(case: &str, server: &TestServer) -> Value {
    let dir = browser_dir();
    for pkg in ["playwright-core", "centrifuge"] {
        let p = dir.join(format!("node_modules/{pkg}/package.json"));
        assert!(
            p.exists(),
            "{pkg} is not installed ({} is missing): run scripts/setup-browser.sh first",
            p.display()
        );
    }
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/setup-browser.sh first"
    );
    let mut child = tokio::process::Command::new("node")
        .args(["browser.mjs", case])
        .current_dir(&dir)
        .env("PUSHWIRE_HTTP_URL", server.http_url())
        .env("PUSHWIRE_WS_URL", server.ws_url())
        .env("PUSHWIRE_API_KEY", API_KEY)
        .env("PUSHWIRE_SECRET", SECRET)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node browser.mjs {case}: {e}"));
    let stdout = tokio::spawn(read_all(child.stdout.take().expect("piped")));
    let stderr = tokio::spawn(read_all(child.stderr.take().expect("piped")));
    let status = match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait()).await {
        Ok(s) => Some(s.expect("wait for node")),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    let out = stdout.await.expect("stdout");
    let err = stderr.await.expect("stderr");
    let report = format!("---- browser.mjs {case} stdout ----\n{out}\n---- stderr ----\n{err}");
    println!("{report}");
    match status {
        None => panic!("browser.mjs {case} timed out after {SCRIPT_TIMEOUT:?}\n{report}"),
        Some(s) if !s.success() => panic!("browser.mjs {case} failed ({s})\n{report}"),
        Some(_) => {}
    }
    let line = out
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("browser.mjs {case} printed no RESULT line\n{report}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("RESULT is not JSON ({e}): {line}"))
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
    let history = server
        .node()
        .history(result["channel"].as_str().unwrap(), -1, None, false)
        .await
        .expect("history");
    assert_eq!(json!(history.epoch), result["epoch"]);
    assert_eq!(history.offset, 6);
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
