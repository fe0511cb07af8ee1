//! librdkafka client configuration and the client context (logs, errors, lag gauge).

use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;

use super::settings::KafkaSettings;
use crate::metrics::ConsumerMetrics;

/// The context of the consumer: routes librdkafka logs and errors to `tracing` and turns its
/// periodic statistics into the consumer's lag gauge.
pub(crate) struct SourceContext {
    /// The consumer's name (log field).
    pub name: String,
    /// The consumer's counters.
    pub metrics: Arc<ConsumerMetrics>,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                tracing::warn!(consumer = %self.name, facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(consumer = %self.name, facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(consumer = %self.name, facility = fac, "librdkafka: {log_message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(consumer = %self.name, error = %error, "librdkafka: {reason}");
    }

    fn stats(&self, statistics: Statistics) {
        if let Some(lag) = lag(&statistics) {
            self.metrics.set_lag(lag);
        }
    }
}

impl ConsumerContext for SourceContext {}

/// Messages not yet processed on the partitions this consumer fetches: per partition the
/// high watermark minus the stored (processed) offset, or minus the committed offset before
/// anything was stored; `None` when no partition reports one.
pub(crate) fn lag(statistics: &Statistics) -> Option<i64> {
    let mut total = None;
    for topic in statistics.topics.values() {
        for p in topic.partitions.values() {
            if p.partition < 0 || !p.desired {
                continue;
            }
            let lag = if p.consumer_lag_stored >= 0 {
                p.consumer_lag_stored
            } else {
                p.consumer_lag
            };
            if lag >= 0 {
                total = Some(total.unwrap_or(0) + lag);
            }
        }
    }
    total
}

fn millis(d: std::time::Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// The consumer's librdkafka configuration: the group, offsets stored only by pushwire
/// (`enable.auto.offset.store = false`) and committed in the background every
/// `commit_interval`, statistics every `lag_interval`, plus the `librdkafka` extras.
pub(crate) fn consumer_config(name: &str, s: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in &s.librdkafka {
        c.set(k, v);
    }
    c.set("bootstrap.servers", s.brokers.join(","))
        .set("group.id", &s.consumer_group)
        .set("client.id", format!("pushwire-{name}"))
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", millis(s.commit_interval))
        .set("auto.offset.reset", s.auto_offset_reset.as_str())
        .set("session.timeout.ms", millis(s.session_timeout))
        .set("statistics.interval.ms", millis(s.lag_interval));
    c
}

/// The dead-letter producer's configuration: idempotent, acknowledged by all replicas.
pub(crate) fn producer_config(name: &str, s: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in &s.librdkafka {
        c.set(k, v);
    }
    c.set("bootstrap.servers", s.brokers.join(","))
        .set("client.id", format!("pushwire-{name}-dead-letter"))
        .set("acks", "all")
        .set("message.timeout.ms", millis(s.request_timeout));
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::consumer::StreamConsumer;

    fn settings(extra: &[(&str, &str)]) -> KafkaSettings {
        let mut s: KafkaSettings = serde_json::from_value(serde_json::json!({
            "brokers": ["127.0.0.1:1"],
            "topics": ["t"],
            "consumer_group": "g",
        }))
        .expect("settings");
        for (k, v) in extra {
            s.librdkafka.insert((*k).into(), (*v).into());
        }
        s
    }

    /// librdkafka is built with OpenSSL: TLS and SASL over TLS are accepted (creating a
    /// client checks the properties; nothing connects here).
    #[tokio::test]
    async fn tls_and_sasl_ssl_are_built_in() {
        for extra in [
            &[("security.protocol", "SSL")][..],
            &[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanisms", "SCRAM-SHA-256"),
                ("sasl.username", "u"),
                ("sasl.password", "p"),
            ][..],
        ] {
            let c = consumer_config("t", &settings(extra));
            if let Err(e) = c.create::<StreamConsumer>() {
                panic!("{extra:?}: {e}");
            }
        }
    }
}
