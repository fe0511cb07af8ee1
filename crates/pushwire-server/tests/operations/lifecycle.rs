//! Server lifecycle end to end: health, graceful shutdown, origin checks and subprotocol
//! negotiation on the WebSocket upgrade.

use futures_util::{SinkExt, StreamExt};
use pushwire_core::node::PublishParams;
use pushwire_protocol::RawJson;
use pushwire_test_support::{TestServer, WsClient};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// `GET /health`: status and body.
async fn health(server: &TestServer) -> (u16, String) {
    let resp = reqwest::get(format!("{}/health", server.http_url()))
        .await
        .expect("health request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("health body"))
}

/// An upgrade request to the server's WebSocket endpoint with extra headers.
fn upgrade(server: &TestServer, headers: &[(&'static str, &'static str)]) -> Request {
    let mut req = server.ws_url().into_client_request().expect("request");
    for (name, value) in headers {
        req.headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    req
}

/// Publishes `data` to `channel` through the node.
async fn publish(server: &TestServer, channel: &str, data: Value) {
    let params = PublishParams {
        data: RawJson::from_json_str(&data.to_string()).expect("json"),
        ..Default::default()
    };
    server
        .node()
        .publish(channel, params)
        .await
        .expect("publish");
}

/// Connects `c` anonymously, subscribes it to `channel` and checks a publication arrives.
async fn connect_and_receive(server: &TestServer, c: &mut WsClient, channel: &str) {
    let r = c.command(json!({"connect": {}})).await;
    assert!(r["connect"]["client"].is_string(), "{r}");
    let r = c.command(json!({"subscribe": {"channel": channel}})).await;
    assert_eq!(r["subscribe"], json!({}), "{r}");
    publish(server, channel, json!({"to": channel})).await;
    assert_eq!(
        c.next_publication(channel).await["data"],
        json!({"to": channel})
    );
}

/// Waits for the server's close frame, then completes the close handshake.
async fn close_handshake(c: &mut WsClient) -> (u16, String) {
    let close = c.expect_close().await;
    while let Some(Ok(_)) = c.stream().next().await {}
    close
}

#[tokio::test]
async fn health_returns_200_empty_object() {
    let server = TestServer::start().await;
    let (status, body) = health(&server).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).expect("health body is JSON");
    assert_eq!(body, json!({}));
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_clients_with_3001() {
    let server = TestServer::start().await;
    assert_eq!(health(&server).await.0, 200);
    let (mut a, _) = WsClient::connected(&server.ws_url(), None).await;
    let (mut b, _) = WsClient::connected(&server.ws_url(), None).await;
    for c in [&mut a, &mut b] {
        let r = c.command(json!({"subscribe": {"channel": "news"}})).await;
        assert_eq!(r["subscribe"], json!({}), "{r}");
    }
    publish(&server, "news", json!({"n": 1})).await;
    for c in [&mut a, &mut b] {
        assert_eq!(c.next_publication("news").await["data"], json!({"n": 1}));
    }
    let url = server.ws_url();
    let started = tokio::time::Instant::now();
    let (report, close_a, close_b) = tokio::join!(
        server.stop(),
        close_handshake(&mut a),
        close_handshake(&mut b)
    );
    assert_eq!((close_a.0, close_a.1.as_str()), (3001, "shutdown"));
    assert_eq!((close_b.0, close_b.1.as_str()), (3001, "shutdown"));
    assert_eq!(report.clients_notified, 2);
    assert!(report.drained, "connections not drained");
    // Clients that answer the close handshake let the stop finish well within
    // shutdown.timeout (3s in tests).
    assert!(
        started.elapsed() < std::time::Duration::from_millis(500),
        "stop took {:?}",
        started.elapsed()
    );
    // Nothing is served after the stop.
    let after = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio_tungstenite::connect_async(url.as_str()),
    )
    .await
    .expect("connect attempt after stop hangs");
    assert!(after.is_err(), "server still accepts WebSockets after stop");
}

#[tokio::test]
async fn shutdown_closes_not_yet_connected_sockets_with_3001() {
    let server = TestServer::start().await;
    let mut pending = WsClient::open(&server.ws_url()).await;
    let (report, close) = tokio::join!(server.stop(), close_handshake(&mut pending));
    assert_eq!((close.0, close.1.as_str()), (3001, "shutdown"));
    assert!(report.drained, "connections not drained");
}

#[tokio::test]
async fn origin_check_on_upgrade() {
    let server = TestServer::start().await;
    // Not in client.allowed_origins: 403, no upgrade.
    let err =
        tokio_tungstenite::connect_async(upgrade(&server, &[("origin", "http://evil.example")]))
            .await
            .expect_err("evil origin must be rejected");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status().as_u16(), 403);
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    // Looks like an allowed origin but is not one.
    let err = tokio_tungstenite::connect_async(upgrade(
        &server,
        &[("origin", "http://localhost.evil.example:3000")],
    ))
    .await
    .expect_err("lookalike origin must be rejected");
    assert!(
        matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status().as_u16() == 403),
        "{err:?}"
    );
    // Allowed patterns, and no Origin at all (non-browser clients), connect and work.
    let mut c =
        WsClient::open_request(upgrade(&server, &[("origin", "http://localhost:3000")])).await;
    connect_and_receive(&server, &mut c, "from-localhost").await;
    let mut c =
        WsClient::open_request(upgrade(&server, &[("origin", "http://127.0.0.1:8080")])).await;
    connect_and_receive(&server, &mut c, "from-loopback").await;
    let mut c = WsClient::open_request(upgrade(&server, &[])).await;
    connect_and_receive(&server, &mut c, "no-origin").await;
    server.stop().await;
}

