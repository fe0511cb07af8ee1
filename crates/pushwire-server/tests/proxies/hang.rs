//! Issue 14 item 4 for proxies: an application backend that *hangs* (SIGSTOP, socket still
//! open) rather than dies. The backend is a separate Python process (standard library
//! `http.server`); while it is stopped, clients keep connecting through the connect proxy and
//! calling an RPC through the rpc proxy, a client that needs no backend keeps receiving API
//! publications, and `/metrics` shows the open breakers; after SIGCONT calls succeed again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pushwire_core::config::{CircuitBreakerConfig, ProxyConfig};
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::stoppable::StoppableProcess;
use pushwire_test_support::{eventually, token, TestServer, WsClient};
use serde_json::{json, Value};

/// The proxy timeout under test.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Consecutive failures that open a breaker.
const FAILURES: u32 = 3;
/// How long the backend stays stopped.
const HANG: Duration = Duration::from_secs(8);
/// What "at once" means for a call the open breaker refuses (a loopback round trip takes a
/// few milliseconds; half the timeout still tells a refusal from a timeout).
const AT_ONCE: Duration = Duration::from_millis(500);
/// The longest any call may take: the timeout plus generous room for a loaded machine.
const AT_MOST: Duration = Duration::from_millis(2200);

/// Centrifugo's proxy JSON for connect (the user is named after the client id) and rpc (echo).
const BACKEND: &str = r#"
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        size = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(size) or b"{}")
        if self.path == "/connect":
            answer = {"result": {"user": "backend-" + body["client"][:8]}}
        elif self.path == "/rpc":
            answer = {"result": {"data": {"echo": body.get("data"), "user": body.get("user", "")}}}
        else:
            self.send_response(404)
            self.end_headers()
            return
        out = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # a request the node gave up on while we were stopped: its socket is gone


server = Server(("127.0.0.1", 0), Handler)
print(f"READY {server.server_address[1]}", flush=True)
server.serve_forever()
"#;

fn proxy(url: &str, path: &str) -> ProxyConfig {
    ProxyConfig {
        endpoint: format!("{url}/{path}"),
        timeout: TIMEOUT,
        circuit_breaker: CircuitBreakerConfig {
            failures: FAILURES,
            open_for: Duration::from_secs(2),
        },
        ..Default::default()
    }
}

/// One call made while the backend was stopped.
#[derive(Debug)]
struct Call {
    /// When it started, after the SIGSTOP.
    at: Duration,
    took: Duration,
    reply: Value,
}

/// Connects a new client without a token: the connect proxy decides. Returns the client and
/// the reply to its connect command with how long that command took.
async fn connect_through_proxy(server: &TestServer) -> (WsClient, Value, Duration) {
    let mut c = WsClient::open(&server.ws_url()).await;
    let started = Instant::now();
    let reply = c.command(json!({"connect": {}})).await;
    (c, reply, started.elapsed())
}

