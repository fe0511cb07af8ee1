//! Helpers shared by the `channels_*.rs` end-to-end tests (issue "Channels that remember").
//!
//! Included with `#[path = "channels_common.rs"] mod common;`; compiled on its own it holds no
//! test.

#![allow(dead_code)]

use std::time::Duration;

use pushwire_core::config::{ChannelOptions, NamespaceConfig};
use pushwire_test_support::{now, token, TestServer, WsClient};
use serde_json::{json, Value};

/// A namespace `name` with `options`.
pub fn ns(name: &str, options: ChannelOptions) -> NamespaceConfig {
    NamespaceConfig {
        name: name.into(),
        options,
    }
}

/// Anyone (authenticated or anonymous) may subscribe; nothing else is allowed.
pub fn open() -> ChannelOptions {
    ChannelOptions {
        allow_subscribe_for_client: true,
        allow_subscribe_for_anonymous: true,
        ..Default::default()
    }
}

/// [`open`] with history (`size`, 300 s) readable by anyone, subscribed or not.
pub fn with_history(size: usize) -> ChannelOptions {
    ChannelOptions {
        history_size: size,
        history_ttl: Duration::from_secs(300),
        allow_history_for_client: true,
        allow_history_for_anonymous: true,
        ..open()
    }
}

/// [`with_history`] with recovery forced for every subscriber.
pub fn recovering(size: usize) -> ChannelOptions {
    ChannelOptions {
        force_recovery: true,
        ..with_history(size)
    }
}

/// Connects as `user` (connection token, `info` as conn_info when given); returns the client
/// and its id.
pub async fn user(server: &TestServer, user: &str, info: Option<Value>) -> (WsClient, String) {
    let mut claims = json!({"sub": user, "exp": now() + 3600});
    if let Some(info) = info {
        claims["info"] = info;
    }
    let t = token(claims);
    let (c, result) = WsClient::connected(&server.ws_url(), Some(&t)).await;
    (c, client_id(&result))
}

/// Connects anonymously; returns the client and its id.
pub async fn anon(server: &TestServer) -> (WsClient, String) {
    let (c, result) = WsClient::connected(&server.ws_url(), None).await;
    (c, client_id(&result))
}

fn client_id(connect: &Value) -> String {
    connect["client"]
        .as_str()
        .expect("connect result has a client id")
        .to_owned()
}

/// The error code of a reply (panics when the reply is not an error).
pub fn code(reply: &Value) -> u64 {
    reply["error"]["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("expected an error reply, got {reply}"))
}

/// Sends `subscribe` with `req` and returns the reply.
pub async fn subscribe_raw(c: &mut WsClient, req: Value) -> Value {
    c.command(json!({ "subscribe": req })).await
}

/// Subscribes with `req` and returns the subscribe result (panics on an error).
pub async fn subscribe_with(c: &mut WsClient, req: Value) -> Value {
    let r = subscribe_raw(c, req).await;
    assert!(r["subscribe"].is_object(), "subscribe failed: {r}");
    r["subscribe"].clone()
}

/// Subscribes to `channel` and returns the subscribe result (panics on an error).
pub async fn subscribe(c: &mut WsClient, channel: &str) -> Value {
    subscribe_with(c, json!({ "channel": channel })).await
}

/// Unsubscribes from `channel` (panics on an error).
pub async fn unsubscribe(c: &mut WsClient, channel: &str) {
    let r = c
        .command(json!({"unsubscribe": {"channel": channel}}))
        .await;
    assert_eq!(r["unsubscribe"], json!({}), "unsubscribe failed: {r}");
}

/// Offsets of a JSON array of publications (absent = none).
pub fn offsets(publications: &Value) -> Vec<u64> {
    publications
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["offset"].as_u64().expect("publication offset"))
                .collect()
        })
        .unwrap_or_default()
}

/// Publishes through the API with extra request fields; returns the whole response body.
pub async fn api_publish(server: &TestServer, channel: &str, data: Value, extra: Value) -> Value {
    let mut req = json!({"channel": channel, "data": data});
    if let (Some(obj), Some(more)) = (req.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            obj.insert(k.clone(), v.clone());
        }
    }
    let (status, body) = server.api("publish", req).await;
    assert_eq!(status, 200, "publish status: {body}");
    body
}

/// API `history` with `limit: -1`: (offsets kept, top offset, epoch).
pub async fn stored(server: &TestServer, channel: &str) -> (Vec<u64>, u64, String) {
    let (status, body) = server
        .api("history", json!({"channel": channel, "limit": -1}))
        .await;
    assert_eq!(status, 200);
    let r = &body["result"];
    assert!(r.is_object(), "history failed: {body}");
    (
        offsets(&r["publications"]),
        r["offset"].as_u64().expect("offset"),
        r["epoch"].as_str().expect("epoch").to_owned(),
    )
}

/// Sends `{"id": id, <body>}` as raw text and reads every message in arrival order up to the
/// reply with that id (use ids far above the ones [`WsClient::command`] hands out). Returns
/// the offsets of the publications for `channel` received before the reply, and the reply.
pub async fn ordered_command(
    c: &mut WsClient,
    id: u32,
    mut body: Value,
    channel: &str,
) -> (Vec<u64>, Value) {
    body["id"] = json!(id);
    c.send_text(&body.to_string()).await;
    let mut before = Vec::new();
    loop {
        let m = c.read_one().await.expect("connection open");
        if m["id"] == json!(id) {
            return (before, m);
        }
        if m["push"]["channel"] == json!(channel) && m["push"]["pub"].is_object() {
            before.push(m["push"]["pub"]["offset"].as_u64().expect("offset"));
        }
    }
}

/// Polls until a condition holds or time is up (the one implementation, from the testkit).
pub use pushwire_test_support::poll_until as eventually;
