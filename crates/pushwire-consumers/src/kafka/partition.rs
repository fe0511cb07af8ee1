//! One partition's worker: processes its records in offset order and stores each offset
//! only once the record is done.

use std::sync::Arc;

use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::SourceContext;
use super::convert::Origin;
use super::dead_letter::DeadLetter;
use crate::metrics::ConsumerMetrics;
use crate::processor::{Outcome, Processor};
use crate::Message;

/// A record handed from the fetcher to its partition's worker.
pub(crate) struct Record {
    /// What the processor sees.
    pub message: Message,
    /// Where it came from.
    pub origin: Origin,
}

/// What a partition worker needs; shared by every worker of a session.
#[derive(Clone)]
pub(crate) struct Shared {
    /// The consumer (offsets are stored through it).
    pub consumer: Arc<StreamConsumer<SourceContext>>,
    /// Applies records.
    pub processor: Processor,
    /// Where poison records go, if configured.
    pub dead_letter: Option<DeadLetter>,
    /// Stops the worker after the record in hand.
    pub shutdown: CancellationToken,
    /// The consumer's name (log field).
    pub name: Arc<str>,
}

/// Takes records from `rx` until it closes or shutdown; each is processed to the end
/// (retried with backoff while the processor says `Retry`) before the next one.
pub(crate) async fn run(shared: Shared, mut rx: mpsc::Receiver<Record>) {
    loop {
        let record = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => return,
            r = rx.recv() => match r {
                Some(r) => r,
                None => return,
            },
        };
        if !shared.process(&record).await {
            return;
        }
    }
}

impl Shared {
    /// Processes one record until it is done or dead-lettered (then stores its offset).
    /// False when shutdown came first: the offset is not stored and the record is read
    /// again by whoever consumes the partition next.
    async fn process(&self, record: &Record) -> bool {
        let mut retry = super::backoff(&self.processor);
        loop {
            match self.processor.process(&record.message).await {
                Outcome::Done => break,
                Outcome::Poison(reason) => {
                    if !self.dead_letter(record, &reason).await {
                        return false;
                    }
                    break;
                }
                Outcome::Retry(_) => {
                    if !self.sleep(retry.next_delay()).await {
                        return false;
                    }
                }
            }
        }
        let o = &record.origin;
        // Fails only when the partition was revoked meanwhile: its next owner re-reads the
        // record, and the idempotency key suppresses the duplicate.
        if let Err(e) = self.consumer.store_offset(&o.topic, o.partition, o.offset) {
            tracing::debug!(consumer = %self.name, topic = %o.topic, partition = o.partition, offset = o.offset, error = %e, "kafka: offset not stored");
        }
        true
    }

    /// Produces a poison record to the dead-letter topic (retrying with backoff) or, without
    /// one, logs it. False on shutdown.
    async fn dead_letter(&self, record: &Record, reason: &str) -> bool {
        let o = &record.origin;
        let Some(dl) = &self.dead_letter else {
            tracing::warn!(consumer = %self.name, topic = %o.topic, partition = o.partition, offset = o.offset, reason, "kafka: poison record skipped (no dead_letter_topic)");
            return true;
        };
        let mut retry = super::backoff(&self.processor);
        loop {
            match dl.send(&record.message, o, reason).await {
                Ok(()) => {
                    tracing::warn!(consumer = %self.name, topic = %o.topic, partition = o.partition, offset = o.offset, reason, dead_letter_topic = %dl.topic, "kafka: poison record dead-lettered");
                    ConsumerMetrics::inc(&self.processor.metrics().dead_lettered);
                    return true;
                }
                Err(e) => {
                    tracing::warn!(consumer = %self.name, error = %e, "kafka: dead-letter produce failed; retrying");
                    if !self.sleep(retry.next_delay()).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Sleeps `delay`; false when shutdown came first.
    async fn sleep(&self, delay: std::time::Duration) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}
