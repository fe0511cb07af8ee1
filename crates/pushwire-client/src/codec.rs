//! Commands to bytes and frames to replies, for both wire formats.
//!
//! JSON: one command per line, `bytes` fields embedded as raw JSON; a pong is `{}`.
//! Protobuf: varint-delimited `Command`s; a pong is the single byte `0x00`. Replies are decoded
//! into the protocol crate's model ([`pushwire_protocol::Reply`]) whatever the format.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use pushwire_protocol::prost::Message;
use pushwire_protocol::{pb, Protocol, RawJson, Reply};
use serde::Serialize;

use crate::error::ClientError;

/// A subscribe request (also a recovery hint for server-side subscriptions in connect).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct SubscribeReq {
    pub channel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
    #[serde(skip_serializing_if = "is_false")]
    pub recover: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    #[serde(skip_serializing_if = "RawJson::is_empty")]
    pub data: RawJson,
    #[serde(skip_serializing_if = "is_false")]
    pub positioned: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub recoverable: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub join_leave: bool,
}

/// The connect request.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ConnectReq {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
    #[serde(skip_serializing_if = "RawJson::is_empty")]
    pub data: RawJson,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub subs: HashMap<String, SubscribeReq>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
}

/// A stream position for `history.since`.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Since {
    pub offset: u64,
    pub epoch: String,
}

/// The request a command carries.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Body {
    Connect(ConnectReq),
    Subscribe(SubscribeReq),
    Unsubscribe {
        channel: String,
    },
    Publish {
        channel: String,
        data: RawJson,
    },
    History {
        channel: String,
        #[serde(skip_serializing_if = "is_zero_i32")]
        limit: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        since: Option<Since>,
        #[serde(skip_serializing_if = "is_false")]
        reverse: bool,
    },
    Presence {
        channel: String,
    },
    PresenceStats {
        channel: String,
    },
    Refresh {
        token: String,
    },
}

#[derive(Serialize)]
struct JsonCommand<'a> {
    id: u32,
    #[serde(flatten)]
    body: &'a Body,
}

fn is_false(v: &bool) -> bool {
    !*v
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

/// Checks that `data` can travel in `protocol` (JSON needs one valid JSON value).
pub(crate) fn check_data(protocol: Protocol, data: &Bytes) -> Result<RawJson, ClientError> {
    if protocol == Protocol::Json
        && serde_json::from_slice::<&serde_json::value::RawValue>(data).is_err()
    {
        return Err(ClientError::InvalidData(
            "the JSON protocol carries one valid JSON value".into(),
        ));
    }
    Ok(RawJson(data.clone()))
}

/// Encodes command `id` with `body`: a JSON line (no newline) or one delimited protobuf message.
pub(crate) fn encode(protocol: Protocol, id: u32, body: &Body) -> Result<Bytes, ClientError> {
    match protocol {
        Protocol::Json => serde_json::to_vec(&JsonCommand { id, body })
            .map(Bytes::from)
            .map_err(|e| ClientError::InvalidData(e.to_string())),
        Protocol::Protobuf => Ok(Bytes::from(
            to_pb(id, body).encode_length_delimited_to_vec(),
        )),
    }
}

/// The pong: an empty command.
pub(crate) fn pong(protocol: Protocol) -> Bytes {
    match protocol {
        Protocol::Json => Bytes::from_static(b"{}"),
        Protocol::Protobuf => Bytes::from_static(&[0]),
    }
}

/// Joins encoded commands into one frame (JSON lines joined by `\n`; protobuf concatenated).
pub(crate) fn join(protocol: Protocol, parts: &[Bytes]) -> Bytes {
    let mut out = BytesMut::new();
    for (i, p) in parts.iter().enumerate() {
        if protocol == Protocol::Json && i > 0 {
            out.extend_from_slice(b"\n");
        }
        out.extend_from_slice(p);
    }
    out.freeze()
}

fn sub_to_pb(s: &SubscribeReq) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        channel: s.channel.clone(),
        token: s.token.clone(),
        recover: s.recover,
        epoch: s.epoch.clone(),
        offset: s.offset,
        data: s.data.0.clone(),
        positioned: s.positioned,
        recoverable: s.recoverable,
        join_leave: s.join_leave,
        ..Default::default()
    }
}

