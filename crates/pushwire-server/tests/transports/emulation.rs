//! HTTP-streaming and SSE emulation with `/emulation`, end to end over raw HTTP (JSON and
//! protobuf), including bad input and CORS.

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

// ---------------------------------------------------------------------------------------------
// HTTP-streaming (bidirectional emulation)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn http_stream_json_connect_subscribe_publish_and_shutdown() {
    let server = TestServer::start().await;
    let (mut lines, connect) = http_stream_connect(&server).await;
    let sub = emulated_subscribe(&server, &connect, &mut lines, 2, "chat:x").await;
    assert_eq!(sub["recoverable"], json!(true), "{sub}");
    let result = server.publish("chat:x", json!({"text": "hello"})).await;
    let push = lines.expect_no_presence("publication").await;
    assert_eq!(push["push"]["channel"], json!("chat:x"), "{push}");
    assert_eq!(push["push"]["pub"]["data"], json!({"text": "hello"}));
    assert_eq!(push["push"]["pub"]["offset"], result["offset"]);

    // A client publish through /emulation comes back on the stream: reply, then the pub.
    let status = emulate(
        &server,
        connect["session"].as_str().unwrap(),
        connect["node"].as_str().unwrap(),
        r#"{"id":3,"publish":{"channel":"chat:x","data":{"text":"mine"}}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut seen = [
        lines.expect_no_presence("publish reply").await,
        lines.expect_no_presence("own publication").await,
    ];
    seen.sort_by_key(|m| m["id"].as_u64().unwrap_or(0));
    assert_eq!(seen[0]["push"]["pub"]["data"], json!({"text": "mine"}));
    assert_eq!(seen[1]["id"], json!(3));
    assert_eq!(seen[1]["publish"], json!({}));

    let stop = tokio::spawn(server.stop());
    let last = lines.expect_no_presence("disconnect push").await;
    assert_eq!(
        last,
        json!({"push": {"disconnect": {"code": 3001, "reason": "shutdown"}}})
    );
    assert_eq!(lines.next_raw().await, None, "the stream ends after it");
    stop.await.expect("stop");
}

#[tokio::test]
async fn http_stream_pong_through_emulation_keeps_the_connection() {
    let server = TestServer::start_with(|c| {
        c.client.ping_interval = Duration::from_secs(1);
        c.client.pong_timeout = Duration::from_millis(500);
    })
    .await;
    let (mut answering, a) = http_stream_connect(&server).await;
    assert_eq!(a["ping"], json!(1));
    assert_eq!(a["pong"], json!(true));
    let (mut silent, _) = http_stream_connect(&server).await;

    // Two pings answered with `{}` through /emulation: still connected after each.
    for n in 0..2 {
        let ping = tokio::time::timeout(Duration::from_secs(3), answering.next_raw())
            .await
            .expect("a ping within the interval")
            .expect("stream open");
        assert_eq!(ping, json!({}), "ping {n}");
        let status = emulate(
            &server,
            a["session"].as_str().unwrap(),
            a["node"].as_str().unwrap(),
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "pong {n} accepted");
    }
    // Still alive: it answers a command after the pongs.
    let sub = emulated_subscribe(&server, &a, &mut answering, 2, "chat:pong").await;
    assert_eq!(sub["recoverable"], json!(true));

    // The one that never answers is told 3012 and its stream ends.
    let mut last = None;
    while let Some(m) = tokio::time::timeout(Duration::from_secs(4), silent.next_raw())
        .await
        .expect("the silent stream ends")
    {
        last = Some(m);
    }
    assert_eq!(
        last.expect("a disconnect push")["push"]["disconnect"]["code"],
        json!(3012)
    );
    server.stop().await;
}

/// A varint-delimited protobuf reply stream.
struct PbReplies {
    resp: reqwest::Response,
    buf: BytesMut,
}

impl PbReplies {
    async fn next_raw(&mut self) -> Option<pb::Reply> {
        loop {
            let mut view = &self.buf[..];
            if let Ok(len) = pushwire_protocol::prost::decode_length_delimiter(&mut view) {
                let header = self.buf.len() - view.len();
                if view.len() >= len {
                    self.buf.advance(header);
                    let msg = self.buf.split_to(len);
                    return Some(pb::Reply::decode(&msg[..]).expect("a protobuf Reply"));
                }
            }
            match chunk(&mut self.resp).await {
                Some(c) => self.buf.extend_from_slice(&c),
                None => {
                    assert!(self.buf.is_empty(), "stream ended inside a message");
                    return None;
                }
            }
        }
    }

    async fn next(&mut self, what: &str) -> pb::Reply {
        loop {
            let r = self
                .next_raw()
                .await
                .unwrap_or_else(|| panic!("stream ended while waiting for {what}"));
            let presence = r
                .push
                .as_ref()
                .is_some_and(|p| p.join.is_some() || p.leave.is_some());
            if r != pb::Reply::default() && !presence {
                return r;
            }
        }
    }
}

