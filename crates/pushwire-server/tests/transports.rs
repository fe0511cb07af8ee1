//! Every HTTP transport end to end over raw HTTP: HTTP-streaming (JSON and protobuf), SSE, the
//! `/emulation` endpoint, the unidirectional transports (HTTP-streaming, SSE, WebSocket) with
//! recovery, long-polling and polling, and a slow streaming reader.

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

/// How long a test waits for any expected message.
const WAIT: Duration = Duration::from_secs(5);

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client")
}

/// Reads one more body chunk within [`WAIT`]; `None` at the end of the body.
async fn chunk(resp: &mut reqwest::Response) -> Option<bytes::Bytes> {
    tokio::time::timeout(WAIT, resp.chunk())
        .await
        .expect("timed out waiting for stream data")
        .unwrap_or_default()
}

/// A newline-delimited JSON stream (HTTP-streaming, bidirectional or unidirectional).
struct Lines {
    resp: reqwest::Response,
    buf: BytesMut,
}

impl Lines {
    fn new(resp: reqwest::Response) -> Lines {
        Lines {
            resp,
            buf: BytesMut::new(),
        }
    }

    /// The next message, pings included; `None` when the stream ended.
    async fn next_raw(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(pos + 1);
                let line = &line[..pos];
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                return Some(serde_json::from_slice(line).unwrap_or_else(|e| {
                    panic!("not JSON ({e}): {}", String::from_utf8_lossy(line))
                }));
            }
            match chunk(&mut self.resp).await {
                Some(c) => self.buf.extend_from_slice(&c),
                None => {
                    assert!(
                        self.buf.iter().all(|b| b.is_ascii_whitespace()),
                        "stream ended inside a line: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                    return None;
                }
            }
        }
    }

    /// The next message that is not a ping.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let m = self.next_raw().await?;
            if m != json!({}) {
                return Some(m);
            }
        }
    }

    /// The next message, which must exist.
    async fn expect(&mut self, what: &str) -> Value {
        self.next()
            .await
            .unwrap_or_else(|| panic!("stream ended while waiting for {what}"))
    }

    /// The next message that is not a join or leave push (the `chat:` namespace sends them).
    async fn expect_no_presence(&mut self, what: &str) -> Value {
        loop {
            let m = self.expect(what).await;
            if !is_join_leave(&m) {
                return m;
            }
        }
    }
}

/// Whether `m` is a join or leave push, wrapped (bidirectional) or bare (unidirectional).
fn is_join_leave(m: &Value) -> bool {
    let push = m.get("push").unwrap_or(m);
    push.get("join").is_some() || push.get("leave").is_some()
}

/// One SSE event.
#[derive(Debug)]
struct Event {
    id: Option<String>,
    data: Value,
}

/// An SSE stream (`text/event-stream`) whose body must start with `\r\n`.
struct Events {
    resp: reqwest::Response,
    buf: String,
    prefix_checked: bool,
}

impl Events {
    fn new(resp: reqwest::Response) -> Events {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[CONTENT_TYPE],
            "text/event-stream; charset=utf-8"
        );
        Events {
            resp,
            buf: String::new(),
            prefix_checked: false,
        }
    }

    /// The next event, pings included; `None` when the stream ended.
    async fn next_raw(&mut self) -> Option<Event> {
        loop {
            if !self.prefix_checked && self.buf.len() >= 2 {
                assert!(
                    self.buf.starts_with("\r\n"),
                    "SSE body must start with \\r\\n: {:?}",
                    self.buf
                );
                self.buf.drain(..2);
                self.prefix_checked = true;
            }
            if self.prefix_checked {
                if let Some(pos) = self.buf.find("\n\n") {
                    let block: String = self.buf.drain(..pos + 2).collect();
                    let mut id = None;
                    let mut data = None;
                    for line in block.lines().filter(|l| !l.is_empty()) {
                        if let Some(v) = line.strip_prefix("id: ") {
                            id = Some(v.to_owned());
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            assert!(data.is_none(), "one data line per event: {block:?}");
                            data = Some(serde_json::from_str(v).expect("event data is JSON"));
                        } else {
                            panic!("unexpected SSE line {line:?}");
                        }
                    }
                    let data = data.unwrap_or_else(|| panic!("event without data: {block:?}"));
                    return Some(Event { id, data });
                }
            }
            match chunk(&mut self.resp).await {
                Some(c) => self
                    .buf
                    .push_str(std::str::from_utf8(&c).expect("SSE is UTF-8")),
                None => {
                    assert!(
                        self.buf.trim().is_empty(),
                        "stream ended inside an event: {:?}",
                        self.buf
                    );
                    return None;
                }
            }
        }
    }

    /// The next event that is not a ping.
    async fn next(&mut self, what: &str) -> Event {
        loop {
            let e = self
                .next_raw()
                .await
                .unwrap_or_else(|| panic!("stream ended while waiting for {what}"));
            if e.data != json!({}) && !is_join_leave(&e.data) {
                return e;
            }
        }
    }
}

