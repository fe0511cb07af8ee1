//! Encoding replies and pushes for a connection's protocol.

use bytes::Bytes;

use crate::frame::{encode_json, Protocol};
use crate::reply::{Push, Reply};

/// Why a message can not be encoded for a connection; the connection is closed with 3506.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// The payload is not valid JSON and the connection speaks JSON.
    #[error("payload is not valid JSON")]
    NotJson,
    /// The protocol is not supported by this build.
    #[error("protocol not supported")]
    Unsupported,
}

/// Encodes a reply (a command answer, a push wrapped in a reply, or a ping).
pub fn encode_reply(protocol: Protocol, reply: &Reply) -> Result<Bytes, EncodeError> {
    match protocol {
        Protocol::Json => json(reply),
        Protocol::Protobuf => Err(EncodeError::Unsupported),
    }
}

/// Encodes a bare push, as unidirectional transports send it.
pub fn encode_push(protocol: Protocol, push: &Push) -> Result<Bytes, EncodeError> {
    match protocol {
        Protocol::Json => json(push),
        Protocol::Protobuf => Err(EncodeError::Unsupported),
    }
}

fn json<T: serde::Serialize>(msg: &T) -> Result<Bytes, EncodeError> {
    // Serialization only fails when a raw payload is not valid JSON.
    encode_json(msg).map_err(|_| EncodeError::NotJson)
}
