//! `info`.

use pushwire_core::node::NodeInfo;
use pushwire_core::Node;
use serde::Serialize;

use super::reply::{encode, ApiResult};

/// `info` result: this node only (no cluster yet).
#[derive(Debug, Serialize)]
struct InfoResult {
    nodes: Vec<NodeInfo>,
}

/// Node numbers: `{"nodes":[{…}]}`.
pub fn info(node: &Node) -> ApiResult {
    encode(&InfoResult {
        nodes: vec![node.info()],
    })
}
