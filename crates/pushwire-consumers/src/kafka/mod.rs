//! Kafka source (`rdkafka`, bundled librdkafka): a consumer group over topics, every
//! partition processed in offset order by its own worker, offsets committed only after
//! processing; poison records produced to a dead-letter topic (when configured).
//!
//! Layout: [`settings`](KafkaSettings) (the `kafka` config section, always compiled); behind
//! the `kafka` cargo feature: `client` (librdkafka configuration, logs, lag from statistics),
//! `convert` (record → [`Message`](crate::Message), id `kafka:{topic}:{partition}:{offset}`),
//! `partition` (the per-partition worker), `dead_letter` and `source` ([`run`]); `producer`
//! ([`KafkaProducer`], for the lifecycle sink).

#[cfg(feature = "kafka")]
mod client;
#[cfg(feature = "kafka")]
mod convert;
#[cfg(feature = "kafka")]
mod dead_letter;
#[cfg(feature = "kafka")]
mod partition;
#[cfg(feature = "kafka")]
mod producer;
mod settings;
#[cfg(feature = "kafka")]
mod source;

#[cfg(feature = "kafka")]
pub use producer::KafkaProducer;
pub use settings::{KafkaOffsetReset, KafkaSettings};
#[cfg(feature = "kafka")]
pub use source::run;

/// A retry / reconnect backoff with the consumer's `retry_backoff_min` / `retry_backoff_max`.
#[cfg(feature = "kafka")]
fn backoff(processor: &crate::Processor) -> crate::Backoff {
    processor.backoff()
}
