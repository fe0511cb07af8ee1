//! Shared helpers of the transports test files (HTTP-streaming, SSE, emulation, uni, long-poll).
#![allow(dead_code, unused_imports, missing_docs, async_fn_in_trait)]

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
pub const WAIT: Duration = Duration::from_secs(5);

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client")
}

/// Reads one more body chunk within [`WAIT`]; `None` at the end of the body.
pub async fn chunk(resp: &mut reqwest::Response) -> Option<bytes::Bytes> {
    tokio::time::timeout(WAIT, resp.chunk())
        .await
        .expect("timed out waiting for stream data")
        .unwrap_or_default()
}

/// A newline-delimited JSON stream (HTTP-streaming, bidirectional or unidirectional).
pub struct Lines {
    pub resp: reqwest::Response,
    pub buf: BytesMut,
}

impl Lines {
    pub fn new(resp: reqwest::Response) -> Lines {
        Lines {
            resp,
            buf: BytesMut::new(),
        }
    }

    /// The next message, pings included; `None` when the stream ended.
    pub async fn next_raw(&mut self) -> Option<Value> {
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
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let m = self.next_raw().await?;
            if m != json!({}) {
                return Some(m);
            }
        }
    }

    /// The next message, which must exist.
    pub async fn expect(&mut self, what: &str) -> Value {
        self.next()
            .await
            .unwrap_or_else(|| panic!("stream ended while waiting for {what}"))
    }

    /// The next message that is not a join or leave push (the `chat:` namespace sends them).
    pub async fn expect_no_presence(&mut self, what: &str) -> Value {
        loop {
            let m = self.expect(what).await;
            if !is_join_leave(&m) {
                return m;
            }
        }
    }
}

/// Whether `m` is a join or leave push, wrapped (bidirectional) or bare (unidirectional).
pub fn is_join_leave(m: &Value) -> bool {
    let push = m.get("push").unwrap_or(m);
    push.get("join").is_some() || push.get("leave").is_some()
}

/// One SSE event.
#[derive(Debug)]
pub struct Event {
    pub id: Option<String>,
    pub data: Value,
}

/// An SSE stream (`text/event-stream`) whose body must start with `\r\n`.
pub struct Events {
    pub resp: reqwest::Response,
    pub buf: String,
    pub prefix_checked: bool,
}

impl Events {
    pub fn new(resp: reqwest::Response) -> Events {
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
    pub async fn next_raw(&mut self) -> Option<Event> {
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
            if self.prefix_checked
                && let Some(pos) = self.buf.find("\n\n")
            {
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
    pub async fn next(&mut self, what: &str) -> Event {
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
pub async fn emulate(server: &TestServer, session: &str, node: &str, data: &str) -> StatusCode {
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
pub async fn http_stream_connect(server: &TestServer) -> (Lines, Value) {
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
pub async fn emulated_subscribe(
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
pub trait AsyncNext {
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

pub async fn node_publish(node: &Node, channel: &str, data: Value) -> u64 {
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

pub fn offsets(pubs: &Value) -> Vec<u64> {
    pubs.as_array()
        .unwrap_or_else(|| panic!("publications array: {pubs}"))
        .iter()
        .map(|p| p["offset"].as_u64().expect("offset"))
        .collect()
}

pub fn datas(pubs: &Value) -> Vec<Value> {
    pubs.as_array()
        .unwrap_or_else(|| panic!("publications array: {pubs}"))
        .iter()
        .map(|p| p["data"].clone())
        .collect()
}

pub fn sse_url(server: &TestServer, path: &str, connect: &Value) -> String {
    let mut url = reqwest::Url::parse(&format!("{}{path}", server.http_url())).unwrap();
    url.query_pairs_mut()
        .append_pair("cf_connect", &connect.to_string());
    url.to_string()
}
