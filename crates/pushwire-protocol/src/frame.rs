//! Frames: one transport message holding one or more protocol messages.
//!
//! JSON frames separate messages with a single `\n` (a trailing `\n` and blank lines are
//! tolerated on input). Encoded messages are joined back with `\n` by the writer.
//!
//! Protobuf frames concatenate messages, each prefixed by its length as an unsigned varint, in
//! both directions and even when a frame carries a single message. An empty message is the
//! single byte `0x00`: that is both the server's ping (an empty `Reply`) and the client's pong
//! (an empty `Command`).

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use serde::Serialize;

use crate::command::Command;
use crate::pb;

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

/// Most commands one frame may carry (a connect plus every subscription of a full client fits
/// easily); more is [`FrameError::TooLarge`], which bounds the memory one frame can cost.
pub const MAX_COMMANDS_PER_FRAME: usize = 512;

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
        if out.len() == MAX_COMMANDS_PER_FRAME {
            return Err(FrameError::TooLarge);
        }
        out.push(cmd);
    }
    if out.is_empty() {
        return Err(FrameError::Empty);
    }
    Ok(out)
}

/// Splits a protobuf frame into commands, in order: one or more varint-length-delimited
/// `Command` messages. The single byte `0x00` is one empty command (id 0), a pong.
///
/// An empty frame is [`FrameError::Empty`]; a malformed length prefix, a length running past
/// the end of the frame, or a message that does not decode is [`FrameError::Malformed`].
pub fn decode_protobuf_frame(frame: &[u8]) -> Result<Vec<Command>, FrameError> {
    if frame.is_empty() {
        return Err(FrameError::Empty);
    }
    let mut out = Vec::new();
    let mut rest = frame;
    while !rest.is_empty() {
        let msg = next_delimited(&mut rest)?;
        let cmd = pb::Command::decode(msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
        if out.len() == MAX_COMMANDS_PER_FRAME {
            return Err(FrameError::TooLarge);
        }
        out.push(cmd.into());
    }
    Ok(out)
}

/// Takes one length-delimited message off the front of `rest`.
fn next_delimited<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], FrameError> {
    let len = prost::decode_length_delimiter(&mut *rest)
        .map_err(|e| FrameError::Malformed(format!("length prefix: {e}")))?;
    if len > rest.len() {
        return Err(FrameError::Malformed(format!(
            "truncated message: length {len}, {} bytes left",
            rest.len()
        )));
    }
    let (msg, tail) = rest.split_at(len);
    *rest = tail;
    Ok(msg)
}

