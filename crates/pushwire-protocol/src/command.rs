//! Client-to-server messages: the `Command` envelope and its requests.
//!
//! Unknown fields are ignored so that newer SDKs keep working. Field names are the proto names
//! in snake_case; `bytes` fields are raw JSON ([`RawJson`]).

use std::collections::HashMap;

use serde::Deserialize;

use crate::raw::RawJson;

/// The command envelope: an `id` and at most one request field.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Command {
    /// Command id, echoed in the reply; `0` only for `send` and pongs.
    pub id: u32,
    /// Connect request.
    pub connect: Option<ConnectRequest>,
    /// Subscribe request.
    pub subscribe: Option<SubscribeRequest>,
    /// Unsubscribe request.
    pub unsubscribe: Option<UnsubscribeRequest>,
    /// Publish request.
    pub publish: Option<PublishRequest>,
    /// Presence request.
    pub presence: Option<ChannelRequest>,
    /// Presence stats request.
    pub presence_stats: Option<ChannelRequest>,
    /// History request.
    pub history: Option<HistoryRequest>,
    /// Legacy ping request (answered with 108).
    pub ping: Option<serde::de::IgnoredAny>,
    /// Fire-and-forget message.
    pub send: Option<SendRequest>,
    /// RPC request.
    pub rpc: Option<RpcRequest>,
    /// Connection token refresh.
    pub refresh: Option<RefreshRequest>,
    /// Subscription token refresh.
    pub sub_refresh: Option<SubRefreshRequest>,
}

/// The one request a command carries, picked in the order the reference gives.
#[derive(Debug)]
pub enum Request {
    /// `connect`.
    Connect(ConnectRequest),
    /// Legacy `ping` command.
    Ping,
    /// `subscribe`.
    Subscribe(SubscribeRequest),
    /// `unsubscribe`.
    Unsubscribe(UnsubscribeRequest),
    /// `publish`.
    Publish(PublishRequest),
    /// `presence`.
    Presence(ChannelRequest),
    /// `presence_stats`.
    PresenceStats(ChannelRequest),
    /// `history`.
    History(HistoryRequest),
    /// `rpc`.
    Rpc(RpcRequest),
    /// `send` (no reply).
    Send(SendRequest),
    /// `refresh`.
    Refresh(RefreshRequest),
    /// `sub_refresh`.
    SubRefresh(SubRefreshRequest),
    /// An empty command with `id == 0`: the answer to a server ping.
    Pong,
    /// A command with `id > 0` and no recognised request field.
    Unknown,
}

impl Command {
    /// Picks the first non-empty request field (connect, ping, subscribe, unsubscribe, publish,
    /// presence, presence_stats, history, rpc, send, refresh, sub_refresh). A command with
    /// `id == 0` and no `send` is a pong whatever else it carries.
    pub fn into_request(self) -> (u32, Request) {
        let id = self.id;
        if id == 0 {
            return match self.send {
                Some(s) => (0, Request::Send(s)),
                None => (0, Request::Pong),
            };
        }
        let req = if let Some(r) = self.connect {
            Request::Connect(r)
        } else if self.ping.is_some() {
            Request::Ping
        } else if let Some(r) = self.subscribe {
            Request::Subscribe(r)
        } else if let Some(r) = self.unsubscribe {
            Request::Unsubscribe(r)
        } else if let Some(r) = self.publish {
            Request::Publish(r)
        } else if let Some(r) = self.presence {
            Request::Presence(r)
        } else if let Some(r) = self.presence_stats {
            Request::PresenceStats(r)
        } else if let Some(r) = self.history {
            Request::History(r)
        } else if let Some(r) = self.rpc {
            Request::Rpc(r)
        } else if let Some(r) = self.send {
            Request::Send(r)
        } else if let Some(r) = self.refresh {
            Request::Refresh(r)
        } else if let Some(r) = self.sub_refresh {
            Request::SubRefresh(r)
        } else {
            Request::Unknown
        };
        (id, req)
    }
}

/// `connect` request.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct ConnectRequest {
    /// Connection JWT.
    pub token: String,
    /// Custom connect data.
    pub data: RawJson,
    /// Recovery hints (and requests) for server-side subscriptions, keyed by channel.
    pub subs: HashMap<String, SubscribeRequest>,
    /// SDK or application name.
    pub name: String,
    /// Application version.
    pub version: String,
    /// Emulated headers.
    pub headers: HashMap<String, String>,
    /// Connection feature bits (ignored: no dictionary compression).
    pub flag: i64,
}

