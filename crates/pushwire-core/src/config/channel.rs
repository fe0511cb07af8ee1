//! `channel.*` settings: namespaces and their options.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// How recovery works for a namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecoveryMode {
    /// Recover every missed publication from the stream.
    #[default]
    Stream,
    /// Only the latest publication matters.
    Cache,
}

/// What happens to a subscriber whose connection cannot keep up with this namespace's
/// publications (its outbox would pass `client.queue_max_size`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowSubscriberPolicy {
    /// Close the whole connection with 3008 (slow).
    #[default]
    Disconnect,
    /// Drop the backlog of the busiest such subscription and unsubscribe only it with 2500
    /// (insufficient state): the SDK resubscribes and recovers from history; the connection
    /// and its other channels keep flowing.
    Resubscribe,
    /// Conflate the queued publications of the busiest such subscription to its newest one
    /// (cache-like channels where only the latest value matters).
    Latest,
}

/// Validation applied to publication data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum DataFormat {
    /// Any JSON value, but not empty.
    #[default]
    #[serde(rename = "")]
    Default,
    /// Any JSON value.
    #[serde(rename = "json")]
    Json,
    /// A JSON object.
    #[serde(rename = "json_object")]
    JsonObject,
    /// Arbitrary bytes (only protobuf clients can receive non-JSON data).
    #[serde(rename = "binary")]
    Binary,
}

/// Options of one namespace (or of channels without a namespace). All default to off.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelOptions {
    /// Maintain presence; enables `presence` and `presence_stats`.
    pub presence: bool,
    /// Publish join/leave messages on subscribe/unsubscribe.
    pub join_leave: bool,
    /// Push join/leave to every subscriber.
    pub force_push_join_leave: bool,
    /// Publications kept per channel (0 = no history).
    pub history_size: usize,
    /// How long publications are kept.
    #[serde(with = "humantime_serde")]
    pub history_ttl: Duration,
    /// How long the stream position (offset, epoch) survives without publications;
    /// 0 = `channel.history_meta_ttl`.
    #[serde(with = "humantime_serde")]
    pub history_meta_ttl: Duration,
    /// Positioning for every subscriber.
    pub force_positioning: bool,
    /// Clients may ask for positioning.
    pub allow_positioning: bool,
    /// Recovery for every subscriber.
    pub force_recovery: bool,
    /// Clients may ask for recovery.
    pub allow_recovery: bool,
    /// `stream` (default) or `cache`.
    pub force_recovery_mode: RecoveryMode,
    /// Cache mode: deliver the latest publication on every subscribe.
    pub auto_cache_recover: bool,
    /// Accept a tags filter (`tf`) in subscribe.
    pub allow_tags_filter: bool,
    /// Authenticated users may subscribe without a token.
    pub allow_subscribe_for_client: bool,
    /// Anonymous users too (with `allow_subscribe_for_client`).
    pub allow_subscribe_for_anonymous: bool,
    /// Clients may publish without being subscribed.
    pub allow_publish_for_client: bool,
    /// Subscribers may publish.
    pub allow_publish_for_subscriber: bool,
    /// Anonymous users may publish (with one of the above).
    pub allow_publish_for_anonymous: bool,
    /// Presence calls without being subscribed.
    pub allow_presence_for_client: bool,
    /// Presence calls when subscribed.
    pub allow_presence_for_subscriber: bool,
    /// Anonymous presence calls.
    pub allow_presence_for_anonymous: bool,
    /// History calls without being subscribed.
    pub allow_history_for_client: bool,
    /// History calls when subscribed.
    pub allow_history_for_subscriber: bool,
    /// Anonymous history calls.
    pub allow_history_for_anonymous: bool,
    /// Enable `#` user-limited channels.
    pub allow_user_limited_channels: bool,
    /// Regex the channel name after the namespace must match.
    pub channel_regex: String,
    /// Validation of publication data.
    pub publication_data_format: DataFormat,
    /// Subscribe without a token asks the subscribe proxy (instead of the
    /// `allow_subscribe_*` options).
    pub subscribe_proxy_enabled: bool,
    /// Named proxy (under `proxies`) for subscribe; empty or `default` is
    /// `channel.proxy.subscribe`.
    pub subscribe_proxy_name: String,
    /// Client publications go through the publish proxy (instead of the `allow_publish_*`
    /// options).
    pub publish_proxy_enabled: bool,
    /// Named proxy for publish; empty or `default` is `channel.proxy.publish`.
    pub publish_proxy_name: String,
    /// Expiring subscriptions are extended by the sub_refresh proxy (server-side refresh).
    pub sub_refresh_proxy_enabled: bool,
    /// Named proxy for sub_refresh; empty or `default` is `channel.proxy.sub_refresh`.
    pub sub_refresh_proxy_name: String,
    /// `disconnect` (default), `resubscribe` or `latest`: see [`SlowSubscriberPolicy`].
    pub slow_subscriber_policy: SlowSubscriberPolicy,
    /// Delta formats subscribers may ask for (`delta` in subscribe); only `fossil` exists.
    /// A subscriber asking for a format not listed gets a subscription without delta.
    pub allowed_delta_types: Vec<String>,
    /// Every publication may go as a delta to subscribers that negotiated one (as if each
    /// publish had `delta: true`).
    pub delta_publish: bool,
    /// Publications of a channel are held and delivered together once this many are
    /// gathered (0 = no limit by count; needs `batch_max_delay`).
    pub batch_max_size: usize,
    /// Publications of a channel are held at most this long and delivered together, in one
    /// frame per connection (0 = no batching; at most 1s).
    #[serde(with = "humantime_serde")]
    pub batch_max_delay: Duration,
    /// Of a batch, only the newest publication is delivered (cache-like channels).
    pub batch_flush_latest: bool,
}

