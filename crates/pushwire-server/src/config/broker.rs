//! `broker.*`: a standalone broker in place of the engine's (Centrifugo v6's `broker`
//! section): publications and control messages between nodes go through it, while history,
//! presence, per-user connection counts and channel occupancy stay with `engine.*`.

use pushwire_core::config::ConfigError;
use pushwire_engine_nats::NatsBrokerConfig;
use serde::{Deserialize, Serialize};

/// `broker.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Use the broker of this section instead of the engine's (default `false`).
    pub enabled: bool,
    /// `nats`: NATS core PUB/SUB between nodes (at most once). With `engine.type = "redis"`
    /// history stays in Redis; with `memory`, channels can not keep history.
    #[serde(rename = "type")]
    pub kind: BrokerKind,
    /// `broker.nats.*`: used when `type = "nats"`.
    pub nats: NatsBrokerConfig,
}

/// Which standalone broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// NATS core.
    #[default]
    Nats,
}

impl BrokerConfig {
    /// Checks the chosen broker's section when enabled; names the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        match self.kind {
            BrokerKind::Nats => self.nats.validate("broker.nats"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BrokerConfig, String> {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(text))
            .extract()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_the_nats_section_with_centrifugo_names() {
        let c = parse(
            r#"
            enabled = true
            type = "nats"
            [nats]
            url = "nats://127.0.0.1:4333"
            prefix = "app"
            dial_timeout = "2s"
            write_timeout = "500ms"
            "#,
        )
        .unwrap();
        assert!(c.enabled);
        assert_eq!(c.nats.url, "nats://127.0.0.1:4333");
        assert_eq!(c.nats.prefix, "app");
        assert_eq!(c.nats.dial_timeout, std::time::Duration::from_secs(2));
        c.validate().unwrap();
        assert!(!BrokerConfig::default().enabled);
        assert!(parse("type = \"kafka\"").is_err());
        assert!(parse("[nats]\nbogus = 1").is_err());
        let bad = BrokerConfig {
            enabled: true,
            nats: NatsBrokerConfig {
                prefix: String::new(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "broker.nats.prefix");
    }
}
