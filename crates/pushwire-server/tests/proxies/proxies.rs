//! Proxies to a real application backend (an axum app on loopback, `proxy_backend/`) in
//! Centrifugo's HTTP JSON format, driven by the real SDKs (`sdk-tests/js/proxies*.mjs`,
//! `sdk-tests/python/proxies_refresh.py`) and by raw WebSocket clients for the failure modes:
//! connect from a cookie, subscribe allowed / refused / presence override, publish rewritten and
//! refused, RPC and send, refresh and sub_refresh decided by the backend, a connect storm under
//! the proxy's `max_in_flight`, and every way a backend can fail (100, breaker, metrics); the
//! same SDK scenario through gRPC proxies (`proxy_backend/grpc.rs`, tonic).

use crate::proxy_backend;

use std::sync::atomic::Ordering;
use std::time::Duration;

use pushwire_core::config::{ChannelOptions, NamespaceConfig, ProxyConfig, RpcNamespace};
use pushwire_server::config::ServerConfig;
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::sdk::{run_in, run_node, run_python, sdk_dir};
use pushwire_test_support::{token, TestServer, WsClient};
use serde_json::{json, Value};

fn proxy(url: &str, path: &str) -> ProxyConfig {
    ProxyConfig {
        endpoint: format!("{url}/{path}"),
        timeout: Duration::from_secs(2),
        ..Default::default()
    }
}

fn namespace(name: &str, options: ChannelOptions) -> NamespaceConfig {
    NamespaceConfig {
        name: name.into(),
        options,
    }
}

