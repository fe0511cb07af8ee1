//! The MQTT consumer end to end against Mosquitto: 5 simulated devices publish QoS 1 at 200
//! messages/s in total while the node is SIGKILLed and restarted; one centrifuge-python
//! subscriber per device channel (`sensors:{topic.1}` style routing) gets every message once, in
//! order. A Mosquitto the test starts with a TLS listener and a password file: a wrong password
//! is logged naming the key and retried while a right one delivers, retained values included.
//! Two consumers in one `$share/…` group split the messages, each delivered once.
//!
//! Needs Mosquitto (`scripts/start-mosquitto.sh` installs it and runs one on 127.0.0.1:1883;
//! these tests start their own instances for a known queue limit, TLS and passwords), the
//! `mosquitto` and `mosquitto_passwd` binaries, Redis on 127.0.0.1:6379 and the SDKs.

use crate::consumers_common;

use std::time::Duration;

use consumers_common::devices::{self, Fleet};
use consumers_common::mosquitto::Mosquitto;
use consumers_common::*;
use pushwire_consumers::mqtt::MqttSettings;
use pushwire_consumers::{ConsumerConfig, ConsumerType, Mode, RouteConfig};
use pushwire_test_support::cert::TestCert;
use pushwire_test_support::node_process::NodeProcess;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde_json::json;

/// An MQTT consumer in route mode.
fn consumer(
    name: &str,
    url: &str,
    client_id: &str,
    topics: &[String],
    channel: &str,
) -> ConsumerConfig {
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
        client_id: client_id.into(),
        topics: topics.to_vec(),
        ..Default::default()
    });
    c
}

/// A device: an MQTT client whose event loop runs in its own task.
async fn device(
    id: &str,
    port: u16,
    tls: Option<&TestCert>,
    credentials: Option<(&str, &str)>,
) -> AsyncClient {
    let host = if tls.is_some() {
        "localhost"
    } else {
        "127.0.0.1"
    };
    let mut o = MqttOptions::new(id, host, port);
    o.set_keep_alive(Duration::from_secs(10));
    if let Some((u, p)) = credentials {
        o.set_credentials(u, p);
    }
    if let Some(cert) = tls {
        let mut roots = rustls::RootCertStore::empty();
        for c in
            <rustls::pki_types::CertificateDer<'_> as rustls::pki_types::pem::PemObject>::pem_slice_iter(
                cert.pem.as_bytes(),
            )
        {
            roots.add(c.expect("pem")).expect("root");
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            std::sync::Arc::new(config),
        )));
    }
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

/// Waits until the node's subscription is in place: `device` publishes a probe to `topic`
/// every 200 ms until `channel` has it in history.
async fn wait_routed(node: &NodeProcess, device: &AsyncClient, topic: &str, channel: &str) {
    devices::wait_routed(node, channel, || async {
        let probe = json!({"probe": true}).to_string();
        device
            .publish(topic, QoS::AtLeastOnce, false, probe)
            .await
            .expect("probe publish");
    })
    .await;
}

/// MQTT 3.1.1 devices `dev-<id>-<d>` publishing to `pw-<id>/dev<d>/temp`, routed by topic
/// level to `big:mqtt-<id>-dev<d>`.
struct Devices {
    id: String,
}

impl Fleet for Devices {
    const NAME: &'static str = "MQTT";
    type Device = AsyncClient;

    fn consumer(&self, url: &str) -> ConsumerConfig {
        let id = &self.id;
        let topics = vec![format!("pw-{id}/+/temp")];
        let channel = format!("big:mqtt-{id}-{{topic.1}}");
        consumer("devices", url, &format!("pushwire-{id}"), &topics, &channel)
    }

    fn channel(&self, d: usize) -> String {
        format!("big:mqtt-{}-dev{d}", self.id)
    }

    async fn connect(&self, d: usize, port: u16) -> AsyncClient {
        device(&format!("dev-{}-{d}", self.id), port, None, None).await
    }

