//! `info`.

use pushwire_core::node::NodeInfo;
use pushwire_core::Node;
use serde::Serialize;

use super::reply::{encode, ApiResult};

/// `info` result: every live node of the cluster.
#[derive(Debug, Serialize)]
struct InfoResult {
    nodes: Vec<NodeInfo>,
}

/// Numbers of every live node (this one fresh, the others as last announced):
/// `{"nodes":[{…}]}`.
pub fn info(node: &Node) -> ApiResult {
    encode(&InfoResult {
        nodes: node.cluster_info(),
    })
}
