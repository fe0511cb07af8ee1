//! A Kafka record as a consumer [`Message`].

use rdkafka::message::Headers;

use crate::message::Message;

/// Where a record came from: what committing it and dead-lettering it need.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// The record key, if any.
    pub key: Option<Vec<u8>>,
}

/// The idempotency key of a record: `kafka:{topic}:{partition}:{offset}`. Stable across
/// redeliveries, so a record re-read after a crash is suppressed as a duplicate.
pub(crate) fn message_id(topic: &str, partition: i32, offset: i64) -> String {
    format!("kafka:{topic}:{partition}:{offset}")
}

/// Converts a record: subject = topic, headers as UTF-8 (lossy; a header without value
/// becomes empty), body copied once.
pub(crate) fn to_message<M: rdkafka::message::Message>(m: &M) -> (Message, Origin) {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    let v = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                    (h.key.to_owned(), v.into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let origin = Origin {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
    };
    let message = Message {
        id: message_id(&origin.topic, origin.partition, origin.offset),
        subject: origin.topic.clone(),
        headers,
        body: bytes::Bytes::copy_from_slice(m.payload().unwrap_or_default()),
    };
    (message, origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};

    #[test]
    fn converts_topic_offset_headers_and_body() {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "type",
                value: Some("created"),
            })
            .insert(Header {
                key: "empty",
                value: None::<&str>,
            });
        let m = OwnedMessage::new(
            Some(b"{\"a\":1}".to_vec()),
            Some(b"k1".to_vec()),
            "orders".into(),
            Timestamp::NotAvailable,
            3,
            17,
            Some(headers),
        );
        let (msg, origin) = to_message(&m);
        assert_eq!(msg.id, "kafka:orders:3:17");
        assert_eq!(msg.subject, "orders");
        assert_eq!(msg.header("type"), Some("created"));
        assert_eq!(msg.header("empty"), Some(""));
        assert_eq!(&msg.body[..], b"{\"a\":1}");
        assert_eq!((origin.partition, origin.offset), (3, 17));
        assert_eq!(origin.key.as_deref(), Some(&b"k1"[..]));
    }
}
