//! `node.*` settings of the control plane between nodes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// How nodes announce themselves and how long cluster-wide requests wait.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `node.info_interval`: how often this node announces itself (uid, name, counts).
    #[serde(with = "humantime_serde")]
    pub info_interval: Duration,
    /// `node.info_ttl`: a node not heard from for this long is gone from `info` and surveys.
    #[serde(with = "humantime_serde")]
    pub info_ttl: Duration,
    /// `node.survey_timeout`: how long a survey (`channels`) or a forwarded `/emulation`
    /// request waits for answers; what arrived by then is used and the survey is partial.
    #[serde(with = "humantime_serde")]
    pub survey_timeout: Duration,
    /// `node.control_queue_size`: control messages received but not yet handled, at most;
    /// beyond it they are dropped and counted.
    pub control_queue_size: usize,
    /// `node.max_requests_in_flight`: requests from other nodes (survey answers, forwarded
    /// emulation) handled at once, at most; beyond it they are dropped and counted.
    pub max_requests_in_flight: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            info_interval: Duration::from_secs(3),
            info_ttl: Duration::from_secs(10),
            survey_timeout: Duration::from_secs(3),
            control_queue_size: 8192,
            max_requests_in_flight: 1024,
        }
    }
}

impl ClusterConfig {
    /// Checks the values; keys are named under `node.`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.info_interval < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "node.info_interval",
                "must be at least 100ms",
            ));
        }
        if self.info_ttl <= self.info_interval {
            return Err(ConfigError::new(
                "node.info_ttl",
                "must be above node.info_interval (a node would vanish between announcements)",
            ));
        }
        if self.survey_timeout.is_zero() {
            return Err(ConfigError::new("node.survey_timeout", "must be > 0"));
        }
        if self.control_queue_size == 0 {
            return Err(ConfigError::new("node.control_queue_size", "must be > 0"));
        }
        if self.max_requests_in_flight == 0 {
            return Err(ConfigError::new(
                "node.max_requests_in_flight",
                "must be > 0",
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
        ClusterConfig::default().validate().unwrap();
        let key = |c: ClusterConfig| c.validate().unwrap_err().key;
        let d = ClusterConfig::default;
        assert_eq!(
            key(ClusterConfig {
                info_interval: Duration::from_millis(10),
                ..d()
            }),
            "node.info_interval"
        );
        assert_eq!(
            key(ClusterConfig {
                info_ttl: Duration::from_secs(3),
                ..d()
            }),
            "node.info_ttl",
            "a ttl not above the interval would drop live nodes"
        );
        assert_eq!(
            key(ClusterConfig {
                survey_timeout: Duration::ZERO,
                ..d()
            }),
            "node.survey_timeout"
        );
        assert_eq!(
            key(ClusterConfig {
                control_queue_size: 0,
                ..d()
            }),
            "node.control_queue_size"
        );
        assert_eq!(
            key(ClusterConfig {
                max_requests_in_flight: 0,
                ..d()
            }),
            "node.max_requests_in_flight"
        );
    }
}
