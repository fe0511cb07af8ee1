//! `engine.embedded.*`: where the embedded engine keeps its file and how durable a publish is.

use std::time::Duration;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

/// When a publish is made durable (fsynced) before the API acknowledges it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Every write is fsynced before the publish is acknowledged or delivered (concurrent
    /// publishes share one fsync). Nothing acknowledged is lost, even on power loss.
    #[default]
    Always,
    /// Writes are committed in memory and made durable together every `fsync_interval`
    /// (group commit). A crash or power loss loses up to one interval of acknowledged
    /// publications; the next start gives every stream a new epoch so that no client recovers
    /// from offsets that were reused.
    Interval,
    /// Writes are never fsynced on the publish path; the store writes a durable checkpoint with
    /// each sweep (every few seconds) and at shutdown. A crash loses what came after the last
    /// checkpoint; the next start gives every stream a new epoch.
    Never,
}

impl FsyncPolicy {
    /// The name used in configuration (`always`, `interval`, `never`).
    pub fn name(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Interval => "interval",
            FsyncPolicy::Never => "never",
        }
    }
}

/// What a start does with a data file that is corrupted or truncated beyond what the store
/// repairs by itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCorruption {
    /// Stop the start with an error naming the file (default): an operator decides.
    #[default]
    Fail,
    /// Rename the file to `pushwire.redb.corrupt-<unix ms>` (kept for inspection) and start
    /// with an empty store: every stream starts over with a new epoch, so clients reload
    /// instead of recovering. For unattended nodes that must come back by themselves.
    MoveAside,
}

/// Settings of the embedded engine. [`EmbeddedConfig::validate`] names the offending key
/// (`engine.embedded.<field>`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Data directory; created if missing. Holds `pushwire.redb`, locked by the running node
    /// so a second process can not open it.
    pub path: String,
    /// When a publish is made durable: `always` (default), `interval` or `never`.
    pub fsync: FsyncPolicy,
    /// Group-commit period of `fsync = "interval"`.
    #[serde(with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// Largest space the store may use, in bytes; 0 = unlimited. Above it publishes fail
    /// (internal error 100) until trimming and expiry free space; reads keep working.
    pub max_size: u64,
    /// How long an idempotency key suppresses a duplicate publication in its channel.
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
    /// What a start does with a data file it can not repair: `fail` (default) or
    /// `move_aside`.
    pub on_corruption: OnCorruption,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            path: "pushwire-data".into(),
            fsync: FsyncPolicy::Always,
            fsync_interval: Duration::from_millis(100),
            max_size: 0,
            idempotency_window: Duration::from_secs(300),
            on_corruption: OnCorruption::Fail,
        }
    }
}

impl EmbeddedConfig {
    /// A config for the data directory `path` with default settings.
    pub fn at(path: impl Into<String>) -> EmbeddedConfig {
        EmbeddedConfig {
            path: path.into(),
            ..Default::default()
        }
    }

    /// Checks every value; `section` is the key path of this section (`engine.embedded`).
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{section}.{k}");
        if self.path.trim().is_empty() {
            return Err(ConfigError::new(key("path"), "must not be empty"));
        }
        if self.fsync == FsyncPolicy::Interval && self.fsync_interval.is_zero() {
            return Err(ConfigError::new(key("fsync_interval"), "must be > 0"));
        }
        if self.fsync_interval > Duration::from_secs(60) {
            return Err(ConfigError::new(
                key("fsync_interval"),
                "must be at most 60s",
            ));
        }
        if self.max_size != 0 && self.max_size < 1 << 20 {
            return Err(ConfigError::new(
                key("max_size"),
                "must be 0 (unlimited) or at least 1 MiB (1048576)",
            ));
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
        EmbeddedConfig::default()
            .validate("engine.embedded")
            .unwrap();
        let key = |c: EmbeddedConfig| c.validate("engine.embedded").unwrap_err().key;
        assert_eq!(
            key(EmbeddedConfig::at(" ")),
            "engine.embedded.path",
            "an empty path"
        );
        assert_eq!(
            key(EmbeddedConfig {
                fsync: FsyncPolicy::Interval,
                fsync_interval: Duration::ZERO,
                ..Default::default()
            }),
            "engine.embedded.fsync_interval"
        );
        assert_eq!(
            key(EmbeddedConfig {
                max_size: 1000,
                ..Default::default()
            }),
            "engine.embedded.max_size"
        );
    }
}
