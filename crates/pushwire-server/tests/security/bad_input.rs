//! Misbehaving clients end to end: protocol violations, bad channels, missing permissions,
//! bad credentials, oversized frames, missing pongs, stale and slow connections. Every test
//! asserts the exact outcome (error reply or close code and reason) and then checks that the
//! server keeps serving everyone else.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pushwire_core::metrics::Metrics;
use pushwire_core::node::PublishParams;
use pushwire_core::Client;
use pushwire_protocol::RawJson;
use pushwire_server::ServerConfig;
use pushwire_test_support::{now, token, TestServer, WsClient};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

const BAD_REQUEST: (u16, &str) = (3501, "bad request");

/// Publishes `data` to `channel` through the node (the HTTP API is tested elsewhere).
async fn publish(server: &TestServer, channel: &str, data: Value) {
    let params = PublishParams {
        data: RawJson::from_json_str(&data.to_string()).expect("json"),
        ..Default::default()
    };
    server
        .node()
        .publish(channel, params)
        .await
        .expect("publish");
}

/// A client authenticated with a token, so it connects whatever the anonymous settings are.
async fn bystander(server: &TestServer) -> WsClient {
    let t = token(json!({"sub": "bystander"}));
    WsClient::connected(&server.ws_url(), Some(&t)).await.0
}

/// `old` (connected before the misbehaviour) and a fresh connection both subscribe and receive
/// a publication: the server still serves everyone else.
async fn assert_serving(server: &TestServer, mut old: WsClient) {
    let mut fresh = bystander(server).await;
    for c in [&mut old, &mut fresh] {
        let r = c.command(json!({"subscribe": {"channel": "probe"}})).await;
        assert_eq!(r["subscribe"], json!({}), "{r}");
    }
    publish(server, "probe", json!({"still": "serving"})).await;
    for c in [&mut old, &mut fresh] {
        let p = c.next_publication("probe").await;
        assert_eq!(p["data"], json!({"still": "serving"}));
    }
}

/// Opens a socket, connects anonymously, sends `frame` raw and returns the close.
async fn connected_then_send(server: &TestServer, frame: &str) -> (u16, String) {
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    c.send_text(frame).await;
    c.expect_close().await
}

/// A close as `(code, reason)` with a borrowed reason, for comparing with literals.
fn code_reason(close: &(u16, String)) -> (u16, &str) {
    (close.0, close.1.as_str())
}

/// Asserts `reply` is exactly an error reply with `code` and `message` and nothing else.
fn assert_error(reply: &Value, code: u32, message: &str) {
    let obj = reply.as_object().expect("reply is an object");
    assert_eq!(
        reply["error"],
        json!({"code": code, "message": message}),
        "{reply}"
    );
    let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["error", "id"], "{reply}");
}

