//! `engine.redis.*`: where the Redis engine connects and how it behaves.

use std::time::Duration;

use pushwire_core::config::{CircuitBreakerConfig, ConfigError};

use crate::address::RedisAddress;
use crate::tls::SentinelTlsConfig;
use serde::{Deserialize, Serialize};

/// Settings of the Redis engine. Defaults fit a local Redis; [`RedisConfig::validate`] names the
/// offending key (`engine.redis.<field>`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Redis URL: `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS; or a
    /// list of them, which shards channels over those Redis by consistent hashing of the
    /// channel name (see [`RedisAddress`]).
    pub address: RedisAddress,
    /// Redis Sentinel addresses (`host:port` each). When set, the engine asks them for the
    /// master of [`RedisConfig::sentinel_master_name`] and follows it across failovers;
    /// `address` then only lends its user, password and db to the master connection.
    pub sentinel_address: Vec<String>,
    /// Redis Cluster seed nodes (`host:port` or `redis://host:port` each). When set, the
    /// engine runs on that Redis Cluster: every channel's keys share the hash tag of its
    /// partition and publications travel over sharded PUB/SUB (`SPUBLISH`/`SSUBSCRIBE`,
    /// Redis ≥ 7). `address` then only lends its user, password and TLS scheme.
    pub cluster_address: Vec<String>,
    /// Redis Cluster: how many partitions channels are grouped into (each has its own hash
    /// tag, so its own slot, and each node subscribes to a partition's channels over one
    /// connection to the master serving that slot). More partitions spread channels over
    /// more slots (and masters); every node opens one PUB/SUB connection per partition.
    pub sharded_pub_sub_partitions: usize,
    /// The name the sentinels monitor the master under (required with `sentinel_address`).
    pub sentinel_master_name: String,
    /// User for the sentinels (ACL); empty: none.
    pub sentinel_user: String,
    /// Password for the sentinels; empty: none.
    pub sentinel_password: String,
    /// TLS to the sentinels (`engine.redis.sentinel_tls.*`, see [`SentinelTlsConfig`]).
    pub sentinel_tls: SentinelTlsConfig,
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
    /// `circuit_breaker.failures` / `.open_for`: a breaker per shard's command connection.
    /// After `failures` consecutive timeouts or connection errors (Redis' error replies do not
    /// count) every command to that shard fails at once for `open_for`, then one trial
    /// command goes through: success closes it. `failures = 0` turns it off (every command
    /// then waits up to `command_timeout` while Redis hangs).
    pub circuit_breaker: CircuitBreakerConfig,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            address: "redis://127.0.0.1:6379".into(),
            sentinel_address: Vec::new(),
            cluster_address: Vec::new(),
            sharded_pub_sub_partitions: 16,
            sentinel_master_name: String::new(),
            sentinel_user: String::new(),
            sentinel_password: String::new(),
            sentinel_tls: SentinelTlsConfig::default(),
            tls_ca_pem_file: String::new(),
            prefix: "pushwire".into(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(5),
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(5),
            presence_ttl: Duration::from_secs(60),
            idempotency_window: Duration::from_secs(300),
            circuit_breaker: CircuitBreakerConfig::default(),
        }
    }
}

