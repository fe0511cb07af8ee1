//! `lifecycle.*` settings the core needs (the sinks are the server's).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Whether lifecycle events are made, how often snapshots are taken and how many events may
/// wait for the sinks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleSettings {
    /// `lifecycle.enabled`: make events at all (off: nothing is recorded, no engine call).
    pub enabled: bool,
    /// `lifecycle.snapshot_interval`: every this often the node emits a `snapshot` event of
    /// its live connections and subscriptions.
    #[serde(with = "humantime_serde")]
    pub snapshot_interval: Duration,
    /// `lifecycle.queue_size`: events recorded but not yet handed to the sinks, at most;
    /// beyond it new events are dropped and counted (never blocking a connection).
    pub queue_size: usize,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        LifecycleSettings {
            enabled: false,
            snapshot_interval: Duration::from_secs(60),
            queue_size: 65_536,
        }
    }
}

impl LifecycleSettings {
    /// Checks the values; keys are named under `lifecycle.`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.snapshot_interval < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "lifecycle.snapshot_interval",
                "must be at least 1s",
            ));
        }
        if self.queue_size == 0 {
            return Err(ConfigError::new("lifecycle.queue_size", "must be > 0"));
        }
        Ok(())
    }
}
