//! Bytes sent over NATS: one kind byte, then protobuf (`centrifugal.centrifuge.protocol`):
//!
//! - `p<offset> <Publication>`: a publication; `<offset>` in ASCII decimal (0 without
//!   history), the protobuf carries no offset;
//! - `j<ClientInfo>` / `l<ClientInfo>`: a join / a leave.

use pushwire_protocol::prost::Message as _;
use pushwire_protocol::{pb, ClientInfo, Publication};

/// A message received over NATS.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A publication with its offset set.
    Publication(Publication),
    /// A join (`true`) or leave.
    JoinLeave(ClientInfo, bool),
}

/// Why received bytes could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The first byte is not a known kind, or the offset is malformed.
    #[error("malformed message header")]
    Header,
    /// The protobuf body is malformed.
    #[error("malformed protobuf body: {0}")]
    Body(String),
}

/// A publication message carrying `publication.offset`.
pub fn publication_message(publication: &Publication) -> Vec<u8> {
    let mut p = pb::Publication::from(publication);
    let offset = p.offset;
    p.offset = 0;
    let mut out = format!("p{offset} ").into_bytes();
    p.encode(&mut out).expect("a Vec grows");
    out
}

/// A join (`true`) or leave message.
pub fn join_leave_message(info: &ClientInfo, join: bool) -> Vec<u8> {
    let mut out = vec![if join { b'j' } else { b'l' }];
    pb::ClientInfo::from(info)
        .encode(&mut out)
        .expect("a Vec grows");
    out
}

/// Reads a message.
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    let body = |b: &[u8]| -> Result<ClientInfo, DecodeError> {
        pb::ClientInfo::decode(b)
            .map(ClientInfo::from)
            .map_err(|e| DecodeError::Body(e.to_string()))
    };
    match bytes.first() {
        Some(b'p') => {
            let space = bytes
                .iter()
                .position(|b| *b == b' ')
                .ok_or(DecodeError::Header)?;
            let offset: u64 = std::str::from_utf8(&bytes[1..space])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(DecodeError::Header)?;
            let p = pb::Publication::decode(&bytes[space + 1..])
                .map_err(|e| DecodeError::Body(e.to_string()))?;
            let mut p = Publication::from(p);
            p.offset = offset;
            Ok(Message::Publication(p))
        }
        Some(b'j') => Ok(Message::JoinLeave(body(&bytes[1..])?, true)),
        Some(b'l') => Ok(Message::JoinLeave(body(&bytes[1..])?, false)),
        _ => Err(DecodeError::Header),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let p = Publication {
            offset: 42,
            ..Default::default()
        };
        assert_eq!(
            decode_message(&publication_message(&p)).unwrap(),
            Message::Publication(p)
        );
        let info = ClientInfo {
            user: "u".into(),
            client: "c".into(),
            ..Default::default()
        };
        assert_eq!(
            decode_message(&join_leave_message(&info, false)).unwrap(),
            Message::JoinLeave(info, false)
        );
        assert_eq!(decode_message(b"x"), Err(DecodeError::Header));
        assert_eq!(decode_message(b"pz 1"), Err(DecodeError::Header));
    }
}
