//! `client.*` settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::token::{SubscriptionTokenConfig, TokenConfig};
use super::ConfigError;

/// `client.*`: connection behaviour and per-connection limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Connection token verification.
    pub token: TokenConfig,
    /// Subscription token verification (defaults to `token`).
    pub subscription_token: SubscriptionTokenConfig,
    /// Origins allowed to connect from browsers (`*` wildcards allowed; `["*"]` allows all).
    /// Empty (the default) rejects every request that carries an `Origin` header.
    pub allowed_origins: Vec<String>,
    /// Testing only: no token needed, every channel permission granted.
    pub insecure: bool,
    /// Connect without a token as the anonymous user `""`.
    pub allow_anonymous_connect_without_token: bool,
    /// Interval between server pings.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// How long the server waits for a pong after a ping before closing with 3012.
    #[serde(with = "humantime_serde")]
    pub pong_timeout: Duration,
    /// Bytes a connection may have queued before it is closed with 3008 (slow).
    pub queue_max_size: usize,
    /// Largest single reply to a command, in bytes. A reply is queued even when it takes the
    /// queue past `queue_max_size` (one reply is never a slow consumer), so a connection holds
    /// at most `queue_max_size + reply_max_size`. A recovery that would not fit answers
    /// `recovered: false`; any other reply beyond it is answered with error 106.
    pub reply_max_size: usize,
    /// Subscriptions one connection may hold (106 beyond it).
    pub channel_limit: usize,
    /// Connections one user may hold on this node; 0 = unlimited (3504 beyond it).
    pub user_connection_limit: usize,
    /// A connection that sends no connect within this delay is closed with 3502.
    #[serde(with = "humantime_serde")]
    pub stale_close_delay: Duration,
    /// Grace period after a connection expires before it is closed with 3005.
    #[serde(with = "humantime_serde")]
    pub expired_close_delay: Duration,
    /// Grace period after a subscription token expires before the subscription ends with
    /// Unsubscribe 2501 (the SDK refreshes it with `sub_refresh` before that).
    #[serde(with = "humantime_serde")]
    pub expired_sub_close_delay: Duration,
    /// Cap on publications returned by one history call.
    pub history_max_publication_limit: usize,
    /// Cap on publications recovered on one subscribe; beyond it recovery fails.
    pub recovery_max_publication_limit: usize,
    /// Interval at which presence entries of live connections are refreshed.
    #[serde(with = "humantime_serde")]
    pub presence_update_interval: Duration,
    /// Include server time (Unix ms) in the connect result.
    pub connect_include_server_time: bool,
    /// Commands per second one connection may send on average (0 = unlimited); beyond it
    /// commands get error 111.
    pub command_rate_limit: u32,
    /// Commands one connection may send in a burst.
    pub command_burst: u32,
    /// `client.proxy.*`: connect, refresh and send proxies.
    pub proxy: super::proxy::ClientProxyConfig,
    /// How long a connection holds what is queued for it before writing, to gather more into
    /// one frame and one system call (0 = write at once; at most 1s).
    #[serde(with = "humantime_serde")]
    pub write_delay: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            token: TokenConfig::default(),
            subscription_token: SubscriptionTokenConfig::default(),
            allowed_origins: Vec::new(),
            insecure: false,
            allow_anonymous_connect_without_token: false,
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(8),
            queue_max_size: 1024 * 1024,
            reply_max_size: 4 * 1024 * 1024,
            channel_limit: 128,
            user_connection_limit: 0,
            stale_close_delay: Duration::from_secs(10),
            expired_close_delay: Duration::from_secs(25),
            expired_sub_close_delay: Duration::from_secs(25),
            history_max_publication_limit: 300,
            recovery_max_publication_limit: 300,
            presence_update_interval: Duration::from_secs(27),
            connect_include_server_time: false,
            command_rate_limit: 100,
            command_burst: 300,
            proxy: Default::default(),
            write_delay: Duration::ZERO,
        }
    }
}

impl ClientConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.token.validate("client.token")?;
        self.subscription_token.validate(&self.token)?;
        if !self.pong_timeout.is_zero()
            && !self.ping_interval.is_zero()
            && self.pong_timeout >= self.ping_interval
        {
            return Err(ConfigError::new(
                "client.pong_timeout",
                "must be less than client.ping_interval",
            ));
        }
        if self.ping_interval.is_zero() && !self.pong_timeout.is_zero() {
            return Err(ConfigError::new(
                "client.pong_timeout",
                "needs client.ping_interval > 0",
            ));
        }
        if self.reply_max_size < 1024 {
            return Err(ConfigError::new(
                "client.reply_max_size",
                "must be at least 1024 bytes",
            ));
        }
        if self.queue_max_size < 1024 {
            return Err(ConfigError::new(
                "client.queue_max_size",
                "must be at least 1024 bytes",
            ));
        }
        if self.stale_close_delay.is_zero() {
            return Err(ConfigError::new("client.stale_close_delay", "must be > 0"));
        }
        if self.command_rate_limit > 0 && (self.command_burst as usize) < self.channel_limit + 2 {
            return Err(ConfigError::new(
                "client.command_burst",
                "must allow a connect with a full channel_limit of subscribes (channel_limit + 2)",
            ));
        }
        if self.write_delay > Duration::from_secs(1) {
            return Err(ConfigError::new("client.write_delay", "must be at most 1s"));
        }
        if self.channel_limit == 0 {
            return Err(ConfigError::new("client.channel_limit", "must be > 0"));
        }
        for (i, o) in self.allowed_origins.iter().enumerate() {
            if o.trim().is_empty() {
                return Err(ConfigError::new(
                    format!("client.allowed_origins[{i}]"),
                    "empty origin pattern",
                ));
            }
        }
        Ok(())
    }
}
