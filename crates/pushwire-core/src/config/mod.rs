//! Typed configuration of a node, shared by the server's loader and the core.
//!
//! Key names follow Centrifugo v6 (`client.*`, `channel.*`) so that a Centrifugo configuration
//! carries over. Every struct rejects unknown keys; [`NodeConfig::validate`] checks the
//! relations between values and names the offending key.

mod api;
mod channel;
mod client;
mod cluster;
mod lifecycle;
mod proxy;
mod proxy_check;
mod token;

pub use api::ApiLimits;
pub use channel::{
    ChannelConfig, ChannelOptions, DataFormat, NamespaceConfig, RecoveryMode, SlowSubscriberPolicy,
};
pub use client::ClientConfig;
pub use cluster::ClusterConfig;
pub use lifecycle::LifecycleSettings;
pub use proxy::{
    is_default_name, ChannelProxyConfig, CircuitBreakerConfig, ClientProxyConfig, ProxyConfig,
    ProxyGrpcConfig, ProxyHttpConfig, ProxyKind, ProxyTlsConfig, RpcConfig, RpcNamespace,
    RpcOptions, StatusTransform, TransformDisconnect, TransformError,
};
pub use proxy_check::ProxyUse;
pub use token::{SubscriptionTokenConfig, TokenConfig, TOKEN_ALGORITHMS};

use serde::{Deserialize, Serialize};

/// Everything the core needs: client and channel settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// `client.*`: connection behaviour, limits and tokens.
    pub client: ClientConfig,
    /// `channel.*`: namespaces and channel options.
    pub channel: ChannelConfig,
    /// `node.*` (announcements, surveys): the control plane between nodes.
    pub cluster: ClusterConfig,
    /// `lifecycle.*` (the core's part): lifecycle events.
    pub lifecycle: LifecycleSettings,
    /// `rpc.*`: the RPC proxy and method namespaces.
    pub rpc: RpcConfig,
    /// `proxies`: named proxy definitions.
    pub proxies: Vec<ProxyConfig>,
    /// `http_api.batch_*`: bounds on multi-command API calls.
    pub api: ApiLimits,
}

/// A configuration value that is out of range or inconsistent, naming its key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {key}: {reason}")]
pub struct ConfigError {
    /// Dotted key path, e.g. `channel.namespaces[1].history_ttl`.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    /// Builds an error for `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl NodeConfig {
    /// Checks relations between values; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.client.validate()?;
        self.channel.validate()?;
        self.cluster.validate()?;
        self.lifecycle.validate()?;
        self.validate_proxies()
    }
}
