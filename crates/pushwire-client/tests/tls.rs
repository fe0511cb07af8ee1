//! The client over TLS: `wss://` and `https://` endpoints against a pushwire server serving a
//! self-signed certificate, trusted through `tls_root_certificates_pem`; without it the
//! handshake fails with a typed error and the client keeps retrying.

mod support;

use std::time::Duration;

use pushwire_client::{Client, ClientConfig, Event, State, SubscriptionOptions, TransportKind};
use pushwire_core::node::PublishParams;
use pushwire_protocol::RawJson;
use pushwire_test_support::cert::TestCert;
use pushwire_test_support::TestServer;
use support::{collect_for, pub_text, wait_for};

/// Connects with `config`, subscribes to `chat:tls`, and checks a publication arrives.
async fn receive_over(server: &TestServer, config: ClientConfig, transport: TransportKind) {
    let (client, mut events) = Client::new(config).unwrap();
    client.connect();
    client
        .ready(Duration::from_secs(5))
        .await
        .expect("connected over TLS");
    let mut seen = Vec::new();
    let connected = wait_for(&mut events, &mut seen, "connected", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    assert!(
        matches!(connected, Event::Connected { transport: t, .. } if t == transport),
        "{connected:?}"
    );
    let sub = client
        .new_subscription("chat:tls", SubscriptionOptions::default())
        .unwrap();
    sub.subscribe().await.unwrap();
    wait_for(&mut events, &mut seen, "subscribed", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    // The test helper publishes over plain HTTP; this server speaks only TLS, so publish
    // through the node.
    server
        .node()
        .publish(
            "chat:tls",
            PublishParams {
                data: RawJson::from_bytes(br#"{"secure":true}"#.to_vec()),
                ..Default::default()
            },
        )
        .await
        .expect("publish");
    let ev = wait_for(&mut events, &mut seen, "publication", |e| {
        pub_text(e).is_some()
    })
    .await;
    let (channel, _, data) = pub_text(&ev).unwrap();
    assert_eq!(channel, "chat:tls");
    assert_eq!(data, r#"{"secure":true}"#);
    client.close().await;
}

#[tokio::test]
async fn wss_and_https_endpoints_with_a_trusted_certificate() {
    let cert = TestCert::new();
    let server = TestServer::start_with(|c| c.http_server.tls = cert.server_tls()).await;
    let port = server.addr.port();

    let wss = ClientConfig::new(format!("wss://localhost:{port}/connection/websocket"))
        .tls_root_certificates_pem(cert.pem.clone());
    receive_over(&server, wss, TransportKind::Websocket).await;

    let https = ClientConfig::with_endpoint(
        TransportKind::HttpStream,
        format!("https://localhost:{port}/connection/http_stream"),
    )
    .tls_root_certificates_pem(cert.pem.clone());
    receive_over(&server, https, TransportKind::HttpStream).await;
    server.stop().await;
}

#[tokio::test]
async fn untrusted_certificate_is_a_typed_error_and_the_client_keeps_trying() {
    let cert = TestCert::new();
    let server = TestServer::start_with(|c| c.http_server.tls = cert.server_tls()).await;
    let port = server.addr.port();
    let (client, mut events) = Client::new(ClientConfig::new(format!(
        "wss://localhost:{port}/connection/websocket"
    )))
    .unwrap();
    client.connect();
    let events = collect_for(&mut events, Duration::from_millis(1500)).await;
    let errors = events
        .iter()
        .filter(|e| matches!(e, Event::Error(_)))
        .count();
    assert!(errors >= 1, "{events:?}");
    assert!(
        !events.iter().any(|e| matches!(e, Event::Connected { .. })),
        "{events:?}"
    );
    assert_eq!(client.state(), State::Connecting);
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn bad_root_certificate_pem_is_a_config_error() {
    let r = Client::new(
        ClientConfig::new("wss://localhost:1/connection/websocket")
            .tls_root_certificates_pem("not a certificate"),
    );
    assert!(
        matches!(
            r,
            Err(pushwire_client::ClientError::Config {
                key: "tls_root_certificates_pem",
                ..
            })
        ),
        "{:?}",
        r.err()
    );
}
