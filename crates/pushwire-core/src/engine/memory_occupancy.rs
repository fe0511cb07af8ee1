//! [`MemoryOccupancy`]: channel occupancy of a single node.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{ChannelOccupancy, EngineError};

/// Occupancy in process memory (one node: nothing is ever lost to another node's death).
#[derive(Debug, Default)]
pub struct MemoryOccupancy {
    channels: Mutex<HashMap<String, HashSet<String>>>,
}

#[async_trait]
impl ChannelOccupancy for MemoryOccupancy {
    async fn occupy(&self, channel: &str, node: &str) -> Result<bool, EngineError> {
        let mut channels = self.channels.lock();
        let nodes = channels.entry(channel.to_owned()).or_default();
        Ok(nodes.insert(node.to_owned()) && nodes.len() == 1)
    }

    async fn vacate(&self, channel: &str, node: &str) -> Result<bool, EngineError> {
        let mut channels = self.channels.lock();
        let Some(nodes) = channels.get_mut(channel) else {
            return Ok(false);
        };
        let removed = nodes.remove(node);
        let empty = nodes.is_empty();
        if empty {
            channels.remove(channel);
        }
        Ok(removed && empty)
    }

    async fn heartbeat(&self, _node: &str) -> Result<(), EngineError> {
        Ok(())
    }

    async fn sweep(&self, _ttl_ms: u64) -> Result<Vec<(String, Vec<String>)>, EngineError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_and_last_node_transitions() {
        let o = MemoryOccupancy::default();
        assert!(o.occupy("c", "a").await.unwrap());
        assert!(!o.occupy("c", "b").await.unwrap());
        assert!(!o.occupy("c", "a").await.unwrap(), "already there");
        assert!(!o.vacate("c", "a").await.unwrap());
        assert!(o.vacate("c", "b").await.unwrap());
        assert!(!o.vacate("c", "b").await.unwrap(), "already vacant");
    }
}
