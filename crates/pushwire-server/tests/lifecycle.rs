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
