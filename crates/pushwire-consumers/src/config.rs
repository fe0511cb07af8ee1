//! The `consumers` configuration section (Centrifugo-shaped).
//!
//! ```toml
//! [[consumers]]
//! name = "orders"
//! type = "rabbitmq"            # kafka | rabbitmq | nats_jetstream | redis_stream | postgresql_outbox | postgresql_cdc | mysql_cdc | mqtt
//! mode = "route"               # api_command (default) | route | debezium
//! route = { channel = "orders.{type}", tag_field = "type" }
//! rabbitmq = { url = "amqp://guest:guest@127.0.0.1:5672/%2f", queue = "orders", prefetch = 100 }
//! ```
//!
//! Every consumer is validated when the configuration is read: a missing source sub-section,
//! an empty required key or a bad route template stops start-up with an error naming the key.

use std::time::Duration;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

use crate::kafka::KafkaSettings;
use crate::mqtt::MqttSettings;
use crate::mysql_cdc::MysqlCdcSettings;
use crate::nats_jetstream::NatsJetStreamSettings;
use crate::payload::PayloadSettings;
use crate::postgresql_cdc::PostgresCdcSettings;
use crate::postgresql_outbox::PostgresOutboxSettings;
use crate::rabbitmq::RabbitMqSettings;
use crate::redis_stream::RedisStreamSettings;
use crate::template::Template;

/// The source a consumer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerType {
    /// Kafka consumer group (`kafka` sub-section).
    Kafka,
    /// RabbitMQ queue (`rabbitmq` sub-section).
    Rabbitmq,
    /// NATS JetStream durable pull consumer (`nats_jetstream` sub-section).
    NatsJetstream,
    /// Redis Streams consumer group (`redis_stream` sub-section).
    RedisStream,
    /// PostgreSQL outbox table (`postgresql_outbox` sub-section).
    PostgresqlOutbox,
    /// PostgreSQL logical replication, `pgoutput` (`postgresql_cdc` sub-section; route mode).
    PostgresqlCdc,
    /// MQTT 3.1.1 / 5 subscriptions (`mqtt` sub-section).
    Mqtt,
    /// MySQL / MariaDB row-based binlog (`mysql_cdc` sub-section; route mode).
    MysqlCdc,
}

impl ConsumerType {
    /// The config name, also the `type` metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerType::Kafka => "kafka",
            ConsumerType::Rabbitmq => "rabbitmq",
            ConsumerType::NatsJetstream => "nats_jetstream",
            ConsumerType::RedisStream => "redis_stream",
            ConsumerType::PostgresqlOutbox => "postgresql_outbox",
            ConsumerType::PostgresqlCdc => "postgresql_cdc",
            ConsumerType::Mqtt => "mqtt",
            ConsumerType::MysqlCdc => "mysql_cdc",
        }
    }

    /// The cargo feature of `pushwire-consumers` that compiles this source in.
    pub fn feature(self) -> &'static str {
        match self {
            ConsumerType::Kafka => "kafka",
            ConsumerType::Rabbitmq => "rabbitmq",
            ConsumerType::NatsJetstream => "nats_jetstream",
            ConsumerType::RedisStream => "redis_stream",
            ConsumerType::PostgresqlOutbox => "postgresql_outbox",
            ConsumerType::PostgresqlCdc => "postgresql_cdc",
            ConsumerType::Mqtt => "mqtt",
            ConsumerType::MysqlCdc => "mysql_cdc",
        }
    }

    /// Whether this build includes the source (its cargo feature is on; the default build
    /// enables every source).
    pub fn compiled(self) -> bool {
        match self {
            ConsumerType::Kafka => cfg!(feature = "kafka"),
            ConsumerType::Rabbitmq => cfg!(feature = "rabbitmq"),
            ConsumerType::NatsJetstream => cfg!(feature = "nats_jetstream"),
            ConsumerType::RedisStream => cfg!(feature = "redis_stream"),
            ConsumerType::PostgresqlOutbox => cfg!(feature = "postgresql_outbox"),
            ConsumerType::PostgresqlCdc => cfg!(feature = "postgresql_cdc"),
            ConsumerType::Mqtt => cfg!(feature = "mqtt"),
            ConsumerType::MysqlCdc => cfg!(feature = "mysql_cdc"),
        }
    }
}