/// Repeats `call` every 100 ms until `done`, recording each call's start (from `stopped_at`),
/// duration and reply.
fn keep_calling<F, Fut>(
    done: Arc<AtomicBool>,
    stopped_at: Instant,
    mut call: F,
) -> tokio::task::JoinHandle<Vec<Call>>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = (Value, Duration)> + Send,
{
    tokio::spawn(async move {
        let mut calls = Vec::new();
        while !done.load(Ordering::Relaxed) {
            let at = stopped_at.elapsed();
            let (reply, took) = call().await;
            calls.push(Call { at, took, reply });
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        calls
    })
}

/// Checks the calls of one proxy made while its backend hung: each answered error 100
/// (temporary) within the timeout; the first `FAILURES` waited for the timeout, the next one
/// was refused at once by the open breaker, and refusals at once kept coming.
fn assert_hung_calls(proxy: &str, calls: &[Call]) {
    let during: Vec<&Call> = calls.iter().filter(|c| c.at + c.took < HANG).collect();
    assert!(during.len() > FAILURES as usize + 3, "{proxy}: {calls:#?}");
    for c in &during {
        assert_eq!(c.reply["error"]["code"], json!(100), "{proxy}: {c:?}");
        assert_eq!(c.reply["error"]["temporary"], json!(true), "{proxy}: {c:?}");
        assert!(c.took < AT_MOST, "{proxy}: a call took {:?}: {c:?}", c.took);
    }
    for c in &during[..FAILURES as usize] {
        assert!(
            c.took >= TIMEOUT - Duration::from_millis(100),
            "{proxy}: a call before the breaker opened took {:?} (a timeout, not a refusal): {during:#?}",
            c.took
        );
    }
    let next = &during[FAILURES as usize];
    assert!(
        next.took < AT_ONCE,
        "{proxy}: after {FAILURES} failures the breaker refuses at once, but the next call took {:?}: {during:#?}",
        next.took
    );
    let refused = during.iter().filter(|c| c.took < AT_ONCE).count();
    assert!(
        refused >= 5,
        "{proxy}: {refused} calls refused at once: {during:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_backend_gets_timeouts_then_an_open_breaker_and_the_node_keeps_serving() {
    let backend = StoppableProcess::python(BACKEND, &[]).await;
    let url = backend.url();
    let server = TestServer::start_with(|c| {
        c.client.proxy.connect = ProxyConfig {
            enabled: true,
            ..proxy(&url, "connect")
        };
        c.rpc.proxy = proxy(&url, "rpc");
        c.rpc.without_namespace.proxy_enabled = true;
    })
    .await;

    // Before the hang: the backend decides connects and answers RPC.
    let (mut caller, reply, _) = connect_through_proxy(&server).await;
    let user = reply["connect"]["client"].as_str().expect("connected")[..8].to_owned();
    let rpc = json!({"rpc": {"method": "echo", "data": {"n": 1}}});
    let answer = caller.command(rpc.clone()).await;
    assert_eq!(
        answer["rpc"]["data"]["user"],
        json!(format!("backend-{user}")),
        "{answer}"
    );

    // A client that needs no backend (token connect, plain channel) and an API publisher.
    let t = token(json!({"sub": "bystander", "exp": pushwire_test_support::now() + 600}));
    let (mut bystander, _) = WsClient::connected(&server.ws_url(), Some(&t)).await;
    let r = bystander
        .command(json!({"subscribe": {"channel": "hang-news"}}))
        .await;
    assert!(r["subscribe"].is_object(), "{r}");
    let done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let done = done.clone();
        let api = format!("{}/api/publish", server.http_url());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut sent = Vec::new();
            let mut n = 0u64;
            loop {
                let last = done.load(Ordering::Relaxed);
                let data = if last {
                    json!({"end": n})
                } else {
                    json!({"n": n})
                };
                let at = Instant::now();
                let body: Value = http
                    .post(&api)
                    .header("X-API-Key", pushwire_test_support::API_KEY)
                    .json(&json!({"channel": "hang-news", "data": data}))
                    .send()
                    .await
                    .expect("the API answers")
                    .json()
                    .await
                    .expect("JSON");
                assert!(body["result"].is_object(), "publish {n}: {body}");
                if last {
                    return sent;
                }
                sent.push(at);
                n += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let reader = tokio::spawn(async move {
        let mut received: Vec<(u64, Instant)> = Vec::new();
        loop {
            let m = bystander
                .read_one()
                .await
                .expect("the bystander stays connected");
            let data = &m["push"]["pub"]["data"];
            if let Some(n) = data["n"].as_u64() {
                received.push((n, Instant::now()));
            } else if let Some(end) = data["end"].as_u64() {
                return (received, end);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The hang.
    backend.stop();
    let stopped_at = Instant::now();
    let connects = keep_calling(done.clone(), stopped_at, {
        let ws = server.ws_url();
        move || {
            let ws = ws.clone();
            async move {
                let mut c = WsClient::open(&ws).await;
                let started = Instant::now();
                let reply = c.command(json!({"connect": {}})).await;
                (reply, started.elapsed())
            }
        }
    });
    let rpcs = {
        let caller = Arc::new(tokio::sync::Mutex::new(caller));
        let rpc = rpc.clone();
        keep_calling(done.clone(), stopped_at, move || {
            let caller = caller.clone();
            let rpc = rpc.clone();
            async move {
                let mut c = caller.lock().await;
                let started = Instant::now();
                let reply = c.command(rpc).await;
                (reply, started.elapsed())
            }
        })
    };

    // While stopped: both breakers show open, with the failures counted.
    eventually(
        "both breakers are open",
        HANG - Duration::from_secs(1),
        || async {
            let m = Scrape::of(&server).await;
            m.count("pushwire_proxy_circuit_open{proxy=\"connect\"}") == 1
                && m.count("pushwire_proxy_circuit_open{proxy=\"rpc\"}") == 1
        },
    )
    .await;
    let m = Scrape::of(&server).await;
    for p in ["connect", "rpc"] {
        let errors = m.count(&format!("pushwire_proxy_errors_total{{proxy=\"{p}\"}}"));
        assert!(errors >= u64::from(FAILURES), "{p}: {errors} errors");
    }
    let opened_within = stopped_at.elapsed();
    tokio::time::sleep(HANG.saturating_sub(stopped_at.elapsed())).await;
    backend.resume();
    let resumed_at = Instant::now();
    done.store(true, Ordering::Relaxed);
    let connects = connects.await.expect("connect calls");
    let rpcs = rpcs.await.expect("rpc calls");
    assert_hung_calls("connect", &connects);
    assert_hung_calls("rpc", &rpcs);

    // After SIGCONT: a client connects through the proxy and calls the RPC within a few
    // seconds (the breaker's next trial call closes it).
    let recovered = loop {
        let (mut c, reply, _) = connect_through_proxy(&server).await;
        if reply["connect"].is_object() {
            let answer = c
                .command(json!({"rpc": {"method": "echo", "data": {}}}))
                .await;
            if answer["rpc"].is_object() {
                break resumed_at.elapsed();
            }
        }
        assert!(
            resumed_at.elapsed() < Duration::from_secs(6),
            "calls still fail 6 s after SIGCONT: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let m = Scrape::of(&server).await;
    assert_eq!(m.count("pushwire_proxy_circuit_open{proxy=\"connect\"}"), 0);
    assert_eq!(m.count("pushwire_proxy_circuit_open{proxy=\"rpc\"}"), 0);
    for p in ["connect", "rpc"] {
        assert!(m.count(&format!("pushwire_proxy_rejected_total{{proxy=\"{p}\"}}")) >= 5);
    }

    // The bystander got every publication, in order, each promptly: the hang touched nothing
    // that does not need the backend.
    let sent = publisher.await.expect("publisher");
    let (received, end) = reader.await.expect("reader");
    assert_eq!(end as usize, sent.len());
    let ns: Vec<u64> = received.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        ns,
        (0..end).collect::<Vec<_>>(),
        "every publication, in order"
    );
    let slowest = received
        .iter()
        .map(|(n, at)| at.duration_since(sent[*n as usize]))
        .max()
        .unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(2),
        "a publication took {slowest:?}"
    );
    eprintln!(
        "hang: breakers open {opened_within:?} after SIGSTOP; connect calls {} ({} refused at once), \
         rpc calls {} ({} refused at once); calls succeed {:?} after SIGCONT; {} publications, \
         slowest {slowest:?}",
        connects.len(),
        connects.iter().filter(|c| c.took < AT_ONCE).count(),
        rpcs.len(),
        rpcs.iter().filter(|c| c.took < AT_ONCE).count(),
        recovered,
        sent.len(),
    );
    server.stop().await;
}
