//! Server-to-client messages: the `Reply` envelope, `Push` events and results.
//!
//! JSON rules from the reference: zero values are omitted, except the always-present keys
//! (`ClientInfo.user`/`client`, `PresenceResult.presence`, `PresenceStatsResult.num_*`,
//! `HistoryResult.*`); empty results are still written as `{}`.
//! Every type also deserializes (with defaults) so that tests, the bench and the Rust client can
//! read what the server writes.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::codes::{Disconnect, ErrorCode, Unsubscribe};
use crate::raw::RawJson;

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
fn is_false(v: &bool) -> bool {
    !*v
}

/// The reply envelope: a command answer (`id > 0`, one result or `error`), a push, or a ping
/// (no fields at all).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Reply {
    /// The command id this answers; 0 for pushes and pings.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub id: u32,
    /// Error answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Error>,
    /// Asynchronous event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,
    /// Connect result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectResult>,
    /// Subscribe result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<SubscribeResult>,
    /// Unsubscribe result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<EmptyResult>,
    /// Publish result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<EmptyResult>,
    /// Presence result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence: Option<PresenceResult>,
    /// Presence stats result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_stats: Option<PresenceStatsResult>,
    /// History result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryResult>,
    /// RPC result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc: Option<RpcResult>,
    /// Refresh result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshResult>,
    /// Sub-refresh result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_refresh: Option<RefreshResult>,
}

impl Reply {
    /// An error answer to command `id`.
    pub fn error(id: u32, error: Error) -> Reply {
        Reply {
            id,
            error: Some(error),
            ..Default::default()
        }
    }

    /// A push (no id).
    pub fn push(push: Push) -> Reply {
        Reply {
            push: Some(push),
            ..Default::default()
        }
    }

    /// Whether this is a ping: no id and no fields.
    pub fn is_ping(&self) -> bool {
        self.id == 0 && self.push.is_none() && self.error.is_none()
    }
}

/// An error in `Reply.error`; `message` is never empty.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Error {
    /// Error code (see [`crate::ErrorCode`]).
    pub code: u32,
    /// Message; always present.
    pub message: String,
    /// Whether retrying makes sense.
    #[serde(skip_serializing_if = "is_false")]
    pub temporary: bool,
}

impl From<ErrorCode> for Error {
    /// The wire form of a protocol error code: its number, message and whether it is
    /// temporary.
    fn from(code: ErrorCode) -> Self {
        Error {
            code: code.code(),
            message: code.message().into(),
            temporary: code.temporary(),
        }
    }
}

/// A result with no fields, written as `{}`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct EmptyResult {}

/// Asynchronous event; exactly one body field is set.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Push {
    /// Channel for pub/join/leave/unsubscribe/subscribe.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// Publication.
    #[serde(rename = "pub", skip_serializing_if = "Option::is_none")]
    pub publication: Option<Publication>,
    /// Join.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinLeave>,
    /// Leave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leave: Option<JoinLeave>,
    /// Server-side unsubscribe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<Unsubscribe>,
    /// Async message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// Server-side subscribe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<SubscribePush>,
    /// Connect (unidirectional transports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectResult>,
    /// Disconnect (emulated and unidirectional transports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect: Option<Disconnect>,
    /// Server-side refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshResult>,
}

/// A publication in a channel.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Publication {
    /// Payload.
    #[serde(skip_serializing_if = "RawJson::is_empty")]
    pub data: RawJson,
    /// Publisher, when a client published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ClientInfo>,
    /// Offset in the channel stream; 0 when the channel keeps no history.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Event-type tags.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Unix milliseconds.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub time: i64,
    /// Toward a client: `data` is a Fossil delta against the previous payload of the
    /// subscription (see [`crate::fossil`]). Inside the server (from publish to the hub, also
    /// through a broker): the publication may be sent as a delta (API `delta`, namespace
    /// `delta_publish`).
    #[serde(skip_serializing_if = "is_false")]
    pub delta: bool,
}

/// Who a connection is: user and client ids are always present.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientInfo {
    /// User id; `""` is anonymous.
    pub user: String,
    /// Client (connection) id.
    pub client: String,
    /// Connection info from the token.
    #[serde(skip_serializing_if = "RawJson::is_empty")]
    pub conn_info: RawJson,
    /// Channel info from the subscription token.
    #[serde(skip_serializing_if = "RawJson::is_empty")]
    pub chan_info: RawJson,
}

