//! A real application backend for the proxy tests: an axum app on 127.0.0.1:0 that answers
//! Centrifugo's proxy requests (connect, refresh, subscribe, publish, sub_refresh, rpc, send),
//! records what it received, counts calls in flight, and has routes that fail on purpose.
//! [`grpc`] serves the same answers over gRPC.

pub mod grpc;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{json, Value};

/// What the backend saw and how it behaves.
#[derive(Default)]
pub struct Backend {
    /// Every request: (path, body, Cookie header).
    pub requests: Mutex<Vec<(String, Value, Option<String>)>>,
    /// Connect calls at the backend now, and the most ever seen at once.
    pub in_flight: AtomicUsize,
    /// See `in_flight`.
    pub max_in_flight: AtomicUsize,
    /// Connect answers wait this long (milliseconds).
    pub connect_delay_ms: AtomicUsize,
    /// Refresh calls by client id; sub_refresh calls by client and channel.
    calls: Mutex<HashMap<String, usize>>,
}

impl Backend {
    /// Requests to `path` so far.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.requests
            .lock()
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, b, _)| b.clone())
            .collect()
    }

    /// Cookie headers of the requests to `path`.
    pub fn cookies(&self, path: &str) -> Vec<Option<String>> {
        self.requests
            .lock()
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, _, c)| c.clone())
            .collect()
    }

    fn record(&self, path: &str, headers: &HeaderMap, body: &Value) {
        let cookie = headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.requests
            .lock()
            .push((path.to_owned(), body.clone(), cookie));
    }

    fn count(&self, key: String) -> usize {
        let mut c = self.calls.lock();
        let n = c.entry(key).or_default();
        *n += 1;
        *n
    }
}

/// A running backend.
pub struct RunningBackend {
    /// Its state.
    pub state: Arc<Backend>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now() -> i64 {
    pushwire_test_support::now()
}

/// The `session` cookie, else the `X-Session` header (emulated by the SDK).
fn session(headers: &HeaderMap) -> Option<String> {
    let from_cookie = || {
        let cookie = headers.get(header::COOKIE)?.to_str().ok()?;
        cookie.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == "session").then(|| v.to_owned())
        })
    };
    from_cookie().or_else(|| {
        headers
            .get("x-session")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
}

async fn connect(
    State(b): State<Arc<Backend>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    b.record("connect", &h, &body);
    let now_in = b.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    b.max_in_flight.fetch_max(now_in, Ordering::SeqCst);
    let delay = b.connect_delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    b.in_flight.fetch_sub(1, Ordering::SeqCst);
    let Some(user) = session(&h) else {
        return Json(json!({"disconnect": {"code": 4501, "reason": "no session"}}));
    };
    let mut result = json!({
        "user": user,
        "data": {"hello": user},
        "info": {"name": format!("User {user}")},
        "meta": {"session": user},
    });
    if user.starts_with("short") {
        result["expire_at"] = json!(now() + 3);
    }
    if user.starts_with("rich") {
        // Every connect result field: b64data, server-side channels and subs with overrides.
        result["data"] = Value::Null;
        result["b64data"] = json!("eyJiIjoxfQ=="); // {"b":1}
        result["expire_at"] = json!(now() + 600);
        result["channels"] = json!(["news"]);
        result["subs"] = json!({"pres:auto": {
            "data": {"x": 1},
            "b64info": "eyJpIjoxfQ==", // {"i":1}
            "override": {"presence": {"value": false}},
        }});
    }
    Json(json!({ "result": result }))
}

async fn refresh(
    State(b): State<Arc<Backend>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    b.record("refresh", &h, &body);
    let n = b.count(format!("refresh/{}", body["client"]));
    if n == 1 {
        Json(json!({"result": {"expire_at": now() + 3, "info": {"refreshed": n}}}))
    } else {
        Json(json!({"result": {"expired": true}}))
    }
}

async fn subscribe(
    State(b): State<Arc<Backend>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    b.record("subscribe", &h, &body);
    let channel = body["channel"].as_str().unwrap_or_default().to_owned();
    if channel.starts_with("denied:") {
        return Json(json!({"error": {"code": 103, "message": "permission denied"}}));
    }
    let mut result = json!({
        "info": {"via": "proxy"},
        "data": {"welcome": channel},
        // `pres:hidden*` subscribers stay out of presence (the namespace keeps it).
        "override": {"presence": {"value": !channel.starts_with("pres:hidden")}},
    });
    if channel.starts_with("exp:") {
        result["expire_at"] = json!(now() + 1);
    }
    Json(json!({ "result": result }))
}

async fn publish(
    State(b): State<Arc<Backend>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    b.record("publish", &h, &body);
    let text = body["data"]["text"].as_str().unwrap_or_default();
    if text == "forbidden" {
        return Json(json!({"error": {"code": 1001, "message": "forbidden word"}}));
    }
    Json(json!({"result": {"data": {"text": text.to_uppercase(), "by": body["user"]}}}))
}

async fn sub_refresh(
    State(b): State<Arc<Backend>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    b.record("sub_refresh", &h, &body);
    let n = b.count(format!(
        "sub_refresh/{}/{}",
        body["client"], body["channel"]
    ));
    if n == 1 {
        Json(json!({"result": {"expire_at": now() + 1}}))
    } else {
        Json(json!({"result": {"expired": true}}))
    }
}

async fn rpc(State(b): State<Arc<Backend>>, h: HeaderMap, Json(body): Json<Value>) -> Json<Value> {
    b.record("rpc", &h, &body);
    match body["method"].as_str() {
        Some("echo") => {
            Json(json!({"result": {"data": {"echo": body["data"], "user": body["user"]}}}))
        }
        _ => Json(json!({"error": {"code": 1002, "message": "rpc failed"}})),
    }
}

async fn send(State(b): State<Arc<Backend>>, h: HeaderMap, Json(body): Json<Value>) -> Json<Value> {
    b.record("send", &h, &body);
    Json(json!({}))
}

async fn slow() -> Json<Value> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    Json(json!({"result": {}}))
}