/// Decodes the protobuf body of an `/emulation` request (a plain, not length-delimited,
/// `EmulationRequest`) into `(node, session, data)`. `data` holds delimited commands for
/// [`decode_protobuf_frame`]. An empty body is [`FrameError::Empty`].
pub fn decode_emulation_request(body: &[u8]) -> Result<(String, String, Bytes), FrameError> {
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    let req =
        pb::EmulationRequest::decode(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    Ok((req.node, req.session, req.data))
}

/// Encodes one protobuf message with its varint length prefix; an empty message is `0x00`.
pub fn encode_protobuf<M: Message>(msg: &M) -> Bytes {
    Bytes::from(msg.encode_length_delimited_to_vec())
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

    // ---- protobuf ----

    use std::collections::HashMap;

    use proptest::prelude::*;

    fn delimited(cmd: &pb::Command) -> Vec<u8> {
        cmd.encode_length_delimited_to_vec()
    }

    #[test]
    fn protobuf_commands_round_trip_in_one_frame() {
        let connect = pb::Command {
            id: 1,
            connect: Some(pb::ConnectRequest {
                token: "jwt.token.sig".into(),
                data: Bytes::from_static(b"{\"a\":1}"),
                subs: HashMap::from([(
                    "news".to_string(),
                    pb::SubscribeRequest {
                        recover: true,
                        offset: 3,
                        epoch: "ep".into(),
                        ..Default::default()
                    },
                )]),
                name: "js".into(),
                version: "5.8.0".into(),
                headers: HashMap::from([("x-h".to_string(), "v".to_string())]),
                flag: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        let subscribe = pb::Command {
            id: 2,
            subscribe: Some(pb::SubscribeRequest {
                channel: "chat:index".into(),
                token: "sub-jwt".into(),
                recover: true,
                offset: 4,
                epoch: "xJtWqEtw".into(),
                flag: 3,
                positioned: true,
                recoverable: true,
                join_leave: true,
                delta: "fossil".into(),
                data: Bytes::from_static(b"\"d\""),
                ..Default::default()
            }),
            ..Default::default()
        };
        let publish = pb::Command {
            id: 3,
            publish: Some(pb::PublishRequest {
                channel: "chat:index".into(),
                data: Bytes::from_static(b"\x00binary\xff"),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut frame = delimited(&connect);
        frame.extend(delimited(&subscribe));
        frame.extend(delimited(&publish));

        let mut cmds = decode_protobuf_frame(&frame).unwrap().into_iter();
        assert_eq!(cmds.len(), 3);

        let (id, r) = cmds.next().unwrap().into_request();
        let Request::Connect(c) = r else {
            panic!("{r:?}")
        };
        assert_eq!(id, 1);
        assert_eq!(c.token, "jwt.token.sig");
        assert_eq!(c.data.as_bytes(), b"{\"a\":1}");
        assert_eq!(
            (c.name.as_str(), c.version.as_str(), c.flag),
            ("js", "5.8.0", 1)
        );
        assert_eq!(c.headers["x-h"], "v");
        let hint = &c.subs["news"];
        assert!(hint.recover);
        assert_eq!((hint.offset, hint.epoch.as_str()), (3, "ep"));

        let (id, r) = cmds.next().unwrap().into_request();
        let Request::Subscribe(s) = r else {
            panic!("{r:?}")
        };
        assert_eq!(id, 2);
        assert_eq!(s.channel, "chat:index");
        assert_eq!(s.token, "sub-jwt");
        assert!(s.recover && s.positioned && s.recoverable && s.join_leave);
        assert_eq!((s.offset, s.epoch.as_str(), s.flag), (4, "xJtWqEtw", 3));
        assert_eq!(s.delta, "fossil");
        assert_eq!(s.data.as_bytes(), b"\"d\"");
        assert_eq!(s.sub_type, 0);

        let (id, r) = cmds.next().unwrap().into_request();
        let Request::Publish(p) = r else {
            panic!("{r:?}")
        };
        assert_eq!(id, 3);
        assert_eq!(p.channel, "chat:index");
        assert_eq!(p.data.as_bytes(), b"\x00binary\xff");
    }

    #[test]
    fn protobuf_pong_is_the_byte_zero() {
        let cmds = decode_protobuf_frame(&[0x00]).unwrap();
        assert_eq!(cmds.len(), 1);
        assert!(matches!(
            cmds.into_iter().next().unwrap().into_request(),
            (0, Request::Pong)
        ));
        // An empty command encodes to nothing: a pong is written as 0x00 by any client.
        assert_eq!(delimited(&pb::Command::default()), [0x00]);
        // A pong batched after a command.
        let mut frame = delimited(&pb::Command {
            id: 5,
            presence: Some(pb::PresenceRequest {
                channel: "p".into(),
            }),
            ..Default::default()
        });
        frame.push(0x00);
        let cmds = decode_protobuf_frame(&frame).unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!((cmds[0].id, cmds[1].id), (5, 0));
    }

    #[test]
    fn protobuf_bad_frames() {
        let malformed =
            |f: &[u8]| matches!(decode_protobuf_frame(f), Err(FrameError::Malformed(_)));
        assert_eq!(decode_protobuf_frame(b"").unwrap_err(), FrameError::Empty);

        // Truncated: the last byte of a valid message is missing.
        let full = delimited(&pb::Command {
            id: 7,
            subscribe: Some(pb::SubscribeRequest {
                channel: "abc".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(decode_protobuf_frame(&full).is_ok());
        assert!(malformed(&full[..full.len() - 1]));
        assert!(malformed(&full[..1]));

        // Malformed varints: too long, and cut in the middle.
        assert!(malformed(&[0xFF; 11]));
        assert!(malformed(&[0x80]));
        assert!(malformed(&[0x00, 0x80, 0x80]));

        // A length prefix far past the end of the frame.
        let mut huge = Vec::new();
        prost::encode_length_delimiter(1 << 40, &mut huge).unwrap();
        huge.extend_from_slice(&[0x08, 0x01]);
        assert!(malformed(&huge));
        let mut max = vec![0xFF; 9];
        max.push(0x01); // u64::MAX
        max.push(0x00);
        assert!(malformed(&max));

        // A body that is not a Command: invalid wire type 7, and a field running past its message.
        assert!(malformed(&[0x01, 0x0F]));
        assert!(malformed(&[0x02, 0x22, 0x05]));
    }

    #[test]
    fn emulation_request() {
        let mut data = delimited(&pb::Command {
            id: 2,
            subscribe: Some(pb::SubscribeRequest {
                channel: "ch".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        data.push(0x00);
        let body = pb::EmulationRequest {
            node: "n1".into(),
            session: "s1".into(),
            data: Bytes::from(data),
        }
        .encode_to_vec();
        let (node, session, data) = decode_emulation_request(&body).unwrap();
        assert_eq!((node.as_str(), session.as_str()), ("n1", "s1"));
        let cmds = decode_protobuf_frame(&data).unwrap();
        assert_eq!((cmds.len(), cmds[0].id, cmds[1].id), (2, 2, 0));

        assert_eq!(
            decode_emulation_request(b"").unwrap_err(),
            FrameError::Empty
        );
        assert!(matches!(
            decode_emulation_request(&[0x0A, 0x09, b'n']),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn join_protobuf_concatenates() {
        let mut buf = Vec::new();
        join_into(
            Protocol::Protobuf,
            [
                Bytes::from_static(&[0x00]),
                Bytes::from_static(&[0x02, 0x08, 0x01]),
            ],
            &mut buf,
        );
        assert_eq!(buf, [0x00, 0x02, 0x08, 0x01]);
    }

    proptest! {
        #[test]
        fn protobuf_decoder_never_panics(frame in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_protobuf_frame(&frame);
            let _ = decode_emulation_request(&frame);
        }

        #[test]
        fn protobuf_decoder_never_panics_after_a_valid_prefix(
            id in any::<u32>(),
            channel in ".{0,16}",
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut frame = delimited(&pb::Command {
                id,
                subscribe: Some(pb::SubscribeRequest { channel: channel.clone(), ..Default::default() }),
                ..Default::default()
            });
            let cmds = decode_protobuf_frame(&frame).unwrap();
            prop_assert_eq!(cmds.len(), 1);
            prop_assert_eq!(cmds[0].id, id);
            prop_assert_eq!(&cmds[0].subscribe.as_ref().unwrap().channel, &channel);
            frame.extend_from_slice(&tail);
            let _ = decode_protobuf_frame(&frame);
        }
    }
}