#[tokio::test]
async fn http_stream_protobuf() {
    let server = TestServer::start().await;
    let connect = pb::Command {
        id: 1,
        connect: Some(pb::ConnectRequest::default()),
        ..Default::default()
    };
    let resp = http()
        .post(format!("{}/connection/http_stream", server.http_url()))
        .header(CONTENT_TYPE, "application/octet-stream")
        .header("accept", "application/octet-stream")
        .body(pushwire_protocol::frame::encode_protobuf(&connect))
        .send()
        .await
        .expect("http_stream request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], "application/octet-stream");
    let mut replies = PbReplies {
        resp,
        buf: BytesMut::new(),
    };
    let reply = replies.next("connect reply").await;
    assert_eq!(reply.id, 1);
    let result = reply.connect.expect("connect result");
    assert!(!result.session.is_empty());
    assert_eq!(result.node, server.node().id());
    assert!(!result.client.is_empty());

    // Subscribe through a protobuf EmulationRequest; the reply comes on the stream.
    let subscribe = pb::Command {
        id: 2,
        subscribe: Some(pb::SubscribeRequest {
            channel: "chat:pb".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let emulation = pb::EmulationRequest {
        node: result.node.clone(),
        session: result.session.clone(),
        data: pushwire_protocol::frame::encode_protobuf(&subscribe),
    };
    let status = http()
        .post(format!("{}/emulation", server.http_url()))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(emulation.encode_to_vec())
        .send()
        .await
        .expect("emulation")
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let reply = replies.next("subscribe reply").await;
    assert_eq!(reply.id, 2);
    let sub = reply.subscribe.expect("subscribe result");
    assert!(sub.recoverable);

    let published = server.publish("chat:pb", json!({"n": 1})).await;
    let reply = replies.next("publication").await;
    let push = reply.push.expect("a push");
    assert_eq!(push.channel, "chat:pb");
    let publication = push.r#pub.expect("a publication");
    assert_eq!(
        serde_json::from_slice::<Value>(&publication.data).unwrap(),
        json!({"n": 1}),
        "the JSON payload arrives as bytes"
    );
    assert_eq!(json!(publication.offset), published["offset"]);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// SSE (bidirectional emulation)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sse_connect_subscribe_and_publication() {
    let server = TestServer::start().await;
    let url = sse_url(&server, "/connection/sse", &json!({"id": 1, "connect": {}}));
    let resp = http().get(url).send().await.expect("sse request");
    assert_eq!(
        resp.headers()["cache-control"],
        "private, no-cache, no-store, must-revalidate, max-age=0"
    );
    let mut events = Events::new(resp);
    let reply = events.next_value("connect reply").await;
    assert_eq!(reply["id"], json!(1), "{reply}");
    let connect = reply["connect"].clone();
    assert!(connect["session"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(connect["node"], json!(server.node().id()));
    emulated_subscribe(&server, &connect, &mut events, 2, "chat:sse").await;
    server.publish("chat:sse", json!({"n": 1})).await;
    let push = events.next_value("publication").await;
    assert_eq!(push["push"]["channel"], json!("chat:sse"));
    assert_eq!(push["push"]["pub"]["data"], json!({"n": 1}));
    assert_eq!(push["push"]["pub"]["offset"], json!(1));
    server.stop().await;
}

#[tokio::test]
async fn sse_rejects_missing_connect_and_protobuf() {
    let server = TestServer::start().await;
    let base = format!("{}/connection/sse", server.http_url());
    let resp = http().get(&base).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "no cf_connect");
    let url = sse_url(&server, "/connection/sse", &json!({"id": 1, "connect": {}}));
    let resp = http()
        .get(format!("{url}&cf_protocol=protobuf"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "protobuf over SSE");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// /emulation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn emulation_bad_input_and_cors() {
    let server = TestServer::start().await;
    let node = server.node().id().to_owned();
    let url = format!("{}/emulation", server.http_url());
    let (_lines, connect) = http_stream_connect(&server).await;
    let session = connect["session"].as_str().unwrap();

    assert_eq!(
        emulate(&server, "no-such-session", &node, "{}").await,
        StatusCode::NO_CONTENT,
        "unknown session"
    );
    assert_eq!(
        emulate(&server, session, "another-node", "{}").await,
        StatusCode::NOT_FOUND,
        "unknown node"
    );
    let resp = http()
        .post(&url)
        .header(CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "undecodable body");
    let big = "x".repeat(70 * 1024);
    let resp = http()
        .post(&url)
        .header(CONTENT_TYPE, "application/json")
        .body(json!({"session": session, "node": node, "data": big}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body over 64 KiB"
    );

    let origin = "http://127.0.0.1:4321";
    let resp = http()
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT, "preflight");
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], origin);
    assert_eq!(h["access-control-allow-credentials"], "true");
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    assert_eq!(h["access-control-max-age"], "300");

    // The actual cross-origin POST reflects the origin too.
    let resp = http()
        .post(&url)
        .header("origin", "http://localhost:8080")
        .header(CONTENT_TYPE, "application/json")
        .body(json!({"session": session, "node": node, "data": "{}"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:8080"
    );

    for method in [reqwest::Method::OPTIONS, reqwest::Method::POST] {
        let resp = http()
            .request(method.clone(), &url)
            .header("origin", "http://evil.example.com")
            .header("access-control-request-method", "POST")
            .header(CONTENT_TYPE, "application/json")
            .body(json!({"session": session, "node": node, "data": "{}"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "{method} from a bad origin"
        );
        assert!(resp.headers().get("access-control-allow-origin").is_none());
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