/// Reads `c` for `how_long`, answering every ping with a pong; returns the number of pongs.
async fn answer_pings(c: &mut WsClient, how_long: Duration) -> usize {
    let deadline = Instant::now() + how_long;
    let mut pongs = 0;
    loop {
        match tokio::time::timeout_at(deadline, c.stream().next()).await {
            Err(_) => return pongs,
            Ok(Some(Ok(Message::Text(t)))) => {
                let pings = t.as_str().lines().filter(|l| l.trim() == "{}").count();
                for _ in 0..pings {
                    c.stream()
                        .send(Message::Text("{}".into()))
                        .await
                        .expect("send pong");
                    pongs += 1;
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("connection ended while answering pings: {other:?}"),
        }
    }
}

fn fast_pings(c: &mut ServerConfig) {
    c.client.ping_interval = Duration::from_secs(1);
    c.client.pong_timeout = Duration::from_millis(500);
}

// ---- protocol violations: close 3501 -------------------------------------------------------

#[tokio::test]
async fn malformed_json_frame_closes_3501() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let close = connected_then_send(&server, "{\"id\":2,\"subscribe\":").await;
    assert_eq!(code_reason(&close), BAD_REQUEST);
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn malformed_json_before_connect_closes_3501() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let mut c = WsClient::open(&server.ws_url()).await;
    c.send_text("not json at all").await;
    assert_eq!(code_reason(&c.expect_close().await), BAD_REQUEST);
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn empty_frame_closes_3501() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let close = connected_then_send(&server, "\n").await;
    assert_eq!(code_reason(&close), BAD_REQUEST);
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn unknown_command_closes_3501() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let close = connected_then_send(&server, r#"{"id":1,"foo":{}}"#).await;
    assert_eq!(code_reason(&close), BAD_REQUEST);
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn command_without_id_closes_3501() {
    // id 0 without `send` is a pong; with no ping outstanding it is a violation (§1.7).
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let close = connected_then_send(&server, r#"{"subscribe":{"channel":"x"}}"#).await;
    assert_eq!(code_reason(&close), BAD_REQUEST);
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn command_before_connect_closes_3501() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let mut c = WsClient::open(&server.ws_url()).await;
    c.send_text(r#"{"id":1,"subscribe":{"channel":"news"}}"#)
        .await;
    assert_eq!(code_reason(&c.expect_close().await), BAD_REQUEST);
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn second_connect_closes_3501() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let close = connected_then_send(&server, r#"{"id":2,"connect":{}}"#).await;
    assert_eq!(code_reason(&close), BAD_REQUEST);
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn empty_channel_in_subscribe_closes_3501() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let close = connected_then_send(&server, r#"{"id":2,"subscribe":{"channel":""}}"#).await;
    assert_eq!(code_reason(&close), BAD_REQUEST);
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn empty_channel_in_publish_closes_3501() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let close = connected_then_send(
        &server,
        r#"{"id":2,"publish":{"channel":"","data":{"a":1}}}"#,
    )
    .await;
    assert_eq!(code_reason(&close), BAD_REQUEST);
    assert_serving(&server, other).await;
}

// ---- oversized frames: close 1009 -----------------------------------------------------------

/// A publish command padded to exactly `len` bytes.
fn publish_frame(len: usize) -> String {
    let head = r#"{"id":7,"publish":{"channel":"big","data":{"pad":""#;
    let tail = r#""}}}"#;
    let pad = "x".repeat(len - head.len() - tail.len());
    let frame = format!("{head}{pad}{tail}");
    assert_eq!(frame.len(), len);
    frame
}

#[tokio::test]
async fn oversized_frame_closes_1009() {
    let server = TestServer::start_with(|c| c.websocket.message_size_limit = 2048).await;
    let other = bystander(&server).await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    // Exactly the limit is fine.
    c.command(json!({"subscribe": {"channel": "big"}})).await;
    c.send_text(&publish_frame(2048)).await;
    let r = c.reply(7).await;
    assert_eq!(r["publish"], json!({}), "{r}");
    // Over the limit closes with 1009.
    c.send_text(&publish_frame(4096)).await;
    let (code, _reason) = c.expect_close().await;
    assert_eq!(code, 1009);
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn oversized_fragmented_message_closes_1009() {
    // Each frame is under the limit; the message they make is not.
    let server = TestServer::start_with(|c| c.websocket.message_size_limit = 2048).await;
    let other = bystander(&server).await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    let text = publish_frame(4096).into_bytes();
    let (first, rest) = text.split_at(1500);
    let (middle, last) = rest.split_at(1500);
    let frames = [
        Frame::message(first.to_vec(), OpCode::Data(Data::Text), false),
        Frame::message(middle.to_vec(), OpCode::Data(Data::Continue), false),
        Frame::message(last.to_vec(), OpCode::Data(Data::Continue), true),
    ];
    for f in frames {
        // The server may close before the last fragment arrives.
        if c.stream().send(Message::Frame(f)).await.is_err() {
            break;
        }
    }
    let (code, _reason) = c.expect_close().await;
    assert_eq!(code, 1009);
    assert_serving(&server, other).await;
}

// ---- error replies: the connection stays open -----------------------------------------------

#[tokio::test]
async fn duplicate_subscribe_gets_105_and_connection_stays_usable() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = c.command(json!({"subscribe": {"channel": "dup"}})).await;
    assert_eq!(r["subscribe"], json!({}), "{r}");
    let r = c.command(json!({"subscribe": {"channel": "dup"}})).await;
    assert_error(&r, 105, "already subscribed");
    // Still open and still subscribed (once: one publication arrives once).
    let r = c
        .command(json!({"publish": {"channel": "dup", "data": {"n": 1}}}))
        .await;
    assert_eq!(r["publish"], json!({}), "{r}");
    assert_eq!(c.next_publication("dup").await["data"], json!({"n": 1}));
    assert!(c.silent_for(Duration::from_millis(200)).await);
    let r = c.command(json!({"subscribe": {"channel": "dup2"}})).await;
    assert_eq!(r["subscribe"], json!({}), "{r}");
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn unknown_namespace_gets_102() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = c.command(json!({"subscribe": {"channel": "nope:x"}})).await;
    assert_error(&r, 102, "unknown channel");
    let r = c
        .command(json!({"publish": {"channel": "nope:x", "data": {"n": 1}}}))
        .await;
    assert_error(&r, 102, "unknown channel");
    let r = c.command(json!({"subscribe": {"channel": "ok"}})).await;
    assert_eq!(r["subscribe"], json!({}), "{r}");
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn channel_longer_than_255_gets_107() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = c
        .command(json!({"subscribe": {"channel": "a".repeat(256)}}))
        .await;
    assert_error(&r, 107, "bad request");
    // 255 is still allowed.
    let r = c
        .command(json!({"subscribe": {"channel": "a".repeat(255)}}))
        .await;
    assert_eq!(r["subscribe"], json!({}), "{r}");
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn subscribe_without_permission_gets_103() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = c
        .command(json!({"subscribe": {"channel": "secure:x"}}))
        .await;
    assert_error(&r, 103, "permission denied");
    // Not subscribed after the refusal.
    publish(&server, "secure:x", json!({"n": 1})).await;
    assert!(c.silent_for(Duration::from_millis(200)).await);
    let r = c.command(json!({"subscribe": {"channel": "ok"}})).await;
    assert_eq!(r["subscribe"], json!({}), "{r}");
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn publish_without_permission_gets_103() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let (mut watcher, _) = WsClient::connected(&server.ws_url(), None).await;
    watcher
        .command(json!({"subscribe": {"channel": "chat:room"}}))
        .await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    // `secure:` allows nothing.
    let r = c
        .command(json!({"publish": {"channel": "secure:x", "data": {"n": 1}}}))
        .await;
    assert_error(&r, 103, "permission denied");
    // `chat:` allows publishing for subscribers only.
    let r = c
        .command(json!({"publish": {"channel": "chat:room", "data": {"n": 2}}}))
        .await;
    assert_error(&r, 103, "permission denied");
    // Once subscribed it may publish; the watcher gets that publication first (the refused
    // ones were never delivered).
    c.command(json!({"subscribe": {"channel": "chat:room"}}))
        .await;
    let r = c
        .command(json!({"publish": {"channel": "chat:room", "data": {"n": 3}}}))
        .await;
    assert_eq!(r["publish"], json!({}), "{r}");
    assert_eq!(
        watcher.next_publication("chat:room").await["data"],
        json!({"n": 3})
    );
    assert_serving(&server, other).await;
}

// ---- pings and pongs ------------------------------------------------------------------------

#[tokio::test]
async fn client_that_never_pongs_is_closed_3012() {
    let server = TestServer::start_with(fast_pings).await;
    let (mut victim, connect) = WsClient::connected(&server.ws_url(), None).await;
    assert_eq!(connect["ping"], json!(1));
    assert_eq!(connect["pong"], json!(true));
    let connected_at = Instant::now();
    let mut good = bystander(&server).await;
    let (victim_side, pongs) = tokio::join!(
        async {
            let ping = victim.read_one().await.expect("a ping before the close");
            assert_eq!(ping, json!({}));
            let pinged_at = Instant::now();
            let close = victim.expect_close().await;
            (pinged_at, Instant::now(), close)
        },
        answer_pings(&mut good, Duration::from_millis(2600)),
    );
    let (pinged_at, closed_at, close) = victim_side;
    assert_eq!(code_reason(&close), (3012, "no pong"));
    // First ping between interval/2 and interval; the close pong_timeout after it.
    let first_ping = pinged_at - connected_at;
    assert!(
        first_ping >= Duration::from_millis(400) && first_ping <= Duration::from_millis(1300),
        "first ping after {first_ping:?}"
    );
    let waited = closed_at - pinged_at;
    assert!(
        waited >= Duration::from_millis(400) && waited <= Duration::from_millis(1200),
        "closed {waited:?} after the ping"
    );
    // The client that answered survived several pings.
    assert!(pongs >= 2, "only {pongs} pings answered");
    assert_serving(&server, good).await;
}

#[tokio::test]
async fn unsolicited_pong_closes_3501() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let close = connected_then_send(&server, "{}").await;
    assert_eq!(code_reason(&close), BAD_REQUEST);
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn second_pong_for_one_ping_closes_3501() {
    let server = TestServer::start_with(fast_pings).await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    assert_eq!(c.read_one().await.expect("ping"), json!({}));
    c.send_text("{}").await;
    c.send_text("{}").await;
    assert_eq!(code_reason(&c.expect_close().await), BAD_REQUEST);
    // Connected after the victim's close so that it needs no pongs for the check.
    let other = bystander(&server).await;
    assert_serving(&server, other).await;
}

// ---- stale connections ----------------------------------------------------------------------

#[tokio::test]
async fn no_connect_within_stale_close_delay_closes_3502() {
    let server =
        TestServer::start_with(|c| c.client.stale_close_delay = Duration::from_millis(300)).await;
    let other = bystander(&server).await;
    let opened = Instant::now();
    let mut c = WsClient::open(&server.ws_url()).await;
    let close = c.expect_close().await;
    let after = opened.elapsed();
    assert_eq!(code_reason(&close), (3502, "stale"));
    assert!(
        after >= Duration::from_millis(250) && after < Duration::from_millis(1500),
        "stale close after {after:?}"
    );
    // Connected clients are not stale.
    assert_serving(&server, other).await;
}

// ---- credentials ----------------------------------------------------------------------------

#[tokio::test]
async fn connect_without_token_when_anonymous_not_allowed_closes_3501() {
    let server =
        TestServer::start_with(|c| c.client.allow_anonymous_connect_without_token = false).await;
    let other = bystander(&server).await;
    let mut c = WsClient::open(&server.ws_url()).await;
    c.send_text(r#"{"id":1,"connect":{}}"#).await;
    assert_eq!(code_reason(&c.expect_close().await), BAD_REQUEST);
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn connect_with_invalid_token_closes_3500() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "1", "exp": now() + 60}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret"),
    )
    .expect("encode");
    for bad in [wrong_key.as_str(), "not-a-jwt"] {
        let mut c = WsClient::open(&server.ws_url()).await;
        c.send_text(&json!({"id": 1, "connect": {"token": bad}}).to_string())
            .await;
        assert_eq!(
            code_reason(&c.expect_close().await),
            (3500, "invalid token")
        );
    }
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn connect_with_expired_token_gets_109_then_commands_close_3501() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let expired = token(json!({"sub": "1", "exp": now() - 10}));
    let mut c = WsClient::open(&server.ws_url()).await;
    let r = c.command(json!({"connect": {"token": expired}})).await;
    assert_error(&r, 109, "token expired");
    // The connection is unusable now.
    c.send_text(r#"{"id":2,"subscribe":{"channel":"news"}}"#)
        .await;
    assert_eq!(code_reason(&c.expect_close().await), BAD_REQUEST);
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn failed_connect_skips_the_rest_of_its_frame() {
    // A connect that fails stops processing of the rest of that frame (§1.7): the batched
    // subscribe is neither answered nor treated as a violation; the stale timer ends it.
    let server =
        TestServer::start_with(|c| c.client.stale_close_delay = Duration::from_millis(300)).await;
    let other = bystander(&server).await;
    let expired = token(json!({"sub": "1", "exp": now() - 10}));
    let mut c = WsClient::open(&server.ws_url()).await;
    let frame = format!(
        "{}\n{}",
        json!({"id": 1, "connect": {"token": expired}}),
        json!({"id": 2, "subscribe": {"channel": "news"}})
    );
    c.send_text(&frame).await;
    let r = c.read_one().await.expect("connect reply");
    assert_error(&r, 109, "token expired");
    assert_eq!(code_reason(&c.expect_close().await), (3502, "stale"));
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn send_without_async_handler_closes_3508() {
    let server = TestServer::start().await;
    let other = bystander(&server).await;
    let close = connected_then_send(&server, r#"{"send":{"data":{"a":1}}}"#).await;
    assert_eq!(code_reason(&close), (3508, "not available"));
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn expired_token_then_silence_closes_3502() {
    let server =
        TestServer::start_with(|c| c.client.stale_close_delay = Duration::from_millis(300)).await;
    let other = bystander(&server).await;
    let expired = token(json!({"sub": "1", "exp": now() - 10}));
    let mut c = WsClient::open(&server.ws_url()).await;
    let r = c.command(json!({"connect": {"token": expired}})).await;
    assert_error(&r, 109, "token expired");
    assert_eq!(code_reason(&c.expect_close().await), (3502, "stale"));
    assert_serving(&server, other).await;
}

// ---- slow readers: close 3008 ---------------------------------------------------------------

fn small_queue_long_write_timeout(c: &mut ServerConfig) {
    c.client.queue_max_size = 64 * 1024;
    c.websocket.write_timeout = Duration::from_secs(10);
}

/// Connects a client as user `victim`, subscribes it to `flood`, and returns it with its
/// session on the node.
async fn slow_victim(server: &TestServer) -> (WsClient, Arc<Client>) {
    let t = token(json!({"sub": "victim"}));
    let (mut victim, _) = WsClient::connected(&server.ws_url(), Some(&t)).await;
    let r = victim
        .command(json!({"subscribe": {"channel": "flood"}}))
        .await;
    assert_eq!(r["subscribe"], json!({}), "{r}");
    let mut sessions = server.node().registry().user_clients("victim");
    assert_eq!(sessions.len(), 1);
    (victim, sessions.pop().expect("one session"))
}

/// Publishes ~8 KiB messages to `flood` while the victim does not read, until the TCP buffers
/// fill and its outbox overflows (closed with 3008).
async fn flood_until_closed(server: &TestServer, session: &Client) {
    let data =
        RawJson::from_json_str(&json!({"pad": "x".repeat(8 * 1024)}).to_string()).expect("json");
    let mut published = 0usize;
    while session.outbox().closed().is_none() {
        assert!(
            published < 20_000,
            "outbox never overflowed after {published} publications"
        );
        // Publish only while the writer is stuck or the queue has room, so that the
        // overflow comes from a full socket, not from outpacing a writer that can write.
        let patience = Instant::now() + Duration::from_millis(100);
        while session.outbox().queued_bytes() > 32 * 1024 && Instant::now() < patience {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(session.outbox().queued_bytes() <= 64 * 1024);
        server
            .node()
            .publish(
                "flood",
                PublishParams {
                    data: data.clone(),
                    ..Default::default()
                },
            )
            .await
            .expect("publish");
        published += 1;
    }
    assert_eq!(
        session.outbox().closed().map(|d| d.code),
        Some(3008),
        "closed for another reason"
    );
    // Well past what 64 KiB of queue holds: the socket buffers filled first.
    assert!(published > 64, "overflowed after {published} publications");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_closed_3008() {
    let server = TestServer::start_with(small_queue_long_write_timeout).await;
    let other = bystander(&server).await;
    let (mut third, _) = WsClient::connected(&server.ws_url(), None).await;
    third
        .command(json!({"subscribe": {"channel": "quiet"}}))
        .await;
    let (mut victim, session) = slow_victim(&server).await;

    flood_until_closed(&server, &session).await;

    // A third client keeps getting publications meanwhile.
    publish(&server, "quiet", json!({"n": 1})).await;
    assert_eq!(
        third.next_publication("quiet").await["data"],
        json!({"n": 1})
    );

    // Reading the victim's socket to the end ends in 3008.
    assert_eq!(code_reason(&victim.expect_close().await), (3008, "slow"));
    // And its session is gone.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !server.node().registry().user_clients("victim").is_empty() {
        assert!(Instant::now() < deadline, "slow client still registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    publish(&server, "quiet", json!({"n": 2})).await;
    assert_eq!(
        third.next_publication("quiet").await["data"],
        json!({"n": 2})
    );
    assert_serving(&server, other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn slow_reader_is_released_without_waiting_for_the_write_timeout() {
    let server = TestServer::start_with(small_queue_long_write_timeout).await;
    let other = bystander(&server).await;
    let (victim, session) = slow_victim(&server).await;
    flood_until_closed(&server, &session).await;
    // The victim still does not read. Its session must be released promptly all the same
    // (Centrifugo closes the client on overflow), not once the blocked write times out.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !server.node().registry().user_clients("victim").is_empty() {
        assert!(
            Instant::now() < deadline,
            "slow client still registered 2s after the overflow"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(victim);
    assert_serving(&server, other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn slow_disconnect_is_counted() {
    let server = TestServer::start_with(small_queue_long_write_timeout).await;
    let other = bystander(&server).await;
    let slow = || Metrics::get(&server.node().metrics().slow_disconnects);
    let before = slow();
    let (mut victim, session) = slow_victim(&server).await;
    flood_until_closed(&server, &session).await;
    assert_eq!(code_reason(&victim.expect_close().await), (3008, "slow"));
    assert_eq!(slow(), before + 1, "slow_disconnects_total not incremented");
    assert_serving(&server, other).await;
}

#[tokio::test]
async fn command_flood_gets_111_and_connection_survives() {
    let server = TestServer::start_with(|c| {
        c.client.command_rate_limit = 10;
        c.client.command_burst = 130;
    })
    .await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    c.command(json!({"subscribe": {"channel": "flood"}})).await;
    let frame: Vec<String> = (100..400)
        .map(|id| json!({"id": id, "publish": {"channel": "flood", "data": {"n": id}}}).to_string())
        .collect();
    c.send_text(&frame.join("\n")).await;
    let mut ok = 0;
    let mut limited = 0;
    for id in 100..400u32 {
        let r = c.reply(id).await;
        if r["publish"].is_object() {
            ok += 1;
        } else {
            assert_eq!(
                r["error"],
                json!({"code": 111, "message": "too many requests", "temporary": true})
            );
            limited += 1;
        }
    }
    assert!(
        (128..=135).contains(&ok),
        "burst of 130 minus connect/subscribe: {ok}"
    );
    assert_eq!(ok + limited, 300);
    // Still connected: after the bucket refills, commands work again.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = c
        .command(json!({"publish": {"channel": "flood", "data": {"again": true}}}))
        .await;
    assert_eq!(r["publish"], json!({}));
    server.stop().await;
}

/// Adversarial finding 8: a 30,000-deep JSON document used to be stored and relayed to every
/// subscriber (whose parsers overflow on it). It is refused where it enters: the client's
/// publish closes 3501 like any undecodable command, the API answers 107, nothing is stored.
#[tokio::test]
async fn json_nested_beyond_the_depth_limit_is_refused() {
    let server = TestServer::start().await;
    let mut watcher = bystander(&server).await;
    let r = watcher
        .command(json!({"subscribe": {"channel": "deep"}}))
        .await;
    assert_eq!(r["subscribe"], json!({}), "{r}");
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let frame = format!(r#"{{"id":2,"publish":{{"channel":"deep","data":{deep}}}}}"#);
    let close = connected_then_send(&server, &frame).await;
    assert_eq!(code_reason(&close), BAD_REQUEST);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/publish", server.http_url()))
        .header("X-API-Key", pushwire_test_support::API_KEY)
        .body(format!(r#"{{"channel":"deep","data":{deep}}}"#))
        .send()
        .await
        .expect("api");
    let body: Value = resp.json().await.expect("json answer");
    assert_eq!(body["error"]["code"], json!(107), "{body}");
    // Deep but within the limit is relayed as it is.
    let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let (status, _) = server
        .api(
            "publish",
            json!({"channel": "deep", "data": serde_json::from_str::<Value>(&ok).unwrap()}),
        )
        .await;
    assert_eq!(status, 200);
    let p = watcher.next_publication("deep").await;
    assert_eq!(p["data"].to_string(), ok, "only the allowed one arrives");
    assert_serving(&server, watcher).await;
}
