//! `consumers[].mqtt`.

use std::time::Duration;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

use crate::config::required;

/// The MQTT protocol version of the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1 (protocol level 4). Default.
    #[default]
    #[serde(rename = "3.1.1")]
    V311,
    /// MQTT 5.0.
    #[serde(rename = "5")]
    V5,
}

/// `consumers[].mqtt`: one MQTT client session.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    /// Broker URL: `mqtt://host:port` (plain, default port 1883) or `mqtts://host:port` (TLS,
    /// default port 8883; the broker's certificate is verified against the system's roots plus
    /// `tls_ca_pem_file` and must name the host). Default `mqtt://127.0.0.1:1883`.
    pub url: String,
    /// Protocol version: `"3.1.1"` (default) or `"5"`.
    pub protocol_version: ProtocolVersion,
    /// Client id, stable across restarts: the broker keeps the session (subscriptions and
    /// unacknowledged QoS 1 messages) under it. Required; unique per node (several nodes share
    /// work through a `$share/…` filter, each with its own id).
    pub client_id: String,
    /// Topic filters, with `+` (one level) and `#` (the rest), or shared subscriptions
    /// `$share/<group>/<filter>`. Required.
    pub topics: Vec<String>,
    /// Subscription QoS: 1 (default; at least once, acknowledged after history) or 0.
    pub qos: u8,
    /// Username (empty: none).
    pub username: String,
    /// Password (with `username`).
    pub password: String,
    /// PEM root certificate(s) trusted for `mqtts://` besides the system's.
    pub tls_ca_pem_file: String,
    /// Start with a clean session (drops what the broker kept while the node was away).
    /// Default false.
    pub clean_session: bool,
    /// Route retained messages (sent by the broker at subscribe time: the topic's last value)
    /// too; they become the channel's latest publication. Default false: skipped.
    pub retained: bool,
    /// MQTT keep-alive. Default 30s.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Messages in flight from the broker at once (client side). Default 100.
    pub max_inflight: u16,
    /// Largest incoming packet in bytes. Default 1 MiB.
    pub max_packet_size: usize,
    /// MQTT 5: how long the broker keeps the session (subscriptions, unacknowledged and queued
    /// messages) after the node disconnects (the CONNECT's session expiry interval). Unset
    /// (default): never expires, like a 3.1.1 persistent session. Ignored with
    /// `clean_session = true` (the session then ends with the connection) and for 3.1.1.
    #[serde(with = "humantime_serde::option")]
    pub session_expiry: Option<Duration>,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: String::new(),
            topics: Vec::new(),
            qos: 1,
            username: String::new(),
            password: String::new(),
            tls_ca_pem_file: String::new(),
            clean_session: false,
            retained: false,
            keep_alive: Duration::from_secs(30),
            max_inflight: 100,
            max_packet_size: 1 << 20,
            protocol_version: ProtocolVersion::V311,
            session_expiry: None,
        }
    }
}

/// A parsed broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Over TLS.
    pub tls: bool,
}

impl MqttSettings {
    /// Checks the section; `key` is its path, e.g. `consumers[0].mqtt`.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        self.broker()
            .map_err(|e| ConfigError::new(format!("{key}.url"), e))?;
        required(key, "client_id", &self.client_id)?;
        if self.topics.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.topics"),
                "must list at least one topic filter",
            ));
        }
        for (i, t) in self.topics.iter().enumerate() {
            filter_ok(t).map_err(|e| ConfigError::new(format!("{key}.topics[{i}]"), e))?;
        }
        if self.qos > 1 {
            return Err(ConfigError::new(format!("{key}.qos"), "must be 0 or 1"));
        }
        if self.username.is_empty() && !self.password.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.username"),
                "must be set with password",
            ));
        }
        if self.keep_alive < Duration::from_secs(1) {
            return Err(ConfigError::new(
                format!("{key}.keep_alive"),
                "must be at least 1s",
            ));
        }
        if self.max_inflight == 0 {
            return Err(ConfigError::new(
                format!("{key}.max_inflight"),
                "must be > 0",
            ));
        }
        if self
            .session_expiry
            .is_some_and(|d| d.as_secs() >= u64::from(u32::MAX))
        {
            return Err(ConfigError::new(
                format!("{key}.session_expiry"),
                "must be below 136 years (MQTT: 32-bit seconds); leave it unset for never",
            ));
        }
        if self.protocol_version == ProtocolVersion::V311 && self.session_expiry.is_some() {
            return Err(ConfigError::new(
                format!("{key}.session_expiry"),
                "MQTT 5 only (protocol_version = \"5\")",
            ));
        }
        if self.max_packet_size < 1024 || self.max_packet_size > (256 << 20) {
            return Err(ConfigError::new(
                format!("{key}.max_packet_size"),
                "must be between 1024 and 268435456 (256 MiB, the MQTT limit)",
            ));
        }
        Ok(())
    }

    /// Host, port and TLS from `url`.
    pub fn broker(&self) -> Result<Broker, String> {
        let (tls, rest) = if let Some(r) = self.url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = self.url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "{:?}: must start with mqtt:// or mqtts://",
                self.url
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{:?}: bad port {p:?}", self.url))?,
            ),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() || host.contains('/') {
            return Err(format!("{:?}: bad host", self.url));
        }
        Ok(Broker {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            tls,
        })
    }
}

