//! Frames: one transport message holding one or more protocol messages.
//!
//! JSON frames separate messages with a single `\n` (a trailing `\n` and blank lines are
//! tolerated on input). Encoded messages are joined back with `\n` by the writer.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::command::Command;

/// Wire format of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Newline-delimited JSON in text frames.
    Json,
    /// Varint-delimited protobuf in binary frames.
    Protobuf,
}

impl Protocol {
    /// Number of protocols; indexes per-protocol encoding caches.
    pub const COUNT: usize = 2;

    /// Dense index of the protocol (0 JSON, 1 Protobuf).
    pub fn index(self) -> usize {
        match self {
            Protocol::Json => 0,
            Protocol::Protobuf => 1,
        }
    }
}

/// Why a frame could not be decoded; the connection is closed with 3501.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The frame was empty.
    #[error("empty frame")]
    Empty,
    /// A message was not a valid command.
    #[error("malformed command: {0}")]
    Malformed(String),
    /// The frame or message exceeds the configured limit.
    #[error("message too large")]
    TooLarge,
    /// The protocol is not supported by this build or transport.
    #[error("unsupported protocol")]
    Unsupported,
}

/// Splits a JSON frame into commands, in order. Blank lines are skipped; a frame with no
/// command at all is [`FrameError::Empty`].
pub fn decode_json_frame(frame: &[u8]) -> Result<Vec<Command>, FrameError> {
    let mut out = Vec::new();
    for line in frame.split(|b| *b == b'\n') {
        let line = trim_ascii(line);
        if line.is_empty() {
            continue;
        }
        let cmd: Command =
            serde_json::from_slice(line).map_err(|e| FrameError::Malformed(e.to_string()))?;
        out.push(cmd);
    }
    if out.is_empty() {
        return Err(FrameError::Empty);
    }
    Ok(out)
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Encodes one message as JSON bytes (no trailing newline). Fails only when an embedded raw
/// payload is not valid JSON.
pub fn encode_json<T: Serialize>(msg: &T) -> Result<Bytes, serde_json::Error> {
    let mut buf = BytesMut::with_capacity(128).writer();
    serde_json::to_writer(&mut buf, msg)?;
    Ok(buf.into_inner().freeze())
}

/// Joins encoded messages into one frame in `buf`: JSON with `\n` between messages, protobuf
/// concatenated (each message already carries its varint length).
pub fn join_into(protocol: Protocol, parts: impl IntoIterator<Item = Bytes>, buf: &mut Vec<u8>) {
    for (i, part) in parts.into_iter().enumerate() {
        if protocol == Protocol::Json && i > 0 {
            buf.push(b'\n');
        }
        buf.extend_from_slice(&part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Request;

    #[test]
    fn batched_frame_in_order_with_trailing_newline() {
        let cmds = decode_json_frame(
            b"{\"id\":1,\"connect\":{}}\n{\"id\":2,\"subscribe\":{\"channel\":\"a\"}}\n",
        )
        .unwrap();
        assert_eq!(cmds.len(), 2);
        let (id, r) = cmds.into_iter().nth(1).unwrap().into_request();
        assert_eq!(id, 2);
        assert!(matches!(r, Request::Subscribe(_)));
    }

    #[test]
    fn bad_frames() {
        assert_eq!(decode_json_frame(b"").unwrap_err(), FrameError::Empty);
        assert_eq!(decode_json_frame(b"\n\n").unwrap_err(), FrameError::Empty);
        assert!(matches!(
            decode_json_frame(b"{\"id\":1,"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            decode_json_frame(b"[1,2]"),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn join_json() {
        let mut buf = Vec::new();
        join_into(
            Protocol::Json,
            [Bytes::from_static(b"{}"), Bytes::from_static(b"{\"id\":1}")],
            &mut buf,
        );
        assert_eq!(buf, b"{}\n{\"id\":1}");
    }
}
