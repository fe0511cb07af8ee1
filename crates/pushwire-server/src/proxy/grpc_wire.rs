//! Centrifugo's gRPC proxy messages (`centrifugal.centrifugo.proxy`, `proxy.proto`), the ones
//! pushwire sends and reads, written out with prost's derive (same field numbers and types, so
//! a backend built from Centrifugo's proto works unchanged). Payloads are bytes: JSON, or
//! anything with `binary_encoding`.
// Field meanings are proxy.proto's and docs/proxies.md's; the fields are not repeated here.
#![allow(missing_docs)]

use std::collections::HashMap;

/// Method paths of the `CentrifugoProxy` service.
pub mod path {
    /// `Connect`.
    pub const CONNECT: &str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/Connect";
    /// `Refresh`.
    pub const REFRESH: &str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/Refresh";
    /// `Subscribe`.
    pub const SUBSCRIBE: &str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/Subscribe";
    /// `Publish`.
    pub const PUBLISH: &str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/Publish";
    /// `RPC`.
    pub const RPC: &str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/RPC";
    /// `SubRefresh`.
    pub const SUB_REFRESH: &str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/SubRefresh";
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Disconnect {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub reason: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Error {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(bool, tag = "3")]
    pub temporary: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BoolValue {
    #[prost(bool, tag = "1")]
    pub value: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
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

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectRequest {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub transport: String,
    #[prost(string, tag = "3")]
    pub protocol: String,
    #[prost(string, tag = "4")]
    pub encoding: String,
    #[prost(bytes = "vec", tag = "10")]
    pub data: Vec<u8>,
    #[prost(string, tag = "12")]
    pub name: String,
    #[prost(string, tag = "13")]
    pub version: String,
    #[prost(string, repeated, tag = "14")]
    pub channels: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeOptions {
    #[prost(int64, tag = "1")]
    pub expire_at: i64,
    #[prost(bytes = "vec", tag = "2")]
    pub info: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
    #[prost(message, optional, tag = "6")]
    pub r#override: Option<SubscribeOptionOverride>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectResult {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(int64, tag = "2")]
    pub expire_at: i64,
    #[prost(bytes = "vec", tag = "3")]
    pub info: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    pub data: Vec<u8>,
    #[prost(string, repeated, tag = "7")]
    pub channels: Vec<String>,
    #[prost(map = "string, message", tag = "8")]
    pub subs: HashMap<String, SubscribeOptions>,
    #[prost(bytes = "vec", tag = "9")]
    pub meta: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectResponse {
    #[prost(message, optional, tag = "1")]
    pub result: Option<ConnectResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub disconnect: Option<Disconnect>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RefreshRequest {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub transport: String,
    #[prost(string, tag = "3")]
    pub protocol: String,
    #[prost(string, tag = "4")]
    pub encoding: String,
    #[prost(string, tag = "10")]
    pub user: String,
    #[prost(bytes = "vec", tag = "11")]
    pub meta: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RefreshResult {
    #[prost(bool, tag = "1")]
    pub expired: bool,
    #[prost(int64, tag = "2")]
    pub expire_at: i64,
    #[prost(bytes = "vec", tag = "3")]
    pub info: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    pub meta: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RefreshResponse {
    #[prost(message, optional, tag = "1")]
    pub result: Option<RefreshResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub disconnect: Option<Disconnect>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeRequest {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub transport: String,
    #[prost(string, tag = "3")]
    pub protocol: String,
    #[prost(string, tag = "4")]
    pub encoding: String,
    #[prost(string, tag = "10")]
    pub user: String,
    #[prost(string, tag = "11")]
    pub channel: String,
    #[prost(string, tag = "12")]
    pub token: String,
    #[prost(bytes = "vec", tag = "13")]
    pub meta: Vec<u8>,
    #[prost(bytes = "vec", tag = "14")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeResult {
    #[prost(int64, tag = "1")]
    pub expire_at: i64,
    #[prost(bytes = "vec", tag = "2")]
    pub info: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
    #[prost(message, optional, tag = "6")]
    pub r#override: Option<SubscribeOptionOverride>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeResponse {
    #[prost(message, optional, tag = "1")]
    pub result: Option<SubscribeResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub disconnect: Option<Disconnect>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishRequest {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub transport: String,
    #[prost(string, tag = "3")]
    pub protocol: String,
    #[prost(string, tag = "4")]
    pub encoding: String,
    #[prost(string, tag = "10")]
    pub user: String,
    #[prost(string, tag = "11")]
    pub channel: String,
    #[prost(bytes = "vec", tag = "12")]
    pub data: Vec<u8>,
    #[prost(bytes = "vec", tag = "14")]
    pub meta: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishResult {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
    #[prost(bool, tag = "3")]
    pub skip_history: bool,
    #[prost(map = "string, string", tag = "4")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "5")]
    pub idempotency_key: String,
    #[prost(uint64, tag = "7")]
    pub version: u64,
    #[prost(string, tag = "8")]
    pub version_epoch: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishResponse {
    #[prost(message, optional, tag = "1")]
    pub result: Option<PublishResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub disconnect: Option<Disconnect>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcRequest {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub transport: String,
    #[prost(string, tag = "3")]
    pub protocol: String,
    #[prost(string, tag = "4")]
    pub encoding: String,
    #[prost(string, tag = "10")]
    pub user: String,
    #[prost(string, tag = "11")]
    pub method: String,
    #[prost(bytes = "vec", tag = "12")]
    pub data: Vec<u8>,
    #[prost(bytes = "vec", tag = "14")]
    pub meta: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcResult {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcResponse {
    #[prost(message, optional, tag = "1")]
    pub result: Option<RpcResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub disconnect: Option<Disconnect>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubRefreshRequest {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub transport: String,
    #[prost(string, tag = "3")]
    pub protocol: String,
    #[prost(string, tag = "4")]
    pub encoding: String,
    #[prost(string, tag = "10")]
    pub user: String,
    #[prost(string, tag = "11")]
    pub channel: String,
    #[prost(bytes = "vec", tag = "12")]
    pub meta: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubRefreshResult {
    #[prost(bool, tag = "1")]
    pub expired: bool,
    #[prost(int64, tag = "2")]
    pub expire_at: i64,
    #[prost(bytes = "vec", tag = "3")]
    pub info: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubRefreshResponse {
    #[prost(message, optional, tag = "1")]
    pub result: Option<SubRefreshResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub disconnect: Option<Disconnect>,
}