/// `subscribe` request.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct SubscribeRequest {
    /// Channel name.
    pub channel: String,
    /// Subscription JWT.
    pub token: String,
    /// Recover from `offset`/`epoch`.
    pub recover: bool,
    /// Last seen epoch.
    pub epoch: String,
    /// Last seen offset.
    pub offset: u64,
    /// Custom subscribe data.
    pub data: RawJson,
    /// Ask for positioning.
    pub positioned: bool,
    /// Ask for recovery.
    pub recoverable: bool,
    /// Ask for join/leave pushes.
    pub join_leave: bool,
    /// Requested delta format (only `fossil` exists).
    pub delta: String,
    /// Tags filter.
    pub tf: Option<FilterNode>,
    /// Bit0 channel compaction, bit1 reject unrecovered.
    pub flag: i64,
    /// Subscription type: 0 stream; other types are not available.
    #[serde(rename = "type")]
    pub sub_type: i32,
}

/// Subscribe flag bit 1: answer 112 instead of `recovered:false`.
pub const SUBSCRIBE_FLAG_REJECT_UNRECOVERED: i64 = 2;

/// A tags filter node: a leaf comparison (`op == ""`) or `and`/`or`/`not` over `nodes`.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct FilterNode {
    /// `""` (leaf), `and`, `or`, `not`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// Tag key for leaves.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Comparison for leaves: eq, neq, in, nin, ex, nex, sw, ew, ct, lt, lte, gt, gte.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cmp: String,
    /// Value for single-value comparisons.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub val: String,
    /// Values for `in`/`nin`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vals: Vec<String>,
    /// Children of `and`/`or`/`not`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<FilterNode>,
}

/// `unsubscribe` request.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct UnsubscribeRequest {
    /// Channel name.
    pub channel: String,
}

/// `publish` request.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct PublishRequest {
    /// Channel name.
    pub channel: String,
    /// Payload.
    pub data: RawJson,
}

/// A request that names only a channel (`presence`, `presence_stats`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct ChannelRequest {
    /// Channel name.
    pub channel: String,
}

/// A stream position: `offset` inside `epoch`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct StreamPosition {
    /// Offset of the last publication.
    pub offset: u64,
    /// Stream incarnation.
    pub epoch: String,
}

/// `history` request.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct HistoryRequest {
    /// Channel name.
    pub channel: String,
    /// 0 = position only, -1 = all (capped), N = at most N.
    pub limit: i32,
    /// Publications strictly after (or before, with `reverse`) this position.
    pub since: Option<StreamPosition>,
    /// Newest first.
    pub reverse: bool,
}

/// `rpc` request.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RpcRequest {
    /// Payload.
    pub data: RawJson,
    /// Method name.
    pub method: String,
}

/// `send` request.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct SendRequest {
    /// Payload.
    pub data: RawJson,
}

/// `refresh` request.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RefreshRequest {
    /// New connection token.
    pub token: String,
}

/// `sub_refresh` request.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct SubRefreshRequest {
    /// Channel name.
    pub channel: String,
    /// New subscription token.
    pub token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (u32, Request) {
        serde_json::from_str::<Command>(s).unwrap().into_request()
    }

    #[test]
    fn empty_command_is_pong() {
        assert!(matches!(parse("{}"), (0, Request::Pong)));
        assert!(matches!(
            parse(r#"{"subscribe":{"channel":"x"}}"#),
            (0, Request::Pong)
        ));
    }

    #[test]
    fn first_field_wins_and_unknown_fields_ignored() {
        let (id, r) = parse(
            r#"{"id":3,"subscribe":{"channel":"a","flag":1,"new_field":5},"publish":{"channel":"b","data":{}}}"#,
        );
        assert_eq!(id, 3);
        match r {
            Request::Subscribe(s) => assert_eq!(s.channel, "a"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(r#"{"id":4}"#), (4, Request::Unknown)));
    }

    #[test]
    fn publish_data_kept_verbatim() {
        match parse(r#"{"id":1,"publish":{"channel":"c","data":{"x": [1,2]}}}"#).1 {
            Request::Publish(p) => assert_eq!(p.data.as_bytes(), br#"{"x": [1,2]}"#),
            other => panic!("{other:?}"),
        }
    }
}
