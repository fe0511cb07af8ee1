//! Server messages: [`Reply`] / [`Push`] → `pb::Reply` / `pb::Push` for encoding, and back.

use std::borrow::Cow;

use crate::codes::{Disconnect, Unsubscribe};
use crate::pb;
use crate::raw::RawJson;
use crate::reply::{
    ClientInfo, ConnectResult, EmptyResult, Error, HistoryResult, JoinLeave, Message,
    PresenceResult, PresenceStatsResult, Publication, Push, RefreshResult, Reply, RpcResult,
    SubscribePush, SubscribeResult,
};

// ---- model → protobuf (encoding) ----------------------------------------------------------------

impl From<&Reply> for pb::Reply {
    fn from(r: &Reply) -> Self {
        pb::Reply {
            id: r.id,
            error: r.error.as_ref().map(Into::into),
            push: r.push.as_ref().map(Into::into),
            connect: r.connect.as_ref().map(Into::into),
            subscribe: r.subscribe.as_ref().map(Into::into),
            unsubscribe: r.unsubscribe.as_ref().map(|_| pb::UnsubscribeResult {}),
            publish: r.publish.as_ref().map(|_| pb::PublishResult {}),
            presence: r.presence.as_ref().map(|p| pb::PresenceResult {
                presence: p
                    .presence
                    .iter()
                    .map(|(k, v)| (k.clone(), v.into()))
                    .collect(),
            }),
            presence_stats: r.presence_stats.as_ref().map(|s| pb::PresenceStatsResult {
                num_clients: s.num_clients,
                num_users: s.num_users,
            }),
            history: r.history.as_ref().map(|h| pb::HistoryResult {
                publications: h.publications.iter().map(Into::into).collect(),
                epoch: h.epoch.clone(),
                offset: h.offset,
            }),
            ping: None,
            rpc: r.rpc.as_ref().map(|p| pb::RpcResult {
                data: p.data.0.clone(),
            }),
            refresh: r.refresh.as_ref().map(|p| pb::RefreshResult {
                expires: p.expires,
                ttl: p.ttl,
                ..Default::default()
            }),
            sub_refresh: r.sub_refresh.as_ref().map(|p| pb::SubRefreshResult {
                expires: p.expires,
                ttl: p.ttl,
                items: Vec::new(),
            }),
        }
    }
}

impl From<&Error> for pb::Error {
    fn from(e: &Error) -> Self {
        pb::Error {
            code: e.code,
            message: e.message.clone(),
            temporary: e.temporary,
        }
    }
}

impl From<&Push> for pb::Push {
    fn from(p: &Push) -> Self {
        pb::Push {
            id: 0,
            channel: p.channel.clone(),
            r#pub: p.publication.as_ref().map(Into::into),
            join: p.join.as_ref().map(|j| pb::Join {
                info: Some((&j.info).into()),
            }),
            leave: p.leave.as_ref().map(|l| pb::Leave {
                info: Some((&l.info).into()),
            }),
            unsubscribe: p.unsubscribe.as_ref().map(Into::into),
            message: p.message.as_ref().map(|m| pb::Message {
                data: m.data.0.clone(),
            }),
            subscribe: p.subscribe.as_ref().map(Into::into),
            connect: p.connect.as_ref().map(Into::into),
            disconnect: p.disconnect.as_ref().map(Into::into),
            refresh: p.refresh.as_ref().map(|r| pb::Refresh {
                expires: r.expires,
                ttl: r.ttl,
            }),
        }
    }
}

impl From<&Publication> for pb::Publication {
    fn from(p: &Publication) -> Self {
        pb::Publication {
            data: p.data.0.clone(),
            info: p.info.as_ref().map(Into::into),
            offset: p.offset,
            tags: p.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            time: p.time,
            delta: p.delta,
            ..Default::default()
        }
    }
}

impl From<&ClientInfo> for pb::ClientInfo {
    fn from(i: &ClientInfo) -> Self {
        pb::ClientInfo {
            user: i.user.clone(),
            client: i.client.clone(),
            conn_info: i.conn_info.0.clone(),
            chan_info: i.chan_info.0.clone(),
        }
    }
}

impl From<&Unsubscribe> for pb::Unsubscribe {
    fn from(u: &Unsubscribe) -> Self {
        pb::Unsubscribe {
            code: u.code,
            reason: u.reason.clone().into_owned(),
        }
    }
}

impl From<&Disconnect> for pb::Disconnect {
    fn from(d: &Disconnect) -> Self {
        pb::Disconnect {
            code: d.code,
            reason: d.reason.clone().into_owned(),
            // Legacy protocol-v1 hint: v2 servers leave it unset.
            reconnect: false,
        }
    }
}

impl From<&SubscribePush> for pb::Subscribe {
    fn from(s: &SubscribePush) -> Self {
        pb::Subscribe {
            recoverable: s.recoverable,
            epoch: s.epoch.clone(),
            offset: s.offset,
            positioned: s.positioned,
            data: s.data.0.clone(),
        }
    }
}

impl From<&SubscribeResult> for pb::SubscribeResult {
    fn from(s: &SubscribeResult) -> Self {
        pb::SubscribeResult {
            expires: s.expires,
            ttl: s.ttl,
            recoverable: s.recoverable,
            epoch: s.epoch.clone(),
            publications: s.publications.iter().map(Into::into).collect(),
            recovered: s.recovered,
            offset: s.offset,
            positioned: s.positioned,
            data: s.data.0.clone(),
            was_recovering: s.was_recovering,
            delta: s.delta,
            ..Default::default()
        }
    }
}

