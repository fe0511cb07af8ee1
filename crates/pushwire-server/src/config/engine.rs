//! `engine.*`: where publications, history and presence live.

use pushwire_core::config::ConfigError;
use pushwire_engine_embedded::EmbeddedConfig;
use pushwire_engine_redis::RedisConfig;
use serde::{Deserialize, Serialize};

/// `engine.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// `memory` (default: one node, state in process memory, lost on restart), `embedded`
    /// (one node, streams in a file that survives restarts) or `redis` (state in Redis, shared
    /// by every node on the same `engine.redis.prefix`).
    #[serde(rename = "type")]
    pub kind: EngineKind,
    /// `engine.redis.*`: used when `type = "redis"`.
    pub redis: RedisConfig,
    /// `engine.embedded.*`: used when `type = "embedded"`.
    pub embedded: EmbeddedConfig,
}

/// Which engine a node runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// In-process broker and presence.
    #[default]
    Memory,
    /// Redis broker and presence.
    Redis,
    /// Broker on a local crash-safe file (one node); presence in memory.
    Embedded,
}

impl EngineKind {
    /// The name used in configuration (`memory`, `redis`, `embedded`).
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Memory => "memory",
            EngineKind::Redis => "redis",
            EngineKind::Embedded => "embedded",
        }
    }
}

impl EngineConfig {
    /// Checks the section of the chosen engine; names the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.kind {
            EngineKind::Memory => Ok(()),
            EngineKind::Redis => self.redis.validate("engine.redis"),
            EngineKind::Embedded => self.embedded.validate("engine.embedded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EngineConfig, String> {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(text))
            .extract()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_type_and_redis_section() {
        let c = parse(
            r#"
            type = "redis"
            [redis]
            address = "redis://127.0.0.1:6390"
            prefix = "app"
            connect_timeout = "250ms"
            "#,
        )
        .unwrap();
        assert_eq!(c.kind, EngineKind::Redis);
        assert_eq!(c.redis.prefix, "app");
        assert_eq!(
            c.redis.connect_timeout,
            std::time::Duration::from_millis(250)
        );
        c.validate().unwrap();
        assert_eq!(c.redis.address.urls(), ["redis://127.0.0.1:6390"]);
        let sharded = parse(
            r#"
            type = "redis"
            [redis]
            address = ["redis://127.0.0.1:6390", "redis://127.0.0.1:6391"]
            "#,
        )
        .unwrap();
        assert_eq!(sharded.redis.address.len(), 2);
        sharded.validate().unwrap();
        assert_eq!(EngineConfig::default().kind, EngineKind::Memory);
        assert!(parse("type = \"nats\"").is_err());
        assert!(parse("[redis]\nbogus = 1").is_err());
        let bad = EngineConfig {
            kind: EngineKind::Redis,
            redis: RedisConfig {
                address: "nope".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "engine.redis.address");
    }

    /// `engine.redis.circuit_breaker.*` (pushwire's own keys) from a file and from
    /// `PUSHWIRE_*`, defaulted, and validated by key.
    #[test]
    fn the_redis_circuit_breaker_keys_load_from_file_and_env_and_are_validated() {
        use crate::config::load::{analyze, finish, Overrides};
        let c = parse(
            r#"
            type = "redis"
            [redis.circuit_breaker]
            failures = 3
            open_for = "1s"
            "#,
        )
        .unwrap();
        assert_eq!(c.redis.circuit_breaker.failures, 3);
        assert_eq!(
            c.redis.circuit_breaker.open_for,
            std::time::Duration::from_secs(1)
        );
        let defaults = EngineConfig::default().redis.circuit_breaker;
        assert_eq!(
            (defaults.failures, defaults.open_for),
            (5, std::time::Duration::from_secs(2))
        );

        let env: std::collections::HashMap<String, String> = [
            ("PUSHWIRE_ENGINE__TYPE", "redis"),
            ("PUSHWIRE_ENGINE__REDIS__CIRCUIT_BREAKER__FAILURES", "0"),
            ("PUSHWIRE_ENGINE__REDIS__CIRCUIT_BREAKER__OPEN_FOR", "750ms"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let loaded = finish(analyze(None, &Overrides::default(), &env).unwrap()).unwrap();
        let breaker = &loaded.config.engine.redis.circuit_breaker;
        assert_eq!(breaker.failures, 0, "0 turns it off");
        assert_eq!(breaker.open_for, std::time::Duration::from_millis(750));

        let bad: std::collections::HashMap<String, String> = [
            ("PUSHWIRE_ENGINE__TYPE", "redis"),
            ("PUSHWIRE_ENGINE__REDIS__CIRCUIT_BREAKER__OPEN_FOR", "0s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let err = finish(analyze(None, &Overrides::default(), &bad).unwrap()).unwrap_err();
        assert!(
            format!("{err:#}").contains("engine.redis.circuit_breaker.open_for"),
            "{err:#}"
        );
        assert!(parse("[redis.circuit_breaker]\nfailure = 3").is_err());
    }

    #[test]
    fn parses_the_embedded_section() {
        let c = parse(
            r#"
            type = "embedded"
            [embedded]
            path = "/var/lib/pushwire"
            fsync = "interval"
            fsync_interval = "50ms"
            max_size = 1073741824
            on_corruption = "move_aside"
            "#,
        )
        .unwrap();
        assert_eq!(c.kind, EngineKind::Embedded);
        assert_eq!(c.embedded.path, "/var/lib/pushwire");
        assert_eq!(
            c.embedded.fsync,
            pushwire_engine_embedded::FsyncPolicy::Interval
        );
        assert_eq!(
            c.embedded.fsync_interval,
            std::time::Duration::from_millis(50)
        );
        assert_eq!(c.embedded.max_size, 1 << 30);
        assert_eq!(
            c.embedded.on_corruption,
            pushwire_engine_embedded::OnCorruption::MoveAside
        );
        c.validate().unwrap();
        assert!(parse("[embedded]\nfsync = \"sometimes\"").is_err());
        let bad = EngineConfig {
            kind: EngineKind::Embedded,
            embedded: EmbeddedConfig::at(""),
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "engine.embedded.path");
    }
}
