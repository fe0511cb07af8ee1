//! The channel occupancy contract: which nodes hold subscribers of a channel, so the first
//! subscriber anywhere (`channel_occupied`) and the last one anywhere (`channel_vacated`) are
//! known cluster-wide, also when a node dies.

use async_trait::async_trait;

use super::EngineError;

/// Per channel, the set of nodes with subscribers; per node, a heartbeat. Every method is
/// atomic in the backend, so of two nodes racing only one sees a transition.
#[async_trait]
pub trait ChannelOccupancy: Send + Sync + 'static {
    /// Node `node` now has subscribers in `channel`. True when no node had any before (the
    /// channel became occupied).
    async fn occupy(&self, channel: &str, node: &str) -> Result<bool, EngineError>;
    /// Node `node` has no subscriber left in `channel`. True when no node has any now (the
    /// channel became vacant).
    async fn vacate(&self, channel: &str, node: &str) -> Result<bool, EngineError>;
    /// Records that `node` is alive now.
    async fn heartbeat(&self, node: &str) -> Result<(), EngineError>;
    /// Nodes whose last heartbeat is older than `ttl_ms`, removed with everything they
    /// occupied: per lost node, the channels that became vacant. A node is reported once,
    /// to the one caller whose removal took it.
    async fn sweep(&self, ttl_ms: u64) -> Result<Vec<(String, Vec<String>)>, EngineError>;
}
