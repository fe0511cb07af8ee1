//! [`RedisAddress`]: `engine.redis.address`, one Redis URL or a list of them (one per shard).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One or more Redis URLs. In configuration a string (one Redis) or a list of strings: with
/// several, every channel lives on one of them, chosen by consistent hashing of the channel
/// name ([`crate::shard::consistent_index`], the same mapping as Centrifugo), so N Redis
/// instances carry N times the PUB/SUB traffic of one. The first one also carries the
/// control plane between nodes, channel occupancy and per-user connection counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisAddress(Vec<String>);

impl RedisAddress {
    /// The URLs, in configured order (shard index = position).
    pub fn urls(&self) -> &[String] {
        &self.0
    }

    /// How many shards (URLs) there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no URL is configured (invalid; [`crate::RedisConfig::validate`] rejects it).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for RedisAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

impl From<&str> for RedisAddress {
    fn from(url: &str) -> RedisAddress {
        RedisAddress(vec![url.to_owned()])
    }
}

impl From<String> for RedisAddress {
    fn from(url: String) -> RedisAddress {
        RedisAddress(vec![url])
    }
}

impl From<Vec<String>> for RedisAddress {
    fn from(urls: Vec<String>) -> RedisAddress {
        RedisAddress(urls)
    }
}

impl Serialize for RedisAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RedisAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RedisAddress, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(url) => RedisAddress(vec![url]),
            OneOrMany::Many(urls) => RedisAddress(urls),
        })
    }
}
