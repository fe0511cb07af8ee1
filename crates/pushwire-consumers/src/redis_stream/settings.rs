//! `consumers[].redis_stream`.

use std::time::Duration;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

use crate::config::required;

/// `consumers[].redis_stream`: Redis Streams read through a consumer group.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisStreamSettings {
    /// Redis URL (`rediss://` for TLS). Default `redis://127.0.0.1:6379`.
    pub address: String,
    /// PEM file of the root certificate(s) that verify a `rediss://` server instead of the
    /// system's roots. Empty: the system's roots.
    pub tls_ca_pem_file: String,
    /// Streams to read (required, at least one). Order is kept per stream.
    pub streams: Vec<String>,
    /// Consumer group, created with `MKSTREAM` at start. Default `pushwire`.
    pub group: String,
    /// Consumer name in the group; keep it stable across restarts so this node re-reads its
    /// own pending entries first. Empty (default) = the node name.
    pub consumer_name: String,
    /// Entry field holding the body. Default `payload`; other fields become headers.
    pub payload_field: String,
    /// Entries read per `XREADGROUP`. Default 100.
    pub batch_size: usize,
    /// How long `XREADGROUP` blocks waiting for entries. Default 1s.
    #[serde(with = "humantime_serde")]
    pub block: Duration,
    /// Pending entries idle longer than this (a crashed consumer's) are claimed with
    /// `XAUTOCLAIM`. Default 30s.
    #[serde(with = "humantime_serde")]
    pub claim_min_idle: Duration,
    /// How often `XAUTOCLAIM` runs. Default 5s.
    #[serde(with = "humantime_serde")]
    pub claim_interval: Duration,
    /// Stream poison entries are `XADD`ed to; `{stream}` is replaced with the source stream.
    /// Default `{stream}:dead_letter`.
    pub dead_letter_stream: String,
}

impl Default for RedisStreamSettings {
    fn default() -> Self {
        RedisStreamSettings {
            address: "redis://127.0.0.1:6379".into(),
            tls_ca_pem_file: String::new(),
            streams: Vec::new(),
            group: "pushwire".into(),
            consumer_name: String::new(),
            payload_field: "payload".into(),
            batch_size: 100,
            block: Duration::from_secs(1),
            claim_min_idle: Duration::from_secs(30),
            claim_interval: Duration::from_secs(5),
            dead_letter_stream: "{stream}:dead_letter".into(),
        }
    }
}

impl RedisStreamSettings {
    /// Checks the section; `key` is its path, e.g. `consumers[0].redis_stream`.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        required(key, "address", &self.address)?;
        if !self.tls_ca_pem_file.is_empty() && !self.address.starts_with("rediss://") {
            return Err(ConfigError::new(
                format!("{key}.tls_ca_pem_file"),
                "needs a rediss:// address",
            ));
        }
        if self.streams.is_empty() || self.streams.iter().any(|s| s.is_empty()) {
            return Err(ConfigError::new(
                format!("{key}.streams"),
                "must list at least one non-empty stream name",
            ));
        }
        required(key, "group", &self.group)?;
        required(key, "payload_field", &self.payload_field)?;
        required(key, "dead_letter_stream", &self.dead_letter_stream)?;
        if self.batch_size == 0 {
            return Err(ConfigError::new(format!("{key}.batch_size"), "must be > 0"));
        }
        if self.block.is_zero() {
            return Err(ConfigError::new(format!("{key}.block"), "must be > 0"));
        }
        if self.claim_interval.is_zero() {
            return Err(ConfigError::new(
                format!("{key}.claim_interval"),
                "must be > 0",
            ));
        }
        Ok(())
    }

    /// The dead-letter stream of `stream`.
    pub fn dead_letter_for(&self, stream: &str) -> String {
        self.dead_letter_stream.replace("{stream}", stream)
    }
}
