//! Done means: after a scripted workload, `/metrics` reports exactly what the workload did —
//! connections by transport, subscriptions, publications, deliveries, command and API results,
//! and disconnects by code.

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

#[tokio::test]
async fn counters_equal_the_workload() {
    let server = TestServer::start().await;
    let ws = |name: &str| format!("{name}{{transport=\"websocket\"}}");

    // Three WebSocket clients, each connected and subscribed.
    let mut a = connected_as(&server, "alice").await;
    let mut b = connected_as(&server, "bob").await;
    let mut c = connected_as(&server, "carol").await;

    let mid = Scrape::of(&server).await;
    assert_eq!(mid.count(&ws("pushwire_connections")), 3);
    assert_eq!(mid.count("pushwire_clients"), 3);
    assert_eq!(mid.count("pushwire_users"), 3);
    assert_eq!(mid.count("pushwire_channels"), 1);
    assert_eq!(mid.count(&ws("pushwire_subscriptions")), 3);

    // Five publications through the server API; every client receives all five.
    for n in 0..PUBLICATIONS {
        server.publish(CHANNEL, json!({ "n": n })).await;
    }
    for client in [&mut a, &mut b, &mut c] {
        for _ in 0..PUBLICATIONS {
            client.next_publication(CHANNEL).await;
        }
    }
    // One command rejected with an error reply: 102 unknown channel.
    let reply = a.command(json!({"subscribe": {"channel": "nope:x"}})).await;
    assert_eq!(reply["error"]["code"], json!(102), "{reply}");

    // Three ways to leave: the peer closes (3000), the API disconnects bob (3503), carol sends
    // garbage (3501).
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

    let node = server.node().clone();
    eventually("every connection is counted closed", || {
        node.metrics().disconnects.total() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = Scrape::of(&server).await;

    // Connections by transport.
    assert_eq!(s.count("pushwire_connections_accepted_total"), 3);
    assert_eq!(s.count(&ws("pushwire_connections_opened_total")), 3);
    assert_eq!(s.count(&ws("pushwire_connections")), 0);
    assert_eq!(
        s.sum("pushwire_connections_opened_total"),
        3.0,
        "no other transport"
    );
    assert_eq!(s.count("pushwire_clients"), 0);
    assert_eq!(s.count("pushwire_channels"), 0);
    assert_eq!(s.sum("pushwire_subscriptions"), 0.0);

    // Publications in, deliveries out.
    assert_eq!(s.count("pushwire_publications_total"), PUBLICATIONS);
    assert_eq!(s.count("pushwire_messages_queued_total"), 3 * PUBLICATIONS);
    // Per client: the connect and subscribe replies and five publications; alice also got the
    // 102 error reply.
    assert_eq!(
        s.count(&ws("pushwire_messages_delivered_total")),
        3 * (2 + PUBLICATIONS) + 1
    );
    assert!(s.count(&ws("pushwire_bytes_delivered_total")) > 3 * 5 * 20);
    // Latency is observed once per write that carried a publication: at least once per
    // client, at most once per delivered publication.
    let writes = s.count("pushwire_delivery_latency_seconds_count");
    assert!((3..=3 * PUBLICATIONS).contains(&writes), "{writes} writes");
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

    // Disconnects by code.
    let closed =
        |code: u32| s.count_or_zero(&format!("pushwire_disconnects_total{{code=\"{code}\"}}"));
    assert_eq!(closed(Disconnect::CONNECTION_CLOSED.code), 1);
    assert_eq!(closed(Disconnect::FORCE_DISCONNECT.code), 1);
    assert_eq!(closed(Disconnect::BAD_REQUEST.code), 1);
    assert_eq!(s.sum("pushwire_disconnects_total"), 3.0);
    assert_eq!(s.count("pushwire_bad_request_disconnects_total"), 1);
    assert_eq!(s.count("pushwire_slow_disconnects_total"), 0);
    server.stop().await;
}
