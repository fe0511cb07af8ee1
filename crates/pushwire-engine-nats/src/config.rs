//! `broker.nats.*`: where the NATS broker connects (key names as Centrifugo v6).

use std::time::Duration;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

/// Settings of the NATS broker. [`NatsBrokerConfig::validate`] names the offending key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsBrokerConfig {
    /// NATS server URL (`nats://host:port`; several comma-separated).
    pub url: String,
    /// Prepended to every subject (`<prefix>.client.<channel>`), so unrelated deployments can
    /// share one NATS; nodes with the same prefix form one cluster.
    pub prefix: String,
    /// Longest wait for the connection to NATS (at start and per reconnect attempt).
    #[serde(with = "humantime_serde")]
    pub dial_timeout: Duration,
    /// Longest wait for a subscription to be confirmed by the server (a round trip).
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
}

impl Default for NatsBrokerConfig {
    fn default() -> Self {
        NatsBrokerConfig {
            url: "nats://127.0.0.1:4222".into(),
            prefix: "pushwire".into(),
            dial_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
        }
    }
}

impl NatsBrokerConfig {
    /// Checks every value; `section` is the key path (`broker.nats`).
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{section}.{k}");
        if self.url.trim().is_empty()
            || self
                .url
                .split(',')
                .any(|u| u.trim().parse::<async_nats::ServerAddr>().is_err())
        {
            return Err(ConfigError::new(
                key("url"),
                format!("{:?} is not a NATS URL", self.url),
            ));
        }
        if !crate::subjects::valid_token_path(&self.prefix) {
            return Err(ConfigError::new(
                key("prefix"),
                "must be non-empty, without whitespace, `*`, `>` or empty tokens",
            ));
        }
        for (name, value) in [
            ("dial_timeout", self.dial_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(key(name), "must be > 0"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_the_key() {
        NatsBrokerConfig::default().validate("broker.nats").unwrap();
        for (bad, key) in [
            (
                NatsBrokerConfig {
                    url: "http://[nope".into(),
                    ..Default::default()
                },
                "broker.nats.url",
            ),
            (
                NatsBrokerConfig {
                    prefix: "a b".into(),
                    ..Default::default()
                },
                "broker.nats.prefix",
            ),
            (
                NatsBrokerConfig {
                    dial_timeout: Duration::ZERO,
                    ..Default::default()
                },
                "broker.nats.dial_timeout",
            ),
        ] {
            assert_eq!(bad.validate("broker.nats").unwrap_err().key, key);
        }
    }
}
