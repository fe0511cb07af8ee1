//! Encoding replies and pushes for a connection's protocol.

use bytes::Bytes;

use crate::frame::{encode_json, encode_protobuf, Protocol};
use crate::pb;
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
///
/// Protobuf output is length-delimited (a ping is the single byte `0x00`) and never fails:
/// payloads are carried as bytes, whatever they hold.
pub fn encode_reply(protocol: Protocol, reply: &Reply) -> Result<Bytes, EncodeError> {
    match protocol {
        Protocol::Json => json(reply),
        Protocol::Protobuf => Ok(encode_protobuf(&pb::Reply::from(reply))),
    }
}

/// Encodes a bare push, as unidirectional transports send it (length-delimited in protobuf).
pub fn encode_push(protocol: Protocol, push: &Push) -> Result<Bytes, EncodeError> {
    match protocol {
        Protocol::Json => json(push),
        Protocol::Protobuf => Ok(encode_protobuf(&pb::Push::from(push))),
    }
}

fn json<T: serde::Serialize>(msg: &T) -> Result<Bytes, EncodeError> {
    // Serialization only fails when a raw payload is not valid JSON.
    encode_json(msg).map_err(|_| EncodeError::NotJson)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use prost::Message as _;

    use super::*;
    use crate::codes::{Disconnect, Unsubscribe};
    use crate::raw::RawJson;
    use crate::reply::{
        ClientInfo, ConnectResult, EmptyResult, Error, HistoryResult, JoinLeave, Message,
        PresenceResult, PresenceStatsResult, Publication, RefreshResult, RpcResult, SubscribePush,
        SubscribeResult,
    };
    use crate::ErrorCode;

    fn pb_reply(reply: &Reply) -> pb::Reply {
        let bytes = encode_reply(Protocol::Protobuf, reply).unwrap();
        let mut buf = &bytes[..];
        let decoded = pb::Reply::decode_length_delimited(&mut buf).unwrap();
        assert!(buf.is_empty(), "one delimited message, nothing after it");
        decoded
    }

    fn publication(json: &str, offset: u64) -> Publication {
        Publication {
            data: RawJson::from_json_str(json).unwrap(),
            info: Some(ClientInfo {
                user: "u1".into(),
                client: "c1".into(),
                conn_info: RawJson::from_json_str(r#"{"name":"a"}"#).unwrap(),
                chan_info: RawJson::default(),
            }),
            offset,
            tags: BTreeMap::from([("kind".to_string(), "chat".to_string())]),
            time: 1_700_000_000_000,
            delta: false,
        }
    }

    #[test]
    fn ping_is_the_byte_zero() {
        let ping = Reply::default();
        assert!(ping.is_ping());
        assert_eq!(
            &encode_reply(Protocol::Protobuf, &ping).unwrap()[..],
            [0x00]
        );
    }

    #[test]
    fn publication_push_carries_json_bytes_verbatim() {
        let json = r#"{"text": "hi", "n": [1, 2]}"#;
        let push = Push {
            channel: "chat:index".into(),
            publication: Some(publication(json, 6)),
            ..Default::default()
        };
        let r = pb_reply(&Reply::push(push.clone()));
        assert_eq!(r.id, 0);
        let p = r.push.unwrap();
        assert_eq!(p.channel, "chat:index");
        let publ = p.r#pub.unwrap();
        assert_eq!(&publ.data[..], json.as_bytes());
        assert_eq!(publ.offset, 6);
        assert_eq!(publ.time, 1_700_000_000_000);
        assert_eq!(publ.tags, HashMap::from([("kind".into(), "chat".into())]));
        let info = publ.info.unwrap();
        assert_eq!((info.user.as_str(), info.client.as_str()), ("u1", "c1"));
        assert_eq!(&info.conn_info[..], br#"{"name":"a"}"#);
        assert!(info.chan_info.is_empty());

        // The bare push of unidirectional transports.
        let bytes = encode_push(Protocol::Protobuf, &push).unwrap();
        let bare = pb::Push::decode_length_delimited(&bytes[..]).unwrap();
        assert_eq!(&bare.r#pub.unwrap().data[..], json.as_bytes());
    }

    #[test]
    fn binary_payloads_are_fine_in_protobuf_only() {
        let push = Push {
            channel: "bin".into(),
            message: Some(Message {
                data: RawJson::from_bytes(&b"\x00\x01\xff"[..]),
            }),
            ..Default::default()
        };
        let bytes = encode_push(Protocol::Protobuf, &push).unwrap();
        let p = pb::Push::decode_length_delimited(&bytes[..]).unwrap();
        assert_eq!(&p.message.unwrap().data[..], b"\x00\x01\xff");
        assert_eq!(
            encode_push(Protocol::Json, &push).unwrap_err(),
            EncodeError::NotJson
        );
    }

    #[test]
    fn connect_reply_fields() {
        let sub = SubscribeResult {
            recoverable: true,
            epoch: "e1".into(),
            offset: 10,
            positioned: true,
            ..Default::default()
        };
        let connect = ConnectResult {
            client: "9ac9de4e".into(),
            version: "0.1.0".into(),
            expires: true,
            ttl: 60,
            data: RawJson::from_json_str(r#"{"x":1}"#).unwrap(),
            subs: HashMap::from([("server:ch".to_string(), sub)]),
            ping: 25,
            pong: true,
            session: "sess".into(),
            node: "node".into(),
            time: 42,
        };
        let r = pb_reply(&Reply {
            id: 1,
            connect: Some(connect.clone()),
            ..Default::default()
        });
        assert_eq!(r.id, 1);
        let c = r.connect.unwrap();
        assert_eq!(
            (c.client.as_str(), c.version.as_str()),
            ("9ac9de4e", "0.1.0")
        );
        assert_eq!(
            (c.expires, c.ttl, c.ping, c.pong, c.time),
            (true, 60, 25, true, 42)
        );
        assert_eq!((c.session.as_str(), c.node.as_str()), ("sess", "node"));
        assert_eq!(&c.data[..], br#"{"x":1}"#);
        assert_eq!((c.flag, c.dict), (0, None));
        let s = &c.subs["server:ch"];
        assert!(s.recoverable && s.positioned);
        assert_eq!((s.epoch.as_str(), s.offset), ("e1", 10));

        // The unidirectional connect push uses the renumbered `Connect` message.
        let push = pb_reply(&Reply::push(Push {
            connect: Some(connect),
            ..Default::default()
        }))
        .push
        .unwrap()
        .connect
        .unwrap();
        assert_eq!(
            (push.client.as_str(), push.ping, push.pong),
            ("9ac9de4e", 25, true)
        );
        assert_eq!(&push.data[..], br#"{"x":1}"#);
        assert!(push.subs.contains_key("server:ch"));
    }

    #[test]
    fn subscribe_and_history_reply_fields() {
        let r = pb_reply(&Reply {
            id: 2,
            subscribe: Some(SubscribeResult {
                expires: true,
                ttl: 30,
                recoverable: true,
                epoch: "xJtWqEtw".into(),
                publications: vec![publication(r#"{"n":5}"#, 5)],
                recovered: true,
                offset: 4,
                positioned: true,
                data: RawJson::from_json_str("true").unwrap(),
                was_recovering: true,
                delta: false,
            }),
            ..Default::default()
        });
        let s = r.subscribe.unwrap();
        assert!(s.expires && s.recoverable && s.recovered && s.positioned && s.was_recovering);
        assert_eq!((s.ttl, s.epoch.as_str(), s.offset), (30, "xJtWqEtw", 4));
        assert_eq!(&s.data[..], b"true");
        assert_eq!(s.publications.len(), 1);
        assert_eq!(&s.publications[0].data[..], br#"{"n":5}"#);
        assert_eq!(s.publications[0].offset, 5);
        assert!(!s.delta && s.id == 0 && s.r#type == 0);

        let r = pb_reply(&Reply {
            id: 3,
            history: Some(HistoryResult {
                publications: vec![publication("1", 1), publication("2", 2)],
                epoch: "ep".into(),
                offset: 2,
            }),
            ..Default::default()
        });
        let h = r.history.unwrap();
        let offsets: Vec<u64> = h.publications.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, [1, 2]);
        assert_eq!((h.epoch.as_str(), h.offset), ("ep", 2));
    }

    #[test]
    fn empty_results_are_present() {
        let bytes = encode_reply(
            Protocol::Protobuf,
            &Reply {
                id: 3,
                publish: Some(EmptyResult {}),
                ..Default::default()
            },
        )
        .unwrap();
        // length 4: id = 3 (field 1), publish = {} (field 8, length 0).
        assert_eq!(&bytes[..], [0x04, 0x08, 0x03, 0x42, 0x00]);
        let r = pb_reply(&Reply {
            id: 4,
            unsubscribe: Some(EmptyResult {}),
            ..Default::default()
        });
        assert!(r.unsubscribe.is_some() && r.publish.is_none());
    }

    #[test]
    fn other_results() {
        let r = pb_reply(&Reply::error(
            7,
            crate::reply::Error::from(ErrorCode::PermissionDenied),
        ));
        assert_eq!(
            r.error,
            Some(pb::Error {
                code: 103,
                message: "permission denied".into(),
                temporary: false,
            })
        );
        let r = pb_reply(&Reply {
            id: 8,
            presence: Some(PresenceResult {
                presence: HashMap::from([(
                    "c1".to_string(),
                    ClientInfo {
                        user: "u".into(),
                        client: "c1".into(),
                        ..Default::default()
                    },
                )]),
            }),
            presence_stats: Some(PresenceStatsResult {
                num_clients: 2,
                num_users: 1,
            }),
            rpc: Some(RpcResult {
                data: RawJson::from_json_str(r#"{"ok":true}"#).unwrap(),
            }),
            refresh: Some(RefreshResult {
                expires: true,
                ttl: 9,
            }),
            sub_refresh: Some(RefreshResult {
                expires: false,
                ttl: 11,
            }),
            ..Default::default()
        });
        assert_eq!(r.presence.unwrap().presence["c1"].user, "u");
        let stats = r.presence_stats.unwrap();
        assert_eq!((stats.num_clients, stats.num_users), (2, 1));
        assert_eq!(&r.rpc.unwrap().data[..], br#"{"ok":true}"#);
        let refresh = r.refresh.unwrap();
        assert_eq!((refresh.expires, refresh.ttl), (true, 9));
        assert!(refresh.client.is_empty());
        let sub_refresh = r.sub_refresh.unwrap();
        assert_eq!((sub_refresh.expires, sub_refresh.ttl), (false, 11));
        assert!(r.ping.is_none());
    }

    #[test]
    fn push_bodies() {
        let push = |p: Push| pb_reply(&Reply::push(p)).push.unwrap();
        let p = push(Push {
            disconnect: Some(Disconnect::SHUTDOWN),
            ..Default::default()
        });
        assert_eq!(
            p.disconnect,
            Some(pb::Disconnect {
                code: 3001,
                reason: "shutdown".into(),
                reconnect: false,
            })
        );
        assert!(p.channel.is_empty());
        let p = push(Push {
            channel: "ch".into(),
            unsubscribe: Some(Unsubscribe::INSUFFICIENT_STATE),
            ..Default::default()
        });
        assert_eq!(
            p.unsubscribe,
            Some(pb::Unsubscribe {
                code: 2500,
                reason: "insufficient state".into(),
            })
        );
        let who = ClientInfo {
            user: "u".into(),
            client: "c".into(),
            ..Default::default()
        };
        let p = push(Push {
            channel: "ch".into(),
            join: Some(JoinLeave { info: who.clone() }),
            ..Default::default()
        });
        assert_eq!(p.join.unwrap().info.unwrap().client, "c");
        let p = push(Push {
            channel: "ch".into(),
            leave: Some(JoinLeave { info: who }),
            ..Default::default()
        });
        assert_eq!(p.leave.unwrap().info.unwrap().user, "u");
        let p = push(Push {
            channel: "ch".into(),
            subscribe: Some(SubscribePush {
                recoverable: true,
                epoch: "e".into(),
                offset: 3,
                positioned: true,
                data: RawJson::from_json_str("{}").unwrap(),
            }),
            ..Default::default()
        });
        assert_eq!(
            p.subscribe,
            Some(pb::Subscribe {
                recoverable: true,
                epoch: "e".into(),
                offset: 3,
                positioned: true,
                data: bytes::Bytes::from_static(b"{}"),
            })
        );
        let p = push(Push {
            refresh: Some(RefreshResult {
                expires: true,
                ttl: 5,
            }),
            ..Default::default()
        });
        assert_eq!(
            p.refresh,
            Some(pb::Refresh {
                expires: true,
                ttl: 5
            })
        );
        assert_eq!(p.id, 0);
    }

    #[test]
    fn protobuf_replies_read_back_into_the_model() {
        // Model → protobuf bytes → model gives the same JSON as the original.
        let replies = [
            Reply::default(),
            Reply::error(9, crate::reply::Error::from(ErrorCode::TooManyRequests)),
            Reply::push(Push {
                channel: "c".into(),
                publication: Some(publication(r#"{"n":1}"#, 1)),
                ..Default::default()
            }),
            Reply::push(Push {
                disconnect: Some(Disconnect::NO_PONG),
                ..Default::default()
            }),
            Reply {
                id: 5,
                history: Some(HistoryResult {
                    publications: vec![publication("[]", 3)],
                    epoch: "e".into(),
                    offset: 3,
                }),
                ..Default::default()
            },
            Reply {
                id: 6,
                connect: Some(ConnectResult {
                    client: "c".into(),
                    ping: 25,
                    pong: true,
                    ..Default::default()
                }),
                ..Default::default()
            },
            Reply {
                id: 1,
                error: Some(Error {
                    code: 100,
                    message: "internal server error".into(),
                    temporary: true,
                }),
                ..Default::default()
            },
        ];
        for original in replies {
            let back = Reply::from(pb_reply(&original));
            assert_eq!(
                serde_json::to_string(&back).unwrap(),
                serde_json::to_string(&original).unwrap()
            );
        }
    }
}
