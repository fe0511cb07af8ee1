//! Publishing poison messages to the configured dead-letter subject.

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind};

use crate::error::ConsumerError;

/// Header carrying why the message was dead-lettered.
pub(super) const REASON_HEADER: &str = "Pushwire-Dead-Letter-Reason";
/// Header carrying the subject the message was consumed from.
pub(super) const SOURCE_SUBJECT_HEADER: &str = "Pushwire-Source-Subject";
/// Header carrying the stream sequence of the original message.
pub(super) const SOURCE_SEQUENCE_HEADER: &str = "Pushwire-Source-Sequence";

/// Publishes a copy of `msg` (payload and headers) to `subject` through JetStream and waits
/// for the stream's acknowledgement. When no stream captures `subject` the copy is published
/// with core NATS instead (nothing would ever store it; logged) so a misconfiguration cannot
/// block the consumer. Any other failure is returned: the caller retries.
pub(crate) async fn publish(
    js: &jetstream::Context,
    subject: &str,
    msg: &jetstream::Message,
    seq: u64,
    reason: &str,
    timeout: Duration,
) -> Result<(), ConsumerError> {
    let mut headers = msg.headers.clone().unwrap_or_default();
    // Header values cannot hold line breaks.
    let reason: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    headers.insert(REASON_HEADER, reason.as_str());
    headers.insert(SOURCE_SUBJECT_HEADER, msg.subject.as_str());
    headers.insert(SOURCE_SEQUENCE_HEADER, seq.to_string().as_str());
    let ack = js
        .publish_with_headers(subject.to_owned(), headers.clone(), msg.payload.clone())
        .await
        .map_err(|e| ConsumerError::Broker(format!("dead-letter publish: {e}")))?;
    match tokio::time::timeout(timeout, ack).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == PublishErrorKind::StreamNotFound => {
            tracing::error!(
                subject,
                "no stream captures the dead-letter subject; published with core NATS (not stored)"
            );
            js.client()
                .publish_with_headers(subject.to_owned(), headers, msg.payload.clone())
                .await
                .map_err(|e| ConsumerError::Broker(format!("dead-letter publish: {e}")))
        }
        Ok(Err(e)) => Err(ConsumerError::Broker(format!("dead-letter publish: {e}"))),
        Err(_) => Err(ConsumerError::Broker(
            "dead-letter publish: no acknowledgement in time".into(),
        )),
    }
}