async fn status500() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()
}

async fn bad_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        "{\"result\": ",
    )
        .into_response()
}

async fn huge() -> Response {
    let big = format!("{{\"result\":{{\"data\":\"{}\"}}}}", "x".repeat(300_000));
    ([(header::CONTENT_TYPE, "application/json")], big).into_response()
}

async fn html() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html")],
        "{\"result\":{\"data\":1}}",
    )
        .into_response()
}

/// Starts the backend on loopback.
pub async fn start() -> RunningBackend {
    let state = Arc::new(Backend::default());
    let app = app(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("backend serves");
    });
    RunningBackend {
        state,
        url: format!("http://{addr}"),
        task,
    }
}

/// Serves `app` over TLS with `cert` (HTTP/1.1 and HTTP/2 by ALPN) on 127.0.0.1:0, with
/// pushwire's own listener; returns the address and the serving task.
pub async fn serve_tls(
    app: Router,
    cert: &pushwire_test_support::cert::TestCert,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let tls = pushwire_server::tls::server_config(&cert.server_tls())
        .expect("TLS config")
        .expect("enabled");
    let listener = pushwire_server::listener::bind("127.0.0.1:0", 128)
        .await
        .expect("bind TLS backend");
    let addr = listener.local_addr().expect("addr");
    let settings = pushwire_server::listener::ListenSettings::new(
        &pushwire_server::config::ServerConfig::default().http_server,
        Some(tls),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let task = pushwire_server::listener::spawn(listener, app, settings, stop);
    (addr, task)
}

/// Starts the backend over HTTPS with `cert` (for `localhost`) on 127.0.0.1:0.
pub async fn start_tls(cert: &pushwire_test_support::cert::TestCert) -> RunningBackend {
    let state = Arc::new(Backend::default());
    let (addr, task) = serve_tls(app(state.clone()), cert).await;
    RunningBackend {
        state,
        url: format!("https://{addr}"),
        task,
    }
}

fn app(state: Arc<Backend>) -> Router {
    Router::new()
        .route("/connect", post(connect))
        .route("/refresh", post(refresh))
        .route("/subscribe", post(subscribe))
        .route("/publish", post(publish))
        .route("/sub_refresh", post(sub_refresh))
        .route("/rpc", post(rpc))
        .route("/send", post(send))
        .route("/slow", post(slow))
        .route("/status500", post(status500))
        .route("/bad_json", post(bad_json))
        .route("/huge", post(huge))
        .route("/html", post(html))
        .with_state(state)
}
