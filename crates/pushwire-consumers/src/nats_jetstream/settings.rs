//! `consumers[].nats_jetstream`.

use std::time::Duration;

use pushwire_core::config::ConfigError;
use serde::{Deserialize, Serialize};

use crate::config::required;

/// Where a newly created durable consumer starts in the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NatsDeliverPolicy {
    /// Every message still in the stream (default).
    #[default]
    All,
    /// Only messages stored after the consumer is created.
    New,
}

/// `consumers[].nats_jetstream`: a durable pull consumer on one JetStream stream, processed
/// in stream order, acknowledged (`+ACK`) only after the node has applied the message.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsJetStreamSettings {
    /// NATS server URL (comma-separated for several). Default `nats://127.0.0.1:4222`.
    pub url: String,
    /// Stream name (required).
    pub stream: String,
    /// Durable consumer name (required). Keep it the same on every node of a cluster: the
    /// nodes then share the work and a restarted node resumes where the consumer stopped.
    pub durable_consumer_name: String,
    /// Subjects: the consumer's filter (empty = every subject of the stream; more than one
    /// needs NATS server 2.10+), and the stream's subjects when `create_stream` creates it.
    pub subjects: Vec<String>,
    /// Create the stream (file storage, `subjects`) when it does not exist. Default false.
    pub create_stream: bool,
    /// Create the durable consumer when it does not exist. Default true.
    pub create_consumer: bool,
    /// Where a newly created consumer starts: `all` (default) or `new`.
    pub deliver_policy: NatsDeliverPolicy,
    /// How long the server waits for an acknowledgement before redelivering. A message whose
    /// processing is retried is kept alive with in-progress acknowledgements. Default 30s.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Delivered but unacknowledged messages the server allows (`max_ack_pending`) for a
    /// newly created consumer. Default 10000: well above what one node has in flight, since
    /// a pull waiting at this limit can stall until it expires on some servers (2.9).
    pub max_ack_pending: i64,
    /// Messages pulled per request (also the client-side buffer). Default 100.
    pub batch_size: usize,
    /// Subject poison messages are published to (through JetStream, so a stream should
    /// capture it), with headers `Pushwire-Dead-Letter-Reason`, `Pushwire-Source-Subject` and
    /// `Pushwire-Source-Sequence`. Empty (default) = poison messages are only terminated
    /// (`+TERM`), logged and counted.
    pub dead_letter_subject: String,
    /// Timeout of connecting and of every JetStream request. Default 5s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for NatsJetStreamSettings {
    fn default() -> Self {
        NatsJetStreamSettings {
            url: "nats://127.0.0.1:4222".into(),
            stream: String::new(),
            durable_consumer_name: String::new(),
            subjects: Vec::new(),
            create_stream: false,
            create_consumer: true,
            deliver_policy: NatsDeliverPolicy::All,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 10_000,
            batch_size: 100,
            dead_letter_subject: String::new(),
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl NatsJetStreamSettings {
    /// Checks the section; `key` is its path, e.g. `consumers[0].nats_jetstream`.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        required(key, "url", &self.url)?;
        required(key, "stream", &self.stream)?;
        if self.stream.contains(['.', '*', '>', ' ']) {
            return Err(ConfigError::new(
                format!("{key}.stream"),
                "must not contain '.', '*', '>' or spaces",
            ));
        }
        required(key, "durable_consumer_name", &self.durable_consumer_name)?;
        if self.durable_consumer_name.contains(['.', '*', '>', ' ']) {
            return Err(ConfigError::new(
                format!("{key}.durable_consumer_name"),
                "must not contain '.', '*', '>' or spaces",
            ));
        }
        if self.subjects.iter().any(|s| s.trim().is_empty()) {
            return Err(ConfigError::new(
                format!("{key}.subjects"),
                "must not contain empty subjects",
            ));
        }
        if self.create_stream && self.subjects.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.subjects"),
                "must list the stream's subjects when create_stream = true",
            ));
        }
        if !self.dead_letter_subject.is_empty()
            && self
                .subjects
                .iter()
                .any(|f| subject_matches(f, &self.dead_letter_subject))
        {
            return Err(ConfigError::new(
                format!("{key}.dead_letter_subject"),
                "must not match the consumed subjects (poison copies would be consumed again)",
            ));
        }
        if self.ack_wait < Duration::from_secs(1) {
            return Err(ConfigError::new(format!("{key}.ack_wait"), "must be >= 1s"));
        }
        if self.max_ack_pending == 0 || self.max_ack_pending < -1 {
            return Err(ConfigError::new(
                format!("{key}.max_ack_pending"),
                "must be > 0 (or -1 = unlimited)",
            ));
        }
        if self.batch_size == 0 {
            return Err(ConfigError::new(format!("{key}.batch_size"), "must be > 0"));
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::new(
                format!("{key}.request_timeout"),
                "must be > 0",
            ));
        }
        Ok(())
    }
}

