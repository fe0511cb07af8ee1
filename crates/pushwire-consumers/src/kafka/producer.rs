//! [`KafkaProducer`]: appends payloads to one topic, in order, acknowledged by all replicas
//! (used by the lifecycle event sink).

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// An idempotent producer to one topic.
pub struct KafkaProducer {
    producer: FutureProducer,
    topic: String,
    timeout: Duration,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaProducer {
    /// A producer to `topic` on `brokers` (`host:port,…`), each send bounded by `timeout`;
    /// `settings` are extra librdkafka properties (TLS, SASL). Connects lazily.
    pub fn new(
        brokers: &str,
        topic: &str,
        timeout: Duration,
        settings: &[(String, String)],
    ) -> Result<KafkaProducer, String> {
        let mut c = ClientConfig::new();
        for (k, v) in settings {
            c.set(k, v);
        }
        let producer: FutureProducer = c
            .set("bootstrap.servers", brokers)
            .set("client.id", "pushwire-lifecycle")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", timeout.as_millis().to_string())
            .create()
            .map_err(|e| format!("kafka producer: {e}"))?;
        Ok(KafkaProducer {
            producer,
            topic: topic.to_owned(),
            timeout,
        })
    }

    /// Sends every payload with `key` (one partition: order kept), each acknowledged before
    /// the next. The first failure stops the batch (the caller retries it whole: duplicates
    /// are possible, losses are not).
    pub async fn send_all(&self, key: &str, payloads: &[Vec<u8>]) -> Result<(), String> {
        for p in payloads {
            let record = FutureRecord::to(&self.topic).key(key).payload(p.as_slice());
            self.producer
                .send(record, self.timeout)
                .await
                .map_err(|(e, _)| format!("kafka: {e}"))?;
        }
        Ok(())
    }
}