/// Join or leave body.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JoinLeave {
    /// Who joined or left.
    pub info: ClientInfo,
}

/// Async message body.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    /// Payload.
    pub data: RawJson,
}

/// Server-side subscribe push body.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscribePush {
    /// Recovery is on.
    #[serde(skip_serializing_if = "is_false")]
    pub recoverable: bool,
    /// Stream epoch.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Stream top offset.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Positioning is on.
    #[serde(skip_serializing_if = "is_false")]
    pub positioned: bool,
    /// Custom data.
    #[serde(skip_serializing_if = "RawJson::is_empty")]
    pub data: RawJson,
}

/// Connect result (also the body of the unidirectional `connect` push).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectResult {
    /// Unique connection id.
    pub client: String,
    /// Server version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The client must refresh its token before `ttl`.
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until expiry.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    /// Custom data.
    #[serde(skip_serializing_if = "RawJson::is_empty")]
    pub data: RawJson,
    /// Server-side subscriptions.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub subs: HashMap<String, SubscribeResult>,
    /// Ping interval, seconds.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ping: u32,
    /// The client must answer pings.
    #[serde(skip_serializing_if = "is_false")]
    pub pong: bool,
    /// Emulation session id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub session: String,
    /// Emulation node id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Server time, Unix ms.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub time: i64,
}

/// Subscribe result.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscribeResult {
    /// The subscription token expires.
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until expiry.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    /// Recovery is on.
    #[serde(skip_serializing_if = "is_false")]
    pub recoverable: bool,
    /// Stream epoch.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Recovered publications.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publications: Vec<Publication>,
    /// All missed publications were delivered.
    #[serde(skip_serializing_if = "is_false")]
    pub recovered: bool,
    /// Stream top offset (the client's offset when recovered).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Positioning is on.
    #[serde(skip_serializing_if = "is_false")]
    pub positioned: bool,
    /// Custom data.
    #[serde(skip_serializing_if = "RawJson::is_empty")]
    pub data: RawJson,
    /// A recovery attempt was made.
    #[serde(skip_serializing_if = "is_false")]
    pub was_recovering: bool,
    /// Delta compression was negotiated (the request's `delta` is allowed in the namespace).
    #[serde(skip_serializing_if = "is_false")]
    pub delta: bool,
}

/// Presence result: client id → info. Always present.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PresenceResult {
    /// Presence entries keyed by client id.
    pub presence: HashMap<String, ClientInfo>,
}

/// Presence stats. Both counts always present.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PresenceStatsResult {
    /// Number of connections.
    pub num_clients: u32,
    /// Number of distinct users.
    pub num_users: u32,
}

/// History result. All fields always present.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryResult {
    /// Publications.
    pub publications: Vec<Publication>,
    /// Stream epoch.
    pub epoch: String,
    /// Stream top offset.
    pub offset: u64,
}

/// RPC result.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcResult {
    /// Payload.
    #[serde(skip_serializing_if = "RawJson::is_empty")]
    pub data: RawJson,
}

/// Refresh / sub-refresh result, and the `refresh` push body.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RefreshResult {
    /// Still expires.
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until expiry.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_results_are_objects() {
        let r = Reply {
            id: 3,
            publish: Some(EmptyResult {}),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"id":3,"publish":{}}"#
        );
        assert_eq!(serde_json::to_string(&Reply::default()).unwrap(), "{}");
    }

    #[test]
    fn always_present_keys() {
        let r = Reply {
            id: 1,
            history: Some(HistoryResult::default()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"id":1,"history":{"publications":[],"epoch":"","offset":0}}"#
        );
        let s = PresenceStatsResult::default();
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"num_clients":0,"num_users":0}"#
        );
        let i = ClientInfo::default();
        assert_eq!(
            serde_json::to_string(&i).unwrap(),
            r#"{"user":"","client":""}"#
        );
    }

    #[test]
    fn publication_push_shape() {
        let p = Reply::push(Push {
            channel: "chat".into(),
            publication: Some(Publication {
                data: RawJson::from_json_str(r#"{"n":6}"#).unwrap(),
                offset: 6,
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"push":{"channel":"chat","pub":{"data":{"n":6},"offset":6}}}"#
        );
    }

    #[test]
    fn disconnect_push_shape() {
        let p = Reply::push(Push {
            disconnect: Some(Disconnect::SHUTDOWN),
            ..Default::default()
        });
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}"#
        );
    }
}
