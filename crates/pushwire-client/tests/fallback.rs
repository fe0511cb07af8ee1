//! Fallback to HTTP-streaming and SSE emulation when the WebSocket endpoint does not open.

mod support;

use std::time::Duration;

use pushwire_client::{
    Client, ClientConfig, ClientError, Event, HistoryOptions, Protocol, SubscriptionOptions,
    TransportKind,
};
use pushwire_test_support::TestServer;
use serde_json::json;
use support::{pub_text, wait_for};

/// The WebSocket endpoint is wrong (404 on upgrade), so the client must go on to `kind`.
async fn falls_back(kind: TransportKind, protocol: Protocol) {
    let server = TestServer::start().await;
    let base = server.http_url();
    let path = match kind {
        TransportKind::HttpStream => "/connection/http_stream",
        TransportKind::Sse => "/connection/sse",
        TransportKind::Websocket => unreachable!(),
    };
    let config = ClientConfig::new(format!("ws://{}/connection/no-websocket-here", server.addr))
        .protocol(protocol)
        .fallback(kind, format!("{base}{path}"));
    let (client, mut events) = Client::new(config).unwrap();
    client.connect();
    let mut seen = Vec::new();
    let connected = wait_for(&mut events, &mut seen, "connected", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    let Event::Connected { transport, .. } = connected else {
        unreachable!()
    };
    assert_eq!(transport, kind);
    // The WebSocket attempt failed first, as a typed transport error.
    assert!(
        seen.iter().any(|e| matches!(
            e,
            Event::Error(ClientError::Transport {
                transport: "websocket",
                ..
            })
        )),
        "{seen:?}"
    );

    // Subscribes and calls travel through /emulation; replies and pushes on the stream.
    let sub = client
        .new_subscription("chat:emu", SubscriptionOptions::default())
        .unwrap();
    sub.subscribe().await.unwrap();
    wait_for(&mut events, &mut seen, "subscribed", |e| {
        matches!(e, Event::Subscribed { .. })
    })
    .await;
    server
        .publish("chat:emu", json!({"via": kind.name()}))
        .await;
    let p = wait_for(&mut events, &mut seen, "publication", |e| {
        pub_text(e).is_some()
    })
    .await;
    let (_, offset, data) = pub_text(&p).unwrap();
    assert_eq!(offset, 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&data).unwrap(),
        json!({"via": kind.name()})
    );
    sub.publish(br#"{"from":"client"}"#.to_vec()).await.unwrap();
    let h = client
        .history(
            "chat:emu",
            HistoryOptions {
                limit: -1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(h.publications.len(), 2);
    let stats = client.presence_stats("chat:emu").await.unwrap();
    assert_eq!(stats.num_clients, 1);
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn falls_back_to_http_stream_json() {
    falls_back(TransportKind::HttpStream, Protocol::Json).await;
}

#[tokio::test]
async fn falls_back_to_http_stream_protobuf() {
    falls_back(TransportKind::HttpStream, Protocol::Protobuf).await;
}

#[tokio::test]
async fn falls_back_to_sse() {
    falls_back(TransportKind::Sse, Protocol::Json).await;
}

#[tokio::test]
async fn emulated_session_answers_pings() {
    // With a 1 s ping and a 0.9 s pong timeout, a client that did not answer pings through
    // /emulation would be closed with 3012 and reconnect.
    let server = TestServer::start_with(|c| {
        c.client.ping_interval = Duration::from_secs(1);
        c.client.pong_timeout = Duration::from_millis(900);
    })
    .await;
    let config = ClientConfig::with_endpoint(
        TransportKind::HttpStream,
        format!("{}/connection/http_stream", server.http_url()),
    );
    let (client, mut events) = Client::new(config).unwrap();
    client.connect();
    client.ready(Duration::from_secs(5)).await.unwrap();
    let evs = support::collect_for(&mut events, Duration::from_millis(3500)).await;
    let connects = evs
        .iter()
        .filter(|e| matches!(e, Event::Connected { .. }))
        .count();
    assert_eq!(connects, 1, "{evs:?}");
    client.close().await;
    server.stop().await;
}