/// Whether NATS subject `subject` matches `filter` (`*` = one token, `>` = the rest).
fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut s = subject.split('.');
    for f in filter.split('.') {
        match (f, s.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (f, Some(t)) if f == t => {}
            _ => return false,
        }
    }
    s.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> NatsJetStreamSettings {
        NatsJetStreamSettings {
            stream: "EVENTS".into(),
            durable_consumer_name: "pushwire".into(),
            subjects: vec!["events.>".into()],
            ..Default::default()
        }
    }

    #[test]
    fn defaults_need_stream_and_consumer() {
        let e = NatsJetStreamSettings::default().validate("c").unwrap_err();
        assert_eq!(e.key, "c.stream");
        assert!(valid().validate("c").is_ok());
        let e = NatsJetStreamSettings {
            durable_consumer_name: String::new(),
            ..valid()
        }
        .validate("c")
        .unwrap_err();
        assert_eq!(e.key, "c.durable_consumer_name");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                NatsJetStreamSettings {
                    stream: "a.b".into(),
                    ..valid()
                },
                "c.stream",
            ),
            (
                NatsJetStreamSettings {
                    create_stream: true,
                    subjects: vec![],
                    ..valid()
                },
                "c.subjects",
            ),
            (
                NatsJetStreamSettings {
                    batch_size: 0,
                    ..valid()
                },
                "c.batch_size",
            ),
            (
                NatsJetStreamSettings {
                    max_ack_pending: 0,
                    ..valid()
                },
                "c.max_ack_pending",
            ),
            (
                NatsJetStreamSettings {
                    ack_wait: Duration::from_millis(10),
                    ..valid()
                },
                "c.ack_wait",
            ),
        ];
        for (s, key) in cases {
            assert_eq!(s.validate("c").unwrap_err().key, key);
        }
    }

    #[test]
    fn dead_letter_subject_must_not_be_consumed_again() {
        for (filter, dl, matches) in [
            ("events.>", "events.dlq", true),
            ("events.*", "events.dlq", true),
            ("events.*", "events.dlq.x", false),
            ("events.orders", "events.dlq", false),
            ("events.>", "events", false),
            ("events", "events", true),
        ] {
            assert_eq!(subject_matches(filter, dl), matches, "{filter} ~ {dl}");
        }
        let e = NatsJetStreamSettings {
            dead_letter_subject: "events.dlq".into(),
            ..valid()
        }
        .validate("c")
        .unwrap_err();
        assert_eq!(e.key, "c.dead_letter_subject");
    }

    #[test]
    fn parses_centrifugo_shaped_section() {
        let s: NatsJetStreamSettings = serde_json::from_value(serde_json::json!({
            "url": "nats://127.0.0.1:4222",
            "stream": "EVENTS",
            "durable_consumer_name": "pushwire",
            "subjects": ["events.>"],
            "deliver_policy": "new",
            "ack_wait": "5s",
            "dead_letter_subject": "events_dlq",
        }))
        .unwrap();
        assert_eq!(s.deliver_policy, NatsDeliverPolicy::New);
        assert_eq!(s.ack_wait, Duration::from_secs(5));
        assert!(s.validate("c").is_ok());
        assert!(
            serde_json::from_value::<NatsJetStreamSettings>(serde_json::json!({"nope": 1}))
                .is_err()
        );
    }
}
