//! Errors of the Redis engine.

use std::time::Duration;

use pushwire_core::engine::EngineError;

/// Why the engine could not start. The message names the `engine.redis.address` it tried.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address is not a Redis URL.
    #[error("engine.redis.address {address:?} is not a Redis URL: {source}")]
    Url {
        /// The configured address.
        address: String,
        /// The parser's complaint.
        source: redis::RedisError,
    },
    /// A root certificate file (`engine.redis.tls_ca_pem_file` or
    /// `engine.redis.sentinel_tls.server_ca_pem_file`) could not be read or holds no PEM
    /// certificate.
    #[error("{key} {path}: {source}")]
    TlsCa {
        /// The key that names the file.
        key: &'static str,
        /// The configured file.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// No sentinel named a reachable master: `key` is `engine.redis.sentinel_master_name`
    /// when the sentinels answered but do not know that name,
    /// `engine.redis.sentinel_tls.server_ca_pem_file` when a sentinel's certificate is not
    /// trusted, `engine.redis.tls_ca_pem_file` when the master's is not,
    /// `engine.redis.sentinel_address` when none answered.
    #[error("{key} (master {master_name:?}, sentinels {sentinels}): {source}")]
    Sentinel {
        /// The key at fault.
        key: &'static str,
        /// The configured master name.
        master_name: String,
        /// The configured sentinels, comma-separated.
        sentinels: String,
        /// What failed.
        source: redis::RedisError,
    },
    /// The Redis Cluster of `engine.redis.cluster_address` could not be used: no seed
    /// answered, a seed is a plain Redis without cluster support, or some partition's slot
    /// has no master.
    #[error("engine.redis.cluster_address ({seeds}): not a usable Redis Cluster: {source}")]
    Cluster {
        /// The configured seeds, comma-separated.
        seeds: String,
        /// What failed.
        source: redis::RedisError,
    },
    /// The Redis Cluster did not answer in time.
    #[error("engine.redis.cluster_address ({seeds}): no answer within {timeout:?}")]
    ClusterTimeout {
        /// The configured seeds, comma-separated.
        seeds: String,
        /// The time waited.
        timeout: Duration,
    },
    /// Redis refused or failed the connection or the first command.
    #[error("cannot reach Redis at engine.redis.address {address}: {source}")]
    Connect {
        /// The configured address.
        address: String,
        /// What failed.
        source: redis::RedisError,
    },
    /// Redis did not answer in time.
    #[error("cannot reach Redis at engine.redis.address {address}: no answer within {timeout:?}")]
    Timeout {
        /// The configured address.
        address: String,
        /// The time waited.
        timeout: Duration,
    },
}

/// A Redis failure during operation, as the node sees it: `EngineError::Unavailable`
/// ("redis circuit open") for a command the shard's open circuit refused, else a backend
/// error keeping Redis' own.
pub(crate) fn backend(e: redis::RedisError) -> EngineError {
    match crate::circuit::refusal(&e) {
        Some(open) => crate::circuit::unavailable(open),
        None => EngineError::caused("redis", e),
    }
}

/// A malformed answer or stored value.
pub(crate) fn malformed(what: impl std::fmt::Display) -> EngineError {
    EngineError::backend(format!("redis: malformed {what}"))
}
