//! The other live nodes, as their announcements said; a node silent for `node.info_ttl` is
//! gone.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::node::NodeInfo;

/// Other nodes by uid with their last announcement.
#[derive(Debug)]
pub struct Peers {
    ttl: Duration,
    nodes: Mutex<HashMap<String, (NodeInfo, Instant)>>,
}

impl Peers {
    /// Peers forgotten `ttl` after their last announcement.
    pub fn new(ttl: Duration) -> Peers {
        Peers {
            ttl,
            nodes: Mutex::new(HashMap::new()),
        }
    }

    /// Records an announcement; true when the node was not known.
    pub fn update(&self, info: NodeInfo) -> bool {
        let uid = info.uid.clone();
        self.nodes
            .lock()
            .insert(uid, (info, Instant::now()))
            .is_none()
    }

    /// Forgets a node (it left). True when it was known.
    pub fn remove(&self, uid: &str) -> bool {
        self.nodes.lock().remove(uid).is_some()
    }

    /// Drops the nodes not heard from within the TTL; returns their uids.
    pub fn prune(&self) -> Vec<String> {
        let now = Instant::now();
        let mut gone = Vec::new();
        self.nodes.lock().retain(|uid, (_, seen)| {
            let live = now.duration_since(*seen) < self.ttl;
            if !live {
                gone.push(uid.clone());
            }
            live
        });
        gone
    }

    /// The live nodes' last announcements.
    pub fn live(&self) -> Vec<NodeInfo> {
        let now = Instant::now();
        self.nodes
            .lock()
            .values()
            .filter(|(_, seen)| now.duration_since(*seen) < self.ttl)
            .map(|(info, _)| info.clone())
            .collect()
    }

    /// Uids of the live nodes.
    pub fn live_ids(&self) -> Vec<String> {
        self.live().into_iter().map(|i| i.uid).collect()
    }

    /// Whether `uid` is a live node.
    pub fn is_live(&self, uid: &str) -> bool {
        let now = Instant::now();
        self.nodes
            .lock()
            .get(uid)
            .is_some_and(|(_, seen)| now.duration_since(*seen) < self.ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(uid: &str) -> NodeInfo {
        NodeInfo {
            uid: uid.into(),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn announcements_expire_after_the_ttl() {
        let peers = Peers::new(Duration::from_secs(10));
        assert!(peers.update(info("a")));
        assert!(!peers.update(info("a")));
        tokio::time::advance(Duration::from_secs(6)).await;
        peers.update(info("b"));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!peers.is_live("a"));
        assert!(peers.is_live("b"));
        assert_eq!(peers.live_ids(), vec!["b".to_owned()]);
        assert_eq!(peers.prune(), vec!["a".to_owned()]);
        assert!(peers.remove("b"));
        assert!(peers.live().is_empty());
    }
}
