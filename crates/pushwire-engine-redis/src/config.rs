//! `engine.redis.*`: where the Redis engine connects and how it behaves.

use std::time::Duration;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

/// Settings of the Redis engine. Defaults fit a local Redis; [`RedisConfig::validate`] names the
/// offending key (`engine.redis.<field>`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Redis URL: `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS.
    pub address: String,
    /// PEM file of the root certificate(s) that verify a `rediss://` server instead of the
    /// system's roots (a private CA). Empty: the system's roots.
    pub tls_ca_pem_file: String,
    /// Prepended to every key and PUB/SUB channel (`<prefix>.stream.<channel>`, ...), so several
    /// deployments (or tests) can share one Redis.
    pub prefix: String,
    /// Longest wait for a TCP connection and its handshake.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for one command's answer; beyond it the call fails with a backend error.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// First delay before reconnecting the PUB/SUB connection; doubles per failed attempt.
    #[serde(with = "humantime_serde")]
    pub reconnect_min_delay: Duration,
    /// Largest delay between PUB/SUB reconnect attempts (a random jitter is applied below it).
    #[serde(with = "humantime_serde")]
    pub reconnect_max_delay: Duration,
    /// How long a presence entry lives in Redis without a refresh. The node refreshes its own
    /// entries every third of it, so entries of a crashed node vanish after at most this long.
    #[serde(with = "humantime_serde")]
    pub presence_ttl: Duration,
    /// How long an idempotency key suppresses a duplicate publication in its channel.
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            address: "redis://127.0.0.1:6379".into(),
            tls_ca_pem_file: String::new(),
            prefix: "pushwire".into(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(5),
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(5),
            presence_ttl: Duration::from_secs(60),
            idempotency_window: Duration::from_secs(300),
        }
    }
}

impl RedisConfig {
    /// Checks every value; `section` is the key path of this section (`engine.redis`).
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{section}.{k}");
        if let Err(e) = redis::Client::open(self.address.as_str()) {
            return Err(ConfigError::new(
                key("address"),
                format!("{:?} is not a Redis URL: {e}", self.address),
            ));
        }
        if !self.tls_ca_pem_file.is_empty() && !self.address.starts_with("rediss://") {
            return Err(ConfigError::new(
                key("tls_ca_pem_file"),
                "needs a rediss:// address",
            ));
        }
        if self.prefix.is_empty() || self.prefix.chars().any(char::is_whitespace) {
            return Err(ConfigError::new(
                key("prefix"),
                "must be non-empty and without whitespace",
            ));
        }
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
            ("reconnect_min_delay", self.reconnect_min_delay),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(key(name), "must be > 0"));
            }
        }
        if self.reconnect_max_delay < self.reconnect_min_delay {
            return Err(ConfigError::new(
                key("reconnect_max_delay"),
                "must not be below reconnect_min_delay",
            ));
        }
        if self.presence_ttl < Duration::from_secs(3) {
            return Err(ConfigError::new(key("presence_ttl"), "must be at least 3s"));
        }
        if self.idempotency_window < Duration::from_secs(1) {
            return Err(ConfigError::new(
                key("idempotency_window"),
                "must be at least 1s",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_the_key() {
        RedisConfig::default().validate("engine.redis").unwrap();
        let bad = RedisConfig {
            address: "http://nope".into(),
            ..Default::default()
        };
        assert_eq!(
            bad.validate("engine.redis").unwrap_err().key,
            "engine.redis.address"
        );
        let bad = RedisConfig {
            tls_ca_pem_file: "/etc/ca.pem".into(),
            ..Default::default()
        };
        assert_eq!(
            bad.validate("engine.redis").unwrap_err().key,
            "engine.redis.tls_ca_pem_file",
            "a CA file needs rediss://"
        );
        let bad = RedisConfig {
            prefix: String::new(),
            ..Default::default()
        };
        assert_eq!(
            bad.validate("engine.redis").unwrap_err().key,
            "engine.redis.prefix"
        );
        let bad = RedisConfig {
            reconnect_max_delay: Duration::from_millis(1),
            ..Default::default()
        };
        assert_eq!(
            bad.validate("engine.redis").unwrap_err().key,
            "engine.redis.reconnect_max_delay"
        );
    }
}