/// Posts `data` (newline-joined JSON commands) to `/emulation` for a session.
async fn emulate(server: &TestServer, session: &str, node: &str, data: &str) -> StatusCode {
    http()
        .post(format!("{}/emulation", server.http_url()))
        .header(CONTENT_TYPE, "application/json")
        .body(json!({"session": session, "node": node, "data": data}).to_string())
        .send()
        .await
        .expect("emulation request")
        .status()
}

/// Opens a JSON HTTP-streaming connection; returns the stream and the connect result.
async fn http_stream_connect(server: &TestServer) -> (Lines, Value) {
    let resp = http()
        .post(format!("{}/connection/http_stream", server.http_url()))
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"id":1,"connect":{}}"#)
        .send()
        .await
        .expect("http_stream request");
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    assert_eq!(h[CONTENT_TYPE], "application/json");
    assert_eq!(
        h["cache-control"],
        "private, no-cache, no-store, must-revalidate, max-age=0"
    );
    assert_eq!(h["x-accel-buffering"], "no");
    let mut lines = Lines::new(resp);
    let reply = lines.expect_no_presence("connect reply").await;
    assert_eq!(
        reply["id"],
        json!(1),
        "first line is the connect reply: {reply}"
    );
    let connect = reply["connect"].clone();
    assert!(
        connect["session"].as_str().is_some_and(|s| !s.is_empty()),
        "{reply}"
    );
    assert_eq!(connect["node"], json!(server.node().id()), "{reply}");
    assert!(connect["client"].as_str().is_some_and(|s| !s.is_empty()));
    (lines, connect)
}

