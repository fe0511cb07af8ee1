//! `batch`: many commands in one request, each reply keyed by its method name.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::stream::{self, StreamExt};
use pushwire_core::Node;
use pushwire_protocol::ErrorCode;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::dispatch::call;
use super::error::ApiError;
use super::method::Method;
use super::reply::{encode, ApiResult};
use super::request::nullable;

/// Commands of a parallel batch in flight at once.
const BATCH_CONCURRENCY: usize = 64;

/// `batch` request: `{"commands":[{"publish":{…}}, …], "parallel": bool}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BatchRequest {
    #[serde(deserialize_with = "nullable")]
    commands: Vec<BTreeMap<String, Option<Box<RawValue>>>>,
    #[serde(deserialize_with = "nullable")]
    parallel: bool,
}

/// One reply: `{"<method>": result}` or `{"error": {…}}`.
struct BatchReply(Result<(Method, Box<RawValue>), ApiError>);

impl Serialize for BatchReply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match &self.0 {
            Ok((method, result)) => map.serialize_entry(method.name(), result)?,
            Err(e) => map.serialize_entry("error", &e.body())?,
        }
        map.end()
    }
}

#[derive(Serialize)]
struct BatchResult {
    replies: Vec<BatchReply>,
}

/// Runs the commands (concurrently when `parallel`); replies keep the command order. More
/// than `http_api.batch_max_commands` commands are refused whole (106); once the replies pass
/// `http_api.batch_max_reply_size` bytes, the commands not started yet answer 106.
pub async fn batch(node: &Node, req: BatchRequest) -> ApiResult {
    let limits = node.config().api;
    if req.commands.len() > limits.batch_max_commands {
        return Err(ApiError::Node(ErrorCode::LimitExceeded));
    }
    let concurrency = if req.parallel { BATCH_CONCURRENCY } else { 1 };
    let budget = ReplyBudget::new(limits.batch_max_reply_size);
    let replies = stream::iter(req.commands.into_iter().map(resolve))
        .map(|command| run(node, command, &budget))
        .buffered(concurrency)
        .collect()
        .await;
    encode(&BatchResult { replies })
}

/// Bytes of replies a multi-command call may still produce.
#[derive(Debug)]
pub struct ReplyBudget {
    used: AtomicUsize,
    max: usize,
}

impl ReplyBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        ReplyBudget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Whether the replies so far passed the budget.
    pub fn spent(&self) -> bool {
        self.used.load(Ordering::Relaxed) > self.max
    }

    /// Counts one reply of `bytes`.
    pub fn charge(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// The command's method is its first key (in [`Method::ALL`] order) naming a method with a
/// non-null value; none, or `batch`, answers 104.
fn resolve(
    mut command: BTreeMap<String, Option<Box<RawValue>>>,
) -> Result<(Method, Box<RawValue>), ApiError> {
    let found = Method::ALL
        .into_iter()
        .find_map(|m| command.remove(m.name()).flatten().map(|p| (m, p)));
    match found {
        Some((Method::Batch, _)) | None => Err(ApiError::MethodNotFound),
        Some(found) => Ok(found),
    }
}

async fn run(
    node: &Node,
    command: Result<(Method, Box<RawValue>), ApiError>,
    budget: &ReplyBudget,
) -> BatchReply {
    if budget.spent() {
        return BatchReply(Err(ApiError::Node(ErrorCode::LimitExceeded)));
    }
    let outcome = match command {
        Ok((method, params)) => call(node, method, Some(&params))
            .await
            .map(|result| (method, result)),
        Err(e) => Err(e),
    };
    if let Ok((_, result)) = &outcome {
        budget.charge(result.get().len());
    }
    BatchReply(outcome)
}
