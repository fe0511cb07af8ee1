//! The MQTT consumer with `protocol_version = "5"` end to end against Mosquitto, with MQTT 5
//! devices (`rumqttc::v5`):
//! - 5 devices publish QoS 1 at 200 messages/s in total, each message carrying a user property
//!   the route template reads (`{header.device}`), while the node is SIGKILLed and restarted:
//!   the broker keeps the node's session (session expiry interval) and its unacknowledged
//!   messages, and one centrifuge-python subscriber per device channel gets every message
//!   once, in order;
//! - a shared subscription (`$share/<group>/…`) splits the messages between two pushwire
//!   nodes on one Redis engine: each message is in history once, and both nodes took part.
//!
//! Needs `/usr/sbin/mosquitto` (Debian `mosquitto`, 2.x: MQTT 5; `scripts/start-mosquitto.sh`
//! installs it; the tests start their own instance with room for 100,000 queued messages per
//! session), Redis on 127.0.0.1:6379 and the SDKs.

use crate::consumers_common;

use std::time::Duration;

use consumers_common::devices::{self, Fleet};
use consumers_common::mosquitto::Mosquitto;
use consumers_common::*;
use pushwire_consumers::mqtt::{MqttSettings, ProtocolVersion};
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::node_process::NodeProcess;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::json;

/// An MQTT 5 consumer in route mode.
fn consumer(name: &str, url: &str, client_id: &str, topic: &str, channel: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(name, ConsumerType::Mqtt);
    c.mode = Mode::Route;
    c.route = RouteConfig {
        channel: channel.into(),
        tag_field: String::new(),
        skip_history: false,
    };
    c.retry_backoff_max = Duration::from_millis(500);
    c.mqtt = Some(MqttSettings {
        url: url.into(),
        protocol_version: ProtocolVersion::V5,
        client_id: client_id.into(),
        topics: vec![topic.into()],
        ..Default::default()
    });
    c
}

/// An MQTT 5 device whose event loop runs in its own task; returns once connected.
async fn device(id: &str, port: u16) -> AsyncClient {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .expect("device connects")
        .expect("device event loop");
    client
}

/// Publishes `{"n": n}` at QoS 1 with the user property `device = <device>`.
async fn publish(dev: &AsyncClient, topic: &str, device: &str, n: u64) {
    let props = PublishProperties {
        user_properties: vec![("device".into(), device.into())],
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    dev.publish_with_properties(
        topic,
        QoS::AtLeastOnce,
        false,
        json!({"n": n}).to_string(),
        props,
    )
    .await
    .expect("device publish");
}

/// The `data.n`s in `channel`'s history.
async fn history_ns(node: &NodeProcess, channel: &str) -> Vec<u64> {
    let (_, h) = node
        .api("history", json!({"channel": channel, "limit": -1}))
        .await;
    h["result"]["publications"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["data"]["n"].as_u64()).collect())
        .unwrap_or_default()
}

/// MQTT 5 devices `dev5-<id>-<d>` publishing to `pw5-<id>/d<d>/temp` with the user property
/// `device = dev<d>`, routed by that property (not the topic) to `big:mqtt5-<id>-dev<d>`.
struct Devices5 {
    id: String,
}

impl Fleet for Devices5 {
    const NAME: &'static str = "MQTT 5";
    type Device = AsyncClient;

    fn consumer(&self, url: &str) -> ConsumerConfig {
        let id = &self.id;
        let (topic, channel) = (
            format!("pw5-{id}/+/temp"),
            format!("big:mqtt5-{id}-{{header.device}}"),
        );
        consumer(
            "devices5",
            url,
            &format!("pushwire5-{id}"),
            &topic,
            &channel,
        )
    }

    fn channel(&self, d: usize) -> String {
        format!("big:mqtt5-{}-dev{d}", self.id)
    }

    async fn connect(&self, d: usize, port: u16) -> AsyncClient {
        device(&format!("dev5-{}-{d}", self.id), port).await
    }

    async fn publish(&self, dev: &AsyncClient, d: usize, n: u64) {
        let topic = format!("pw5-{}/d{d}/temp", self.id);
        publish(dev, &topic, &format!("dev{d}"), n).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt5_devices_at_qos1_lose_nothing_across_a_node_kill() {
    let fleet = Devices5 { id: unique() };
    let node = devices::devices_at_qos1_lose_nothing_across_a_node_kill(&fleet).await;
    assert!(
        node.log().contains("protocol=\"5\"") || node.log().contains("protocol=5"),
        "the session was MQTT 5\n{}",
        node.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt5_shared_subscription_splits_messages_between_two_nodes() {
    let broker = Mosquitto::start(None).await;
    let id = unique();
    let topic = format!("$share/pushwire/pw5-{id}/+/temp");
    let channel = format!("big:share5-{id}");
    // Two nodes on one Redis engine (one history, one set of idempotency keys), each with its
    // own MQTT 5 session in the share group.
    let node_config = |client: &str| {
        let mut c = redis_engine_config(&id);
        c.consumers = vec![consumer(
            "share5",
            &broker.url(),
            &format!("{client}-{id}"),
            &topic,
            &channel,
        )];
        c
    };
    let a = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), node_config("a")).await;
    let b = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), node_config("b")).await;
    let dev = device(&format!("dev5-{id}"), broker.port).await;
    let received = |node: &NodeProcess| {
        let url = node.http_url();
        async move {
            metric_at(
                &url,
                "pushwire_consumer_received_total{consumer=\"share5\",type=\"mqtt\"}",
            )
            .await
        }
    };
    // Both sessions subscribed: probes until each node has taken at least one (the broker
    // hands a share group's messages round-robin).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while received(&a).await == 0 || received(&b).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "both nodes subscribed to the share group\n{}\n{}",
            a.log(),
            b.log()
        );
        publish(&dev, &format!("pw5-{id}/probe/temp"), "probe", 0).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ra0, rb0) = (received(&a).await, received(&b).await);
    for n in 1..=200u64 {
        publish(&dev, &format!("pw5-{id}/d{}/temp", n % 4), "d", n).await;
    }
    let mut got: Vec<u64> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "got {} of 200\n{}\n{}",
            got.len(),
            a.log(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = history_ns(&a, &channel)
            .await
            .into_iter()
            .filter(|n| *n > 0)
            .collect();
    }
    got.sort_unstable();
    assert_eq!(got, (1..=200).collect::<Vec<_>>(), "each message once");
    assert_eq!(
        history_ns(&b, &channel).await.len(),
        history_ns(&a, &channel).await.len(),
        "one history on the shared engine"
    );
    let (ra, rb) = (received(&a).await - ra0, received(&b).await - rb0);
    println!("MQTT 5 shared subscription: node a took {ra}, node b took {rb} of 200");
    assert!(ra >= 20 && rb >= 20, "both nodes took part: {ra} + {rb}");
    assert!(ra + rb >= 200, "{ra} + {rb}");
}