fn to_pb(id: u32, body: &Body) -> pb::Command {
    let mut c = pb::Command {
        id,
        ..Default::default()
    };
    match body {
        Body::Connect(r) => {
            c.connect = Some(pb::ConnectRequest {
                token: r.token.clone(),
                data: r.data.0.clone(),
                subs: r
                    .subs
                    .iter()
                    .map(|(k, v)| (k.clone(), sub_to_pb(v)))
                    .collect(),
                name: r.name.clone(),
                version: r.version.clone(),
                ..Default::default()
            })
        }
        Body::Subscribe(s) => c.subscribe = Some(sub_to_pb(s)),
        Body::Unsubscribe { channel } => {
            c.unsubscribe = Some(pb::UnsubscribeRequest {
                channel: channel.clone(),
            })
        }
        Body::Publish { channel, data } => {
            c.publish = Some(pb::PublishRequest {
                channel: channel.clone(),
                data: data.0.clone(),
                ..Default::default()
            })
        }
        Body::History {
            channel,
            limit,
            since,
            reverse,
        } => {
            c.history = Some(pb::HistoryRequest {
                channel: channel.clone(),
                limit: *limit,
                since: since.as_ref().map(|s| pb::StreamPosition {
                    offset: s.offset,
                    epoch: s.epoch.clone(),
                }),
                reverse: *reverse,
            })
        }
        Body::Presence { channel } => {
            c.presence = Some(pb::PresenceRequest {
                channel: channel.clone(),
            })
        }
        Body::PresenceStats { channel } => {
            c.presence_stats = Some(pb::PresenceStatsRequest {
                channel: channel.clone(),
            })
        }
        Body::Refresh { token } => {
            c.refresh = Some(pb::RefreshRequest {
                token: token.clone(),
            })
        }
    }
    c
}

/// Decodes one JSON message (one line of a frame or stream).
pub(crate) fn decode_json(line: &[u8]) -> Result<Reply, ClientError> {
    serde_json::from_slice(line).map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Decodes one protobuf `Reply` (without its length prefix).
pub(crate) fn decode_pb(msg: &[u8]) -> Result<Reply, ClientError> {
    pb::Reply::decode(msg)
        .map(Reply::from)
        .map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Splits a whole frame into replies: JSON lines, or delimited protobuf messages.
pub(crate) fn decode_frame(protocol: Protocol, frame: &[u8]) -> Result<Vec<Reply>, ClientError> {
    let mut out = Vec::new();
    match protocol {
        Protocol::Json => {
            for line in frame.split(|b| *b == b'\n') {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                out.push(decode_json(line)?);
            }
        }
        Protocol::Protobuf => {
            let mut rest = frame;
            while !rest.is_empty() {
                match take_delimited(rest)? {
                    Some((msg, used)) => {
                        out.push(decode_pb(msg)?);
                        rest = &rest[used..];
                    }
                    None => return Err(ClientError::Protocol("truncated protobuf frame".into())),
                }
            }
        }
    }
    Ok(out)
}

/// Takes one varint-delimited message off the front of `buf`: `(message, bytes used)`, or
/// `None` when `buf` does not yet hold all of it.
pub(crate) fn take_delimited(buf: &[u8]) -> Result<Option<(&[u8], usize)>, ClientError> {
    let mut len: u64 = 0;
    for (i, b) in buf.iter().enumerate().take(10) {
        len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let start = i + 1;
            let len = usize::try_from(len)
                .map_err(|_| ClientError::Protocol("length prefix overflow".into()))?;
            let end = start
                .checked_add(len)
                .ok_or_else(|| ClientError::Protocol("length prefix overflow".into()))?;
            if buf.len() < end {
                return Ok(None);
            }
            return Ok(Some((&buf[start..end], end)));
        }
    }
    if buf.len() >= 10 {
        return Err(ClientError::Protocol("malformed length prefix".into()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_commands_match_the_wire() {
        let b = Body::Subscribe(SubscribeReq {
            channel: "chat:1".into(),
            recover: true,
            offset: 4,
            epoch: "e".into(),
            ..Default::default()
        });
        assert_eq!(
            encode(Protocol::Json, 2, &b).unwrap(),
            r#"{"id":2,"subscribe":{"channel":"chat:1","recover":true,"epoch":"e","offset":4}}"#
        );
        let p = Body::Publish {
            channel: "c".into(),
            data: check_data(Protocol::Json, &Bytes::from_static(b"{\"a\": 1}")).unwrap(),
        };
        assert_eq!(
            encode(Protocol::Json, 3, &p).unwrap(),
            r#"{"id":3,"publish":{"channel":"c","data":{"a": 1}}}"#
        );
        assert!(check_data(Protocol::Json, &Bytes::from_static(b"{oops")).is_err());
        assert!(check_data(Protocol::Protobuf, &Bytes::from_static(b"\x00\x01")).is_ok());
    }

    #[test]
    fn protobuf_commands_decode_on_the_server_side() {
        let b = Body::History {
            channel: "h".into(),
            limit: 5,
            since: None,
            reverse: false,
        };
        let bytes = encode(Protocol::Protobuf, 9, &b).unwrap();
        let cmds = pushwire_protocol::decode_protobuf_frame(&bytes).unwrap();
        assert_eq!(cmds[0].id, 9);
        assert_eq!(cmds[0].history.as_ref().unwrap().limit, 5);
        assert_eq!(&pong(Protocol::Protobuf)[..], &[0]);
    }

    #[test]
    fn frames_split() {
        let r = decode_frame(Protocol::Json, b"{}\n{\"id\":1,\"publish\":{}}\n").unwrap();
        assert_eq!(r.len(), 2);
        assert!(r[0].is_ping());
        let ping = [0u8];
        let r = decode_frame(Protocol::Protobuf, &ping).unwrap();
        assert!(r[0].is_ping());
        assert!(take_delimited(&[5, 1, 2]).unwrap().is_none());
        assert!(decode_frame(Protocol::Protobuf, &[5, 1]).is_err());
    }
}