/// Subscribes an emulated session to `channel` with command id `id`; returns the result.
async fn emulated_subscribe(
    server: &TestServer,
    connect: &Value,
    next: &mut impl AsyncNext,
    id: u32,
    channel: &str,
) -> Value {
    let cmd = json!({"id": id, "subscribe": {"channel": channel}}).to_string();
    let status = emulate(
        server,
        connect["session"].as_str().unwrap(),
        connect["node"].as_str().unwrap(),
        &cmd,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let reply = next.next_value("subscribe reply").await;
    assert_eq!(reply["id"], json!(id), "{reply}");
    assert!(reply["subscribe"].is_object(), "subscribe failed: {reply}");
    reply["subscribe"].clone()
}

/// The next non-ping message of a bidirectional JSON stream, whatever its framing.
trait AsyncNext {
    async fn next_value(&mut self, what: &str) -> Value;
}

impl AsyncNext for Lines {
    async fn next_value(&mut self, what: &str) -> Value {
        self.expect_no_presence(what).await
    }
}

impl AsyncNext for Events {
    async fn next_value(&mut self, what: &str) -> Value {
        loop {
            let e = self.next(what).await;
            assert!(e.id.is_none(), "bidirectional SSE events carry no id");
            if !is_join_leave(&e.data) {
                return e.data;
            }
        }
    }
}

async fn node_publish(node: &Node, channel: &str, data: Value) -> u64 {
    let outcome = node
        .publish(
            channel,
            PublishParams {
                data: RawJson::from_json_str(&data.to_string()).expect("json"),
                ..Default::default()
            },
        )
        .await
        .expect("publish");
    outcome.position.map(|p| p.offset).unwrap_or(0)
}

fn offsets(pubs: &Value) -> Vec<u64> {
    pubs.as_array()
        .unwrap_or_else(|| panic!("publications array: {pubs}"))
        .iter()
        .map(|p| p["offset"].as_u64().expect("offset"))
        .collect()
}

fn datas(pubs: &Value) -> Vec<Value> {
    pubs.as_array()
        .unwrap_or_else(|| panic!("publications array: {pubs}"))
        .iter()
        .map(|p| p["data"].clone())
        .collect()
}

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

fn sse_url(server: &TestServer, path: &str, connect: &Value) -> String {
    let mut url = reqwest::Url::parse(&format!("{}{path}", server.http_url())).unwrap();
    url.query_pairs_mut()
        .append_pair("cf_connect", &connect.to_string());
    url.to_string()
}

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
// Long-polling and polling
// ---------------------------------------------------------------------------------------------

async fn poll(server: &TestServer, path: &str, query: &[(&str, String)]) -> (StatusCode, Value) {
    let resp = http()
        .get(format!("{}{path}", server.http_url()))
        .query(query)
        .send()
        .await
        .expect("poll request");
    let status = resp.status();
    (status, resp.json().await.expect("JSON answer"))
}

fn position(answer: &Value) -> (u64, String) {
    (
        answer["offset"].as_u64().expect("offset"),
        answer["epoch"].as_str().expect("epoch").to_owned(),
    )
}

#[tokio::test]
async fn long_poll_position_hold_reload_and_poll() {
    let server = TestServer::start().await;
    let ch = "chat:lp".to_string();
    let (status, first) = poll(&server, "/connection/long_poll", &[("channel", ch.clone())]).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["publications"], json!([]));
    assert_eq!(first["reload"], json!(false));
    let (offset, epoch) = position(&first);
    assert_eq!(offset, 0);

    // Held until a publication arrives 300 ms later.
    let node = server.node().clone();
    let publisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        node_publish(&node, "chat:lp", json!({"n": 1})).await
    });
    let started = tokio::time::Instant::now();
    let (status, held) = poll(
        &server,
        "/connection/long_poll",
        &[
            ("channel", ch.clone()),
            ("offset", offset.to_string()),
            ("epoch", epoch.clone()),
            ("timeout", "2".into()),
        ],
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{held}");
    assert_eq!(publisher.await.unwrap(), 1);
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "answered when the publication arrived, took {took:?}"
    );
    assert_eq!(datas(&held["publications"]), vec![json!({"n": 1})]);
    assert_eq!(position(&held), (1, epoch.clone()), "the next offset");

    // Nothing new: held ~1 s and answered empty with the same position.
    let started = tokio::time::Instant::now();
    let (status, empty) = poll(
        &server,
        "/connection/long_poll",
        &[
            ("channel", ch.clone()),
            ("offset", "1".into()),
            ("epoch", epoch.clone()),
            ("timeout", "1".into()),
        ],
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "held for the timeout, took {took:?}"
    );
    assert_eq!(empty["publications"], json!([]));
    assert_eq!(position(&empty), (1, epoch.clone()));

    // Missed publications are answered at once.
    node_publish(server.node(), "chat:lp", json!({"n": 2})).await;
    node_publish(server.node(), "chat:lp", json!({"n": 3})).await;
    let started = tokio::time::Instant::now();
    let (_, caught_up) = poll(
        &server,
        "/connection/long_poll",
        &[
            ("channel", ch.clone()),
            ("offset", "1".into()),
            ("epoch", epoch.clone()),
            ("timeout", "5".into()),
        ],
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(offsets(&caught_up["publications"]), vec![2, 3]);
    assert_eq!(position(&caught_up), (3, epoch.clone()));

    // A wrong epoch: reload with the current position.
    let (status, reload) = poll(
        &server,
        "/connection/long_poll",
        &[
            ("channel", ch.clone()),
            ("offset", "1".into()),
            ("epoch", "not-the-epoch".into()),
            ("timeout", "2".into()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reload["reload"], json!(true), "{reload}");
    assert_eq!(position(&reload), (3, epoch.clone()));

    // /connection/poll answers at once even with a timeout asked for.
    let started = tokio::time::Instant::now();
    let (status, polled) = poll(
        &server,
        "/connection/poll",
        &[
            ("channel", ch.clone()),
            ("offset", "3".into()),
            ("epoch", epoch.clone()),
            ("timeout", "5".into()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(700));
    assert_eq!(polled["publications"], json!([]));
    assert_eq!(position(&polled), (3, epoch.clone()));
    let (_, polled) = poll(
        &server,
        "/connection/poll",
        &[
            ("channel", ch.clone()),
            ("offset", "2".into()),
            ("epoch", epoch.clone()),
        ],
    )
    .await;
    assert_eq!(datas(&polled["publications"]), vec![json!({"n": 3})]);
    server.stop().await;
}

#[tokio::test]
async fn long_poll_errors_and_concurrency_limit() {
    let server = TestServer::start_with(|c| c.long_poll.max_concurrent_per_client = 2).await;
    let lp = "/connection/long_poll";
    let error_code = |v: &Value| v["error"]["code"].as_u64();

    let (status, v) = poll(&server, lp, &[("channel", "nope:x".into())]).await;
    assert_eq!(
        (status, error_code(&v)),
        (StatusCode::NOT_FOUND, Some(102)),
        "{v}"
    );
    let (status, v) = poll(&server, lp, &[("channel", "news".into())]).await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(error_code(&v), Some(108), "a channel without history: {v}");
    let (status, v) = poll(&server, lp, &[("channel", "secure:x".into())]).await;
    assert_eq!(
        (status, error_code(&v)),
        (StatusCode::FORBIDDEN, Some(103)),
        "{v}"
    );

    let (_, first) = poll(&server, lp, &[("channel", "chat:limit".into())]).await;
    let (offset, epoch) = position(&first);
    let held = || {
        let url = format!("{}{lp}", server.http_url());
        let query = [
            ("channel", "chat:limit".to_string()),
            ("offset", offset.to_string()),
            ("epoch", epoch.clone()),
            ("timeout", "2".into()),
        ];
        async move {
            let resp = http().get(url).query(&query).send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let a = tokio::spawn(held());
    let b = tokio::spawn(held());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, v) = held().await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(error_code(&v), Some(111));
    for h in [a, b] {
        let (status, v) = h.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    // The permits are released: a new long-poll is accepted.
    let (status, _) = poll(
        &server,
        "/connection/poll",
        &[("channel", "chat:limit".into())],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// A streaming client that stops reading
// ---------------------------------------------------------------------------------------------

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Reads from a raw socket until `needle` was seen; returns everything read.
async fn read_until(sock: &mut tokio::net::TcpStream, seen: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(needle) {
        let n = tokio::time::timeout(WAIT, sock.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}"))
            .expect("read");
        assert!(n > 0, "connection closed before {needle:?}");
        seen.extend_from_slice(&buf[..n]);
    }
}

fn json_field(text: &str, key: &str) -> String {
    let start = text
        .find(&format!("\"{key}\":\""))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        + key.len()
        + 4;
    let len = text[start..].find('"').expect("closing quote");
    text[start..start + len].to_owned()
}

/// A slow reader: a raw HTTP/1.1 `http_stream` subscribed to `channel` whose client stopped
/// reading after the subscribe reply.
struct SlowReader {
    sock: tokio::net::TcpStream,
}

impl SlowReader {
    async fn open(server: &TestServer, channel: &str) -> SlowReader {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut sock = socket.connect(server.addr).await.expect("connect");
        let body = r#"{"id":1,"connect":{}}"#;
        let request = format!(
            "POST /connection/http_stream HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            server.addr,
            body.len()
        );
        sock.write_all(request.as_bytes()).await.unwrap();
        let mut seen = Vec::new();
        read_until(&mut sock, &mut seen, "\"node\":\"").await;
        read_until(&mut sock, &mut seen, "}}").await;
        let text = String::from_utf8_lossy(&seen).into_owned();
        let (session, node) = (json_field(&text, "session"), json_field(&text, "node"));
        let cmd = json!({"id": 2, "subscribe": {"channel": channel}}).to_string();
        assert_eq!(
            emulate(server, &session, &node, &cmd).await,
            StatusCode::NO_CONTENT
        );
        read_until(&mut sock, &mut seen, "\"id\":2").await;
        SlowReader { sock }
    }
}

/// Publishes `n` publications of ~8 KiB to `channel`, a few at a time so that a reading
/// WebSocket subscriber keeps up with a 64 KiB queue.
async fn flood(node: &Node, channel: &str, n: u64) {
    let payload = "x".repeat(8 * 1024);
    for i in 0..n {
        node_publish(node, channel, json!({"p": payload})).await;
        if i % 4 == 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Reads a WebSocket subscriber's publications of `channel` until `{"last":true}`.
fn count_until_last(
    mut c: pushwire_test_support::WsClient,
    channel: &'static str,
) -> tokio::task::JoinHandle<(u64, pushwire_test_support::WsClient)> {
    tokio::spawn(async move {
        let mut got = 0u64;
        loop {
            let p = c.next_publication(channel).await;
            if p["data"]["last"] == json!(true) {
                return (got, c);
            }
            got += 1;
        }
    })
}

/// 2000 publications of 8 KiB (16 MiB, far more than the socket buffers hold).
const FLOOD: u64 = 2000;

#[tokio::test]
async fn http_stream_slow_reader_is_closed_with_3008() {
    let server = TestServer::start_with(|c| c.client.queue_max_size = 64 * 1024).await;
    let channel = "slow";
    let (mut healthy, _) = pushwire_test_support::WsClient::connected(&server.ws_url(), None).await;
    healthy
        .command(json!({"subscribe": {"channel": channel}}))
        .await;
    let baseline = server.node().info().num_clients;
    let mut slow = SlowReader::open(&server, channel).await;
    assert_eq!(server.node().info().num_clients, baseline + 1);

    let reader = count_until_last(healthy, channel);
    let rss_before = rss_bytes();
    flood(server.node(), channel, FLOOD).await;
    let rss_growth = rss_bytes().saturating_sub(rss_before);
    eprintln!(
        "RSS grew {} KiB while {} KiB went to a client that does not read",
        rss_growth / 1024,
        FLOOD * 8
    );
    assert!(
        rss_growth < 12 * 1024 * 1024,
        "memory grew by {} KiB while a client did not read",
        rss_growth / 1024
    );

    // The healthy subscriber got every publication and is still served.
    node_publish(server.node(), channel, json!({"last": true})).await;
    let (got, mut healthy) = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the healthy reader finishes")
        .unwrap();
    assert_eq!(got, FLOOD, "the healthy subscriber got every publication");
    let r = healthy
        .command(json!({"publish": {"channel": channel, "data": {"after": 1}}}))
        .await;
    assert_eq!(r["publish"], json!({}));
    assert_eq!(
        healthy.next_publication(channel).await["data"],
        json!({"after": 1})
    );

    // Once it reads again: part of the flood, then the 3008 disconnect push and the end of the
    // response (the chunked terminator; the HTTP/1.1 connection itself may stay open).
    let mut rest = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !rest.ends_with(b"\r\n0\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, slow.sock.read(&mut buf))
            .await
            .expect("the slow stream ends")
            .expect("read");
        assert!(n > 0, "connection closed without ending the response");
        rest.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&rest);
    let received = text.matches("\"pub\"").count() as u64;
    assert!(
        received < FLOOD,
        "the slow client was cut off, got {received}"
    );
    let tail = &text[text.len().saturating_sub(200)..];
    assert!(
        tail.contains(r#"{"push":{"disconnect":{"code":3008,"reason":"slow"}}}"#),
        "the stream ends with a 3008 disconnect push: {tail:?}"
    );
    eventually_async("the slow client is removed", || {
        server.node().info().num_clients == baseline
    })
    .await;
    let metrics = http()
        .get(format!("{}/metrics", server.http_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("pushwire_slow_disconnects_total ") && !l.ends_with(" 0")),
        "the slow disconnect is counted: {}",
        metrics
            .lines()
            .find(|l| l.starts_with("pushwire_slow_disconnects_total"))
            .unwrap_or("no pushwire_slow_disconnects_total")
    );
    server.stop().await;
}

/// The slow client must be removed (unsubscribed, unregistered, its connection closed) when its
/// queue overflows, not only once its peer reads again: a peer that never reads must not stay a
/// ghost client (counted, in the hub, in presence) for as long as its TCP connection lives.
#[tokio::test]
async fn http_stream_slow_reader_is_removed_while_not_reading() {
    let server = TestServer::start_with(|c| c.client.queue_max_size = 64 * 1024).await;
    let channel = "slow2";
    let baseline = server.node().info().num_clients;
    let _slow = SlowReader::open(&server, channel).await;
    assert_eq!(server.node().info().num_clients, baseline + 1);
    flood(server.node(), channel, FLOOD).await;
    eventually_async("the slow client is removed without reading", || {
        server.node().info().num_clients == baseline
    })
    .await;
    server.stop().await;
}

/// Polls `cond` every 20 ms until it holds; panics naming `what` after 5 s.
async fn eventually_async(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