impl ChannelOptions {
    /// How publications of these channels are batched, if they are.
    pub fn batch_policy(&self) -> Option<crate::batch::BatchPolicy> {
        (!self.batch_max_delay.is_zero()).then_some(crate::batch::BatchPolicy {
            max_size: self.batch_max_size,
            max_delay: self.batch_max_delay,
            flush_latest: self.batch_flush_latest,
        })
    }

    /// Whether publications go to history.
    pub fn history_enabled(&self) -> bool {
        self.history_size > 0 && !self.history_ttl.is_zero()
    }

    fn validate(&self, key: &str, meta_ttl: Duration) -> Result<(), ConfigError> {
        if (self.history_size > 0) == self.history_ttl.is_zero() {
            return Err(ConfigError::new(
                format!("{key}.history_size"),
                "history_size and history_ttl must be set together",
            ));
        }
        let own_meta = if self.history_meta_ttl.is_zero() {
            meta_ttl
        } else {
            self.history_meta_ttl
        };
        if self.history_ttl > own_meta {
            return Err(ConfigError::new(
                format!("{key}.history_ttl"),
                "must not exceed history_meta_ttl",
            ));
        }
        if self.slow_subscriber_policy == SlowSubscriberPolicy::Resubscribe
            && !self.history_enabled()
        {
            return Err(ConfigError::new(
                format!("{key}.slow_subscriber_policy"),
                "resubscribe needs history (history_size and history_ttl) to recover from",
            ));
        }
        if self.force_recovery && !self.history_enabled() {
            return Err(ConfigError::new(
                format!("{key}.force_recovery"),
                "requires history_size and history_ttl",
            ));
        }
        if self.auto_cache_recover
            && !(self.force_recovery && self.force_recovery_mode == RecoveryMode::Cache)
        {
            return Err(ConfigError::new(
                format!("{key}.auto_cache_recover"),
                "requires force_recovery and force_recovery_mode = \"cache\"",
            ));
        }
        if self.allow_subscribe_for_anonymous && !self.allow_subscribe_for_client {
            return Err(ConfigError::new(
                format!("{key}.allow_subscribe_for_anonymous"),
                "requires allow_subscribe_for_client",
            ));
        }
        if self.batch_max_delay > Duration::from_secs(1) {
            return Err(ConfigError::new(
                format!("{key}.batch_max_delay"),
                "must be at most 1s",
            ));
        }
        if self.batch_max_delay.is_zero() && (self.batch_max_size > 0 || self.batch_flush_latest) {
            let which = if self.batch_max_size > 0 {
                "batch_max_size"
            } else {
                "batch_flush_latest"
            };
            return Err(ConfigError::new(
                format!("{key}.{which}"),
                "needs batch_max_delay > 0",
            ));
        }
        if let Some(t) = self.allowed_delta_types.iter().find(|t| *t != "fossil") {
            return Err(ConfigError::new(
                format!("{key}.allowed_delta_types"),
                format!("unknown delta type {t:?} (only \"fossil\")"),
            ));
        }
        if !self.channel_regex.is_empty() {
            regex::Regex::new(&self.channel_regex).map_err(|e| {
                ConfigError::new(format!("{key}.channel_regex"), format!("bad regex: {e}"))
            })?;
        }
        Ok(())
    }
}

