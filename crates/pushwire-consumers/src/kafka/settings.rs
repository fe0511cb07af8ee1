//! `consumers[].kafka`.

use std::collections::BTreeMap;
use std::time::Duration;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

use crate::config::required;

/// Where a consumer group without a committed offset starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaOffsetReset {
    /// The oldest retained message (default).
    #[default]
    Earliest,
    /// Only messages produced after the group first joins.
    Latest,
}

impl KafkaOffsetReset {
    /// The librdkafka `auto.offset.reset` value.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaOffsetReset::Earliest => "earliest",
            KafkaOffsetReset::Latest => "latest",
        }
    }
}

/// `consumers[].kafka`: a consumer group over `topics`; every partition is processed in
/// offset order and its offset committed only after the node has applied the message.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap brokers, `host:port` (required).
    pub brokers: Vec<String>,
    /// Topics to consume (required).
    pub topics: Vec<String>,
    /// Consumer group id (required). Nodes with the same group share the partitions; a
    /// restarted node resumes from the group's committed offsets.
    pub consumer_group: String,
    /// Where the group starts when it has no committed offset: `earliest` (default) or `latest`.
    pub auto_offset_reset: KafkaOffsetReset,
    /// Topic poison messages are produced to (key, payload and headers kept, plus
    /// `pushwire-dead-letter-reason`, `pushwire-source-topic`, `pushwire-source-partition`,
    /// `pushwire-source-offset` headers). Empty (default) = poison messages are skipped,
    /// logged and counted.
    pub dead_letter_topic: String,
    /// Messages buffered per partition between the fetcher and the partition's worker.
    /// When one is full, fetching waits (back-pressure). Default 256.
    pub partition_queue_size: usize,
    /// How often processed offsets are committed (`auto.commit.interval.ms`; only offsets
    /// of processed messages are ever stored). Default 1s.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Group session timeout (`session.timeout.ms`). Default 10s.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// How often the lag gauge is refreshed from librdkafka statistics (high watermark minus
    /// processed offset, summed over assigned partitions). Default 5s.
    #[serde(with = "humantime_serde")]
    pub lag_interval: Duration,
    /// Timeout of producing a dead-letter copy and of the final commit. Default 10s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Extra librdkafka properties (TLS, SASL, fetch tuning...), e.g.
    /// `{ "security.protocol" = "SASL_SSL" }`. They cannot override the properties pushwire
    /// relies on (`group.id`, `enable.auto.offset.store`, `enable.auto.commit`).
    pub librdkafka: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: Vec::new(),
            topics: Vec::new(),
            consumer_group: String::new(),
            auto_offset_reset: KafkaOffsetReset::Earliest,
            dead_letter_topic: String::new(),
            partition_queue_size: 256,
            commit_interval: Duration::from_secs(1),
            session_timeout: Duration::from_secs(10),
            lag_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            librdkafka: BTreeMap::new(),
        }
    }
}

/// librdkafka properties pushwire sets itself; `librdkafka` may not override them.
pub(crate) const RESERVED: &[&str] = &[
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "bootstrap.servers",
    "statistics.interval.ms",
];

impl KafkaSettings {
    /// Checks the section; `key` is its path, e.g. `consumers[0].kafka`.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.brokers.is_empty() || self.brokers.iter().any(|b| b.trim().is_empty()) {
            return Err(ConfigError::new(
                format!("{key}.brokers"),
                "must list at least one broker address",
            ));
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            return Err(ConfigError::new(
                format!("{key}.topics"),
                "must list at least one topic",
            ));
        }
        required(key, "consumer_group", &self.consumer_group)?;
        if self.topics.contains(&self.dead_letter_topic) {
            return Err(ConfigError::new(
                format!("{key}.dead_letter_topic"),
                "must not be one of the consumed topics",
            ));
        }
        if self.partition_queue_size == 0 {
            return Err(ConfigError::new(
                format!("{key}.partition_queue_size"),
                "must be > 0",
            ));
        }
        for (field, d) in [
            ("commit_interval", self.commit_interval),
            ("session_timeout", self.session_timeout),
            ("lag_interval", self.lag_interval),
            ("request_timeout", self.request_timeout),
        ] {
            if d < Duration::from_millis(1) {
                return Err(ConfigError::new(format!("{key}.{field}"), "must be >= 1ms"));
            }
        }
        if let Some(k) = self
            .librdkafka
            .keys()
            .find(|k| RESERVED.contains(&k.as_str()))
        {
            return Err(ConfigError::new(
                format!("{key}.librdkafka.{k}"),
                "is set by pushwire; use the kafka section's own key",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> KafkaSettings {
        KafkaSettings {
            brokers: vec!["127.0.0.1:9092".into()],
            topics: vec!["events".into()],
            consumer_group: "pushwire".into(),
            ..Default::default()
        }
    }

    #[test]
    fn required_keys_are_named() {
        assert_eq!(
            KafkaSettings::default().validate("c").unwrap_err().key,
            "c.brokers"
        );
        assert!(valid().validate("c").is_ok());
        let cases = [
            (
                KafkaSettings {
                    topics: vec![],
                    ..valid()
                },
                "c.topics",
            ),
            (
                KafkaSettings {
                    consumer_group: " ".into(),
                    ..valid()
                },
                "c.consumer_group",
            ),
            (
                KafkaSettings {
                    dead_letter_topic: "events".into(),
                    ..valid()
                },
                "c.dead_letter_topic",
            ),
            (
                KafkaSettings {
                    partition_queue_size: 0,
                    ..valid()
                },
                "c.partition_queue_size",
            ),
            (
                KafkaSettings {
                    librdkafka: [("group.id".to_string(), "x".to_string())].into(),
                    ..valid()
                },
                "c.librdkafka.group.id",
            ),
        ];
        for (s, key) in cases {
            assert_eq!(s.validate("c").unwrap_err().key, key);
        }
    }

    #[test]
    fn parses_centrifugo_shaped_section() {
        let s: KafkaSettings = serde_json::from_value(serde_json::json!({
            "brokers": ["127.0.0.1:9092"],
            "topics": ["events"],
            "consumer_group": "pushwire",
            "auto_offset_reset": "latest",
            "dead_letter_topic": "events-dlq",
            "commit_interval": "500ms",
            "librdkafka": {"fetch.wait.max.ms": "50"},
        }))
        .unwrap();
        assert_eq!(s.auto_offset_reset, KafkaOffsetReset::Latest);
        assert_eq!(s.commit_interval, Duration::from_millis(500));
        assert!(s.validate("c").is_ok());
        assert!(serde_json::from_value::<KafkaSettings>(serde_json::json!({"nope": 1})).is_err());
    }
}
