//! Origin policy (docs/security.md "Origins"): a browser request from an origin that is not in
//! `client.allowed_origins` gets 403 on every connection endpoint, before any client exists;
//! allowed origins and non-browser clients (no `Origin`) keep working at the same time.

use std::time::Duration;

use pushwire_test_support::{TestServer, WsClient};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const EVIL: &str = "https://evil.example";
const GOOD: &str = "http://localhost:3000";

/// Every connection endpoint with a request that would open a connection (or, for
/// `/emulation`, deliver commands) if the origin were allowed.
fn http_endpoints() -> Vec<(Method, &'static str, &'static str)> {
    let connect = r#"{"id":1,"connect":{}}"#;
    vec![
        (Method::POST, "/connection/http_stream", connect),
        (Method::POST, "/connection/sse", connect),
        (
            Method::GET,
            "/connection/sse?cf_connect=%7B%22id%22%3A1%2C%22connect%22%3A%7B%7D%7D",
            "",
        ),
        (Method::POST, "/connection/uni_http_stream", "{}"),
        (Method::POST, "/connection/uni_sse", "{}"),
        (Method::GET, "/connection/uni_sse?cf_connect=%7B%7D", ""),
        (
            Method::POST,
            "/emulation",
            r#"{"session":"s","node":"n","data":"{}"}"#,
        ),
        (Method::GET, "/connection/long_poll?channel=chat:o", ""),
        (
            Method::POST,
            "/connection/long_poll",
            r#"{"channel":"chat:o"}"#,
        ),
        (Method::GET, "/connection/poll?channel=chat:o", ""),
        (Method::POST, "/connection/poll", r#"{"channel":"chat:o"}"#),
    ]
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client")
}

async fn send(
    server: &TestServer,
    method: &Method,
    path: &str,
    body: &str,
    origins: &[&str],
) -> reqwest::Response {
    let mut req = http()
        .request(method.clone(), format!("{}{path}", server.http_url()))
        .header(CONTENT_TYPE, "application/json")
        .timeout(Duration::from_secs(5));
    for o in origins {
        req = req.header("origin", *o);
    }
    if !body.is_empty() {
        req = req.body(body.to_owned());
    }
    req.send().await.expect("request")
}

/// Reads the streaming body until `needle` shows up (the connect reply or push).
async fn body_contains(resp: &mut reqwest::Response, needle: &str) -> bool {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, resp.chunk()).await {
        seen.extend_from_slice(&chunk);
        if String::from_utf8_lossy(&seen).contains(needle) {
            return true;
        }
    }
    false
}

fn upgrade(
    server: &TestServer,
    path: &str,
    origins: &[&str],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("ws://{}{path}", server.addr)
        .into_client_request()
        .expect("request");
    for o in origins {
        req.headers_mut()
            .append("origin", o.parse().expect("header value"));
    }
    req
}

async fn upgrade_status(server: &TestServer, path: &str, origins: &[&str]) -> u16 {
    match tokio_tungstenite::connect_async(upgrade(server, path, origins)).await {
        Ok((_, resp)) => resp.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{path}: unexpected handshake error {e:?}"),
    }
}

/// A connected, subscribed client that must keep receiving while the others are refused.
async fn bystander(server: &TestServer) -> WsClient {
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = c
        .command(json!({"subscribe": {"channel": "bystander"}}))
        .await;
    assert!(r["subscribe"].is_object(), "{r}");
    c
}

async fn assert_still_served(server: &TestServer, c: &mut WsClient, n: u32) {
    server.publish("bystander", json!({ "n": n })).await;
    let p = c.next_publication("bystander").await;
    assert_eq!(p["data"], json!({ "n": n }));
}