/// Checks an MQTT topic filter (`$share/<group>/` prefix allowed).
fn filter_ok(filter: &str) -> Result<(), String> {
    let f = match filter.strip_prefix("$share/") {
        Some(rest) => {
            let (group, f) = rest
                .split_once('/')
                .ok_or_else(|| format!("{filter:?}: $share/<group>/<filter>"))?;
            if group.is_empty() || group.contains(['+', '#']) {
                return Err(format!("{filter:?}: bad share group"));
            }
            f
        }
        None => filter,
    };
    if f.is_empty() {
        return Err("empty topic filter".into());
    }
    let levels: Vec<&str> = f.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i != levels.len() - 1) {
            return Err(format!("{filter:?}: '#' must be a whole last level"));
        }
        if l.contains('+') && *l != "+" {
            return Err(format!("{filter:?}: '+' must be a whole level"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> MqttSettings {
        MqttSettings {
            client_id: "n1".into(),
            topics: vec!["sensors/+/temp".into(), "$share/g/alarms/#".into()],
            ..Default::default()
        }
    }

    #[test]
    fn validation_names_the_key() {
        assert!(ok().validate("k").is_ok());
        let bad = |f: fn(&mut MqttSettings)| {
            let mut s = ok();
            f(&mut s);
            s.validate("k").unwrap_err().key
        };
        assert_eq!(bad(|s| s.url = "http://x".into()), "k.url");
        assert_eq!(bad(|s| s.url = "mqtt://x:99999".into()), "k.url");
        assert_eq!(bad(|s| s.client_id.clear()), "k.client_id");
        assert_eq!(bad(|s| s.topics.clear()), "k.topics");
        assert_eq!(bad(|s| s.topics.push("a/#/b".into())), "k.topics[2]");
        assert_eq!(bad(|s| s.topics.push("a/b+".into())), "k.topics[2]");
        assert_eq!(bad(|s| s.topics.push("$share//a".into())), "k.topics[2]");
        assert_eq!(bad(|s| s.qos = 2), "k.qos");
        assert_eq!(bad(|s| s.password = "p".into()), "k.username");
        assert_eq!(
            bad(|s| s.session_expiry = Some(Duration::from_secs(60))),
            "k.session_expiry",
            "3.1.1 has no session expiry"
        );
        let mut v5 = ok();
        v5.protocol_version = ProtocolVersion::V5;
        v5.session_expiry = Some(Duration::from_secs(3600));
        assert!(v5.validate("k").is_ok());
    }

    #[test]
    fn protocol_version_reads_from_toml_strings() {
        #[derive(Deserialize)]
        struct W {
            mqtt: MqttSettings,
        }
        let w: W = serde_json::from_value(serde_json::json!({"mqtt": {
            "client_id": "n1", "topics": ["a/#"], "protocol_version": "5", "session_expiry": "1h"
        }}))
        .expect("v5 settings");
        assert_eq!(w.mqtt.protocol_version, ProtocolVersion::V5);
        assert_eq!(w.mqtt.session_expiry, Some(Duration::from_secs(3600)));
        let w: Result<W, _> = serde_json::from_value(serde_json::json!({"mqtt": {
            "client_id": "n1", "topics": ["a/#"], "protocol_version": "4"
        }}));
        assert!(w.is_err(), "only \"3.1.1\" and \"5\"");
    }

    #[test]
    fn broker_urls() {
        let b = |u: &str| {
            MqttSettings {
                url: u.into(),
                ..Default::default()
            }
            .broker()
        };
        assert_eq!(
            b("mqtt://127.0.0.1:1884").unwrap(),
            Broker {
                host: "127.0.0.1".into(),
                port: 1884,
                tls: false
            }
        );
        assert_eq!(b("mqtts://broker.local").unwrap().port, 8883);
        assert!(b("mqtts://broker.local").unwrap().tls);
        assert!(b("mqtt://").is_err());
    }
}
