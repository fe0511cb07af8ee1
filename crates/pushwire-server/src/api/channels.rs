//! `channels`: active channels of every node, filtered by a glob pattern.

use std::collections::BTreeMap;

use pushwire_core::Node;
use serde::{Deserialize, Serialize};

use super::reply::{encode, ApiResult};
use super::request::nullable;

/// `channels` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChannelsRequest {
    /// Glob pattern (see [`pushwire_core::glob`]); empty = all channels.
    #[serde(deserialize_with = "nullable")]
    pattern: String,
}

#[derive(Debug, Serialize)]
struct ChannelInfo {
    num_clients: u32,
}

#[derive(Debug, Serialize)]
struct ChannelsResult {
    channels: BTreeMap<String, ChannelInfo>,
}

/// Channels with subscribers on any live node (a survey; a node that does not answer within
/// `node.survey_timeout` is left out, logged and counted):
/// `{"channels":{name:{"num_clients":N}}}`.
pub async fn channels(node: &Node, req: ChannelsRequest) -> ApiResult {
    let survey = node.channels(&req.pattern).await;
    let channels = survey
        .channels
        .into_iter()
        .map(|(name, num_clients)| (name, ChannelInfo { num_clients }))
        .collect();
    encode(&ChannelsResult { channels })
}