#[tokio::test]
async fn disallowed_origin_gets_403_on_every_transport() {
    let server = TestServer::start().await;
    let mut ok = bystander(&server).await;
    let before = server.node().registry().counts().0;

    for path in ["/connection/websocket", "/connection/uni_websocket"] {
        assert_eq!(upgrade_status(&server, path, &[EVIL]).await, 403, "{path}");
        // A second Origin header never sneaks an evil one past the check.
        assert_eq!(
            upgrade_status(&server, path, &[GOOD, EVIL]).await,
            403,
            "{path} with two origins"
        );
    }
    for (method, path, body) in http_endpoints() {
        let resp = send(&server, &method, path, body, &[EVIL]).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{method} {path}");
        assert!(
            resp.headers().get("access-control-allow-origin").is_none(),
            "{method} {path}: no CORS grant for a refused origin"
        );
        let resp = send(&server, &method, path, body, &[GOOD, EVIL]).await;
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "{method} {path} with two origins"
        );
        // The preflight is refused too, so a browser never sends the real request.
        let bare = path.split('?').next().unwrap_or(path);
        let resp = send(&server, &Method::OPTIONS, bare, "", &[EVIL]).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "OPTIONS {bare}");
    }
    // No client was created for any refused request.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.node().registry().counts().0, before);
    assert_still_served(&server, &mut ok, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn allowed_origin_and_non_browser_clients_connect_on_every_transport() {
    let server = TestServer::start().await;
    let mut ok = bystander(&server).await;
    server.publish("chat:o", json!("x")).await;

    for origins in [&[GOOD][..], &[][..]] {
        // Bidirectional WebSocket: the connect reply arrives.
        let (mut ws, _) =
            tokio_tungstenite::connect_async(upgrade(&server, "/connection/websocket", origins))
                .await
                .expect("allowed websocket");
        use futures_util::{SinkExt, StreamExt};
        ws.send(r#"{"id":1,"connect":{}}"#.into()).await.unwrap();
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("connect reply in time")
            .expect("open")
            .expect("frame");
        assert!(m.to_string().contains("\"connect\""), "{m}");
        // Unidirectional WebSocket: the connect push arrives.
        let (mut ws, _) = tokio_tungstenite::connect_async(upgrade(
            &server,
            "/connection/uni_websocket",
            origins,
        ))
        .await
        .expect("allowed uni websocket");
        ws.send("{}".into()).await.unwrap();
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("connect push in time")
            .expect("open")
            .expect("frame");
        assert!(m.to_string().contains("\"connect\""), "{m}");

        for (method, path, body) in http_endpoints() {
            let mut resp = send(&server, &method, path, body, origins).await;
            if path.starts_with("/emulation") {
                // Unknown session: 404, past the origin check, with the CORS grant.
                assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
            } else {
                assert_eq!(resp.status(), StatusCode::OK, "{method} {path} {origins:?}");
                let needle = if path.contains("poll") {
                    "\"epoch\""
                } else {
                    "\"connect\""
                };
                assert!(
                    body_contains(&mut resp, needle).await,
                    "{method} {path}: {needle} in the body"
                );
            }
            if origins.is_empty() {
                assert!(resp.headers().get("access-control-allow-origin").is_none());
            } else {
                assert_eq!(resp.headers()["access-control-allow-origin"], GOOD);
            }
        }
    }
    assert_still_served(&server, &mut ok, 2).await;
    server.stop().await;
}

#[tokio::test]
async fn default_policy_refuses_every_browser_origin() {
    // The shipped default: no allowed origins. Same-host pages included: the operator lists
    // the origins that may embed the server.
    let server = TestServer::start_with(|c| c.client.allowed_origins.clear()).await;
    let mut ok = bystander(&server).await;
    for origin in [GOOD, "http://127.0.0.1:1", "null", EVIL] {
        assert_eq!(
            upgrade_status(&server, "/connection/websocket", &[origin]).await,
            403,
            "{origin}"
        );
        let resp = send(
            &server,
            &Method::POST,
            "/connection/http_stream",
            r#"{"id":1,"connect":{}}"#,
            &[origin],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{origin}");
    }
    assert_eq!(
        upgrade_status(&server, "/connection/websocket", &[]).await,
        101
    );
    assert_still_served(&server, &mut ok, 3).await;
    server.stop().await;
}
