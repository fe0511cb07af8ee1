//! Shared scenario for the MQTT suites (`mqtt.rs` over MQTT 3.1.1, `mqtt5.rs` over MQTT 5):
//! devices publishing at QoS 1 lose nothing across a node killed and restarted.

use std::future::Future;
use std::time::Duration;

use pushwire_consumers::ConsumerConfig;
use pushwire_test_support::node_process::{run_python_at, NodeProcess};
use serde_json::json;

use super::mosquitto::Mosquitto;
use super::source::labels;
use super::{metric_at, ns, redis_engine_config, unique, wait_subscribed};

/// Messages per device in the kill scenario.
pub const PER_DEVICE: u64 = 400;
/// Devices in the kill scenario.
pub const DEVICES: usize = 5;

/// Simulated devices of one MQTT protocol version and the consumer that routes them, named
/// for one test.
#[allow(
    async_fn_in_trait,
    reason = "the scenario awaits these on the test's own task; nothing spawns them"
)]
pub trait Fleet {
    /// How the printout names the protocol (`MQTT`, `MQTT 5`).
    const NAME: &'static str;
    /// A connected device client.
    type Device;

    /// The consumer (route mode, one channel per device) of the broker at `url`, on the
    /// Redis engine node the scenario starts.
    fn consumer(&self, url: &str) -> ConsumerConfig;
    /// The channel device `d`'s messages land in (`d` = [`DEVICES`] is the probe device).
    fn channel(&self, d: usize) -> String;
    /// Connects device `d` to the broker on `port`; returns once the broker acknowledged it.
    async fn connect(&self, d: usize, port: u16) -> Self::Device;
    /// Publishes `{"n": n}` at QoS 1 from `dev` as device `d`.
    async fn publish(&self, dev: &Self::Device, d: usize, n: u64);
}

/// Waits until the node's subscription is in place: `probe` publishes one probe message,
/// every 200 ms (messages before the SUBSCRIBE is granted are not kept for the node), until
/// `channel` has one in history.
pub async fn wait_routed<F, Fut>(node: &NodeProcess, channel: &str, probe: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        probe().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, h) = node
            .api("history", json!({"channel": channel, "limit": 1}))
            .await;
        if h["result"]["publications"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mqtt consumer never routed a probe to {channel}\n{}",
            node.log()
        );
    }
}

/// 5 devices publish 400 messages each at QoS 1, 200 messages/s in total, to a Mosquitto of
/// the test's own; the node (Redis engine) is SIGKILLed after 3 s and started again at 5 s.
/// One centrifuge-python subscriber per device channel gets every message once, in order,
/// having resubscribed. Returns the node for assertions of the fleet's own.
pub async fn devices_at_qos1_lose_nothing_across_a_node_kill<F: Fleet>(fleet: &F) -> NodeProcess {
    let broker = Mosquitto::start(None).await;
    let consumer = fleet.consumer(&broker.url());
    let labels = labels(&consumer);
    let mut config = redis_engine_config(&unique());
    config.consumers = vec![consumer];
    let mut node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;

    let (ws, http) = (node.ws_url(), node.http_url());
    let channels: Vec<String> = (0..DEVICES).map(|d| fleet.channel(d)).collect();
    let mut devices = Vec::new();
    for d in 0..DEVICES {
        devices.push(fleet.connect(d, broker.port).await);
    }
    let probe = fleet.connect(DEVICES, broker.port).await;
    wait_routed(&node, &fleet.channel(DEVICES), || {
        fleet.publish(&probe, DEVICES, 0)
    })
    .await;
    let count = PER_DEVICE.to_string();
    let args: Vec<[&str; 4]> = channels
        .iter()
        .map(|c| {
            [
                "python/consume_ordered.py",
                c.as_str(),
                count.as_str(),
                "40",
            ]
        })
        .collect();
    let runs = futures_util::future::join_all(args.iter().map(|a| run_python_at(a, &ws, &http)));
    let produce = async {
        for c in &channels {
            wait_subscribed(c, |b| node.api("presence_stats", b)).await;
        }
        // 5 devices x 40 messages/s = 200 messages/s; the node dies after 3 s, is back at 5 s.
        let tick = Duration::from_millis(25);
        for n in 1..=PER_DEVICE {
            let at = tokio::time::Instant::now();
            for (d, dev) in devices.iter().enumerate() {
                fleet.publish(dev, d, n).await;
            }
            if n == 120 {
                node.kill().await;
            }
            if n == 200 {
                node.restart().await;
            }
            tokio::time::sleep_until(at + tick).await;
        }
    };
    let (results, ()) = tokio::join!(runs, produce);
    for (d, run) in results.into_iter().enumerate() {
        let result = run.result();
        assert_eq!(
            ns(&result),
            (1..=PER_DEVICE).collect::<Vec<_>>(),
            "device {d}: every message once, in order\n{}",
            node.log()
        );
        assert!(
            result["resubscribes"].as_u64().unwrap_or(0) >= 1,
            "device {d}: {result}"
        );
    }
    let dups = metric_at(
        &node.http_url(),
        &format!("pushwire_consumer_duplicates_total{labels}"),
    )
    .await;
    println!(
        "{}: {} messages from {DEVICES} devices at 200/s across a kill; {dups} redeliveries suppressed",
        F::NAME,
        PER_DEVICE * DEVICES as u64
    );
    drop(broker);
    node
}
