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

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pushwire_test_support::{TestServer, API_KEY, SECRET};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How long one scenario script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate sits at crates/<name>")
        .to_path_buf()
}

fn require(path: &Path, what: &str, setup: &str) {
    assert!(
        path.exists(),
        "{what} is not installed ({} is missing): run {setup} first",
        path.display()
    );
}

async fn read_all(mut r: impl AsyncRead + Unpin) -> String {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Runs `program args...` in `dir` against `server`; panics with the whole output on failure or
/// timeout; returns the JSON of the last `RESULT <json>` line.
async fn run_script(program: &Path, dir: &Path, args: &[&str], server: &TestServer) -> Value {
    let what = format!("{} {}", program.display(), args.join(" "));
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PUSHWIRE_HTTP_URL", server.http_url())
        .env("PUSHWIRE_WS_URL", server.ws_url())
        .env("PUSHWIRE_API_KEY", API_KEY)
        .env("PUSHWIRE_SECRET", SECRET)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdout = tokio::spawn(read_all(child.stdout.take().expect("piped")));
    let stderr = tokio::spawn(read_all(child.stderr.take().expect("piped")));
    let status = match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait()).await {
        Ok(s) => Some(s.expect("wait for the script")),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    let out = stdout.await.expect("stdout");
    let err = stderr.await.expect("stderr");
    let report = format!("---- {what} stdout ----\n{out}\n---- {what} stderr ----\n{err}");
    println!("{report}");
    match status {
        None => panic!("{what} timed out after {SCRIPT_TIMEOUT:?}\n{report}"),
        Some(s) if !s.success() => panic!("{what} failed ({s})\n{report}"),
        Some(_) => {}
    }
    let line = out
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("{what} printed no RESULT line\n{report}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("RESULT is not JSON ({e}): {line}"))
}

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
    run_script(
        Path::new("node"),
        &dir,
        &["node-scenario.mjs", case],
        server,
    )
    .await
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
    let channel = result["channel"].as_str().expect("channel");
    let history = server
        .node()
        .history(channel, -1, None, false)
        .await
        .expect("history");
    assert_eq!(
        json!(history.epoch),
        result["epoch"],
        "epoch seen by the SDK"
    );
    let kept: Vec<u64> = history.publications.iter().map(|p| p.offset).collect();
    assert_eq!(kept, vec![1, 2, 3, 4, 5, 6]);
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
    let result = run_script(
        &python,
        &root.join("sdk-tests/python-pb"),
        &["scenario.py"],
        &server,
    )
    .await;
    assert_eq!(result["protobuf"], json!(true), "{result}");
    assert_recovered(&server, &result, "websocket").await;
    server.stop().await;
}
