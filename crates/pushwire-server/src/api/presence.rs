//! `presence` and `presence_stats`.

use pushwire_core::Node;
use pushwire_protocol::{PresenceResult, PresenceStatsResult};
use serde::Deserialize;

use super::error::ApiError;
use super::reply::{encode, ApiResult};
use super::request::nullable;

/// `presence` and `presence_stats` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChannelRequest {
    #[serde(deserialize_with = "nullable")]
    channel: String,
}

/// Who is in a channel: `{"presence":{client_id: ClientInfo}}`.
pub async fn presence(node: &Node, req: ChannelRequest) -> ApiResult {
    if req.channel.is_empty() {
        return Err(ApiError::BadRequest);
    }
    let presence = node.presence_of(&req.channel).await?;
    encode(&PresenceResult { presence })
}

/// Presence counts: `{"num_clients":N,"num_users":M}`.
pub async fn presence_stats(node: &Node, req: ChannelRequest) -> ApiResult {
    if req.channel.is_empty() {
        return Err(ApiError::BadRequest);
    }
    let stats = node.presence_stats_of(&req.channel).await?;
    encode(&PresenceStatsResult {
        num_clients: stats.num_clients,
        num_users: stats.num_users,
    })
}