impl RedisConfig {
    /// Checks every value; `section` is the key path of this section (`engine.redis`).
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{section}.{k}");
        if self.address.is_empty() {
            return Err(ConfigError::new(key("address"), "needs at least one URL"));
        }
        for (i, url) in self.address.urls().iter().enumerate() {
            if let Err(e) = redis::Client::open(url.as_str()) {
                return Err(ConfigError::new(
                    key("address"),
                    format!("entry {i}: {url:?} is not a Redis URL: {e}"),
                ));
            }
            if self.address.urls()[..i].contains(url) {
                return Err(ConfigError::new(
                    key("address"),
                    format!("entry {i}: {url:?} is listed twice"),
                ));
            }
        }
        if !self.tls_ca_pem_file.is_empty()
            && !self
                .address
                .urls()
                .iter()
                .all(|u| u.starts_with("rediss://"))
        {
            return Err(ConfigError::new(
                key("tls_ca_pem_file"),
                "needs a rediss:// address",
            ));
        }
        if !self.sentinel_address.is_empty() {
            for (i, entry) in self.sentinel_address.iter().enumerate() {
                if crate::sentinel::sentinel_addr(entry).is_none() {
                    return Err(ConfigError::new(
                        key("sentinel_address"),
                        format!("entry {i}: {entry:?} is not host:port"),
                    ));
                }
            }
            if self.sentinel_master_name.trim().is_empty() {
                return Err(ConfigError::new(
                    key("sentinel_master_name"),
                    "required with sentinel_address",
                ));
            }
            if self.address.len() > 1 {
                return Err(ConfigError::new(
                    key("address"),
                    "a list (sharding) can not be combined with sentinel_address",
                ));
            }
        }
        self.sentinel_tls.validate(self, section)?;
        if self.sentinel_address.is_empty() && !self.sentinel_master_name.is_empty() {
            return Err(ConfigError::new(
                key("sentinel_address"),
                "required with sentinel_master_name",
            ));
        }
        if !self.cluster_address.is_empty() {
            for (i, entry) in self.cluster_address.iter().enumerate() {
                if crate::cluster::seed_url(entry, self.address.urls()[0].as_str()).is_none() {
                    return Err(ConfigError::new(
                        key("cluster_address"),
                        format!("entry {i}: {entry:?} is not host:port or a redis:// URL"),
                    ));
                }
            }
            if !self.sentinel_address.is_empty() {
                return Err(ConfigError::new(
                    key("cluster_address"),
                    "can not be combined with sentinel_address",
                ));
            }
            if self.address.len() > 1 {
                return Err(ConfigError::new(
                    key("address"),
                    "a list (sharding) can not be combined with cluster_address",
                ));
            }
            if !self.tls_ca_pem_file.is_empty()
                && self
                    .cluster_address
                    .iter()
                    .any(|e| e.trim().starts_with("redis://"))
            {
                return Err(ConfigError::new(
                    key("cluster_address"),
                    "a redis:// seed can not be combined with tls_ca_pem_file (use rediss://)",
                ));
            }
            if self.prefix.contains(['{', '}']) {
                return Err(ConfigError::new(
                    key("prefix"),
                    "must not contain { or } with cluster_address (hash tags)",
                ));
            }
        }
        if !(1..=1024).contains(&self.sharded_pub_sub_partitions) {
            return Err(ConfigError::new(
                key("sharded_pub_sub_partitions"),
                "must be between 1 and 1024",
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
        if self.circuit_breaker.failures > 0 && self.circuit_breaker.open_for.is_zero() {
            return Err(ConfigError::new(
                key("circuit_breaker.open_for"),
                "must be > 0 (or circuit_breaker.failures = 0 to turn the breaker off)",
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
        let bad = RedisConfig {
            circuit_breaker: CircuitBreakerConfig {
                failures: 3,
                open_for: Duration::ZERO,
            },
            ..Default::default()
        };
        assert_eq!(
            bad.validate("engine.redis").unwrap_err().key,
            "engine.redis.circuit_breaker.open_for"
        );
        let off = RedisConfig {
            circuit_breaker: CircuitBreakerConfig {
                failures: 0,
                open_for: Duration::ZERO,
            },
            ..Default::default()
        };
        off.validate("engine.redis").unwrap();
        for address in [
            RedisAddress::from(Vec::new()),
            RedisAddress::from(vec!["redis://a:1".to_owned(), "nope".to_owned()]),
            RedisAddress::from(vec!["redis://a:1".to_owned(), "redis://a:1".to_owned()]),
        ] {
            let bad = RedisConfig {
                address,
                ..Default::default()
            };
            assert_eq!(
                bad.validate("engine.redis").unwrap_err().key,
                "engine.redis.address"
            );
        }
        let sentinel = RedisConfig {
            sentinel_address: vec!["127.0.0.1:26391".into()],
            sentinel_master_name: "pwmaster".into(),
            ..Default::default()
        };
        sentinel.validate("engine.redis").unwrap();
        for (bad, key) in [
            (
                RedisConfig {
                    sentinel_master_name: String::new(),
                    ..sentinel.clone()
                },
                "engine.redis.sentinel_master_name",
            ),
            (
                RedisConfig {
                    sentinel_address: vec!["redis://127.0.0.1:26391".into()],
                    ..sentinel.clone()
                },
                "engine.redis.sentinel_address",
            ),
            (
                RedisConfig {
                    sentinel_address: Vec::new(),
                    ..sentinel
                },
                "engine.redis.sentinel_address",
            ),
        ] {
            assert_eq!(bad.validate("engine.redis").unwrap_err().key, key);
        }
        let cluster = RedisConfig {
            cluster_address: vec!["127.0.0.1:7001".into(), "redis://127.0.0.1:7002".into()],
            ..Default::default()
        };
        cluster.validate("engine.redis").unwrap();
        for (bad, key) in [
            (
                RedisConfig {
                    cluster_address: vec!["http://x".into()],
                    ..cluster.clone()
                },
                "engine.redis.cluster_address",
            ),
            (
                RedisConfig {
                    sentinel_address: vec!["127.0.0.1:26391".into()],
                    sentinel_master_name: "m".into(),
                    ..cluster.clone()
                },
                "engine.redis.cluster_address",
            ),
            (
                RedisConfig {
                    prefix: "{pw}".into(),
                    ..cluster.clone()
                },
                "engine.redis.prefix",
            ),
            (
                RedisConfig {
                    sharded_pub_sub_partitions: 0,
                    ..cluster
                },
                "engine.redis.sharded_pub_sub_partitions",
            ),
        ] {
            assert_eq!(bad.validate("engine.redis").unwrap_err().key, key);
        }
    }
}