/// How a message becomes node operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The body is a server API command: `{"method":"publish","payload":{...}}`.
    #[default]
    ApiCommand,
    /// The body is the publication data; the channel comes from `route.channel`.
    Route,
    /// The body is a Debezium change envelope: converted to the CDC change event
    /// (`{"op","schema","table","row","old","lsn","commit_time"}`), then routed as in `route`.
    Debezium,
}

/// `consumers[].route`: used in `route` mode.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// Channel template: literal text with `{subject}`, `{header.NAME}` and `{FIELD}` (a
    /// field of the JSON body; dots walk into nested objects) placeholders, e.g.
    /// `orders.{type}`, `user#{user_id}`, `orders:{row.id}`.
    pub channel: String,
    /// A body field (dotted path allowed) whose value also becomes the publication tag of the same name
    /// (e.g. `type`), so clients can filter with tags filters. Empty = none.
    pub tag_field: String,
    /// Skip history for routed publications (off: history is what makes delivery recoverable).
    pub skip_history: bool,
}

fn yes() -> bool {
    true
}

fn default_backoff_min() -> Duration {
    Duration::from_millis(100)
}

fn default_backoff_max() -> Duration {
    Duration::from_secs(10)
}

fn default_pause_queued_bytes() -> usize {
    64 << 20
}

/// `consumers[]`: one named consumer. Validated when deserialized (see [`Self::validate`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "RawConsumerConfig")]
pub struct ConsumerConfig {
    /// Unique name; the `consumer` metrics label.
    pub name: String,
    /// Run this consumer (default true).
    pub enabled: bool,
    /// Source type.
    #[serde(rename = "type")]
    pub consumer_type: ConsumerType,
    /// Mapping mode (default `api_command`).
    pub mode: Mode,
    /// Route mode settings.
    pub route: RouteConfig,
    /// Body decoding (Avro, Protobuf) before the mode applies it; default JSON as is.
    pub payload: PayloadSettings,
    /// First retry / reconnect delay ceiling (exponential, full jitter). Default 100ms.
    #[serde(with = "humantime_serde")]
    pub retry_backoff_min: Duration,
    /// Largest retry / reconnect delay ceiling. Default 10s.
    #[serde(with = "humantime_serde")]
    pub retry_backoff_max: Duration,
    /// Back-pressure: the consumer pauses fetching while the node's connections have more
    /// than this many bytes queued in total. 0 = never pause. Default 64 MiB.
    pub pause_queued_bytes: usize,
    /// `rabbitmq` settings, required when `type = "rabbitmq"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rabbitmq: Option<RabbitMqSettings>,
    /// `redis_stream` settings, required when `type = "redis_stream"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_stream: Option<RedisStreamSettings>,
    /// `postgresql_outbox` settings, required when `type = "postgresql_outbox"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgresql_outbox: Option<PostgresOutboxSettings>,
    /// `postgresql_cdc` settings, required when `type = "postgresql_cdc"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgresql_cdc: Option<PostgresCdcSettings>,
    /// `mqtt` settings, required when `type = "mqtt"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttSettings>,
    /// `mysql_cdc` settings, required when `type = "mysql_cdc"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mysql_cdc: Option<MysqlCdcSettings>,
    /// `kafka` settings, required when `type = "kafka"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSettings>,
    /// `nats_jetstream` settings, required when `type = "nats_jetstream"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_jetstream: Option<NatsJetStreamSettings>,
}

/// The wire shape of [`ConsumerConfig`], before validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsumerConfig {
    name: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(rename = "type")]
    consumer_type: ConsumerType,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    route: RouteConfig,
    #[serde(default)]
    payload: PayloadSettings,
    #[serde(default = "default_backoff_min", with = "humantime_serde")]
    retry_backoff_min: Duration,
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    retry_backoff_max: Duration,
    #[serde(default = "default_pause_queued_bytes")]
    pause_queued_bytes: usize,
    #[serde(default)]
    rabbitmq: Option<RabbitMqSettings>,
    #[serde(default)]
    redis_stream: Option<RedisStreamSettings>,
    #[serde(default)]
    postgresql_outbox: Option<PostgresOutboxSettings>,
    #[serde(default)]
    postgresql_cdc: Option<PostgresCdcSettings>,
    #[serde(default)]
    mqtt: Option<MqttSettings>,
    #[serde(default)]
    mysql_cdc: Option<MysqlCdcSettings>,
    #[serde(default)]
    kafka: Option<KafkaSettings>,
    #[serde(default)]
    nats_jetstream: Option<NatsJetStreamSettings>,
}

