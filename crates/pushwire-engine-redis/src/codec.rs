//! Bytes stored in Redis and sent over PUB/SUB.
//!
//! Publications and client infos are protobuf (`centrifugal.centrifuge.protocol`), so binary
//! payloads of protobuf clients survive. A PUB/SUB message starts with one kind byte:
//!
//! - `p<offset> <Publication>`: a publication; `<offset>` in ASCII decimal (0 without history),
//!   the protobuf carries no offset;
//! - `j<ClientInfo>` / `l<ClientInfo>`: a join / a leave.

use pushwire_protocol::prost::Message as _;
use pushwire_protocol::{pb, ClientInfo, Publication};

/// A message received over PUB/SUB.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A publication with its offset set.
    Publication(Publication),
    /// A join (`true`) or leave.
    JoinLeave(ClientInfo, bool),
}

/// Why PUB/SUB or stream bytes could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The first byte is not a known kind, or the offset is malformed.
    #[error("malformed message header")]
    Header,
    /// The protobuf body is malformed.
    #[error("malformed protobuf body: {0}")]
    Body(String),
}

/// A publication as stored in a stream entry: protobuf without the offset (the entry id is
/// the offset).
pub fn encode_publication(publication: &Publication) -> Vec<u8> {
    let mut p = pb::Publication::from(publication);
    p.offset = 0;
    p.encode_to_vec()
}

/// Reads a stored publication and gives it `offset`.
pub fn decode_publication(bytes: &[u8], offset: u64) -> Result<Publication, DecodeError> {
    let p = pb::Publication::decode(bytes).map_err(|e| DecodeError::Body(e.to_string()))?;
    let mut p = Publication::from(p);
    p.offset = offset;
    Ok(p)
}

/// A client info as stored in presence and sent in joins and leaves.
pub fn encode_info(info: &ClientInfo) -> Vec<u8> {
    pb::ClientInfo::from(info).encode_to_vec()
}

/// Reads a stored client info.
pub fn decode_info(bytes: &[u8]) -> Result<ClientInfo, DecodeError> {
    pb::ClientInfo::decode(bytes)
        .map(ClientInfo::from)
        .map_err(|e| DecodeError::Body(e.to_string()))
}

/// The PUB/SUB message of a publication kept out of history (offset 0).
pub fn publication_message(stored: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(stored.len() + 3);
    m.extend_from_slice(b"p0 ");
    m.extend_from_slice(stored);
    m
}

/// The PUB/SUB message of a join (`join == true`) or leave.
pub fn join_leave_message(info: &ClientInfo, join: bool) -> Vec<u8> {
    let body = encode_info(info);
    let mut m = Vec::with_capacity(body.len() + 1);
    m.push(if join { b'j' } else { b'l' });
    m.extend_from_slice(&body);
    m
}

/// Reads a PUB/SUB message.
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    match bytes.split_first() {
        Some((b'p', rest)) => {
            let space = rest
                .iter()
                .position(|b| *b == b' ')
                .ok_or(DecodeError::Header)?;
            let offset = std::str::from_utf8(&rest[..space])
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(DecodeError::Header)?;
            decode_publication(&rest[space + 1..], offset).map(Message::Publication)
        }
        Some((b'j', rest)) => decode_info(rest).map(|i| Message::JoinLeave(i, true)),
        Some((b'l', rest)) => decode_info(rest).map(|i| Message::JoinLeave(i, false)),
        _ => Err(DecodeError::Header),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushwire_protocol::RawJson;

    #[test]
    fn round_trips() {
        let p = Publication {
            data: RawJson::from_bytes(&b"\x00\xffbinary"[..]),
            info: Some(ClientInfo {
                user: "u".into(),
                client: "c".into(),
                ..Default::default()
            }),
            tags: [("type".to_owned(), "order".to_owned())].into(),
            offset: 99,
            ..Default::default()
        };
        let stored = encode_publication(&p);
        let mut m = b"p42 ".to_vec();
        m.extend_from_slice(&stored);
        let Message::Publication(got) = decode_message(&m).unwrap() else {
            panic!("not a publication")
        };
        assert_eq!(got.offset, 42);
        assert_eq!(got.data.as_bytes(), p.data.as_bytes());
        assert_eq!(got.tags, p.tags);
        let Message::Publication(got) = decode_message(&publication_message(&stored)).unwrap()
        else {
            panic!("not a publication")
        };
        assert_eq!(got.offset, 0);
        let info = p.info.unwrap();
        assert_eq!(
            decode_message(&join_leave_message(&info, false)).unwrap(),
            Message::JoinLeave(info, false)
        );
        assert_eq!(decode_message(b"x"), Err(DecodeError::Header));
        assert_eq!(decode_message(b"pnope "), Err(DecodeError::Header));
    }
}
