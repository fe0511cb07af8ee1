//! Client commands: `pb::Command` → [`Command`].

use crate::command::{
    ChannelRequest, Command, ConnectRequest, FilterNode, HistoryRequest, PublishRequest,
    RefreshRequest, RpcRequest, SendRequest, StreamPosition, SubRefreshRequest, SubscribeRequest,
    UnsubscribeRequest,
};
use crate::pb;
use crate::raw::RawJson;

impl From<pb::Command> for Command {
    fn from(c: pb::Command) -> Self {
        Command {
            id: c.id,
            connect: c.connect.map(Into::into),
            subscribe: c.subscribe.map(Into::into),
            unsubscribe: c
                .unsubscribe
                .map(|r| UnsubscribeRequest { channel: r.channel }),
            publish: c.publish.map(Into::into),
            presence: c.presence.map(|r| ChannelRequest { channel: r.channel }),
            presence_stats: c
                .presence_stats
                .map(|r| ChannelRequest { channel: r.channel }),
            history: c.history.map(Into::into),
            ping: c.ping.map(|_| serde::de::IgnoredAny),
            send: c.send.map(|r| SendRequest {
                data: RawJson(r.data),
            }),
            rpc: c.rpc.map(|r| RpcRequest {
                data: RawJson(r.data),
                method: r.method,
            }),
            refresh: c.refresh.map(|r| RefreshRequest { token: r.token }),
            sub_refresh: c.sub_refresh.map(Into::into),
        }
    }
}

impl From<pb::ConnectRequest> for ConnectRequest {
    fn from(r: pb::ConnectRequest) -> Self {
        ConnectRequest {
            token: r.token,
            data: RawJson(r.data),
            subs: r.subs.into_iter().map(|(k, v)| (k, v.into())).collect(),
            name: r.name,
            version: r.version,
            headers: r.headers,
            flag: r.flag,
        }
    }
}

impl From<pb::SubscribeRequest> for SubscribeRequest {
    fn from(r: pb::SubscribeRequest) -> Self {
        SubscribeRequest {
            channel: r.channel,
            token: r.token,
            recover: r.recover,
            epoch: r.epoch,
            offset: r.offset,
            data: RawJson(r.data),
            positioned: r.positioned,
            recoverable: r.recoverable,
            join_leave: r.join_leave,
            delta: r.delta,
            tf: r.tf.map(Into::into),
            flag: r.flag,
            sub_type: r.r#type,
        }
    }
}

impl From<pb::FilterNode> for FilterNode {
    fn from(n: pb::FilterNode) -> Self {
        FilterNode {
            op: n.op,
            key: n.key,
            cmp: n.cmp,
            val: n.val,
            vals: n.vals,
            nodes: n.nodes.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<pb::PublishRequest> for PublishRequest {
    fn from(r: pb::PublishRequest) -> Self {
        PublishRequest {
            channel: r.channel,
            data: RawJson(r.data),
        }
    }
}

impl From<pb::HistoryRequest> for HistoryRequest {
    fn from(r: pb::HistoryRequest) -> Self {
        HistoryRequest {
            channel: r.channel,
            limit: r.limit,
            since: r.since.map(|s| StreamPosition {
                offset: s.offset,
                epoch: s.epoch,
            }),
            reverse: r.reverse,
        }
    }
}

impl From<pb::SubRefreshRequest> for SubRefreshRequest {
    fn from(r: pb::SubRefreshRequest) -> Self {
        SubRefreshRequest {
            channel: r.channel,
            token: r.token,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::command::Request;

    #[test]
    fn every_request_field_maps() {
        let pick = |c: pb::Command| Command::from(c).into_request();
        let cmd = |f: fn(&mut pb::Command)| {
            let mut c = pb::Command {
                id: 9,
                ..Default::default()
            };
            f(&mut c);
            c
        };
        assert!(matches!(
            pick(cmd(|c| c.ping = Some(pb::PingRequest {}))),
            (9, Request::Ping)
        ));
        assert!(matches!(
            pick(cmd(|c| c.unsubscribe = Some(pb::UnsubscribeRequest { channel: "a".into() }))),
            (9, Request::Unsubscribe(r)) if r.channel == "a"
        ));
        assert!(matches!(
            pick(cmd(|c| c.presence = Some(pb::PresenceRequest { channel: "p".into() }))),
            (9, Request::Presence(r)) if r.channel == "p"
        ));
        assert!(matches!(
            pick(cmd(|c| c.presence_stats = Some(pb::PresenceStatsRequest { channel: "s".into() }))),
            (9, Request::PresenceStats(r)) if r.channel == "s"
        ));
        assert!(matches!(
            pick(cmd(|c| c.rpc = Some(pb::RpcRequest {
                data: Bytes::from_static(b"[1]"),
                method: "m".into(),
            }))),
            (9, Request::Rpc(r)) if r.method == "m" && r.data.as_bytes() == b"[1]"
        ));
        assert!(matches!(
            pick(cmd(|c| c.refresh = Some(pb::RefreshRequest { token: "t".into() }))),
            (9, Request::Refresh(r)) if r.token == "t"
        ));
        assert!(matches!(
            pick(cmd(|c| c.sub_refresh = Some(pb::SubRefreshRequest {
                channel: "c".into(),
                token: "t2".into(),
                ..Default::default()
            }))),
            (9, Request::SubRefresh(r)) if r.channel == "c" && r.token == "t2"
        ));
        // `send` is the one request allowed with id 0.
        let send = pb::Command {
            send: Some(pb::SendRequest {
                data: Bytes::from_static(b"\x01\x02"),
            }),
            ..Default::default()
        };
        assert!(matches!(pick(send), (0, Request::Send(r)) if r.data.as_bytes() == b"\x01\x02"));
    }

    #[test]
    fn history_and_filter_map() {
        let c = Command::from(pb::Command {
            id: 4,
            history: Some(pb::HistoryRequest {
                channel: "h".into(),
                limit: -1,
                since: Some(pb::StreamPosition {
                    offset: 7,
                    epoch: "e".into(),
                }),
                reverse: true,
            }),
            subscribe: Some(pb::SubscribeRequest {
                channel: "s".into(),
                tf: Some(pb::FilterNode {
                    op: "and".into(),
                    nodes: vec![pb::FilterNode {
                        key: "k".into(),
                        cmp: "in".into(),
                        vals: vec!["a".into(), "b".into()],
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                r#type: 1,
                ..Default::default()
            }),
            ..Default::default()
        });
        let h = c.history.clone().unwrap();
        assert_eq!((h.channel.as_str(), h.limit, h.reverse), ("h", -1, true));
        assert_eq!(
            h.since,
            Some(StreamPosition {
                offset: 7,
                epoch: "e".into()
            })
        );
        let s = c.subscribe.unwrap();
        assert_eq!(s.sub_type, 1);
        let tf = s.tf.unwrap();
        assert_eq!(tf.op, "and");
        assert_eq!(tf.nodes[0].vals, ["a", "b"]);
    }
}