impl TryFrom<RawConsumerConfig> for ConsumerConfig {
    type Error = String;

    fn try_from(r: RawConsumerConfig) -> Result<Self, String> {
        let c = ConsumerConfig {
            name: r.name,
            enabled: r.enabled,
            consumer_type: r.consumer_type,
            mode: r.mode,
            route: r.route,
            payload: r.payload,
            retry_backoff_min: r.retry_backoff_min,
            retry_backoff_max: r.retry_backoff_max,
            pause_queued_bytes: r.pause_queued_bytes,
            rabbitmq: r.rabbitmq,
            redis_stream: r.redis_stream,
            postgresql_outbox: r.postgresql_outbox,
            postgresql_cdc: r.postgresql_cdc,
            mqtt: r.mqtt,
            mysql_cdc: r.mysql_cdc,
            kafka: r.kafka,
            nats_jetstream: r.nats_jetstream,
        };
        let key = format!("consumers[name={}]", c.name);
        c.validate(&key)
            .map_err(|e| format!("{}: {}", e.key, e.reason))?;
        Ok(c)
    }
}

impl ConsumerConfig {
    /// A consumer of `consumer_type` named `name` with defaults and no source settings.
    pub fn new(name: impl Into<String>, consumer_type: ConsumerType) -> Self {
        ConsumerConfig {
            name: name.into(),
            enabled: true,
            consumer_type,
            mode: Mode::ApiCommand,
            route: RouteConfig::default(),
            payload: PayloadSettings::default(),
            retry_backoff_min: default_backoff_min(),
            retry_backoff_max: default_backoff_max(),
            pause_queued_bytes: default_pause_queued_bytes(),
            rabbitmq: None,
            redis_stream: None,
            postgresql_outbox: None,
            postgresql_cdc: None,
            mqtt: None,
            mysql_cdc: None,
            kafka: None,
            nats_jetstream: None,
        }
    }

    /// Checks the consumer; errors name the key under `key` (e.g. `consumers[0]`).
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new(format!("{key}.name"), "must not be empty"));
        }
        if self.retry_backoff_min.is_zero() || self.retry_backoff_max < self.retry_backoff_min {
            return Err(ConfigError::new(
                format!("{key}.retry_backoff_min"),
                "must be > 0 and not above retry_backoff_max",
            ));
        }
        if matches!(self.mode, Mode::Route | Mode::Debezium) {
            if self.route.channel.is_empty() {
                return Err(ConfigError::new(
                    format!("{key}.route.channel"),
                    "must be set in route and debezium modes",
                ));
            }
            Template::parse(&self.route.channel)
                .map_err(|e| ConfigError::new(format!("{key}.route.channel"), e))?;
        }
        self.payload.validate(&format!("{key}.payload"))?;
        fn missing(key: &str, section: &str) -> ConfigError {
            ConfigError::new(
                format!("{key}.{section}"),
                format!("section required for type = \"{section}\""),
            )
        }
        let section = self.consumer_type.as_str();
        if self.enabled && !self.consumer_type.compiled() {
            return Err(ConfigError::new(
                format!("{key}.type"),
                format!(
                    "this build does not include the {section} consumer (cargo feature `{}`)",
                    self.consumer_type.feature()
                ),
            ));
        }
        let skey = format!("{key}.{section}");
        match self.consumer_type {
            ConsumerType::Rabbitmq => self
                .rabbitmq
                .as_ref()
                .ok_or_else(|| missing(key, section))?
                .validate(&skey),
            ConsumerType::RedisStream => self
                .redis_stream
                .as_ref()
                .ok_or_else(|| missing(key, section))?
                .validate(&skey),
            ConsumerType::PostgresqlOutbox => self
                .postgresql_outbox
                .as_ref()
                .ok_or_else(|| missing(key, section))?
                .validate(&skey),
            ConsumerType::PostgresqlCdc => {
                if self.mode != Mode::Route {
                    return Err(ConfigError::new(
                        format!("{key}.mode"),
                        "must be \"route\" for postgresql_cdc (the body is a change event)",
                    ));
                }
                self.postgresql_cdc
                    .as_ref()
                    .ok_or_else(|| missing(key, section))?
                    .validate(&skey)
            }
            ConsumerType::MysqlCdc => {
                if self.mode != Mode::Route {
                    return Err(ConfigError::new(
                        format!("{key}.mode"),
                        "must be \"route\" for mysql_cdc (the body is a change event)",
                    ));
                }
                self.mysql_cdc
                    .as_ref()
                    .ok_or_else(|| missing(key, section))?
                    .validate(&skey)
            }
            ConsumerType::Mqtt => self
                .mqtt
                .as_ref()
                .ok_or_else(|| missing(key, section))?
                .validate(&skey),
            ConsumerType::Kafka => self
                .kafka
                .as_ref()
                .ok_or_else(|| missing(key, section))?
                .validate(&skey),
            ConsumerType::NatsJetstream => self
                .nats_jetstream
                .as_ref()
                .ok_or_else(|| missing(key, section))?
                .validate(&skey),
        }
    }
}

