//! `subscribe` and `refresh`: server-side subscriptions and connection refresh for a user's
//! live connections.

use pushwire_core::Node;
use pushwire_protocol::{EmptyResult, StreamPosition};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::ApiError;
use super::reply::{encode, ApiResult};
use super::request::{nullable, payload};
use super::users::target;

/// `subscribe` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubscribeRequest {
    #[serde(deserialize_with = "nullable")]
    user: String,
    #[serde(deserialize_with = "nullable")]
    channel: String,
    #[serde(deserialize_with = "nullable")]
    client: String,
    #[serde(deserialize_with = "nullable")]
    session: String,
    info: Option<Box<RawValue>>,
    #[serde(deserialize_with = "nullable")]
    b64info: String,
    data: Option<Box<RawValue>>,
    #[serde(deserialize_with = "nullable")]
    b64data: String,
    recover_since: Option<StreamPosition>,
    /// Namespace option overrides for this subscription (as the token `override` claim).
    #[serde(rename = "override")]
    overrides: Option<pushwire_core::auth::ChannelOverride>,
}

/// `refresh` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RefreshRequest {
    #[serde(deserialize_with = "nullable")]
    user: String,
    #[serde(deserialize_with = "nullable")]
    client: String,
    #[serde(deserialize_with = "nullable")]
    session: String,
    #[serde(deserialize_with = "nullable")]
    expired: bool,
    /// Unix seconds; 0 = never.
    #[serde(deserialize_with = "nullable")]
    expire_at: i64,
    info: Option<Box<RawValue>>,
}

fn optional(raw: Option<Box<RawValue>>, b64: &str) -> Result<pushwire_protocol::RawJson, ApiError> {
    if raw.is_none() && b64.is_empty() {
        return Ok(Default::default());
    }
    payload(raw, b64)
}

/// Subscribes the user's connections on every node (all, or one `client`/`session`) to
/// `channel`; each gets a Subscribe push. `recover_since` recovers from that position: `{}`.
pub async fn subscribe(node: &Node, req: SubscribeRequest) -> ApiResult {
    if req.channel.is_empty() {
        return Err(ApiError::BadRequest);
    }
    let info = optional(req.info, &req.b64info)?;
    let data = optional(req.data, &req.b64data)?;
    let target = target(req.user, req.client, &req.session, Vec::new())?;
    let n = node
        .subscribe_user(
            &target,
            &req.channel,
            info,
            data,
            req.recover_since,
            req.overrides.unwrap_or_default(),
        )
        .await?;
    tracing::debug!(user = %target.user, connections = n, "API subscribe");
    encode(&EmptyResult {})
}

/// Refreshes the user's connections on every node: `expired` closes them with 3005; otherwise
/// the new `expire_at` and `info` apply and each gets a Refresh push: `{}`.
pub async fn refresh(node: &Node, req: RefreshRequest) -> ApiResult {
    let info = req.info.map(|r| optional(Some(r), "")).transpose()?;
    let target = target(req.user, req.client, &req.session, Vec::new())?;
    let expire_at = (req.expire_at > 0).then_some(req.expire_at);
    let n = node
        .refresh_user(&target, req.expired, expire_at, info)
        .await?;
    tracing::debug!(user = %target.user, connections = n, "API refresh");
    encode(&EmptyResult {})
}
