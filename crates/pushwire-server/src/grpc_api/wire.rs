//! Centrifugo's gRPC API messages (`centrifugal.centrifugo.api`, `proto/api.proto`), written out
//! with prost's derive (same field numbers and types). Requests also serialize, and results
//! also deserialize, in the JSON shape of the HTTP API, which is how they cross into and out of
//! the one dispatch path ([`super::convert`]). `bytes` payloads are JSON: they travel as raw
//! JSON ([`raw`]) or, for publication data and subscription info, as base64
//! ([`Prepare`]), so any bytes pass unchanged.
// Field meanings are api.proto's and the HTTP API's (docs/api.md); they are not repeated here.
#![allow(missing_docs)]

use std::collections::HashMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// Serde helpers for `bytes` fields holding JSON.
pub mod raw {
    use serde::de::Deserializer;
    use serde::ser::{Error as _, Serializer};
    use serde::{Deserialize, Serialize};
    use serde_json::value::RawValue;

    /// Serializes the bytes as the JSON they hold; bytes that are not JSON are an error.
    pub fn ser<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue =
            serde_json::from_slice(bytes).map_err(|_| S::Error::custom("bytes are not JSON"))?;
        raw.serialize(s)
    }

    /// Reads any JSON value as its text; `null` is empty.
    pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let text = raw.get();
        Ok(if text == "null" {
            Vec::new()
        } else {
            text.as_bytes().to_vec()
        })
    }
}

/// Moves raw payload bytes into their base64 twin fields before a request is serialized
/// (a `b64…` value already set wins, as over HTTP).
pub trait Prepare {
    /// Rewrites the payload fields in place.
    fn prepare(&mut self) {}
}

fn to_b64(bytes: &mut Vec<u8>, b64: &mut String) {
    if b64.is_empty() && !bytes.is_empty() {
        *b64 = base64::engine::general_purpose::STANDARD.encode(&*bytes);
    }
    bytes.clear();
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct Error {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamPosition {
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    #[prost(string, tag = "2")]
    pub epoch: String,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct ClientInfo {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(string, tag = "2")]
    pub client: String,
    #[prost(bytes = "vec", tag = "3")]
    #[serde(deserialize_with = "raw::de")]
    pub conn_info: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    #[serde(deserialize_with = "raw::de")]
    pub chan_info: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct BoolValue {
    #[prost(bool, tag = "1")]
    pub value: bool,
}

// ---- publish, broadcast ----

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct PublishRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(bytes = "vec", tag = "2")]
    #[serde(skip)]
    pub data: Vec<u8>,
    #[prost(string, tag = "3")]
    pub b64data: String,
    #[prost(bool, tag = "4")]
    pub skip_history: bool,
    #[prost(map = "string, string", tag = "5")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "6")]
    pub idempotency_key: String,
    #[prost(bool, tag = "7")]
    pub delta: bool,
    #[prost(uint64, tag = "8")]
    pub version: u64,
    #[prost(string, tag = "9")]
    pub version_epoch: String,
}

impl Prepare for PublishRequest {
    fn prepare(&mut self) {
        to_b64(&mut self.data, &mut self.b64data);
    }
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct BroadcastRequest {
    #[prost(string, repeated, tag = "1")]
    pub channels: Vec<String>,
    #[prost(bytes = "vec", tag = "2")]
    #[serde(skip)]
    pub data: Vec<u8>,
    #[prost(string, tag = "3")]
    pub b64data: String,
    #[prost(bool, tag = "4")]
    pub skip_history: bool,
    #[prost(map = "string, string", tag = "5")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "6")]
    pub idempotency_key: String,
    #[prost(bool, tag = "7")]
    pub delta: bool,
    #[prost(uint64, tag = "8")]
    pub version: u64,
    #[prost(string, tag = "9")]
    pub version_epoch: String,
}

impl Prepare for BroadcastRequest {
    fn prepare(&mut self) {
        to_b64(&mut self.data, &mut self.b64data);
    }
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct PublishResult {
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    #[prost(string, tag = "2")]
    pub epoch: String,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct BroadcastResult {
    #[prost(message, repeated, tag = "1")]
    pub responses: Vec<PublishResponse>,
}

// ---- subscribe, unsubscribe, disconnect, refresh ----

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct SubscribeOptionOverride {
    #[prost(message, optional, tag = "1")]
    pub presence: Option<BoolValue>,
    #[prost(message, optional, tag = "2")]
    pub join_leave: Option<BoolValue>,
    #[prost(message, optional, tag = "3")]
    pub force_recovery: Option<BoolValue>,
    #[prost(message, optional, tag = "4")]
    pub force_positioning: Option<BoolValue>,
    #[prost(message, optional, tag = "5")]
    pub force_push_join_leave: Option<BoolValue>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct SubscribeRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(string, tag = "2")]
    pub user: String,
    #[prost(int64, tag = "3")]
    pub expire_at: i64,
    #[prost(bytes = "vec", tag = "4")]
    #[serde(skip)]
    pub info: Vec<u8>,
    #[prost(string, tag = "5")]
    pub b64info: String,
    #[prost(string, tag = "6")]
    pub client: String,
    #[prost(bytes = "vec", tag = "7")]
    #[serde(skip)]
    pub data: Vec<u8>,
    #[prost(string, tag = "8")]
    pub b64data: String,
    #[prost(message, optional, tag = "9")]
    pub recover_since: Option<StreamPosition>,
    #[prost(message, optional, tag = "10")]
    #[serde(rename = "override")]
    pub r#override: Option<SubscribeOptionOverride>,
    #[prost(string, tag = "11")]
    pub session: String,
}

impl Prepare for SubscribeRequest {
    fn prepare(&mut self) {
        to_b64(&mut self.info, &mut self.b64info);
        to_b64(&mut self.data, &mut self.b64data);
    }
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct UnsubscribeRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(string, tag = "2")]
    pub user: String,
    #[prost(string, tag = "3")]
    pub client: String,
    #[prost(string, tag = "4")]
    pub session: String,
}

impl Prepare for UnsubscribeRequest {}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Disconnect {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub reason: String,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct DisconnectRequest {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(message, optional, tag = "2")]
    pub disconnect: Option<Disconnect>,
    #[prost(string, tag = "3")]
    pub client: String,
    #[prost(string, repeated, tag = "4")]
    pub whitelist: Vec<String>,
    #[prost(string, tag = "5")]
    pub session: String,
}

impl Prepare for DisconnectRequest {}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct RefreshRequest {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(string, tag = "2")]
    pub client: String,
    #[prost(bool, tag = "3")]
    pub expired: bool,
    #[prost(int64, tag = "4")]
    pub expire_at: i64,
    #[prost(bytes = "vec", tag = "5")]
    #[serde(serialize_with = "raw::ser", skip_serializing_if = "Vec::is_empty")]
    pub info: Vec<u8>,
    #[prost(string, tag = "6")]
    pub session: String,
}

impl Prepare for RefreshRequest {}

/// The empty result of subscribe, unsubscribe, disconnect, history_remove and refresh.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct EmptyResult {}

// ---- presence, history, channels, info, rpc ----

/// `presence`, `presence_stats`, `history_remove` requests: one channel.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct ChannelRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
}

