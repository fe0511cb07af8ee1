//! `publish` and `broadcast`.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use pushwire_core::node::PublishParams;
use pushwire_core::Node;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::dispatch::Tally;
use super::error::ApiError;
use super::reply::{encode, envelope, ApiResult, Envelope};
use super::request::{nullable, payload};

/// Publishes of one broadcast in flight at once.
const BROADCAST_CONCURRENCY: usize = 64;

/// `publish` and `broadcast` request (one type: `#[serde(flatten)]` can not carry raw JSON).
/// `publish` reads `channel`, `broadcast` reads `channels`. `delta: true` lets the
/// publication go as a Fossil delta to subscribers that negotiated delta compression.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PublishRequest {
    #[serde(deserialize_with = "nullable")]
    channel: String,
    #[serde(deserialize_with = "nullable")]
    channels: Vec<String>,
    /// Payload as raw JSON, kept opaque.
    data: Option<Box<RawValue>>,
    /// Payload as base64; wins over `data`.
    #[serde(deserialize_with = "nullable")]
    b64data: String,
    #[serde(deserialize_with = "nullable")]
    skip_history: bool,
    #[serde(deserialize_with = "nullable")]
    tags: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    idempotency_key: String,
    #[serde(deserialize_with = "nullable")]
    version: u64,
    #[serde(deserialize_with = "nullable")]
    version_epoch: String,
    #[serde(deserialize_with = "nullable")]
    delta: bool,
}

impl PublishRequest {
    /// Splits into the target (`channel`, `channels`) and the publication.
    fn into_parts(self) -> Result<(String, Vec<String>, PublishParams), ApiError> {
        let params = PublishParams {
            data: payload(self.data, &self.b64data)?,
            tags: self.tags,
            info: None,
            skip_history: self.skip_history,
            idempotency_key: Some(self.idempotency_key).filter(|k| !k.is_empty()),
            version: self.version,
            version_epoch: self.version_epoch,
            delta: self.delta,
        };
        Ok((self.channel, self.channels, params))
    }
}

/// `publish` result: the position, or `{}` when the channel keeps no history.
#[derive(Debug, Default, Serialize)]
struct PublishResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<String>,
}

/// `broadcast` result: one `{"result"}` / `{"error"}` per channel.
#[derive(Serialize)]
struct BroadcastResult<'a> {
    responses: Vec<Envelope<'a>>,
}

/// Publishes to one channel.
pub async fn publish(node: &Node, req: PublishRequest, tally: &Tally) -> ApiResult {
    if req.channel.is_empty() {
        return Err(ApiError::BadRequest);
    }
    let (channel, _, params) = req.into_parts()?;
    publish_one(node, &channel, params, tally).await
}

/// Publishes the same payload to every channel; one response per channel, in order.
pub async fn broadcast(node: &Node, req: PublishRequest, tally: &Tally) -> ApiResult {
    if req.channels.is_empty() {
        return Err(ApiError::BadRequest);
    }
    let (_, channels, params) = req.into_parts()?;
    let outcomes: Vec<ApiResult> = stream::iter(channels)
        .map(|channel| {
            let params = params.clone();
            async move { publish_one(node, &channel, params, tally).await }
        })
        .buffered(BROADCAST_CONCURRENCY)
        .collect()
        .await;
    encode(&BroadcastResult {
        responses: outcomes.iter().map(envelope).collect(),
    })
}

async fn publish_one(
    node: &Node,
    channel: &str,
    params: PublishParams,
    tally: &Tally,
) -> ApiResult {
    if channel.is_empty() {
        return Err(ApiError::BadRequest);
    }
    let outcome = node.publish(channel, params).await?;
    tally.publication(outcome.suppressed);
    let result = match outcome.position {
        Some(p) => PublishResult {
            offset: Some(p.offset),
            epoch: Some(p.epoch),
        },
        None => PublishResult::default(),
    };
    encode(&result)
}
