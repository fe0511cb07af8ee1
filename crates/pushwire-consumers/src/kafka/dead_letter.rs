//! Producing poison records to the dead-letter topic.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::convert::Origin;
use crate::error::ConsumerError;
use crate::message::Message;

/// Header carrying why the record was dead-lettered.
pub(super) const REASON_HEADER: &str = "pushwire-dead-letter-reason";
/// Header carrying the source topic.
pub(super) const SOURCE_TOPIC_HEADER: &str = "pushwire-source-topic";
/// Header carrying the source partition.
pub(super) const SOURCE_PARTITION_HEADER: &str = "pushwire-source-partition";
/// Header carrying the source offset.
pub(super) const SOURCE_OFFSET_HEADER: &str = "pushwire-source-offset";

/// The dead-letter topic and its producer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct DeadLetter {
    /// The producer.
    pub producer: FutureProducer,
    /// The topic.
    pub topic: String,
    /// How long one produce may take.
    pub timeout: Duration,
}

impl DeadLetter {
    /// Produces a copy of the record (key, body, headers, plus where it came from and why)
    /// and waits for the broker's acknowledgement.
    pub(super) async fn send(
        &self,
        msg: &Message,
        origin: &Origin,
        reason: &str,
    ) -> Result<(), ConsumerError> {
        let partition = origin.partition.to_string();
        let offset = origin.offset.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(msg.headers.len() + 4);
        for (k, v) in &msg.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        for (key, value) in [
            (REASON_HEADER, reason),
            (SOURCE_TOPIC_HEADER, origin.topic.as_str()),
            (SOURCE_PARTITION_HEADER, partition.as_str()),
            (SOURCE_OFFSET_HEADER, offset.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic)
            .payload(&msg.body[..])
            .headers(headers);
        if let Some(key) = &origin.key {
            record = record.key(&key[..]);
        }
        self.producer
            .send(record, self.timeout)
            .await
            .map(|_| ())
            .map_err(|(e, _)| ConsumerError::Broker(format!("dead-letter produce: {e}")))
    }
}