impl Prepare for ChannelRequest {}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct PresenceResult {
    #[prost(map = "string, message", tag = "1")]
    pub presence: HashMap<String, ClientInfo>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct PresenceStatsResult {
    #[prost(uint32, tag = "1")]
    pub num_clients: u32,
    #[prost(uint32, tag = "2")]
    pub num_users: u32,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct HistoryRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(int32, tag = "2")]
    pub limit: i32,
    #[prost(message, optional, tag = "3")]
    pub since: Option<StreamPosition>,
    #[prost(bool, tag = "4")]
    pub reverse: bool,
}

impl Prepare for HistoryRequest {}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct Publication {
    #[prost(bytes = "vec", tag = "2")]
    #[serde(deserialize_with = "raw::de")]
    pub data: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    pub info: Option<ClientInfo>,
    #[prost(uint64, tag = "4")]
    pub offset: u64,
    #[prost(map = "string, string", tag = "5")]
    pub tags: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct HistoryResult {
    #[prost(message, repeated, tag = "1")]
    pub publications: Vec<Publication>,
    #[prost(string, tag = "2")]
    pub epoch: String,
    #[prost(uint64, tag = "3")]
    pub offset: u64,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct InfoRequest {}

impl Prepare for InfoRequest {}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct NodeResult {
    #[prost(string, tag = "1")]
    pub uid: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub version: String,
    #[prost(uint32, tag = "4")]
    pub num_clients: u32,
    #[prost(uint32, tag = "5")]
    pub num_users: u32,
    #[prost(uint32, tag = "6")]
    pub num_channels: u32,
    #[prost(uint32, tag = "7")]
    pub uptime: u32,
    #[prost(uint32, tag = "10")]
    pub num_subs: u32,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct InfoResult {
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<NodeResult>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct RpcRequest {
    #[prost(string, tag = "1")]
    pub method: String,
    #[prost(bytes = "vec", tag = "2")]
    #[serde(serialize_with = "raw::ser", skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<u8>,
}

impl Prepare for RpcRequest {}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct RpcResult {
    #[prost(bytes = "vec", tag = "1")]
    #[serde(deserialize_with = "raw::de")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct ChannelsRequest {
    #[prost(string, tag = "1")]
    pub pattern: String,
}

impl Prepare for ChannelsRequest {}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct ChannelInfo {
    #[prost(uint32, tag = "1")]
    pub num_clients: u32,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct ChannelsResult {
    #[prost(map = "string, message", tag = "1")]
    pub channels: HashMap<String, ChannelInfo>,
}

// ---- responses: `error` = 1, `result` = 2 ----

/// A method's response: its error, or its result.
pub trait Response: prost::Message + Default + 'static {
    /// The method's result message.
    type Result: prost::Message + for<'de> Deserialize<'de>;
    /// The response carrying `error` or `result`.
    fn new(error: Option<Error>, result: Option<Self::Result>) -> Self;
}

macro_rules! response {
    ($name:ident, $result:ty) => {
        #[derive(Clone, PartialEq, prost::Message, Deserialize)]
        #[serde(default)]
        pub struct $name {
            #[prost(message, optional, tag = "1")]
            pub error: Option<Error>,
            #[prost(message, optional, tag = "2")]
            pub result: Option<$result>,
        }

        impl Response for $name {
            type Result = $result;
            fn new(error: Option<Error>, result: Option<$result>) -> Self {
                $name { error, result }
            }
        }
    };
}

response!(PublishResponse, PublishResult);
response!(BroadcastResponse, BroadcastResult);
response!(SubscribeResponse, EmptyResult);
response!(UnsubscribeResponse, EmptyResult);
response!(DisconnectResponse, EmptyResult);
response!(PresenceResponse, PresenceResult);
response!(PresenceStatsResponse, PresenceStatsResult);
response!(HistoryResponse, HistoryResult);
response!(HistoryRemoveResponse, EmptyResult);
response!(InfoResponse, InfoResult);
response!(RpcResponse, RpcResult);
response!(RefreshResponse, EmptyResult);
response!(ChannelsResponse, ChannelsResult);

// ---- batch ----

/// One command of a batch: the first method set is run (the HTTP API's `batch` rule).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Command {
    #[prost(message, optional, tag = "4")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishRequest>,
    #[prost(message, optional, tag = "5")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<BroadcastRequest>,
    #[prost(message, optional, tag = "6")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<SubscribeRequest>,
    #[prost(message, optional, tag = "7")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<UnsubscribeRequest>,
    #[prost(message, optional, tag = "8")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect: Option<DisconnectRequest>,
    #[prost(message, optional, tag = "9")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence: Option<ChannelRequest>,
    #[prost(message, optional, tag = "10")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_stats: Option<ChannelRequest>,
    #[prost(message, optional, tag = "11")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryRequest>,
    #[prost(message, optional, tag = "12")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_remove: Option<ChannelRequest>,
    #[prost(message, optional, tag = "13")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<InfoRequest>,
    #[prost(message, optional, tag = "14")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc: Option<RpcRequest>,
    #[prost(message, optional, tag = "15")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshRequest>,
    #[prost(message, optional, tag = "16")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<ChannelsRequest>,
}

impl Prepare for Command {
    fn prepare(&mut self) {
        fn p<T: Prepare>(v: &mut Option<T>) {
            if let Some(v) = v {
                v.prepare();
            }
        }
        p(&mut self.publish);
        p(&mut self.broadcast);
        p(&mut self.subscribe);
        p(&mut self.unsubscribe);
        p(&mut self.disconnect);
        p(&mut self.presence);
        p(&mut self.presence_stats);
        p(&mut self.history);
        p(&mut self.history_remove);
        p(&mut self.info);
        p(&mut self.rpc);
        p(&mut self.refresh);
        p(&mut self.channels);
    }
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct BatchRequest {
    #[prost(message, repeated, tag = "1")]
    pub commands: Vec<Command>,
    #[prost(bool, tag = "2")]
    pub parallel: bool,
}

impl Prepare for BatchRequest {
    fn prepare(&mut self) {
        self.commands.iter_mut().for_each(Prepare::prepare);
    }
}

/// One reply of a batch: `error`, or the result under its method's name.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct Reply {
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "4")]
    pub publish: Option<PublishResult>,
    #[prost(message, optional, tag = "5")]
    pub broadcast: Option<BroadcastResult>,
    #[prost(message, optional, tag = "6")]
    pub subscribe: Option<EmptyResult>,
    #[prost(message, optional, tag = "7")]
    pub unsubscribe: Option<EmptyResult>,
    #[prost(message, optional, tag = "8")]
    pub disconnect: Option<EmptyResult>,
    #[prost(message, optional, tag = "9")]
    pub presence: Option<PresenceResult>,
    #[prost(message, optional, tag = "10")]
    pub presence_stats: Option<PresenceStatsResult>,
    #[prost(message, optional, tag = "11")]
    pub history: Option<HistoryResult>,
    #[prost(message, optional, tag = "12")]
    pub history_remove: Option<EmptyResult>,
    #[prost(message, optional, tag = "13")]
    pub info: Option<InfoResult>,
    #[prost(message, optional, tag = "14")]
    pub rpc: Option<RpcResult>,
    #[prost(message, optional, tag = "15")]
    pub refresh: Option<EmptyResult>,
    #[prost(message, optional, tag = "16")]
    pub channels: Option<ChannelsResult>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct BatchResponse {
    #[prost(message, repeated, tag = "1")]
    pub replies: Vec<Reply>,
}
