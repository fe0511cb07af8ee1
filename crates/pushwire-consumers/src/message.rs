//! One message taken from a source.

/// One message taken from a source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Idempotency key, unique per source message and stable across redeliveries,
    /// e.g. "kafka:{topic}:{partition}:{offset}", "rabbitmq:{message_id or queue:delivery hash}".
    pub id: String,
    /// Where it came from: topic / routing key / subject / stream name (used by route templates).
    pub subject: String,
    /// Headers / properties as strings.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: bytes::Bytes,
}

impl Message {
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
