//! `channels`: active channels of this node, filtered by a glob pattern.

use std::collections::BTreeMap;

use pushwire_core::Node;
use serde::{Deserialize, Serialize};

use super::glob::Glob;
use super::reply::{encode, ApiResult};
use super::request::nullable;

/// `channels` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChannelsRequest {
    /// Glob pattern (see [`super::glob`]); empty = all channels.
    #[serde(deserialize_with = "nullable")]
    pattern: String,
}

#[derive(Debug, Serialize)]
struct ChannelInfo {
    num_clients: usize,
}

#[derive(Debug, Serialize)]
struct ChannelsResult {
    channels: BTreeMap<String, ChannelInfo>,
}

/// Channels with subscribers: `{"channels":{name:{"num_clients":N}}}`.
pub fn channels(node: &Node, req: ChannelsRequest) -> ApiResult {
    let glob = Glob::new(&req.pattern);
    let all = glob.matches_all();
    let channels = node
        .hub()
        .channels()
        .into_iter()
        .filter(|(name, subscribers)| *subscribers > 0 && (all || glob.matches(name)))
        .map(|(name, num_clients)| (name.to_string(), ChannelInfo { num_clients }))
        .collect();
    encode(&ChannelsResult { channels })
}
