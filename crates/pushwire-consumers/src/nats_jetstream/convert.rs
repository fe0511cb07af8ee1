//! A JetStream message as a consumer [`Message`].

use async_nats::jetstream;

use crate::message::Message;

/// The idempotency key of stream sequence `seq` of `stream`: `nats:{stream}:{seq}`. Stable
/// across redeliveries, so a message re-delivered after a crash is suppressed as a duplicate.
pub(crate) fn message_id(stream: &str, seq: u64) -> String {
    format!("nats:{stream}:{seq}")
}

/// Converts `msg` (stream sequence `seq` of `stream`): its subject, its headers (every value
/// of a repeated header, in order) and its payload (shared, not copied).
pub(crate) fn to_message(stream: &str, seq: u64, msg: &jetstream::Message) -> Message {
    let mut headers = Vec::new();
    if let Some(map) = &msg.headers {
        for (name, values) in map.iter() {
            for v in values {
                headers.push((name.to_string(), v.as_str().to_owned()));
            }
        }
        // Hash-map order is arbitrary; keep templates and tests deterministic.
        headers.sort();
    }
    Message {
        id: message_id(stream, seq),
        subject: msg.subject.to_string(),
        headers,
        body: msg.payload.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_stream_and_sequence() {
        assert_eq!(message_id("EVENTS", 42), "nats:EVENTS:42");
    }
}
