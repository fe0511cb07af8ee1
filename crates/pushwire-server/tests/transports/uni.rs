//! Unidirectional transports end to end: uni_http_stream, uni_sse (Last-Event-ID recovery) and
//! uni_websocket.

#![allow(unused_imports)]
use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures_util::{SinkExt, StreamExt};
use pushwire_core::node::PublishParams;
use pushwire_core::Node;
use pushwire_protocol::prost::Message as _;
use pushwire_protocol::{pb, RawJson};
use pushwire_test_support::TestServer;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common;

use common::*;

// Unidirectional transports
// ---------------------------------------------------------------------------------------------

async fn uni_http_stream(server: &TestServer, body: Value) -> Lines {
    let resp = http()
        .post(format!("{}/connection/uni_http_stream", server.http_url()))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("uni_http_stream request");
    assert_eq!(resp.status(), StatusCode::OK);
    Lines::new(resp)
}

#[tokio::test]
async fn uni_http_stream_bare_pushes_and_recovery() {
    let server = TestServer::start().await;
    let mut lines = uni_http_stream(&server, json!({"subs": {"chat:u": {}}})).await;
    let first = lines.expect_no_presence("connect push").await;
    let connect = &first["connect"];
    assert!(connect.is_object(), "a bare connect push: {first}");
    assert!(first.get("id").is_none() && first.get("push").is_none());
    assert!(connect["client"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(connect.get("pong").is_none(), "no pong on uni: {first}");
    let sub = &connect["subs"]["chat:u"];
    assert_eq!(sub["recoverable"], json!(true), "{first}");
    let epoch = sub["epoch"].as_str().expect("epoch").to_owned();

    server.publish("chat:u", json!({"n": 1})).await;
    let push = lines.expect_no_presence("publication").await;
    assert_eq!(push["channel"], json!("chat:u"), "a bare pub push: {push}");
    assert_eq!(push["pub"]["data"], json!({"n": 1}));
    assert_eq!(push["pub"]["offset"], json!(1));
    drop(lines);

    for n in 2..=4 {
        server.publish("chat:u", json!({"n": n})).await;
    }
    let mut lines = uni_http_stream(
        &server,
        json!({"subs": {"chat:u": {"recover": true, "offset": 1, "epoch": epoch}}}),
    )
    .await;
    let first = lines.expect_no_presence("connect push").await;
    let sub = &first["connect"]["subs"]["chat:u"];
    assert_eq!(sub["recovered"], json!(true), "{first}");
    assert_eq!(sub["was_recovering"], json!(true), "{first}");
    assert_eq!(offsets(&sub["publications"]), vec![2, 3, 4]);
    assert_eq!(
        datas(&sub["publications"]),
        vec![json!({"n": 2}), json!({"n": 3}), json!({"n": 4})]
    );
    server.publish("chat:u", json!({"n": 5})).await;
    let push = lines
        .expect_no_presence("live publication after recovery")
        .await;
    assert_eq!(push["pub"]["offset"], json!(5));

    let stop = tokio::spawn(server.stop());
    assert_eq!(
        lines.expect_no_presence("disconnect push").await,
        json!({"disconnect": {"code": 3001, "reason": "shutdown"}})
    );
    assert_eq!(lines.next_raw().await, None);
    stop.await.unwrap();
}

#[tokio::test]
async fn uni_sse_ids_and_last_event_id_recovery() {
    let server = TestServer::start().await;
    let url = sse_url(
        &server,
        "/connection/uni_sse",
        &json!({"subs": {"chat:s": {}}}),
    );
    let mut events = Events::new(http().get(&url).send().await.unwrap());
    let first = events.next("connect push").await;
    assert!(
        first.data["connect"]["subs"]["chat:s"].is_object(),
        "{:?}",
        first
    );
    assert!(
        first.id.is_some(),
        "the connect push carries the position as id"
    );
    for n in 1..=2 {
        server.publish("chat:s", json!({"n": n})).await;
    }
    let mut last_id = None;
    for n in 1..=2 {
        let e = events.next("publication").await;
        assert_eq!(e.data["channel"], json!("chat:s"));
        assert_eq!(e.data["pub"]["data"], json!({"n": n}));
        assert!(e.id.is_some(), "a publication event carries an id");
        last_id = e.id;
    }
    drop(events);

    for n in 3..=5 {
        server.publish("chat:s", json!({"n": n})).await;
    }
    let resp = http()
        .get(&url)
        .header("last-event-id", last_id.expect("an id"))
        .send()
        .await
        .unwrap();
    let mut events = Events::new(resp);
    let first = events.next("connect push").await;
    let sub = &first.data["connect"]["subs"]["chat:s"];
    assert_eq!(sub["recovered"], json!(true), "{:?}", first);
    assert_eq!(offsets(&sub["publications"]), vec![3, 4, 5]);
    assert_eq!(
        datas(&sub["publications"]),
        vec![json!({"n": 3}), json!({"n": 4}), json!({"n": 5})]
    );
    server.publish("chat:s", json!({"n": 6})).await;
    let live = events.next("live publication").await;
    assert_eq!(live.data["pub"]["offset"], json!(6));
    let id = parse_id(live.id.as_deref());
    assert_eq!(id["chat:s"].0, 6);
    server.stop().await;
}

fn parse_id(id: Option<&str>) -> HashMap<String, (u64, String)> {
    serde_json::from_str(id.expect("an SSE id")).expect("the id is a JSON position map")
}

/// After a recovering connect, the connect push's `id:` must already point past the recovered
/// publications; otherwise an `EventSource` that reconnects before the next live publication
/// asks again from the old position and gets the same publications twice.
#[tokio::test]
async fn uni_sse_reconnect_right_after_recovery_redelivers_nothing() {
    let server = TestServer::start().await;
    let url = sse_url(
        &server,
        "/connection/uni_sse",
        &json!({"subs": {"chat:twice": {}}}),
    );
    let mut events = Events::new(http().get(&url).send().await.unwrap());
    let first = events.next("connect push").await;
    drop(events);
    for n in 1..=3 {
        server.publish("chat:twice", json!({"n": n})).await;
    }
    // Reconnect: recovers 1..3.
    let resp = http()
        .get(&url)
        .header("last-event-id", first.id.expect("id"))
        .send()
        .await
        .unwrap();
    let mut events = Events::new(resp);
    let recovered = events.next("connect push").await;
    let sub = &recovered.data["connect"]["subs"]["chat:twice"];
    assert_eq!(offsets(&sub["publications"]), vec![1, 2, 3]);
    let id = recovered.id.clone();
    assert_eq!(
        parse_id(id.as_deref())["chat:twice"].0,
        3,
        "id after recovery"
    );
    drop(events);
    // Reconnect again at once with that id: nothing to recover, nothing twice.
    let resp = http()
        .get(&url)
        .header("last-event-id", id.unwrap())
        .send()
        .await
        .unwrap();
    let mut events = Events::new(resp);
    let again = events.next("connect push").await;
    let sub = &again.data["connect"]["subs"]["chat:twice"];
    assert_eq!(sub["recovered"], json!(true), "{:?}", again);
    assert_eq!(
        sub.get("publications"),
        None,
        "nothing redelivered: {:?}",
        again
    );
    server.stop().await;
}

/// A unidirectional WebSocket: every text frame's pushes, and the close frame.
struct UniWs {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    queue: std::collections::VecDeque<Value>,
    /// Text frames that held more than one push.
    joined_frames: Vec<String>,
}

impl UniWs {
    async fn open(server: &TestServer, connect: Value) -> UniWs {
        let url = format!("ws://{}/connection/uni_websocket", server.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("handshake");
        ws.send(Message::Text(connect.to_string().into()))
            .await
            .unwrap();
        UniWs {
            ws,
            queue: Default::default(),
            joined_frames: Vec::new(),
        }
    }

    /// The next push that is not a ping, join or leave; a close frame as
    /// `{"close": code, "reason": reason}`; `None` when the socket ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(v) = self.queue.pop_front() {
                if v != json!({}) && !is_join_leave(&v) {
                    return Some(v);
                }
                continue;
            }
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time")
            {
                Some(Ok(Message::Text(t))) => {
                    let lines: Vec<&str> =
                        t.as_str().split('\n').filter(|l| !l.is_empty()).collect();
                    if lines.len() > 1 {
                        self.joined_frames.push(t.as_str().to_owned());
                    }
                    for l in lines {
                        self.queue
                            .push_back(serde_json::from_str(l).expect("a JSON push"));
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    let f = f.expect("a close frame with a code");
                    return Some(json!({"close": u16::from(f.code), "reason": f.reason.as_str()}));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }
}

#[tokio::test]
async fn uni_websocket_bare_pushes_and_shutdown_close() {
    let server = TestServer::start().await;
    let mut ws = UniWs::open(&server, json!({"subs": {"chat:w": {}}})).await;
    let first = ws.next().await.expect("connect push");
    assert!(first["connect"]["subs"]["chat:w"].is_object(), "{first}");
    server.publish("chat:w", json!({"n": 1})).await;
    let push = ws.next().await.expect("publication");
    assert_eq!(push["channel"], json!("chat:w"), "{push}");
    assert_eq!(push["pub"]["data"], json!({"n": 1}));

    let stop = tokio::spawn(server.stop());
    assert_eq!(
        ws.next().await.expect("disconnect push"),
        json!({"disconnect": {"code": 3001, "reason": "shutdown"}})
    );
    assert_eq!(
        ws.next().await.expect("close frame"),
        json!({"close": 3001, "reason": "shutdown"})
    );
    stop.await.unwrap();
}

/// Centrifugo sends one push per uni_websocket text frame unless `join_push_messages` is on, so
/// a plain `JSON.parse(event.data)` client works.
#[tokio::test]
async fn uni_websocket_one_push_per_frame() {
    let server = TestServer::start().await;
    let mut ws = UniWs::open(&server, json!({"subs": {"chat:one": {}}})).await;
    ws.next().await.expect("connect push");
    for n in 1..=5 {
        server.publish("chat:one", json!({"n": n})).await;
    }
    for _ in 1..=5 {
        ws.next().await.expect("publication");
    }
    assert!(
        ws.joined_frames.is_empty(),
        "text frames holding several pushes: {:?}",
        ws.joined_frames
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