/// A named namespace: `{name, ...options}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamespaceConfig {
    /// Namespace name, `^[-a-zA-Z0-9_.]{2,}$`.
    pub name: String,
    /// Options of the namespace's channels.
    #[serde(flatten)]
    pub options: ChannelOptions,
}

/// `channel.*`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelConfig {
    /// Options for channels without a namespace.
    pub without_namespace: ChannelOptions,
    /// Named namespaces.
    pub namespaces: Vec<NamespaceConfig>,
    /// Longest channel name in bytes.
    pub max_length: usize,
    /// Default lifetime of a stream position without publications.
    #[serde(with = "humantime_serde")]
    pub history_meta_ttl: Duration,
    /// Prefix of private channels.
    pub private_prefix: String,
    /// Separator between namespace and name.
    pub namespace_boundary: String,
    /// Separator before the user list of user-limited channels.
    pub user_boundary: String,
    /// Separator between users of user-limited channels.
    pub user_separator: String,
    /// `channel.proxy.*`: default subscribe, publish and sub_refresh proxies.
    pub proxy: super::proxy::ChannelProxyConfig,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            without_namespace: ChannelOptions::default(),
            namespaces: Vec::new(),
            max_length: 255,
            history_meta_ttl: Duration::from_secs(720 * 3600),
            private_prefix: "$".into(),
            namespace_boundary: ":".into(),
            user_boundary: "#".into(),
            user_separator: ",".into(),
            proxy: Default::default(),
        }
    }
}

impl ChannelConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_length == 0 {
            return Err(ConfigError::new("channel.max_length", "must be > 0"));
        }
        for (key, v) in [
            ("channel.private_prefix", &self.private_prefix),
            ("channel.namespace_boundary", &self.namespace_boundary),
            ("channel.user_boundary", &self.user_boundary),
            ("channel.user_separator", &self.user_separator),
        ] {
            if v.is_empty() {
                return Err(ConfigError::new(key, "must not be empty"));
            }
        }
        self.without_namespace
            .validate("channel.without_namespace", self.history_meta_ttl)?;
        let name_re = regex::Regex::new(r"^[-a-zA-Z0-9_.]{2,}$").expect("static regex");
        let mut seen = std::collections::HashSet::new();
        for (i, ns) in self.namespaces.iter().enumerate() {
            let key = format!("channel.namespaces[{i}]");
            if !name_re.is_match(&ns.name) {
                return Err(ConfigError::new(
                    format!("{key}.name"),
                    format!("{:?} must match ^[-a-zA-Z0-9_.]{{2,}}$", ns.name),
                ));
            }
            if !seen.insert(ns.name.as_str()) {
                return Err(ConfigError::new(
                    format!("{key}.name"),
                    format!("duplicate namespace {:?}", ns.name),
                ));
            }
            ns.options.validate(&key, self.history_meta_ttl)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_size_needs_ttl() {
        let mut c = ChannelConfig::default();
        c.without_namespace.history_size = 10;
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "channel.without_namespace.history_size");
        c.without_namespace.history_ttl = Duration::from_secs(60);
        c.validate().unwrap();
    }

    #[test]
    fn only_fossil_deltas() {
        let mut c = ChannelConfig::default();
        c.without_namespace.allowed_delta_types = vec!["fossil".into()];
        c.validate().unwrap();
        c.without_namespace
            .allowed_delta_types
            .push("xdelta".into());
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "channel.without_namespace.allowed_delta_types");
    }

    #[test]
    fn batching_needs_a_delay() {
        let mut c = ChannelConfig::default();
        c.without_namespace.batch_max_size = 1000;
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "channel.without_namespace.batch_max_size");
        c.without_namespace.batch_max_delay = Duration::from_millis(10);
        c.validate().unwrap();
        c.without_namespace.batch_max_delay = Duration::from_secs(2);
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "channel.without_namespace.batch_max_delay");
    }

    #[test]
    fn namespace_names_checked() {
        let mut c = ChannelConfig::default();
        c.namespaces.push(NamespaceConfig {
            name: "x".into(),
            ..Default::default()
        });
        assert_eq!(c.validate().unwrap_err().key, "channel.namespaces[0].name");
    }

    #[test]
    fn namespace_deserializes_flat_and_rejects_unknown() {
        let ns: NamespaceConfig =
            serde_json::from_str(r#"{"name":"chat","presence":true,"history_ttl":"300s"}"#)
                .unwrap();
        assert!(ns.options.presence);
        assert_eq!(ns.options.history_ttl, Duration::from_secs(300));
    }
}