impl From<&ConnectResult> for pb::ConnectResult {
    fn from(c: &ConnectResult) -> Self {
        pb::ConnectResult {
            client: c.client.clone(),
            version: c.version.clone(),
            expires: c.expires,
            ttl: c.ttl,
            data: c.data.0.clone(),
            subs: c.subs.iter().map(|(k, v)| (k.clone(), v.into())).collect(),
            ping: c.ping,
            pong: c.pong,
            session: c.session.clone(),
            node: c.node.clone(),
            time: c.time,
            flag: 0,
            dict: None,
        }
    }
}

/// The unidirectional `connect` push: the connect result, renumbered.
impl From<&ConnectResult> for pb::Connect {
    fn from(c: &ConnectResult) -> Self {
        pb::Connect {
            client: c.client.clone(),
            version: c.version.clone(),
            data: c.data.0.clone(),
            subs: c.subs.iter().map(|(k, v)| (k.clone(), v.into())).collect(),
            expires: c.expires,
            ttl: c.ttl,
            ping: c.ping,
            pong: c.pong,
            session: c.session.clone(),
            node: c.node.clone(),
            time: c.time,
        }
    }
}

// ---- protobuf → model (reading what a server wrote) ---------------------------------------------

impl From<pb::Reply> for Reply {
    fn from(r: pb::Reply) -> Self {
        Reply {
            id: r.id,
            error: r.error.map(|e| Error {
                code: e.code,
                message: e.message,
                temporary: e.temporary,
            }),
            push: r.push.map(Into::into),
            connect: r.connect.map(Into::into),
            subscribe: r.subscribe.map(Into::into),
            unsubscribe: r.unsubscribe.map(|_| EmptyResult {}),
            publish: r.publish.map(|_| EmptyResult {}),
            presence: r.presence.map(|p| PresenceResult {
                presence: p.presence.into_iter().map(|(k, v)| (k, v.into())).collect(),
            }),
            presence_stats: r.presence_stats.map(|s| PresenceStatsResult {
                num_clients: s.num_clients,
                num_users: s.num_users,
            }),
            history: r.history.map(|h| HistoryResult {
                publications: h.publications.into_iter().map(Into::into).collect(),
                epoch: h.epoch,
                offset: h.offset,
            }),
            rpc: r.rpc.map(|p| RpcResult {
                data: RawJson(p.data),
            }),
            refresh: r.refresh.map(|p| RefreshResult {
                expires: p.expires,
                ttl: p.ttl,
            }),
            sub_refresh: r.sub_refresh.map(|p| RefreshResult {
                expires: p.expires,
                ttl: p.ttl,
            }),
        }
    }
}

impl From<pb::Push> for Push {
    fn from(p: pb::Push) -> Self {
        Push {
            channel: p.channel,
            publication: p.r#pub.map(Into::into),
            join: p.join.map(|j| JoinLeave {
                info: j.info.map(Into::into).unwrap_or_default(),
            }),
            leave: p.leave.map(|l| JoinLeave {
                info: l.info.map(Into::into).unwrap_or_default(),
            }),
            unsubscribe: p.unsubscribe.map(|u| Unsubscribe {
                code: u.code,
                reason: Cow::Owned(u.reason),
            }),
            message: p.message.map(|m| Message {
                data: RawJson(m.data),
            }),
            subscribe: p.subscribe.map(|s| SubscribePush {
                recoverable: s.recoverable,
                epoch: s.epoch,
                offset: s.offset,
                positioned: s.positioned,
                data: RawJson(s.data),
            }),
            connect: p.connect.map(|c| ConnectResult {
                client: c.client,
                version: c.version,
                expires: c.expires,
                ttl: c.ttl,
                data: RawJson(c.data),
                subs: c.subs.into_iter().map(|(k, v)| (k, v.into())).collect(),
                ping: c.ping,
                pong: c.pong,
                session: c.session,
                node: c.node,
                time: c.time,
            }),
            disconnect: p.disconnect.map(|d| Disconnect {
                code: d.code,
                reason: Cow::Owned(d.reason),
            }),
            refresh: p.refresh.map(|r| RefreshResult {
                expires: r.expires,
                ttl: r.ttl,
            }),
        }
    }
}

impl From<pb::Publication> for Publication {
    fn from(p: pb::Publication) -> Self {
        Publication {
            data: RawJson(p.data),
            info: p.info.map(Into::into),
            offset: p.offset,
            tags: p.tags.into_iter().collect(),
            time: p.time,
            delta: p.delta,
        }
    }
}

impl From<pb::ClientInfo> for ClientInfo {
    fn from(i: pb::ClientInfo) -> Self {
        ClientInfo {
            user: i.user,
            client: i.client,
            conn_info: RawJson(i.conn_info),
            chan_info: RawJson(i.chan_info),
        }
    }
}

impl From<pb::SubscribeResult> for SubscribeResult {
    fn from(s: pb::SubscribeResult) -> Self {
        SubscribeResult {
            expires: s.expires,
            ttl: s.ttl,
            recoverable: s.recoverable,
            epoch: s.epoch,
            publications: s.publications.into_iter().map(Into::into).collect(),
            recovered: s.recovered,
            offset: s.offset,
            positioned: s.positioned,
            data: RawJson(s.data),
            was_recovering: s.was_recovering,
            delta: s.delta,
        }
    }
}

impl From<pb::ConnectResult> for ConnectResult {
    fn from(c: pb::ConnectResult) -> Self {
        ConnectResult {
            client: c.client,
            version: c.version,
            expires: c.expires,
            ttl: c.ttl,
            data: RawJson(c.data),
            subs: c.subs.into_iter().map(|(k, v)| (k, v.into())).collect(),
            ping: c.ping,
            pong: c.pong,
            session: c.session,
            node: c.node,
            time: c.time,
        }
    }
}
