//! Shared by the consumer suites (`rabbitmq.rs`, `redis_stream.rs`, `postgres.rs`, …): names,
//! the test namespace, SDK readiness, a TCP forwarder that plays a broker coming up late,
//! metrics reads; the per-source trait ([`source::Source`]) and the scenarios written once
//! over it (`ordered`, `late`, `commands`, `kill`); the CDC scenario over
//! [`cdc::ChangeSource`] and its workload; the MQTT kill scenario over [`devices::Fleet`] and a
//! Mosquitto of a test's own.

#![allow(dead_code)]

pub mod cdc;
pub mod commands;
pub mod devices;
pub mod kill;
pub mod late;
pub mod mosquitto;
pub mod ordered;
pub mod source;
pub mod workload;

pub use pushwire_test_support::consume::{
    received_ns as ns, unique_name as unique, wait_subscribed,
};

use std::time::Duration;

use pushwire_core::config::{ChannelOptions, NamespaceConfig};
use pushwire_server::config::EngineKind;
use pushwire_server::ServerConfig;
use pushwire_test_support::test_config;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Redis for the engine in kill-and-restart tests.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Panics with a clear message when nothing listens on `addr` (a missing service fails).
pub async fn require_service(addr: &str, what: &str) {
    if let Err(e) = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("timeout")))
    {
        panic!("{what} is not reachable at {addr} ({e}): start it (see ../shared/reference/real-peers.md, .ci/run)");
    }
}

/// The test configuration plus namespace `big:` (history 10000 for 600 s, recovery forced,
/// presence, anonymous subscribe) for long runs.
pub fn config() -> ServerConfig {
    let mut c = test_config();
    let open = c.channel.without_namespace.clone();
    c.channel.namespaces.push(NamespaceConfig {
        name: "big".into(),
        options: ChannelOptions {
            history_size: 10_000,
            history_ttl: Duration::from_secs(600),
            force_recovery: true,
            presence: true,
            allow_history_for_subscriber: true,
            allow_history_for_anonymous: true,
            allow_presence_for_subscriber: true,
            allow_presence_for_anonymous: true,
            ..open
        },
    });
    c
}

/// [`config`] on the Redis engine with a prefix of its own (state survives a node restart).
pub fn redis_engine_config(id: &str) -> ServerConfig {
    let mut c = config();
    c.engine.kind = EngineKind::Redis;
    c.engine.redis.address = REDIS_URL.into();
    c.engine.redis.prefix = format!("pwc-{id}");
    c
}

/// An event body with `n` (what the SDK script checks) and an event `type`.
pub fn event(n: u64, kind: &str) -> Vec<u8> {
    json!({"n": n, "type": kind}).to_string().into_bytes()
}

/// An `api_command` body publishing [`event`] data to `channel`.
pub fn publish_command(channel: &str, n: u64) -> Vec<u8> {
    json!({"method": "publish", "payload": {"channel": channel, "data": {"n": n, "type": "order"}}})
        .to_string()
        .into_bytes()
}

/// Waits until a condition holds; panics naming it after the timeout (from the testkit).
pub use pushwire_test_support::eventually as wait_until;

/// A TCP port that forwards to `target` only while open: before [`LateBroker::open`] and after
/// [`LateBroker::close`] nothing listens on it (connections are refused) and every forwarded
/// connection is cut, like a broker that is down.
#[derive(Debug)]
pub struct LateBroker {
    /// The port clients are configured with.
    pub port: u16,
    target: String,
    task: Option<JoinHandle<()>>,
}

impl LateBroker {
    /// Reserves a free port for `target` (e.g. `127.0.0.1:5672`); nothing listens yet.
    pub fn new(target: &str) -> LateBroker {
        LateBroker {
            port: pushwire_test_support::node_process::free_port(),
            target: target.into(),
            task: None,
        }
    }

    /// Starts forwarding: the broker is "up".
    pub async fn open(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the reserved port");
        let target = self.target.clone();
        self.task = Some(tokio::spawn(async move {
            // Connection tasks live in this set: aborting the accept task drops (cuts) them.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut down, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
            }
        }));
    }

    /// Stops listening and cuts every forwarded connection: the broker is "down".
    pub async fn close(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for LateBroker {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// The value of `series` (exactly as exposed, labels included) in `GET <http_url>/metrics`.
pub async fn metric_at(http_url: &str, series: &str) -> u64 {
    let text = reqwest::get(format!("{http_url}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}")) as u64
}

/// Where the kill-and-restart tests crash the node, restart it, and how many already
/// published events they hand to the restarted node again (as a crash between publish and
/// acknowledgement would).
pub const KILL_N: u64 = 300;
/// Event after which the node is killed.
pub const KILL_AT: u64 = 120;
/// Event after which it is started again.
pub const RESTART_AT: u64 = 180;
/// Events `REDELIVER_FROM..=KILL_AT` are redelivered to the restarted node.
pub const REDELIVER_FROM: u64 = 91;
