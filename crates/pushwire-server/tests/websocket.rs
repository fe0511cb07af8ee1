//! WebSocket transport end to end: connect, subscribe, publish, batching, recovery.

use pushwire_test_support::{TestServer, WsClient};
use serde_json::json;

#[tokio::test]
async fn connect_subscribe_and_client_publish() {
    let server = TestServer::start().await;
    let (mut a, connect) = WsClient::connected(&server.ws_url(), None).await;
    assert!(connect["client"].as_str().unwrap().len() >= 32);
    assert_eq!(connect["ping"], json!(25));
    assert_eq!(connect["pong"], json!(true));
    let (mut b, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = a.command(json!({"subscribe": {"channel": "news"}})).await;
    assert_eq!(r["subscribe"], json!({}));
    b.command(json!({"subscribe": {"channel": "news"}})).await;
    let r = b
        .command(json!({"publish": {"channel": "news", "data": {"text": "hi"}}}))
        .await;
    assert_eq!(r["publish"], json!({}));
    for c in [&mut a, &mut b] {
        let p = c.next_publication("news").await;
        assert_eq!(p["data"], json!({"text": "hi"}));
        assert_eq!(p["info"]["user"], json!(""));
    }
    server.stop().await;
}

#[tokio::test]
async fn batched_commands_answered_in_order() {
    let server = TestServer::start().await;
    let mut c = WsClient::open(&server.ws_url()).await;
    c.send_text(
        "{\"id\":1,\"connect\":{}}\n{\"id\":2,\"subscribe\":{\"channel\":\"a\"}}\n{\"id\":3,\"subscribe\":{\"channel\":\"b\"}}\n",
    )
    .await;
    let ids: Vec<_> = [
        c.read_one().await.unwrap(),
        c.read_one().await.unwrap(),
        c.read_one().await.unwrap(),
    ]
    .iter()
    .map(|m| m["id"].as_u64().unwrap())
    .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    server.stop().await;
}

#[tokio::test]
async fn recovery_returns_missed_publications() {
    let server = TestServer::start().await;
    let (mut a, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = a.command(json!({"subscribe": {"channel": "chat:r"}})).await;
    let sub = &r["subscribe"];
    assert_eq!(sub["recoverable"], json!(true));
    let epoch = sub["epoch"].as_str().unwrap().to_owned();
    let (mut b, _) = WsClient::connected(&server.ws_url(), None).await;
    b.command(json!({"subscribe": {"channel": "chat:r"}})).await;
    for i in 1..=3 {
        b.command(json!({"publish": {"channel": "chat:r", "data": {"n": i}}}))
            .await;
    }
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = c
        .command(json!({"subscribe": {"channel": "chat:r", "recover": true, "offset": 1, "epoch": epoch}}))
        .await;
    let sub = &r["subscribe"];
    assert_eq!(sub["recovered"], json!(true), "{r}");
    assert_eq!(sub["was_recovering"], json!(true));
    assert_eq!(sub["offset"], json!(1));
    let offsets: Vec<_> = sub["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![2, 3]);
    server.stop().await;
}
