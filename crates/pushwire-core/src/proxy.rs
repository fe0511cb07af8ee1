//! The application backend behind proxies: what a client asks it and what it answers.
//!
//! The core decides *when* to ask (connect without a token, subscribe or publish in a namespace
//! with its proxy on, an expiring connection or subscription, `rpc`, `send`) and what the
//! answer means for the client; the server implements [`ProxyBackend`] over HTTP (JSON in
//! Centrifugo's proxy format). Nothing here knows HTTP.
//!
//! Answers map to the client as in Centrifugo: [`Answer::Error`] becomes the command's error
//! reply (code, message, temporary as the backend set them), [`Answer::Disconnect`] closes the
//! connection with the backend's code and reason, and a [`ProxyError`] (backend down, slow,
//! broken answer) becomes error 100 (internal, temporary: SDKs retry) — except for refresh
//! and sub_refresh, which extend the connection or subscription by a minute and try again.

use std::collections::BTreeMap;

use pushwire_protocol::{Disconnect, RawJson};

use crate::auth::{ChannelOverride, ConnectCredentials};

/// Why a proxy call failed (no usable answer from the backend).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The circuit breaker is open: the backend failed repeatedly and is given a rest.
    #[error("circuit breaker open")]
    CircuitOpen,
    /// No free slot (`max_in_flight`) within the timeout.
    #[error("too many calls in flight")]
    Overloaded,
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// The request could not be made or the connection failed.
    #[error("request failed: {0}")]
    Request(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend answered with an HTTP status other than 200.
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    /// The answer is not `application/json`.
    #[error("unexpected content type {0:?}")]
    ContentType(String),
    /// The answer is larger than `max_response_size`.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// The answer is not the expected JSON.
    #[error("invalid response: {0}")]
    Invalid(String),
}

/// What the backend decided.
#[derive(Debug, Clone)]
pub enum Answer<T> {
    /// Go ahead, with this result.
    Ok(T),
    /// Refuse with this error (sent to the client as the command's error).
    Error(pushwire_protocol::Error),
    /// Close the connection.
    Disconnect(Disconnect),
}

/// A proxy call's outcome.
pub type ProxyResult<T> = Result<Answer<T>, ProxyError>;

/// Header name (lower case) and value pairs a client keeps for the proxies.
pub type HeaderPairs = [(Box<str>, Box<str>)];

/// Who is asking: the fields every proxy request carries.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    /// Client id.
    pub client: &'a str,
    /// Transport name (`websocket`, `sse`, ...).
    pub transport: &'a str,
    /// `json` or `protobuf`.
    pub protocol: &'a str,
    /// User id (empty on connect and for anonymous users).
    pub user: &'a str,
    /// Connection meta (sent when the proxy has `include_connection_meta`).
    pub meta: &'a RawJson,
    /// The client's HTTP request headers that some proxy forwards (lower-case names).
    pub headers: &'a HeaderPairs,
    /// Headers from the client's connect command (`headers`) that some proxy forwards
    /// (lower-case names; client-controlled values).
    pub emulated: &'a HeaderPairs,
}

/// A connect request.
#[derive(Debug, Clone, Default)]
pub struct ConnectCall {
    /// Custom connect data from the client.
    pub data: RawJson,
    /// SDK name.
    pub name: String,
    /// SDK version.
    pub version: String,
    /// Channels the client asks to be subscribed to (`connect.subs`).
    pub channels: Vec<String>,
}

/// What a connect proxy grants. `credentials.data` goes into the connect result.
pub type ConnectAnswer = ConnectCredentials;

/// A refresh proxy's decision.
#[derive(Debug, Clone, Default)]
pub struct RefreshAnswer {
    /// End the connection (3005).
    pub expired: bool,
    /// New expiry, Unix seconds; `None` never expires.
    pub expire_at: Option<i64>,
    /// New connection info, when set.
    pub info: Option<RawJson>,
    /// New connection meta, when set.
    pub meta: Option<RawJson>,
}

/// A subscribe request.
#[derive(Debug, Clone, Default)]
pub struct SubscribeCall {
    /// Channel.
    pub channel: String,
    /// Subscription token (empty: the proxy decides alone).
    pub token: String,
    /// Custom subscribe data from the client.
    pub data: RawJson,
}

/// What a subscribe proxy grants.
#[derive(Debug, Clone, Default)]
pub struct SubscribeAnswer {
    /// Subscription expiry, Unix seconds; `None` never expires.
    pub expire_at: Option<i64>,
    /// Channel info of the subscriber.
    pub info: RawJson,
    /// Data for the subscribe result.
    pub data: RawJson,
    /// Namespace option overrides.
    pub overrides: ChannelOverride,
}

/// What a publish proxy decided about a publication.
#[derive(Debug, Clone, Default)]
pub struct PublishAnswer {
    /// Replacement data; `None` keeps the client's.
    pub data: Option<RawJson>,
    /// Do not append to history.
    pub skip_history: bool,
    /// Event-type tags.
    pub tags: BTreeMap<String, String>,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// Version.
    pub version: u64,
    /// Version epoch.
    pub version_epoch: String,
}

/// A sub_refresh proxy's decision.
#[derive(Debug, Clone, Default)]
pub struct SubRefreshAnswer {
    /// End the subscription (Unsubscribe 2501: the SDK resubscribes).
    pub expired: bool,
    /// New expiry, Unix seconds; `None` never expires.
    pub expire_at: Option<i64>,
    /// New channel info, when set.
    pub info: Option<RawJson>,
}

/// The application backend. Implementations bound every call with the proxy's timeout and
/// never panic on a bad answer: it is a [`ProxyError`]. `name` is the proxy name a namespace
/// chose (empty for the kind's default definition).
#[async_trait::async_trait]
pub trait ProxyBackend: Send + Sync + 'static {
    /// `client.proxy.connect`: who is this connection?
    async fn connect(&self, ctx: CallContext<'_>, req: &ConnectCall) -> ProxyResult<ConnectAnswer>;
    /// `client.proxy.refresh`: extend an expiring connection?
    async fn refresh(&self, ctx: CallContext<'_>) -> ProxyResult<RefreshAnswer>;
    /// Subscribe proxy `name`: may this connection subscribe?
    async fn subscribe(
        &self,
        name: &str,
        ctx: CallContext<'_>,
        req: &SubscribeCall,
    ) -> ProxyResult<SubscribeAnswer>;
    /// Publish proxy `name`: may this connection publish `data` to `channel`, and as what?
    async fn publish(
        &self,
        name: &str,
        ctx: CallContext<'_>,
        channel: &str,
        data: &RawJson,
    ) -> ProxyResult<PublishAnswer>;
    /// Sub_refresh proxy `name`: extend an expiring subscription?
    async fn sub_refresh(
        &self,
        name: &str,
        ctx: CallContext<'_>,
        channel: &str,
    ) -> ProxyResult<SubRefreshAnswer>;
    /// RPC proxy `name`: call `method` with `data`; the answer is the result data.
    async fn rpc(
        &self,
        name: &str,
        ctx: CallContext<'_>,
        method: &str,
        data: &RawJson,
    ) -> ProxyResult<RawJson>;
    /// `client.proxy.send`: deliver a one-way message; the answer is ignored.
    async fn send(&self, ctx: CallContext<'_>, data: &RawJson) -> Result<(), ProxyError>;
}
