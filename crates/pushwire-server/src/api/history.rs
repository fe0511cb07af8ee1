//! `history` and `history_remove`.

use pushwire_core::Node;
use pushwire_protocol::{EmptyResult, StreamPosition};
use serde::Deserialize;

use super::error::ApiError;
use super::reply::{encode, ApiResult};
use super::request::nullable;

/// `history` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HistoryRequest {
    #[serde(deserialize_with = "nullable")]
    channel: String,
    /// 0 = position only, -1 = all (capped by the node).
    #[serde(deserialize_with = "nullable")]
    limit: i64,
    since: Option<StreamPosition>,
    #[serde(deserialize_with = "nullable")]
    reverse: bool,
}

/// `history_remove` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HistoryRemoveRequest {
    #[serde(deserialize_with = "nullable")]
    channel: String,
}

/// Reads a channel's history: `{"publications":[…],"epoch":"…","offset":N}`.
pub async fn history(node: &Node, req: HistoryRequest) -> ApiResult {
    if req.channel.is_empty() {
        return Err(ApiError::BadRequest);
    }
    // Out-of-range limits saturate; the node caps large ones and rejects those below -1.
    let limit = i32::try_from(req.limit).unwrap_or(if req.limit > 0 { i32::MAX } else { i32::MIN });
    let result = node
        .history(&req.channel, limit, req.since, req.reverse)
        .await?;
    encode(&result)
}

/// Removes a channel's publications, keeping its position: `{}`.
pub async fn history_remove(node: &Node, req: HistoryRemoveRequest) -> ApiResult {
    if req.channel.is_empty() {
        return Err(ApiError::BadRequest);
    }
    node.history_remove(&req.channel).await?;
    encode(&EmptyResult {})
}
