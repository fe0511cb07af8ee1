//! NATS JetStream source (`async-nats`): a durable pull consumer on one stream, processed in
//! stream order, acknowledged after processing; poison messages are published to a
//! dead-letter subject (when configured) and terminated.
//!
//! Layout: [`settings`](NatsJetStreamSettings) (the `nats_jetstream` config section, always
//! compiled); behind the `nats` cargo feature: `setup` (connect, stream and consumer),
//! `convert` (JetStream message → [`Message`](crate::Message), id `nats:{stream}:{seq}`),
//! `dead_letter` (poison copies) and `source` ([`run`]); `producer` ([`JetStreamPublisher`],
//! for the lifecycle sink).

#[cfg(feature = "nats_jetstream")]
mod convert;
#[cfg(feature = "nats_jetstream")]
mod dead_letter;
#[cfg(feature = "nats_jetstream")]
mod producer;
mod settings;
#[cfg(feature = "nats_jetstream")]
mod setup;
#[cfg(feature = "nats_jetstream")]
mod source;

#[cfg(feature = "nats_jetstream")]
pub use producer::JetStreamPublisher;
pub use settings::{NatsDeliverPolicy, NatsJetStreamSettings};
#[cfg(feature = "nats_jetstream")]
pub use source::run;

/// A retry / reconnect backoff with the consumer's `retry_backoff_min` / `retry_backoff_max`.
#[cfg(feature = "nats_jetstream")]
fn backoff(processor: &crate::Processor) -> crate::Backoff {
    processor.backoff()
}