#[tokio::test]
async fn json_subprotocol_is_echoed() {
    let server = TestServer::start().await;
    let req = upgrade(&server, &[("sec-websocket-protocol", "centrifuge-json")]);
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("handshake");
    assert_eq!(resp.status().as_u16(), 101);
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("centrifuge-json")
    );
    // And the connection speaks JSON.
    ws.send(Message::Text(r#"{"id":1,"connect":{}}"#.into()))
        .await
        .expect("send");
    let reply = loop {
        match ws.next().await.expect("open").expect("frame") {
            Message::Text(t) => break serde_json::from_str::<Value>(t.as_str()).expect("JSON"),
            Message::Binary(_) => panic!("binary frame on a JSON connection"),
            _ => continue,
        }
    };
    assert_eq!(reply["id"], json!(1));
    assert!(reply["connect"]["client"].is_string(), "{reply}");
    server.stop().await;
}

/// `shutdown.drain_period`: 1,000 clients get their 3001 spread over the period, not at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_drain_spreads_3001_over_the_drain_period() {
    let server = TestServer::start_with(|c| {
        c.shutdown.drain_period = std::time::Duration::from_secs(5);
        c.shutdown.timeout = std::time::Duration::from_secs(10);
        c.http_server.connect_rate_per_ip = 0;
    })
    .await;
    let url = server.ws_url();
    let mut clients = Vec::new();
    for _ in 0..1000 {
        clients.push(WsClient::connected(&url, None).await.0);
    }
    let started = std::time::Instant::now();
    let waiters: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let (code, reason) = c.expect_close().await;
                (code, reason, started.elapsed())
            })
        })
        .collect();
    let report = server.stop().await;
    assert_eq!(report.clients_notified, 1000);
    let mut times = Vec::new();
    for w in waiters {
        let (code, reason, at) = w.await.expect("join");
        assert_eq!((code, reason.as_str()), (3001, "shutdown"));
        times.push(at);
    }
    times.sort();
    let spread = times[999] - times[0];
    assert!(
        spread >= std::time::Duration::from_secs(4),
        "disconnects spread over {spread:?}"
    );
    // Evenly: by the middle of the period about half have been told, not all.
    let by_half = times
        .iter()
        .filter(|t| **t < std::time::Duration::from_millis(2500))
        .count();
    assert!(
        (300..=700).contains(&by_half),
        "{by_half} told in the first half"
    );
}

/// `node.memory_budget`: near the budget new connections get 503 with Retry-After, existing
/// subscribers and the API keep working, /health says degraded; once memory is back,
/// admission reopens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_budget_refuses_new_connections_and_reopens() {
    let rss = || -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .expect("VmRSS");
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    // Room for 200 MB more before the 90 % high-water mark.
    let budget = (rss() + 200 * 1024 * 1024) * 10 / 9;
    let server = TestServer::start_with(|c| c.node.memory_budget = budget).await;
    let (mut a, _) = WsClient::connected(&server.ws_url(), None).await;
    connect_and_receive_subscribed(&server, &mut a, "kept").await;
    // 400 MB touched by the test (same process): over the high-water mark.
    let ballast: Vec<u8> = vec![7u8; 400 * 1024 * 1024];
    assert_eq!(ballast[ballast.len() / 2], 7);
    let refused = wait_for_status(&server, 503).await;
    assert_eq!(refused.headers()["retry-after"], "5");
    let (status, body) = health(&server).await;
    assert_eq!(status, 200);
    assert!(body.contains("memory_budget"), "{body}");
    // The existing subscriber and the API are served.
    server.publish("kept", json!({"n": 2})).await;
    assert_eq!(a.next_publication("kept").await["data"], json!({"n": 2}));
    let metrics = reqwest::get(format!("{}/metrics", server.http_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("pushwire_admission_refusing 1"),
        "{metrics}"
    );
    drop(ballast);
    wait_for_status(&server, 101).await;
    let (status, body) = health(&server).await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    server.stop().await;
}

/// `http_server.connect_rate_per_node`: one bucket for the whole node, 503 beyond it.
#[tokio::test]
async fn node_connect_rate_answers_503_beyond_the_burst() {
    let server = TestServer::start_with(|c| {
        c.http_server.connect_rate_per_node = 1;
        c.http_server.connect_burst_per_node = 5;
        c.http_server.connect_rate_per_ip = 0;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(upgrade_status(&server).await.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[101; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 503), "{statuses:?}");
    let r = upgrade_status(&server).await;
    assert_eq!(r.headers()["retry-after"], "1");
    // The API is not a connection attempt.
    server.publish("any", json!({})).await;
    server.stop().await;
}

/// Connects `c`, subscribes it to `channel` and checks one publication arrives.
async fn connect_and_receive_subscribed(server: &TestServer, c: &mut WsClient, channel: &str) {
    let r = c.command(json!({"subscribe": {"channel": channel}})).await;
    assert_eq!(r["subscribe"], json!({}), "{r}");
    publish(server, channel, json!({"n": 1})).await;
    assert_eq!(c.next_publication(channel).await["data"], json!({"n": 1}));
}

/// The answer to one WebSocket upgrade attempt (the connection is dropped).
async fn upgrade_status(server: &TestServer) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/connection/websocket", server.http_url()))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("upgrade request")
}

/// Retries an upgrade until it answers `status` (10 s at most); returns that answer.
async fn wait_for_status(server: &TestServer, status: u16) -> reqwest::Response {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = upgrade_status(server).await;
        if r.status().as_u16() == status {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {status} within 10 s (last {})",
            r.status()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
