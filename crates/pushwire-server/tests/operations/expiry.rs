//! Token expiry is enforced: a connection whose token expired and was not refreshed is closed
//! with 3005; a subscription whose token expired and was not refreshed ends with Unsubscribe
//! 2501 and receives nothing more; `sub_refresh` in time keeps it.

use std::time::Duration;

use pushwire_test_support::{now, token, TestServer, WsClient};
use serde_json::json;

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.client.expired_close_delay = Duration::ZERO;
        c.client.expired_sub_close_delay = Duration::ZERO;
    })
    .await
}

#[tokio::test]
async fn expired_connection_is_closed_3005() {
    let server = server().await;
    let t = token(json!({"sub": "u1", "exp": now() + 2}));
    let (mut c, connect) = WsClient::connected(&server.ws_url(), Some(&t)).await;
    assert_eq!(connect["expires"], json!(true));
    let started = std::time::Instant::now();
    assert_eq!(c.expect_close().await, (3005, "connection expired".into()));
    assert!(started.elapsed() >= Duration::from_millis(900));
    server.stop().await;
}

#[tokio::test]
async fn expired_subscription_gets_2501_and_no_more_publications() {
    let server = server().await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    let sub_token = token(json!({"sub": "", "channel": "$secret", "exp": now() + 2}));
    let r = c
        .command(json!({"subscribe": {"channel": "$secret", "token": sub_token}}))
        .await;
    assert_eq!(r["subscribe"]["expires"], json!(true));
    server.publish("$secret", json!({"n": 1})).await;
    assert_eq!(c.next_publication("$secret").await["data"], json!({"n": 1}));
    let m = c.next_message().await.expect("unsubscribe push");
    assert_eq!(
        m["push"],
        json!({"channel": "$secret", "unsubscribe": {"code": 2501, "reason": "subscription expired"}})
    );
    server.publish("$secret", json!({"n": 2})).await;
    assert!(
        c.silent_for(Duration::from_millis(300)).await,
        "nothing after 2501"
    );
    assert_eq!(server.node().hub().num_subscribers("$secret"), 0);
    server.stop().await;
}

#[tokio::test]
async fn refreshed_subscription_lives_on() {
    let server = server().await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    let first = token(json!({"sub": "", "channel": "$secret", "exp": now() + 1}));
    c.command(json!({"subscribe": {"channel": "$secret", "token": first}}))
        .await;
    let fresh = token(json!({"sub": "", "channel": "$secret", "exp": now() + 60}));
    let r = c
        .command(json!({"sub_refresh": {"channel": "$secret", "token": fresh}}))
        .await;
    assert_eq!(r["sub_refresh"]["expires"], json!(true));
    tokio::time::sleep(Duration::from_millis(2200)).await;
    server.publish("$secret", json!({"n": 3})).await;
    assert_eq!(c.next_publication("$secret").await["data"], json!({"n": 3}));
    server.stop().await;
}