/// Every proxy on, pointing at the backend at `url`.
fn with_backend(c: &mut ServerConfig, url: &str) {
    c.client.proxy.connect = ProxyConfig {
        enabled: true,
        http_headers: vec!["Cookie".into()],
        emulated_headers: vec!["X-Session".into()],
        ..proxy(url, "connect")
    };
    c.client.proxy.refresh = ProxyConfig {
        enabled: true,
        include_connection_meta: true,
        ..proxy(url, "refresh")
    };
    c.client.proxy.send = ProxyConfig {
        enabled: true,
        ..proxy(url, "send")
    };
    c.channel.proxy.subscribe = proxy(url, "subscribe");
    c.channel.proxy.publish = proxy(url, "publish");
    c.channel.proxy.sub_refresh = proxy(url, "sub_refresh");
    let sub = ChannelOptions {
        subscribe_proxy_enabled: true,
        ..Default::default()
    };
    c.channel.namespaces.extend([
        namespace(
            "pres",
            ChannelOptions {
                presence: true,
                allow_presence_for_subscriber: true,
                ..sub.clone()
            },
        ),
        namespace("denied", sub.clone()),
        namespace(
            "pub",
            ChannelOptions {
                publish_proxy_enabled: true,
                ..sub.clone()
            },
        ),
        namespace(
            "exp",
            ChannelOptions {
                sub_refresh_proxy_enabled: true,
                ..sub.clone()
            },
        ),
        namespace(
            "hist",
            ChannelOptions {
                history_size: 10,
                history_ttl: Duration::from_secs(300),
                force_recovery: true,
                ..sub
            },
        ),
    ]);
    c.rpc.proxy = proxy(url, "rpc");
    c.rpc.without_namespace.proxy_enabled = true;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_connect_subscribe_publish_rpc_and_send_through_the_backend() {
    let backend = proxy_backend::start().await;
    let server = TestServer::start_with(|c| with_backend(c, &backend.url)).await;
    let result = run_node("js/proxies.mjs", &server).await.result();
    let b = &backend.state;

    // Connect: Centrifugo's request fields, the cookie forwarded, no token.
    let connects = b.bodies("connect");
    let first = &connects[0];
    assert_eq!(first["client"], result["client"], "{first}");
    assert_eq!(first["transport"], json!("websocket"));
    assert_eq!(first["protocol"], json!("json"));
    assert_eq!(first["encoding"], json!("json"));
    assert_eq!(first["name"], json!("js-proxies"));
    assert_eq!(first["data"], json!({"app": "js"}));
    assert!(first.get("token").is_none() && first.get("user").is_none());
    assert_eq!(
        b.cookies("connect")[0].as_deref(),
        Some("session=alice; theme=dark")
    );

    // Subscribe, publish, rpc: the user the backend named, no meta (not asked for).
    let subscribes = b.bodies("subscribe");
    assert!(subscribes
        .iter()
        .any(|s| s["channel"] == json!("pres:room") && s["user"] == json!("alice")));
    let publishes = b.bodies("publish");
    assert_eq!(publishes[0]["data"], json!({"text": "hello"}));
    assert_eq!(publishes[0]["channel"], json!("pub:chat"));
    assert!(publishes[0].get("meta").is_none());
    let rpcs = b.bodies("rpc");
    assert!(rpcs
        .iter()
        .any(|r| r["method"] == json!("echo") && r["data"] == json!({"n": 1})));
    // Only allowed channels were subscribed; the refused one never was.
    let history = server.node().history("pub:chat", -1, None, false).await;
    assert!(history.is_err() || history.unwrap().publications.is_empty());

    // Send reached the backend, with the user.
    let sends = b.bodies("send");
    assert_eq!(sends.len(), 1, "{sends:?}");
    assert_eq!(sends[0]["data"], json!({"note": "fire and forget"}));
    assert_eq!(sends[0]["user"], json!("alice"));
    server.stop().await;
}

/// An example backend of docs/proxies.md (`docs/examples/<script>`: aiohttp or grpcio, in the
/// SDK venv) on a free port; killed on drop. Returns the process and `127.0.0.1:PORT`.
async fn docs_backend(script: &str) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let python = sdk_dir().join(".venv/bin/python");
    pushwire_test_support::sdk::require(&python, "the Python venv", "scripts/setup-sdks.sh");
    let script = pushwire_test_support::sdk::repo_root()
        .join("docs/examples")
        .join(script);
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .arg("0")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the example backend");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("backend ready in time")
        .expect("read")
        .expect("a READY line");
    let port = ready.strip_prefix("READY ").expect("READY <port>");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn js_scenario_against_the_documented_python_backend() {
    let (_backend, addr) = docs_backend("proxy_backend.py").await;
    let server = TestServer::start_with(|c| with_backend(c, &format!("http://{addr}"))).await;
    run_node("js/proxies.mjs", &server).await.result();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_scenario_against_the_documented_python_grpc_backend() {
    let (_backend, addr) = docs_backend("proxy_backend_grpc.py").await;
    let http = proxy_backend::start().await;
    let grpc = format!("grpc://{addr}");
    let server = TestServer::start_with(|c| {
        with_backend(c, &http.url);
        c.client.proxy.connect.endpoint = grpc.clone();
        c.channel.proxy.subscribe.endpoint = grpc.clone();
        c.channel.proxy.publish.endpoint = grpc.clone();
        c.rpc.proxy.endpoint = grpc.clone();
    })
    .await;
    run_node("js/proxies.mjs", &server).await.result();
    assert!(
        http.state.bodies("connect").is_empty(),
        "connect went over gRPC"
    );
    assert_eq!(http.state.bodies("send").len(), 1);
    server.stop().await;
}

#[test]
fn docs_proxies_md_shows_the_tested_example_backend() {
    let root = pushwire_test_support::sdk::repo_root();
    let doc = std::fs::read_to_string(root.join("docs/proxies.md")).unwrap();
    let example = std::fs::read_to_string(root.join("docs/examples/proxy_backend.py")).unwrap();
    assert!(
        doc.contains(&format!("```python\n{example}```")),
        "docs/proxies.md must show docs/examples/proxy_backend.py verbatim"
    );
}

#[test]
fn the_documented_proxy_configuration_loads() {
    let path = pushwire_test_support::sdk::repo_root().join("config/proxies.toml");
    let c = pushwire_server::config::load(Some(&path), &Default::default()).expect("loads");
    assert!(c.client.proxy.connect.enabled);
    assert_eq!(c.client.proxy.connect.http_headers[0], "Cookie");
    assert_eq!(
        c.proxies[0].http.static_headers["X-Internal-Key"],
        "change-me"
    );
    assert_eq!(c.client.proxy.connect.max_in_flight, 64);
    assert!(c.rpc.without_namespace.proxy_enabled);
    assert!(c
        .channel
        .namespaces
        .iter()
        .any(|n| n.options.subscribe_proxy_enabled));
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_connects_from_its_session_cookie() {
    let backend = proxy_backend::start().await;
    let server = TestServer::start_with(|c| with_backend(c, &backend.url)).await;
    let dir = pushwire_test_support::sdk::repo_root().join("sdk-tests/browser");
    for pkg in ["playwright-core", "centrifuge"] {
        pushwire_test_support::sdk::require(
            &dir.join(format!("node_modules/{pkg}/package.json")),
            pkg,
            "scripts/setup-browser.sh",
        );
    }
    let result = run_in(
        std::path::Path::new("node"),
        &dir,
        &["browser.mjs", "cookie-connect-proxy"],
        &server,
    )
    .await
    .result();
    assert!(result["userAgent"]
        .as_str()
        .is_some_and(|ua| ua.contains("HeadlessChrome")));
    let connects = backend.state.bodies("connect");
    assert_eq!(connects[0]["client"], result["client"]);
    assert_eq!(
        backend.state.cookies("connect")[0].as_deref(),
        Some("session=carol")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_scenario_through_grpc_proxies() {
    let backend = proxy_backend::start().await;
    let grpc = proxy_backend::grpc::start().await;
    let server = TestServer::start_with(|c| {
        with_backend(c, &backend.url);
        // Connect, subscribe, publish and RPC over gRPC; send stays HTTP (gRPC has no send).
        c.client.proxy.connect.endpoint = grpc.url.clone();
        c.channel.proxy.subscribe.endpoint = grpc.url.clone();
        c.channel.proxy.publish.endpoint = grpc.url.clone();
        c.rpc.proxy.endpoint = grpc.url.clone();
    })
    .await;
    let result = run_node("js/proxies.mjs", &server).await.result();
    let g = &grpc.state;
    let connects = g.bodies("grpc/Connect");
    assert_eq!(connects[0]["client"], result["client"], "{connects:?}");
    assert_eq!(connects[0]["transport"], json!("websocket"));
    assert_eq!(connects[0]["data"], json!({"app": "js"}));
    assert_eq!(
        g.cookies("grpc/Connect")[0].as_deref(),
        Some("session=alice; theme=dark"),
        "the cookie is forwarded as metadata"
    );
    assert!(!g.bodies("grpc/Subscribe").is_empty());
    assert_eq!(
        g.bodies("grpc/Publish")[0]["data"],
        json!({"text": "hello"})
    );
    assert!(g
        .bodies("grpc/RPC")
        .iter()
        .any(|r| r["method"] == json!("echo")));
    assert!(backend.state.bodies("connect").is_empty());
    assert_eq!(backend.state.bodies("send").len(), 1);
    let m = Scrape::of(&server).await;
    assert!(m.count("pushwire_proxy_requests_total{proxy=\"connect\"}") >= 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_result_fields_from_the_backend() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let backend = proxy_backend::start().await;
    let server = TestServer::start_with(|c| with_backend(c, &backend.url)).await;
    let mut req = server.ws_url().into_client_request().unwrap();
    req.headers_mut()
        .insert("cookie", "session=rich-1".parse().unwrap());
    let mut c = WsClient::open_request(req).await;
    let reply = c.command(json!({"connect": {"name": "raw"}})).await;
    let r = &reply["connect"];
    assert_eq!(r["data"], json!({"b": 1}), "b64data decoded: {reply}");
    assert!(
        r.get("expires").is_none(),
        "the refresh proxy refreshes server-side: {reply}"
    );
    assert!(r["subs"]["news"].is_object(), "channels: {reply}");
    assert_eq!(r["subs"]["pres:auto"]["data"], json!({"x": 1}), "{reply}");
    // The presence override of the subs entry keeps this subscriber out of presence.
    let (_, presence) = server
        .api("presence", json!({"channel": "pres:auto"}))
        .await;
    assert_eq!(presence["result"]["presence"], json!({}), "{presence}");
    // And the connection carries the backend's user into publications.
    let reply = c
        .command(json!({"rpc": {"method": "echo", "data": {"k": 1}}}))
        .await;
    assert_eq!(reply["rpc"]["data"]["user"], json!("rich-1"), "{reply}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_poll_connects_and_subscribes_through_the_proxies() {
    let backend = proxy_backend::start().await;
    let server = TestServer::start_with(|c| with_backend(c, &backend.url)).await;
    let http = reqwest::Client::new();
    let poll = |cookie: Option<&'static str>| {
        let mut req = http.get(format!(
            "{}/connection/poll?channel=hist:lp",
            server.http_url()
        ));
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        req.send()
    };
    let ok = poll(Some("session=lp-user")).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["channel"], json!("hist:lp"), "{body}");
    let b = &backend.state;
    assert_eq!(b.cookies("connect")[0].as_deref(), Some("session=lp-user"));
    let subs = b.bodies("subscribe");
    assert_eq!(subs[0]["user"], json!("lp-user"), "{subs:?}");
    assert_eq!(subs[0]["transport"], json!("long_poll"));
    // Without the cookie the backend refuses the connection.
    let refused = poll(None).await.unwrap();
    assert_ne!(refused.status().as_u16(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_refresh_and_sub_refresh_are_decided_by_the_backend() {
    let backend = proxy_backend::start().await;
    let server = TestServer::start_with(|c| with_backend(c, &backend.url)).await;
    let result = run_python("python/proxies_refresh.py", &server)
        .await
        .result();
    let b = &backend.state;
    let refreshes = b.bodies("refresh");
    assert!(refreshes.len() >= 2, "{refreshes:?}");
    assert_eq!(refreshes[0]["client"], result["first"]);
    assert_eq!(refreshes[0]["user"], json!("short-py"));
    assert_eq!(
        refreshes[0]["meta"],
        json!({"session": "short-py"}),
        "include_connection_meta sends the connect proxy's meta"
    );
    let sub_refreshes = b.bodies("sub_refresh");
    assert!(sub_refreshes.len() >= 2, "{sub_refreshes:?}");
    assert_eq!(sub_refreshes[0]["channel"], result["channel"]);
    assert!(sub_refreshes[0].get("meta").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_storm_of_2000_never_exceeds_max_in_flight_and_all_connect() {
    const CLIENTS: usize = 2000;
    const CAP: usize = 16;
    let backend = proxy_backend::start().await;
    backend.state.connect_delay_ms.store(5, Ordering::Relaxed);
    let server = TestServer::start_with(|c| {
        with_backend(c, &backend.url);
        c.client.proxy.connect.max_in_flight = CAP;
        c.client.proxy.connect.timeout = Duration::from_secs(3);
        c.http_server.connect_rate_per_ip = 0;
    })
    .await;
    let run = run_in(
        std::path::Path::new("node"),
        &sdk_dir(),
        &["js/proxies_storm.mjs", &CLIENTS.to_string()],
        &server,
    )
    .await;
    let result = run.result();
    assert_eq!(result["connected"], json!(CLIENTS));
    let b = &backend.state;
    let max = b.max_in_flight.load(Ordering::SeqCst);
    assert!(
        max <= CAP,
        "backend saw {max} connect calls at once, cap {CAP}"
    );
    assert!(max >= 2, "the storm overlapped at the backend ({max})");
    assert!(b.bodies("connect").len() >= CLIENTS);
    let m = Scrape::of(&server).await;
    assert!(m.count("pushwire_proxy_requests_total{proxy=\"connect\"}") >= CLIENTS as u64);
    assert_eq!(m.count("pushwire_proxy_in_flight{proxy=\"connect\"}"), 0);
    assert!(m.count("pushwire_proxy_duration_seconds_count{proxy=\"connect\"}") >= CLIENTS as u64);
    server.stop().await;
}

/// A port nothing listens on.
async fn refused_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Log lines captured from this test process (nextest runs each test in its own process).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn install() -> Captured {
        let c = Captured::default();
        let _ = tracing_subscriber::fmt()
            .with_writer(c.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .try_init();
        c
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_failures_answer_100_and_the_breaker_fails_fast() {
    let logs = Captured::install();
    let backend = proxy_backend::start().await;
    let url = backend.url.clone();
    let refused = format!("http://127.0.0.1:{}", refused_port().await);
    let failing = [
        ("slow", format!("{url}/slow")),
        ("status500", format!("{url}/status500")),
        ("bad_json", format!("{url}/bad_json")),
        ("huge", format!("{url}/huge")),
        ("html", format!("{url}/html")),
        ("refused", format!("{refused}/rpc")),
        ("grpc_refused", refused.replacen("http://", "grpc://", 1)),
        // TLS failure: https:// to a plain-text HTTP server.
        (
            "tls",
            format!("{}/rpc", url.replacen("http://", "https://", 1)),
        ),
    ];
    let server = TestServer::start_with(|c| {
        with_backend(c, &url);
        // The connect proxy is down: token connects still work (JWT and proxy coexist).
        c.client.proxy.connect.endpoint = format!("{refused}/connect");
        for (name, endpoint) in &failing {
            c.proxies.push(ProxyConfig {
                name: (*name).into(),
                endpoint: endpoint.clone(),
                timeout: Duration::from_millis(500),
                max_response_size: 100_000,
                ..Default::default()
            });
            c.rpc.namespaces.push(RpcNamespace {
                name: (*name).into(),
                proxy_enabled: true,
                proxy_name: (*name).into(),
            });
        }
        // The same 500, mapped to an answer by http.status_to_code_transforms.
        let mut mapped = ProxyConfig {
            name: "mapped".into(),
            endpoint: format!("{url}/status500"),
            ..Default::default()
        };
        mapped
            .http
            .status_to_code_transforms
            .push(pushwire_core::config::StatusTransform {
                status_code: 500,
                to_error: pushwire_core::config::TransformError {
                    code: 1003,
                    message: "mapped from 500".into(),
                    temporary: false,
                },
                ..Default::default()
            });
        c.proxies.push(mapped);
        c.rpc.namespaces.push(RpcNamespace {
            name: "mapped".into(),
            proxy_enabled: true,
            proxy_name: "mapped".into(),
        });
    })
    .await;

    // No token, connect proxy refused: 100, temporary (the SDK retries).
    let mut anon = WsClient::open(&server.ws_url()).await;
    let reply = anon.command(json!({"connect": {}})).await;
    assert_eq!(reply["error"]["code"], json!(100), "{reply}");
    assert_eq!(reply["error"]["temporary"], json!(true), "{reply}");

    let t = token(json!({"sub": "tok-user", "exp": pushwire_test_support::now() + 600}));
    let (mut c, result) = WsClient::connected(&server.ws_url(), Some(&t)).await;
    assert!(result["client"].is_string());
    let rpc = |method: &str| json!({"rpc": {"method": method, "data": {}}});
    for (name, _) in &failing {
        let reply = c.command(rpc(&format!("{name}:x"))).await;
        assert_eq!(reply["error"]["code"], json!(100), "{name}: {reply}");
        assert_eq!(reply["error"]["temporary"], json!(true), "{name}: {reply}");
    }
    // A transformed status is an answer, not a failure.
    for _ in 0..6 {
        let reply = c.command(rpc("mapped:x")).await;
        assert_eq!(reply["error"]["code"], json!(1003), "{reply}");
        assert_eq!(reply["error"]["message"], json!("mapped from 500"));
    }
    // Nothing else is affected: the default RPC proxy answers.
    let reply = c.command(rpc("echo")).await;
    assert_eq!(reply["rpc"]["data"]["user"], json!("tok-user"), "{reply}");

    // Five consecutive failures open status500's breaker: then calls fail at once.
    for _ in 0..5 {
        let reply = c.command(rpc("status500:x")).await;
        assert_eq!(reply["error"]["code"], json!(100));
    }
    let started = std::time::Instant::now();
    let reply = c.command(rpc("status500:x")).await;
    assert_eq!(reply["error"]["code"], json!(100));
    assert!(started.elapsed() < Duration::from_millis(200));
    let m = Scrape::of(&server).await;
    assert_eq!(
        m.count("pushwire_proxy_circuit_open{proxy=\"status500\"}"),
        1
    );
    assert!(m.count("pushwire_proxy_rejected_total{proxy=\"status500\"}") >= 1);
    for (name, _) in &failing {
        let errors = m.count(&format!("pushwire_proxy_errors_total{{proxy=\"{name}\"}}"));
        assert!(errors >= 1, "{name}: {errors} errors");
    }
    assert_eq!(m.count("pushwire_proxy_errors_total{proxy=\"rpc\"}"), 0);
    assert_eq!(m.count("pushwire_proxy_errors_total{proxy=\"mapped\"}"), 0);
    assert_eq!(m.count("pushwire_proxy_circuit_open{proxy=\"mapped\"}"), 0);

    // Logged once per interval, naming the proxy: seven status500 failures, one line.
    let lines = logs.lines();
    let failed: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("proxy call failed"))
        .collect();
    for (name, _) in &failing {
        let n = failed
            .iter()
            .filter(|l| {
                l.contains(&format!("proxy=\"{name}\"")) || l.contains(&format!("proxy={name} "))
            })
            .count();
        assert_eq!(n, 1, "{name}: {failed:#?}");
    }
    server.stop().await;
}

#[test]
fn a_proxy_endpoint_that_is_not_http_or_grpc_fails_validation_naming_the_key() {
    let mut c = ServerConfig::default();
    c.client.proxy.connect.enabled = true;
    c.client.proxy.connect.endpoint = "tcp://127.0.0.1:9000".into();
    let e = c.validate().unwrap_err();
    assert_eq!(e.key, "client.proxy.connect.endpoint", "{e}");
    c.client.proxy.connect.endpoint = "grpc://127.0.0.1:9000".into();
    c.validate().expect("gRPC endpoints are accepted");
    c.client.proxy.send.enabled = true;
    c.client.proxy.send.endpoint = "grpc://127.0.0.1:9000".into();
    let e = c.validate().unwrap_err();
    assert_eq!(e.key, "client.proxy.send.endpoint", "gRPC has no send: {e}");
    let mut c = ServerConfig::default();
    c.rpc.without_namespace.proxy_enabled = true;
    c.rpc.without_namespace.proxy_name = "missing".into();
    let e = c.validate().unwrap_err();
    assert_eq!(e.key, "rpc.without_namespace.proxy_name", "{e}");
    let parsed: Value = json!({"proxies": [{"name": "a", "endpoint": "ftp://x"}]});
    let c: ServerConfig = serde_json::from_value(parsed).unwrap();
    assert_eq!(c.validate().unwrap_err().key, "proxies[0].endpoint");
}

/// `http.tls` / `grpc.tls`: HTTPS and gRPC-over-TLS backends with a self-signed certificate
/// made by the test (for `localhost`, reached at 127.0.0.1). Trusted through `server_ca_pem`
/// (a file path for HTTP, the PEM text for gRPC) with `server_name`, or with
/// `insecure_skip_verify`; an untrusted certificate or a wrong name is a failure (100) that
/// touches nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn proxies_over_tls_trust_the_configured_ca_and_name() {
    use pushwire_core::config::ProxyTlsConfig;
    let cert = pushwire_test_support::cert::TestCert::new();
    let https = proxy_backend::start_tls(&cert).await;
    let grpc = proxy_backend::grpc::start_tls(&cert).await;
    let trusted = |ca: String| ProxyTlsConfig {
        enabled: true,
        server_ca_pem: ca,
        server_name: "localhost".into(),
        ..Default::default()
    };
    let ca_file = cert.cert_file().display().to_string();
    let named =
        |name: &str, endpoint: String, http: Option<ProxyTlsConfig>, g: Option<ProxyTlsConfig>| {
            let mut p = ProxyConfig {
                name: name.into(),
                endpoint,
                timeout: Duration::from_secs(2),
                ..Default::default()
            };
            p.http.tls = http.unwrap_or_default();
            p.grpc.tls = g.unwrap_or_default();
            p
        };
    let skip = ProxyTlsConfig {
        enabled: true,
        insecure_skip_verify: true,
        ..Default::default()
    };
    let system_roots = ProxyTlsConfig {
        enabled: true,
        ..Default::default()
    };
    let rpc_url = format!("{}/rpc", https.url);
    let proxies = [
        (
            "skip",
            named("skip", rpc_url.clone(), Some(skip.clone()), None),
        ),
        (
            "grpc_skip",
            named("grpc_skip", grpc.url.clone(), None, Some(skip)),
        ),
        (
            "untrusted",
            named(
                "untrusted",
                rpc_url.clone(),
                Some(system_roots.clone()),
                None,
            ),
        ),
        (
            "grpc_untrusted",
            named("grpc_untrusted", grpc.url.clone(), None, Some(system_roots)),
        ),
        (
            "wrong_name",
            named(
                "wrong_name",
                rpc_url.clone(),
                Some(ProxyTlsConfig {
                    server_name: "other.example".into(),
                    ..trusted(ca_file.clone())
                }),
                None,
            ),
        ),
    ];
    let server = TestServer::start_with(|c| {
        // Connect over gRPC + TLS (CA as PEM text), RPC over HTTPS (CA as a file).
        c.client.proxy.connect = ProxyConfig {
            enabled: true,
            http_headers: vec!["Cookie".into()],
            ..proxy(&grpc.url, "")
        };
        c.client.proxy.connect.endpoint = grpc.url.clone();
        c.client.proxy.connect.grpc.tls = trusted(cert.pem.clone());
        c.rpc.proxy = proxy(&https.url, "rpc");
        c.rpc.proxy.http.tls = trusted(ca_file.clone());
        c.rpc.without_namespace.proxy_enabled = true;
        for (name, p) in &proxies {
            c.proxies.push(p.clone());
            c.rpc.namespaces.push(RpcNamespace {
                name: (*name).into(),
                proxy_enabled: true,
                proxy_name: (*name).into(),
            });
        }
    })
    .await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = server.ws_url().into_client_request().unwrap();
    req.headers_mut()
        .insert("cookie", "session=tls-1".parse().unwrap());
    let mut c = WsClient::open_request(req).await;
    let reply = c.command(json!({"connect": {}})).await;
    assert!(reply["connect"]["client"].is_string(), "{reply}");
    assert_eq!(grpc.state.bodies("grpc/Connect").len(), 1);
    let reply = c
        .command(json!({"rpc": {"method": "echo", "data": {"k": 1}}}))
        .await;
    assert_eq!(reply["rpc"]["data"]["user"], json!("tls-1"), "{reply}");
    assert_eq!(reply["rpc"]["data"]["echo"], json!({"k": 1}), "{reply}");
    // The backends answer through skip-verify TLS (their own error: 1002).
    for name in ["skip", "grpc_skip"] {
        let reply = c
            .command(json!({"rpc": {"method": format!("{name}:x"), "data": {}}}))
            .await;
        assert_eq!(reply["error"]["code"], json!(1002), "{name}: {reply}");
    }
    // Untrusted certificate (system roots) or a name the certificate does not have: 100.
    for name in ["untrusted", "grpc_untrusted", "wrong_name"] {
        let reply = c
            .command(json!({"rpc": {"method": format!("{name}:x"), "data": {}}}))
            .await;
        assert_eq!(reply["error"]["code"], json!(100), "{name}: {reply}");
    }
    let m = Scrape::of(&server).await;
    assert_eq!(m.count("pushwire_proxy_errors_total{proxy=\"connect\"}"), 0);
    assert_eq!(m.count("pushwire_proxy_errors_total{proxy=\"rpc\"}"), 0);
    for name in ["untrusted", "grpc_untrusted", "wrong_name"] {
        assert_eq!(
            m.count(&format!("pushwire_proxy_errors_total{{proxy=\"{name}\"}}")),
            1,
            "{name}"
        );
    }
    server.stop().await;
}
