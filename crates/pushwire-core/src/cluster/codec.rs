//! Control envelopes to and from bytes, with the version check.

use bytes::Bytes;
use pushwire_protocol::control::{envelope::Body, Envelope, CONTROL_VERSION};
use pushwire_protocol::prost::Message;

/// Why received control bytes were dropped.
#[derive(Debug, thiserror::Error)]
pub enum ControlDecodeError {
    /// Not a protobuf `Envelope`.
    #[error("undecodable control message: {0}")]
    Garbage(#[from] pushwire_protocol::prost::DecodeError),
    /// Sent by a node speaking another version of the control messages.
    #[error("control message version {0} is unknown (this node speaks {CONTROL_VERSION})")]
    UnknownVersion(u32),
    /// An envelope with no body or no sender.
    #[error("control message without a sender or a body")]
    Incomplete,
}

/// Encodes `body` as sent by node `from`.
pub fn encode(from: &str, body: Body) -> Bytes {
    Envelope {
        version: CONTROL_VERSION,
        from: from.to_owned(),
        body: Some(body),
    }
    .encode_to_vec()
    .into()
}

/// Decodes an envelope: the sender's uid and the body.
pub fn decode(data: &[u8]) -> Result<(String, Body), ControlDecodeError> {
    let envelope = Envelope::decode(data)?;
    if envelope.version != CONTROL_VERSION {
        return Err(ControlDecodeError::UnknownVersion(envelope.version));
    }
    match envelope.body {
        Some(body) if !envelope.from.is_empty() => Ok((envelope.from, body)),
        _ => Err(ControlDecodeError::Incomplete),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushwire_protocol::control::Leave;

    #[test]
    fn round_trip_and_rejections() {
        let bytes = encode("n1", Body::Leave(Leave {}));
        let (from, body) = decode(&bytes).unwrap();
        assert_eq!(from, "n1");
        assert_eq!(body, Body::Leave(Leave {}));

        let future = Envelope {
            version: CONTROL_VERSION + 1,
            from: "n2".into(),
            body: Some(Body::Leave(Leave {})),
        }
        .encode_to_vec();
        assert!(matches!(
            decode(&future),
            Err(ControlDecodeError::UnknownVersion(v)) if v == CONTROL_VERSION + 1
        ));
        assert!(matches!(
            decode(b"\xff\xff\xff garbage"),
            Err(ControlDecodeError::Garbage(_))
        ));
        let empty = Envelope {
            version: CONTROL_VERSION,
            from: "n3".into(),
            body: None,
        }
        .encode_to_vec();
        assert!(matches!(
            decode(&empty),
            Err(ControlDecodeError::Incomplete)
        ));
    }
}