    async fn publish(&self, dev: &AsyncClient, d: usize, n: u64) {
        let topic = format!("pw-{}/dev{d}/temp", self.id);
        dev.publish(topic, QoS::AtLeastOnce, false, json!({"n": n}).to_string())
            .await
            .expect("device publish");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_devices_at_qos1_lose_nothing_across_a_node_kill() {
    let fleet = Devices { id: unique() };
    devices::devices_at_qos1_lose_nothing_across_a_node_kill(&fleet).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_over_tls_with_a_password_delivers_and_a_wrong_password_names_the_key() {
    let cert = TestCert::new();
    let broker = Mosquitto::start(Some(&cert)).await;
    let id = unique();
    let url = format!("mqtts://localhost:{}", broker.port);
    // A retained value published before the node starts: routed with `retained = true`.
    let dev = device(
        &format!("dev-{id}"),
        broker.port,
        Some(&cert),
        Some(("dev", "secret")),
    )
    .await;
    dev.publish(
        format!("pw-{id}/d1/state"),
        QoS::AtLeastOnce,
        true,
        json!({"n": 1}).to_string(),
    )
    .await
    .expect("retained publish");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let topics = vec![format!("pw-{id}/+/state")];
    let mut good = consumer(
        "good",
        &url,
        &format!("good-{id}"),
        &topics,
        &format!("chat:mqtt-{{topic.1}}-{id}"),
    );
    let mut bad = consumer("bad", &url, &format!("bad-{id}"), &topics, "chat:never");
    let ca = cert.cert_file().display().to_string();
    if let Some(s) = good.mqtt.as_mut() {
        s.username = "dev".into();
        s.password = "secret".into();
        s.tls_ca_pem_file = ca.clone();
        s.retained = true;
    }
    if let Some(s) = bad.mqtt.as_mut() {
        s.username = "dev".into();
        s.password = "wrong".into();
        s.tls_ca_pem_file = ca;
    }
    let mut config = config();
    config.consumers = vec![good, bad];
    let node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;
    let channel = format!("chat:mqtt-d1-{id}");
    wait_until(
        "the wrong password named in the log",
        Duration::from_secs(15),
        || {
            let log = node.log();
            async move { log.contains("consumers[name=bad].mqtt.username") }
        },
    )
    .await;
    wait_routed(
        &node,
        &dev,
        &format!("pw-{id}/probe/state"),
        &format!("chat:mqtt-probe-{id}"),
    )
    .await;
    for n in 2..=4 {
        dev.publish(
            format!("pw-{id}/d1/state"),
            QoS::AtLeastOnce,
            false,
            json!({"n": n}).to_string(),
        )
        .await
        .expect("publish");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut got: Vec<u64> = Vec::new();
    while got.len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "got {got:?}\n{}",
            node.log()
        );
        let (_, h) = node
            .api("history", json!({"channel": channel, "limit": -1}))
            .await;
        got = h["result"]["publications"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["data"]["n"].as_u64()).collect())
            .unwrap_or_default();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        got,
        vec![1, 2, 3, 4],
        "the retained value first, then the live ones"
    );
    assert!(
        !node.log().contains("consumers[name=good].mqtt"),
        "the right password is not refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_shared_subscription_splits_messages_between_two_consumers() {
    let broker = Mosquitto::start(None).await;
    let id = unique();
    let url = broker.url();
    let topics = vec![format!("$share/pushwire/pw-{id}/+/temp")];
    let channel = format!("chat:share-{id}");
    let a = consumer("share-a", &url, &format!("a-{id}"), &topics, &channel);
    let b = consumer("share-b", &url, &format!("b-{id}"), &topics, &channel);
    let mut config = config();
    config.consumers = vec![a, b];
    let node = NodeProcess::start(env!("CARGO_BIN_EXE_pushwire"), config).await;
    let dev = device(&format!("dev-{id}"), broker.port, None, None).await;
    wait_routed(&node, &dev, &format!("pw-{id}/probe/temp"), &channel).await;
    let (_, h) = node
        .api("history", json!({"channel": channel, "limit": -1}))
        .await;
    let probes = h["result"]["publications"].as_array().map_or(0, Vec::len);
    for n in 1..=100u64 {
        dev.publish(
            format!("pw-{id}/d1/temp"),
            QoS::AtLeastOnce,
            false,
            json!({"n": n}).to_string(),
        )
        .await
        .expect("publish");
    }
    let mut ns: Vec<u64> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while ns.len() < 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "got {} of 100\n{}",
            ns.len(),
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, h) = node
            .api("history", json!({"channel": channel, "limit": -1}))
            .await;
        ns = h["result"]["publications"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["data"]["n"].as_u64()).collect())
            .unwrap_or_default();
    }
    ns.sort_unstable();
    assert_eq!(ns, (1..=100).collect::<Vec<_>>(), "each message once");
    let received = |name: &str| {
        let node = &node;
        let name = name.to_owned();
        async move {
            metric_at(
                &node.http_url(),
                &format!("pushwire_consumer_received_total{{consumer=\"{name}\",type=\"mqtt\"}}"),
            )
            .await
        }
    };
    let (ra, rb) = (received("share-a").await, received("share-b").await);
    assert!(
        ra > 0 && rb > 0,
        "both consumers of the share group got messages: {ra} + {rb}"
    );
    assert!(ra + rb >= 100 + probes as u64, "{ra} + {rb}");
}
