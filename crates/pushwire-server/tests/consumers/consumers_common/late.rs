//! Shared scenario: a source that is down when the node starts is retried with backoff while
//! the node serves clients and the API; once it is up, events flow.

use std::time::Duration;

use pushwire_consumers::Mode;
use pushwire_test_support::metrics::Scrape;
use pushwire_test_support::{TestServer, WsClient};
use serde_json::json;

use super::source::{body, labels, Source};
use super::LateBroker;

/// Events written once the source is up.
const LATE_EVENTS: u64 = 5;

/// Where [`down_at_start_then_up`] leaves a test that goes on (the source is up, events
/// `0..=5` were delivered to `ws`).
#[derive(Debug)]
pub struct LateStart {
    /// The node, with the consumer named `late`.
    pub server: TestServer,
    /// A client subscribed to `channel`.
    pub ws: WsClient,
    /// The port in front of the source, open now.
    pub broker: LateBroker,
    /// The channel the consumer's events land in.
    pub channel: String,
}

/// The whole scenario: [`down_at_start_then_up`], then the node stops and the source is
/// cleaned up.
pub async fn down_at_start_is_retried_while_the_node_serves<S: Source>(source: &S, mode: Mode) {
    let late = down_at_start_then_up(source, mode).await;
    late.server.stop().await;
    source.cleanup().await;
}

/// The consumer reaches `source` through a [`LateBroker`] that is closed at start: the node
/// serves a subscribe and an API publish meanwhile, the lag is unknown (-1) and nothing was
/// received. Then the source comes up (after events 1..=5 were written, when it keeps them
/// for a late consumer; otherwise before): a later retry attaches and the subscriber gets
/// 0 (the API's) and 1..=5 in order.
pub async fn down_at_start_then_up<S: Source>(source: &S, mode: Mode) -> LateStart {
    let mut broker = LateBroker::new(S::ADDR);
    let addr = format!("127.0.0.1:{}", broker.port);
    let (config, channel) = source.consumer("late", &addr, "chat", mode);
    let labels = labels(&config);
    let server = TestServer::start_with(|c| c.consumers = vec![config]).await;

    // The source is down: the node still serves clients and the API.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (mut ws, _) = WsClient::connected(&server.ws_url(), None).await;
    let reply = ws.command(json!({"subscribe": {"channel": channel}})).await;
    assert!(
        reply.get("error").is_none(),
        "subscribe while the source is down: {reply}"
    );
    server.publish(&channel, json!({"n": 0})).await;
    let scrape = Scrape::of(&server).await;
    assert_eq!(scrape.get(&format!("pushwire_consumer_lag{labels}")), -1.0);
    assert_eq!(
        scrape.count(&format!("pushwire_consumer_received_total{labels}")),
        0
    );

    // The source comes up: the consumer attaches on a later retry and events flow.
    let produce = || async {
        for n in 1..=LATE_EVENTS {
            let key = format!("{channel}-{n}");
            source.produce(&body(mode, &channel, n), &key).await;
        }
    };
    if S::KEEPS_MESSAGES_FOR_A_LATE_CONSUMER {
        produce().await;
        broker.open().await;
        source.wait_ready().await;
    } else {
        broker.open().await;
        source.wait_ready().await;
        produce().await;
    }
    for n in 0..=LATE_EVENTS {
        let p = ws.next_publication(&channel).await;
        assert_eq!(p["data"]["n"], json!(n), "{p}");
    }
    LateStart {
        server,
        ws,
        broker,
        channel,
    }
}