/// Validates every consumer and checks names are unique; keys are `consumers[i]...`.
pub fn validate_all(configs: &[ConsumerConfig]) -> Result<(), ConfigError> {
    for (i, c) in configs.iter().enumerate() {
        let key = format!("consumers[{i}]");
        c.validate(&key)?;
        if configs[..i].iter().any(|o| o.name == c.name) {
            return Err(ConfigError::new(
                format!("{key}.name"),
                format!("duplicate consumer name {:?}", c.name),
            ));
        }
    }
    Ok(())
}

/// Checks a key that must not be empty.
pub(crate) fn required(key: &str, field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        Err(ConfigError::new(format!("{key}.{field}"), "must be set"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<ConsumerConfig, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_a_centrifugo_shaped_consumer_with_defaults() {
        let c = parse(json!({
            "name": "orders", "type": "rabbitmq",
            "rabbitmq": {"queue": "orders", "dead_letter_exchange": "dlx"}
        }))
        .unwrap();
        assert!(c.enabled);
        assert_eq!(c.mode, Mode::ApiCommand);
        assert_eq!(c.consumer_type.as_str(), "rabbitmq");
        let r = c.rabbitmq.unwrap();
        assert_eq!(r.prefetch, 100);
        assert_eq!(r.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(c.retry_backoff_max, Duration::from_secs(10));
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse(json!({"name": "a", "type": "redis_stream"})).unwrap_err();
        assert!(e.contains("consumers[name=a].redis_stream"), "{e}");
        let e = parse(json!({"name": "a", "type": "rabbitmq", "rabbitmq": {}})).unwrap_err();
        assert!(e.contains("rabbitmq.queue"), "{e}");
        let e = parse(json!({
            "name": "a", "type": "rabbitmq", "rabbitmq": {"queue": "q"},
            "mode": "route", "route": {"channel": "orders.{type"}
        }))
        .unwrap_err();
        assert!(e.contains("route.channel") && e.contains("unclosed"), "{e}");
        let e = parse(json!({
            "name": "a", "type": "postgresql_outbox",
            "postgresql_outbox": {"table": "Bad Name"}
        }))
        .unwrap_err();
        assert!(e.contains("postgresql_outbox.table"), "{e}");
        let e =
            parse(json!({"name": "a", "type": "rabbitmq", "rabbitmq": {"queue": "q"}, "bogus": 1}))
                .unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = parse(json!({"name": "a", "type": "sqs"})).unwrap_err();
        assert!(e.contains("sqs"), "{e}");
    }

    #[test]
    fn names_must_be_unique() {
        let mut a = ConsumerConfig::new("x", ConsumerType::Rabbitmq);
        a.rabbitmq = Some(RabbitMqSettings {
            queue: "q".into(),
            ..Default::default()
        });
        let e = validate_all(&[a.clone(), a]).unwrap_err();
        assert_eq!(e.key, "consumers[1].name");
    }
}
