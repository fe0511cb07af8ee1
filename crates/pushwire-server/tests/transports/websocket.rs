//! WebSocket transport end to end: connect, subscribe, publish, batching, recovery.

use pushwire_test_support::{TestServer, WsClient};
use serde_json::json;

#[tokio::test]
async fn connect_subscribe_and_client_publish() {
    let server = TestServer::start().await;
    let (mut a, connect) = WsClient::connected(&server.ws_url(), None).await;
    assert!(connect["client"].as_str().unwrap().len() >= 32);
    assert_eq!(connect["ping"], json!(25));
    assert_eq!(connect["pong"], json!(true));
    let (mut b, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = a.command(json!({"subscribe": {"channel": "news"}})).await;
    assert_eq!(r["subscribe"], json!({}));
    b.command(json!({"subscribe": {"channel": "news"}})).await;
    let r = b
        .command(json!({"publish": {"channel": "news", "data": {"text": "hi"}}}))
        .await;
    assert_eq!(r["publish"], json!({}));
    for c in [&mut a, &mut b] {
        let p = c.next_publication("news").await;
        assert_eq!(p["data"], json!({"text": "hi"}));
        assert_eq!(p["info"]["user"], json!(""));
    }
    server.stop().await;
}

#[tokio::test]
async fn batched_commands_answered_in_order() {
    let server = TestServer::start().await;
    let mut c = WsClient::open(&server.ws_url()).await;
    c.send_text(
        "{\"id\":1,\"connect\":{}}\n{\"id\":2,\"subscribe\":{\"channel\":\"a\"}}\n{\"id\":3,\"subscribe\":{\"channel\":\"b\"}}\n",
    )
    .await;
    let ids: Vec<_> = [
        c.read_one().await.unwrap(),
        c.read_one().await.unwrap(),
        c.read_one().await.unwrap(),
    ]
    .iter()
    .map(|m| m["id"].as_u64().unwrap())
    .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    server.stop().await;
}

#[tokio::test]
async fn recovery_returns_missed_publications() {
    let server = TestServer::start().await;
    let (mut a, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = a.command(json!({"subscribe": {"channel": "chat:r"}})).await;
    let sub = &r["subscribe"];
    assert_eq!(sub["recoverable"], json!(true));
    let epoch = sub["epoch"].as_str().unwrap().to_owned();
    let (mut b, _) = WsClient::connected(&server.ws_url(), None).await;
    b.command(json!({"subscribe": {"channel": "chat:r"}})).await;
    for i in 1..=3 {
        b.command(json!({"publish": {"channel": "chat:r", "data": {"n": i}}}))
            .await;
    }
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    let r = c
        .command(json!({"subscribe": {"channel": "chat:r", "recover": true, "offset": 1, "epoch": epoch}}))
        .await;
    let sub = &r["subscribe"];
    assert_eq!(sub["recovered"], json!(true), "{r}");
    assert_eq!(sub["was_recovering"], json!(true));
    assert_eq!(sub["offset"], json!(1));
    let offsets: Vec<_> = sub["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![2, 3]);
    server.stop().await;
}

/// Publishes `n` publications `{"n": i}` to each of `channels` in-process, 10 per
/// millisecond: a steady burst the writer could send in one frame per tick.
async fn burst(server: &TestServer, channels: &[&str], n: u64) {
    for i in 1..=n {
        for ch in channels {
            let params = pushwire_core::node::PublishParams {
                data: pushwire_protocol::RawJson::from_json_str(&format!("{{\"n\":{i}}}")).unwrap(),
                ..Default::default()
            };
            server.node().publish(ch, params).await.expect("publish");
        }
        if i % 10 == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

/// Reads `n` publications of `channel`; returns their `n` values and the frames they took.
async fn receive(c: &mut WsClient, channel: &str, n: usize) -> (Vec<u64>, usize) {
    let before = c.frames;
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let p = c.next_publication(channel).await;
        got.push(p["data"]["n"].as_u64().unwrap());
    }
    (got, c.frames - before)
}

fn batching(c: &mut pushwire_server::ServerConfig) {
    use pushwire_core::config::NamespaceConfig;
    let open = c.channel.without_namespace.clone();
    c.channel.namespaces.push(NamespaceConfig {
        name: "batch".into(),
        options: pushwire_core::config::ChannelOptions {
            batch_max_size: 1000,
            batch_max_delay: std::time::Duration::from_millis(10),
            ..open.clone()
        },
    });
    c.channel.namespaces.push(NamespaceConfig {
        name: "latest".into(),
        options: pushwire_core::config::ChannelOptions {
            batch_max_delay: std::time::Duration::from_millis(50),
            batch_flush_latest: true,
            ..open
        },
    });
}

/// `batch_max_delay = 10ms`: a burst of 1,000 publications arrives in far fewer frames than on
/// a channel without batching, in order, none lost.
#[tokio::test(flavor = "multi_thread")]
async fn namespace_batching_gathers_publications_into_few_frames() {
    let server = TestServer::start_with(batching).await;
    let (mut batched, _) = WsClient::connected(&server.ws_url(), None).await;
    batched
        .command(json!({"subscribe": {"channel": "batch:x"}}))
        .await;
    let (mut plain, _) = WsClient::connected(&server.ws_url(), None).await;
    plain
        .command(json!({"subscribe": {"channel": "plain"}}))
        .await;
    let started = std::time::Instant::now();
    burst(&server, &["batch:x", "plain"], 1000).await;
    let burst_ms = started.elapsed().as_millis();
    let (got, frames) = receive(&mut batched, "batch:x", 1000).await;
    assert_eq!(
        got,
        (1..=1000).collect::<Vec<_>>(),
        "order kept, nothing lost"
    );
    let (plain_got, plain_frames) = receive(&mut plain, "plain", 1000).await;
    assert_eq!(plain_got, (1..=1000).collect::<Vec<_>>());
    eprintln!("burst {burst_ms} ms: {frames} frames batched, {plain_frames} without batching");
    // About one frame per 10 ms of burst (+1 for a batch cut by the end).
    assert!(
        frames as u128 <= burst_ms / 10 + 3,
        "{frames} frames for a {burst_ms} ms burst"
    );
    assert!(frames * 3 <= plain_frames, "{frames} vs {plain_frames}");
    assert!(
        batched
            .silent_for(std::time::Duration::from_millis(100))
            .await
    );
    server.stop().await;
}

/// `batch_flush_latest`: of a burst inside one batch only the newest publication goes out.
#[tokio::test(flavor = "multi_thread")]
async fn flush_latest_delivers_only_the_newest_of_a_batch() {
    let server = TestServer::start_with(batching).await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    c.command(json!({"subscribe": {"channel": "latest:x"}}))
        .await;
    // Ten in-process publishes take well under the 50 ms of one batch.
    for i in 1..=10 {
        let params = pushwire_core::node::PublishParams {
            data: pushwire_protocol::RawJson::from_json_str(&format!("{{\"n\":{i}}}")).unwrap(),
            ..Default::default()
        };
        server.node().publish("latest:x", params).await.unwrap();
    }
    let mut got = Vec::new();
    while got.last() != Some(&10) {
        got.push(
            c.next_publication("latest:x").await["data"]["n"]
                .as_u64()
                .unwrap(),
        );
    }
    // One batch gives [10]; a machine slow enough to cut the burst in two gives two.
    assert!(got.len() <= 2, "older publications were skipped: {got:?}");
    assert!(c.silent_for(std::time::Duration::from_millis(150)).await);
    server.stop().await;
}

/// `client.write_delay`: a connection holds its writes, so a burst takes a few frames.
#[tokio::test(flavor = "multi_thread")]
async fn write_delay_gathers_writes() {
    let server = TestServer::start_with(|c| {
        c.client.write_delay = std::time::Duration::from_millis(20);
    })
    .await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    c.command(json!({"subscribe": {"channel": "news"}})).await;
    let started = std::time::Instant::now();
    burst(&server, &["news"], 300).await;
    let burst_ms = started.elapsed().as_millis();
    let (got, frames) = receive(&mut c, "news", 300).await;
    assert_eq!(got, (1..=300).collect::<Vec<_>>());
    eprintln!("burst {burst_ms} ms: {frames} frames with write_delay 20ms");
    assert!(frames as u128 <= burst_ms / 20 + 3, "{frames} frames");
    server.stop().await;
}

/// The server writes data frames itself and leaves control frames to tungstenite: a ping gets
/// its pong, and frames before and after it arrive whole (no interleaving).
#[tokio::test]
async fn ping_answered_between_deliveries() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let server = TestServer::start().await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    c.command(json!({"subscribe": {"channel": "pings"}})).await;
    server.publish("pings", json!({"n": 1})).await;
    c.stream()
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    server.publish("pings", json!({"n": 2})).await;
    let mut pong = None;
    let mut ns = Vec::new();
    while pong.is_none() || ns.len() < 2 {
        let m = tokio::time::timeout(std::time::Duration::from_secs(5), c.stream().next())
            .await
            .expect("a frame in time")
            .expect("connection open")
            .expect("a valid frame");
        match m {
            Message::Pong(p) => pong = Some(p),
            Message::Text(t) => {
                for line in t.as_str().lines() {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    if let Some(n) = v["push"]["pub"]["data"]["n"].as_u64() {
                        ns.push(n);
                    }
                }
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert_eq!(pong.as_deref(), Some(&b"are you there"[..]));
    assert_eq!(ns, [1, 2]);
    server.stop().await;
}

/// Frame lengths in all three header forms (7-bit, 16-bit, 64-bit) arrive intact.
#[tokio::test]
async fn publications_of_every_frame_length_form() {
    let server = TestServer::start().await;
    let (mut c, _) = WsClient::connected(&server.ws_url(), None).await;
    c.command(json!({"subscribe": {"channel": "sizes"}})).await;
    for len in [1, 200, 70_000] {
        let pad = "x".repeat(len);
        server.publish("sizes", json!({"pad": pad})).await;
        let p = c.next_publication("sizes").await;
        assert_eq!(p["data"]["pad"].as_str().map(str::len), Some(len));
    }
    server.stop().await;
}
