//! Done means: after a scripted workload (three WebSocket clients and one unidirectional
//! HTTP-streaming client), `/metrics` reports exactly what the workload did — connections by
//! transport, subscriptions, publications, deliveries, command and API results, and
//! disconnects by code.

use std::time::Duration;

use pushwire_protocol::Disconnect;
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::sdk::eventually;
use pushwire_test_support::{token, TestServer, WsClient};
use serde_json::json;

const CHANNEL: &str = "workload";
const PUBLICATIONS: u64 = 5;

async fn connected_as(server: &TestServer, user: &str) -> WsClient {
    let t = token(json!({"sub": user}));
    let (mut c, _) = WsClient::connected(&server.ws_url(), Some(&t)).await;
    let reply = c.command(json!({"subscribe": {"channel": CHANNEL}})).await;
    assert!(reply["subscribe"].is_object(), "subscribed: {reply}");
    c
}

/// An anonymous unidirectional HTTP-streaming client subscribed to [`CHANNEL`] through
/// `connect.subs`.
async fn uni_stream(server: &TestServer) -> reqwest::Response {
    let resp = reqwest::Client::new()
        .post(format!("{}/connection/uni_http_stream", server.http_url()))
        .json(&json!({"subs": {CHANNEL: {}}}))
        .send()
        .await
        .expect("uni_http_stream");
    assert_eq!(resp.status().as_u16(), 200);
    resp
}

/// Reads the stream until it has seen `n` publication pushes.
async fn read_publications(resp: &mut reqwest::Response, n: usize) {
    let mut text = String::new();
    while text.matches("\"pub\"").count() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .expect("stream chunk in time")
            .expect("stream open")
            .expect("a chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(text.matches("\"pub\"").count(), n, "{text}");
}

