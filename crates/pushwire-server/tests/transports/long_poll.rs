//! Long-polling and polling, and a streaming client that stops reading (slow → 3008, released
//! at once).

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

use pushwire_test_support::sdk::eventually as eventually_async;
