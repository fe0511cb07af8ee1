//! TLS (docs/security.md "TLS"): a self-signed certificate made in the test, real clients over
//! HTTP/1.1 and HTTP/2 (reqwest, ALPN) and WebSocket over TLS (tokio-rustls + tungstenite);
//! a stalled TLS handshake is cut by `http_server.handshake_timeout`; the server API on its own
//! listener (`http_api.address`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pushwire_server::{RunningServer, ServerConfig};
use pushwire_test_support::cert::TestCert;
use pushwire_test_support::{test_config, API_KEY};
use rustls::pki_types::pem::PemObject;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

async fn start(cert: &TestCert, f: impl FnOnce(&mut ServerConfig)) -> RunningServer {
    let mut c = test_config();
    c.http_server.tls = cert.server_tls();
    f(&mut c);
    c.validate().expect("valid config");
    RunningServer::start(c).await.expect("server starts")
}

/// An HTTPS client trusting only `cert`, resolving `localhost` to the server.
fn https(cert: &TestCert, addr: std::net::SocketAddr, h1_only: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem.as_bytes()).expect("pem"))
        .tls_built_in_root_certs(false)
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(5));
    if h1_only {
        b = b.http1_only();
    }
    b.build().expect("client")
}

async fn api(client: &reqwest::Client, port: u16, method: &str, body: Value) -> Value {
    let resp = client
        .post(format!("https://localhost:{port}/api/{method}"))
        .header("X-API-Key", API_KEY)
        .json(&body)
        .send()
        .await
        .expect("api over TLS");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.expect("json")
}

/// A WebSocket over TLS (ALPN http/1.1), connected with the JSON protocol.
async fn wss(
    cert: &TestCert,
    addr: std::net::SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(cert.pem.as_bytes()) {
        roots.add(c.expect("cert")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let url = format!("wss://localhost:{}/connection/websocket", addr.port());
    let (ws, resp) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("websocket over TLS");
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("message in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m
            && t.as_str() != "{}"
        {
            return serde_json::from_str(t.as_str()).expect("json");
        }
    }
}

#[tokio::test]
async fn https_h1_and_h2_and_wss_with_a_self_signed_certificate() {
    let cert = TestCert::new();
    let server = start(&cert, |_| {}).await;
    let port = server.addr.port();

    // WebSocket over TLS: connect, subscribe, receive a publication sent over HTTPS.
    let mut ws = wss(&cert, server.addr).await;
    ws.send(r#"{"id":1,"connect":{}}"#.into()).await.unwrap();
    assert!(next_json(&mut ws).await["connect"].is_object());
    ws.send(r#"{"id":2,"subscribe":{"channel":"tls"}}"#.into())
        .await
        .unwrap();
    assert!(next_json(&mut ws).await["subscribe"].is_object());

    for (h1_only, version) in [
        (true, reqwest::Version::HTTP_11),
        (false, reqwest::Version::HTTP_2),
    ] {
        let client = https(&cert, server.addr, h1_only);
        let resp = client
            .get(format!("https://localhost:{port}/health"))
            .send()
            .await
            .expect("health over TLS");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.version(), version, "ALPN picks {version:?}");
        let body = api(
            &client,
            port,
            "publish",
            json!({"channel": "tls", "data": {"v": format!("{version:?}")}}),
        )
        .await;
        assert!(body.get("error").is_none(), "{body}");
        let m = next_json(&mut ws).await;
        assert_eq!(m["push"]["pub"]["data"]["v"], json!(format!("{version:?}")));

        // A streaming transport works on both protocols.
        let mut resp = client
            .post(format!("https://localhost:{port}/connection/http_stream"))
            .header("content-type", "application/json")
            .body(r#"{"id":1,"connect":{}}"#)
            .send()
            .await
            .expect("http_stream over TLS");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.version(), version);
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .expect("connect reply in time")
            .expect("body")
            .expect("chunk");
        assert!(String::from_utf8_lossy(&chunk).contains("\"connect\""));
    }

    // No plain-text fallback on the TLS port.
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(plain
        .get(format!("http://127.0.0.1:{port}/health"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true));
    server.shutdown().await;
}

#[tokio::test]
async fn stalled_tls_handshake_is_cut_and_others_are_served() {
    let cert = TestCert::new();
    let server = start(&cert, |c| {
        c.http_server.handshake_timeout = Duration::from_millis(700)
    })
    .await;
    let mut ws = wss(&cert, server.addr).await;
    ws.send(r#"{"id":1,"connect":{}}"#.into()).await.unwrap();
    assert!(next_json(&mut ws).await["connect"].is_object());

    // Connects and never says hello.
    let mut silent = TcpStream::connect(server.addr).await.expect("tcp");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");

    // Meanwhile (and after) TLS clients are served.
    let client = https(&cert, server.addr, false);
    let resp = client
        .get(format!("https://localhost:{}/health", server.addr.port()))
        .send()
        .await
        .expect("health");
    assert_eq!(resp.status().as_u16(), 200);
    ws.send(r#"{"id":2,"subscribe":{"channel":"still"}}"#.into())
        .await
        .unwrap();
    assert!(next_json(&mut ws).await["subscribe"].is_object());
    server.shutdown().await;
}

#[tokio::test]
async fn api_on_its_own_listener() {
    let cert = TestCert::new();
    let server = start(&cert, |c| {
        c.http_api.address = "127.0.0.1".into();
        c.http_api.port = 0;
    })
    .await;
    assert_ne!(server.api_addr, server.addr);
    let main = https(&cert, server.addr, false);
    let api_client = https(&cert, server.api_addr, false);
    // The API answers on its listener only.
    let body = api(&api_client, server.api_addr.port(), "info", json!({})).await;
    assert!(body["result"]["nodes"].is_array(), "{body}");
    let resp = main
        .post(format!("https://localhost:{}/api/info", server.addr.port()))
        .header("X-API-Key", API_KEY)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 404, "no API on the client listener");
    // Clients connect on the main listener and get what the API publishes.
    let mut ws = wss(&cert, server.addr).await;
    ws.send(r#"{"id":1,"connect":{}}"#.into()).await.unwrap();
    assert!(next_json(&mut ws).await["connect"].is_object());
    ws.send(r#"{"id":2,"subscribe":{"channel":"split"}}"#.into())
        .await
        .unwrap();
    assert!(next_json(&mut ws).await["subscribe"].is_object());
    let body = api(
        &api_client,
        server.api_addr.port(),
        "publish",
        json!({"channel": "split", "data": 1}),
    )
    .await;
    assert!(body.get("error").is_none(), "{body}");
    assert_eq!(next_json(&mut ws).await["push"]["pub"]["data"], json!(1));
    server.shutdown().await;
}
