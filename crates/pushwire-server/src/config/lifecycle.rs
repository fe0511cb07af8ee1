//! `lifecycle.*`: lifecycle events and where they go (docs/lifecycle.md).

use std::time::Duration;

use pushwire_core::config::{ConfigError, LifecycleSettings};
use pushwire_core::lifecycle::EventKind;
use serde::{Deserialize, Serialize};

/// `lifecycle.*`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Make lifecycle events (off by default).
    pub enabled: bool,
    /// How often each node emits a `snapshot` of its live connections.
    #[serde(with = "humantime_serde")]
    pub snapshot_interval: Duration,
    /// Events recorded and not yet handed to the sinks, at most (beyond: dropped, counted).
    pub queue_size: usize,
    /// Where events go; every sink gets every event it selects.
    pub sinks: Vec<SinkConfig>,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        let core = LifecycleSettings::default();
        LifecycleConfig {
            enabled: core.enabled,
            snapshot_interval: core.snapshot_interval,
            queue_size: core.queue_size,
            sinks: Vec::new(),
        }
    }
}

/// The kind of a sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// HTTP POST of a JSON array of events, signed with HMAC-SHA256.
    #[default]
    Webhook,
    /// `XADD` of each event to a Redis stream.
    RedisStream,
    /// Each event produced to a Kafka topic (key: the node uid, so one partition per node).
    Kafka,
    /// Each event published to a NATS JetStream subject, acknowledged.
    NatsJetstream,
}

/// `[[lifecycle.sinks]]`: one destination of events, with its own bounded spool, batching and
/// retries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// `webhook` or `redis_stream`.
    #[serde(rename = "type")]
    pub kind: SinkKind,
    /// Name in logs and metrics (default: `<type>-<index>`).
    pub name: String,
    /// Event types this sink gets; empty = all.
    pub events: Vec<EventKind>,
    /// Namespaces whose channel events this sink gets (`""` = channels without namespace);
    /// empty = all. Events without a channel (connect, disconnect, node_lost, snapshot) always
    /// pass.
    pub namespaces: Vec<String>,
    /// Webhook: `http://` or `https://` URL.
    pub url: String,
    /// Webhook: HMAC-SHA256 key; each body is signed in `X-Pushwire-Signature: sha256=<hex>`.
    pub secret: String,
    /// Redis stream: `redis://` or `rediss://` address; Kafka: brokers `host:port,…`; NATS:
    /// `nats://host:port`.
    pub address: String,
    /// Kafka: topic.
    pub topic: String,
    /// NATS JetStream: subject (a stream must capture it).
    pub subject: String,
    /// Redis stream: stream key.
    pub stream: String,
    /// Redis stream: approximate length cap (`XADD MAXLEN ~`).
    pub max_len: u64,
    /// Longest wait for one delivery (webhook request, Redis call).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Events per delivery at most.
    pub batch_size: usize,
    /// How long a partial batch waits for more events.
    #[serde(with = "humantime_serde")]
    pub batch_interval: Duration,
    /// Events waiting for this sink at most; beyond it the oldest are dropped (counted in
    /// `pushwire_lifecycle_sink_dropped_total`).
    pub spool_size: usize,
    /// First retry delay after a failed delivery; doubles up to `retry_max_delay`.
    #[serde(with = "humantime_serde")]
    pub retry_min_delay: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub retry_max_delay: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            kind: SinkKind::Webhook,
            name: String::new(),
            events: Vec::new(),
            namespaces: Vec::new(),
            url: String::new(),
            secret: String::new(),
            address: String::new(),
            topic: "pushwire.lifecycle".into(),
            subject: "pushwire.lifecycle".into(),
            stream: "pushwire.lifecycle".into(),
            max_len: 1_000_000,
            timeout: Duration::from_secs(5),
            batch_size: 100,
            batch_interval: Duration::from_millis(100),
            spool_size: 100_000,
            retry_min_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(10),
        }
    }
}

impl LifecycleConfig {
    /// The core's part.
    pub fn settings(&self) -> LifecycleSettings {
        LifecycleSettings {
            enabled: self.enabled,
            snapshot_interval: self.snapshot_interval,
            queue_size: self.queue_size,
        }
    }

    /// Checks every sink; names the key at fault (`lifecycle.sinks[1].url`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.settings().validate()?;
        for (i, s) in self.sinks.iter().enumerate() {
            let key = |k: &str| format!("lifecycle.sinks[{i}].{k}");
            match s.kind {
                SinkKind::Webhook => {
                    if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
                        return Err(ConfigError::new(key("url"), "must be an http(s):// URL"));
                    }
                    if s.secret.len() < 16 {
                        return Err(ConfigError::new(
                            key("secret"),
                            "must be at least 16 bytes (webhook bodies are signed)",
                        ));
                    }
                }
                SinkKind::Kafka => {
                    if !cfg!(feature = "kafka") {
                        return Err(ConfigError::new(
                            key("type"),
                            "kafka sinks need the server's `kafka` cargo feature",
                        ));
                    }
                    if s.address.is_empty() || s.topic.is_empty() {
                        return Err(ConfigError::new(
                            key("address"),
                            "a kafka sink needs address (brokers) and topic",
                        ));
                    }
                }
                SinkKind::NatsJetstream => {
                    if !cfg!(feature = "nats_jetstream") {
                        return Err(ConfigError::new(
                            key("type"),
                            "nats_jetstream sinks need the server's `nats_jetstream` cargo feature",
                        ));
                    }
                    if !(s.address.starts_with("nats://") || s.address.starts_with("tls://")) {
                        return Err(ConfigError::new(key("address"), "must be a nats:// URL"));
                    }
                    if s.subject.is_empty() {
                        return Err(ConfigError::new(key("subject"), "must not be empty"));
                    }
                }
                SinkKind::RedisStream => {
                    if redis::Client::open(s.address.as_str()).is_err() {
                        return Err(ConfigError::new(key("address"), "must be a Redis URL"));
                    }
                    if s.stream.is_empty() {
                        return Err(ConfigError::new(key("stream"), "must not be empty"));
                    }
                }
            }
            if s.timeout.is_zero() {
                return Err(ConfigError::new(key("timeout"), "must be > 0"));
            }
            if s.batch_size == 0 || s.batch_size > 10_000 {
                return Err(ConfigError::new(key("batch_size"), "must be 1..=10000"));
            }
            if s.spool_size < s.batch_size {
                return Err(ConfigError::new(
                    key("spool_size"),
                    "must be at least batch_size",
                ));
            }
            if s.retry_min_delay.is_zero() || s.retry_max_delay < s.retry_min_delay {
                return Err(ConfigError::new(
                    key("retry_max_delay"),
                    "retry_min_delay must be > 0 and not above retry_max_delay",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sinks_name_their_key() {
        let mut c = LifecycleConfig {
            enabled: true,
            sinks: vec![SinkConfig {
                url: "ftp://x".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "lifecycle.sinks[0].url");
        c.sinks[0].url = "http://127.0.0.1:1/e".into();
        assert_eq!(c.validate().unwrap_err().key, "lifecycle.sinks[0].secret");
        c.sinks[0].secret = "0123456789abcdef".into();
        c.validate().unwrap();
        c.sinks.push(SinkConfig {
            kind: SinkKind::RedisStream,
            address: "nope".into(),
            ..Default::default()
        });
        assert_eq!(c.validate().unwrap_err().key, "lifecycle.sinks[1].address");
    }
}