#[tokio::test]
async fn counters_equal_the_workload() {
    let server = TestServer::start().await;
    let node = server.node().clone();
    let ws = |name: &str| format!("{name}{{transport=\"websocket\"}}");
    let uni = |name: &str| format!("{name}{{transport=\"uni_http_stream\"}}");

    // Three WebSocket clients, each connected and subscribed, and one stream client.
    let mut a = connected_as(&server, "alice").await;
    let mut b = connected_as(&server, "bob").await;
    let mut c = connected_as(&server, "carol").await;
    let mut d = uni_stream(&server).await;
    eventually("the stream client is connected", || {
        node.registry().counts().0 == 4
    })
    .await;

    let mid = Scrape::of(&server).await;
    assert_eq!(mid.count(&ws("pushwire_connections")), 3);
    assert_eq!(mid.count(&uni("pushwire_connections")), 1);
    assert_eq!(mid.count("pushwire_clients"), 4);
    assert_eq!(mid.count("pushwire_users"), 4, "three users and anonymous");
    assert_eq!(mid.count("pushwire_channels"), 1);
    assert_eq!(mid.count(&ws("pushwire_subscriptions")), 3);
    assert_eq!(mid.count(&uni("pushwire_subscriptions")), 1);

    // Five publications through the server API; every client receives all five.
    for n in 0..PUBLICATIONS {
        server.publish(CHANNEL, json!({ "n": n })).await;
    }
    for client in [&mut a, &mut b, &mut c] {
        for _ in 0..PUBLICATIONS {
            client.next_publication(CHANNEL).await;
        }
    }
    read_publications(&mut d, PUBLICATIONS as usize).await;
    // One command rejected with an error reply: 102 unknown channel.
    let reply = a.command(json!({"subscribe": {"channel": "nope:x"}})).await;
    assert_eq!(reply["error"]["code"], json!(102), "{reply}");

    // Four ways to leave: the peer closes (3000), the API disconnects bob (3503), carol sends
    // garbage (3501), the stream's reader goes away (3000).
    a.stream().close(None).await.expect("close");
    drop(a);
    let (status, body) = server.api("disconnect", json!({"user": "bob"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        b.expect_close().await.0 as u32,
        Disconnect::FORCE_DISCONNECT.code
    );
    c.send_text("{not json").await;
    assert_eq!(
        c.expect_close().await.0 as u32,
        Disconnect::BAD_REQUEST.code
    );
    drop(d);

    eventually("every connection is counted closed", || {
        node.metrics().disconnects.total() == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = Scrape::of(&server).await;

    // Connections by transport.
    assert_eq!(s.count("pushwire_connections_accepted_total"), 4);
    assert_eq!(s.count(&ws("pushwire_connections_opened_total")), 3);
    assert_eq!(s.count(&uni("pushwire_connections_opened_total")), 1);
    assert_eq!(
        s.sum("pushwire_connections_opened_total"),
        4.0,
        "no other transport"
    );
    assert_eq!(s.sum("pushwire_connections"), 0.0);
    assert_eq!(s.count("pushwire_clients"), 0);
    assert_eq!(s.count("pushwire_channels"), 0);
    assert_eq!(s.sum("pushwire_subscriptions"), 0.0);

    // Publications in, deliveries out.
    assert_eq!(s.count("pushwire_publications_total"), PUBLICATIONS);
    assert_eq!(s.count("pushwire_messages_queued_total"), 4 * PUBLICATIONS);
    // Per WebSocket client: the connect and subscribe replies and five publications; alice also
    // got the 102 error reply.
    assert_eq!(
        s.count(&ws("pushwire_messages_delivered_total")),
        3 * (2 + PUBLICATIONS) + 1
    );
    // The stream client: the connect push and five publications.
    assert_eq!(
        s.count(&uni("pushwire_messages_delivered_total")),
        1 + PUBLICATIONS
    );
    assert!(s.count(&ws("pushwire_bytes_delivered_total")) > 3 * PUBLICATIONS * 20);
    assert!(s.count(&uni("pushwire_bytes_delivered_total")) > PUBLICATIONS * 20);
    // Latency is observed once per write that carried a publication: at least once per
    // client, at most once per delivered publication.
    let writes = s.count("pushwire_delivery_latency_seconds_count");
    assert!((4..=4 * PUBLICATIONS).contains(&writes), "{writes} writes");
    assert_eq!(
        s.count("pushwire_delivery_latency_seconds_bucket{le=\"+Inf\"}"),
        writes
    );
    assert!(s.get("pushwire_delivery_latency_seconds_sum") < writes as f64);

    // Client commands by method and code.
    let cmd = |m: &str, code: u32| {
        s.count_or_zero(&format!(
            "pushwire_command_results_total{{method=\"{m}\",code=\"{code}\"}}"
        ))
    };
    // The stream client sent no command: its connect request came with the HTTP request.
    assert_eq!(cmd("connect", 0), 3);
    assert_eq!(cmd("subscribe", 0), 3);
    assert_eq!(cmd("subscribe", 102), 1);
    assert_eq!(s.count("pushwire_commands_total"), 7);
    assert_eq!(s.count("pushwire_command_errors_total"), 1);

    // Server API calls by method and code.
    let api = |m: &str| {
        s.count_or_zero(&format!(
            "pushwire_api_requests_total{{method=\"{m}\",code=\"0\"}}"
        ))
    };
    assert_eq!(api("publish"), PUBLICATIONS);
    assert_eq!(api("disconnect"), 1);
    assert_eq!(
        s.sum("pushwire_api_requests_total"),
        (PUBLICATIONS + 1) as f64
    );

    // Disconnects by code.
    let closed =
        |code: u32| s.count_or_zero(&format!("pushwire_disconnects_total{{code=\"{code}\"}}"));
    assert_eq!(closed(Disconnect::CONNECTION_CLOSED.code), 2);
    assert_eq!(closed(Disconnect::FORCE_DISCONNECT.code), 1);
    assert_eq!(closed(Disconnect::BAD_REQUEST.code), 1);
    assert_eq!(s.sum("pushwire_disconnects_total"), 4.0);
    assert_eq!(s.count("pushwire_bad_request_disconnects_total"), 1);
    assert_eq!(s.count("pushwire_slow_disconnects_total"), 0);
    server.stop().await;
}

#[tokio::test]
async fn api_requests_refused_before_a_method_are_counted_by_reason() {
    let server = TestServer::start_with(|c| c.http_api.max_body_size = 1024).await;
    let http = reqwest::Client::new();
    let post = |path: &str, key: &str, body: String| {
        http.post(format!("{}/api/{path}", server.http_url()))
            .header("x-api-key", key)
            .body(body)
            .send()
    };
    let key = pushwire_test_support::API_KEY;
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(post("info", "wrong", "{}".into()).await.unwrap()),
        401
    );
    assert_eq!(status(post("info", "", "{}".into()).await.unwrap()), 401);
    assert_eq!(
        status(post("publish", key, "{not json".into()).await.unwrap()),
        400
    );
    assert_eq!(
        status(post("no_such_method", key, "{}".into()).await.unwrap()),
        404
    );
    let big = format!("{{\"channel\":\"x\",\"data\":\"{}\"}}", "a".repeat(4096));
    assert_eq!(status(post("publish", key, big).await.unwrap()), 413);
    // Params of the wrong shape reach the method: counted as an API call, not a refusal.
    assert_eq!(
        status(
            post("publish", key, "{\"channel\":5}".into())
                .await
                .unwrap()
        ),
        400
    );

    let s = Scrape::of(&server).await;
    let refused = |reason: &str| {
        s.count_or_zero(&format!(
            "pushwire_api_refused_total{{reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(refused("unauthorized"), 2);
    assert_eq!(refused("bad_request"), 1);
    assert_eq!(refused("unknown_method"), 1);
    assert_eq!(refused("too_large"), 1);
    assert_eq!(
        s.sum("pushwire_api_requests_total"),
        1.0,
        "only the call that reached publish"
    );
    server.stop().await;
}
