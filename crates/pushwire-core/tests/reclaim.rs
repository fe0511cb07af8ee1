//! Memory stays bounded: short-lived channels leave nothing behind in the hub and presence at
//! once, and nothing in the broker once their history and stream metadata expire.

use std::sync::Arc;
use std::time::Duration;

use pushwire_core::config::{ChannelOptions, NamespaceConfig, NodeConfig};
use pushwire_core::engine::{Engine, MemoryBroker};
use pushwire_core::node::PublishParams;
use pushwire_core::{Client, Node, TransportInfo, TransportKind};
use pushwire_protocol::{Protocol, RawJson};
use serde_json::json;

fn node() -> (Arc<Node>, Arc<MemoryBroker>) {
    let mut config = NodeConfig::default();
    config.client.allow_anonymous_connect_without_token = true;
    // Time is paused in this test: the command rate limit would never refill.
    config.client.command_rate_limit = 0;
    config.channel.namespaces.push(NamespaceConfig {
        name: "tmp".into(),
        options: ChannelOptions {
            history_size: 10,
            history_ttl: Duration::from_secs(1),
            history_meta_ttl: Duration::from_secs(2),
            presence: true,
            join_leave: true,
            force_recovery: true,
            allow_subscribe_for_client: true,
            allow_subscribe_for_anonymous: true,
            ..Default::default()
        },
    });
    config.validate().expect("valid");
    let broker = Arc::new(MemoryBroker::new());
    let engine = Engine {
        broker: broker.clone(),
        ..Engine::memory()
    };
    (Node::new(config, "reclaim", engine, None), broker)
}

/// Lets the broker's own sweep task run at the (paused) current time.
async fn let_sweeper_run() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn short_lived_channels_are_reclaimed() {
    let (node, broker) = node();
    let client = Client::new(
        node.clone(),
        TransportInfo {
            kind: TransportKind::WebSocket,
            protocol: Protocol::Json,
        },
    );
    client
        .handle_frame(json!({"id":1,"connect":{}}).to_string().as_bytes())
        .await
        .unwrap();
    for i in 0..1000 {
        let ch = format!("tmp:{i}");
        let sub = json!({"id": 2 + i * 2, "subscribe": {"channel": ch}});
        client
            .handle_frame(sub.to_string().as_bytes())
            .await
            .unwrap();
        assert_eq!(node.hub().counts(), (1, 1), "subscribed to {ch}");
        node.publish(
            &ch,
            PublishParams {
                data: RawJson::from_json_str("{}").unwrap(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let unsub = json!({"id": 3 + i * 2, "unsubscribe": {"channel": ch}});
        client
            .handle_frame(unsub.to_string().as_bytes())
            .await
            .unwrap();
        client.outbox().try_drain();
    }
    // Subscriptions and presence are released at once.
    assert_eq!(node.hub().counts(), (0, 0));
    assert!(node.presence().presence("tmp:0").await.unwrap().is_empty());
    assert_eq!(broker.num_streams(), 1000, "history kept while it lives");
    // History expires after its TTL, the stream position after its meta TTL.
    tokio::time::advance(Duration::from_millis(1500)).await;
    let_sweeper_run().await;
    assert_eq!(broker.num_streams(), 1000, "positions outlive history");
    let h = node.history("tmp:5", -1, None, false).await.unwrap();
    assert!(h.publications.is_empty());
    assert_eq!(h.offset, 1, "position kept after publications expire");
    tokio::time::advance(Duration::from_secs(2)).await;
    let_sweeper_run().await;
    assert_eq!(
        broker.num_streams(),
        0,
        "idle streams reclaimed by the broker's own sweeps"
    );
    client.cleanup().await;
    assert_eq!(node.registry().counts(), (0, 0));
}
