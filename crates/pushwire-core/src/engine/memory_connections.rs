//! [`MemoryUserConnections`]: per-user connection counts of one node.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{EngineError, UserConnections};

/// Connection counts in process memory (a single node is the whole cluster).
#[derive(Debug, Default)]
pub struct MemoryUserConnections {
    users: Mutex<HashMap<String, HashSet<String>>>,
}

#[async_trait]
impl UserConnections for MemoryUserConnections {
    async fn try_add(&self, user: &str, client: &str, limit: usize) -> Result<bool, EngineError> {
        let mut users = self.users.lock();
        let clients = users.entry(user.to_owned()).or_default();
        if limit > 0 && !clients.contains(client) && clients.len() >= limit {
            if clients.is_empty() {
                users.remove(user);
            }
            return Ok(false);
        }
        clients.insert(client.to_owned());
        Ok(true)
    }

    async fn remove(&self, user: &str, client: &str) -> Result<(), EngineError> {
        let mut users = self.users.lock();
        if let Some(clients) = users.get_mut(user) {
            clients.remove(client);
            if clients.is_empty() {
                users.remove(user);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_beyond_the_limit_and_frees_on_remove() {
        let c = MemoryUserConnections::default();
        assert!(c.try_add("u", "a", 2).await.unwrap());
        assert!(c.try_add("u", "b", 2).await.unwrap());
        assert!(!c.try_add("u", "c", 2).await.unwrap());
        assert!(
            c.try_add("u", "a", 2).await.unwrap(),
            "a re-add is no new connection"
        );
        assert!(c.try_add("v", "c", 2).await.unwrap(), "limits are per user");
        c.remove("u", "a").await.unwrap();
        assert!(c.try_add("u", "c", 2).await.unwrap());
        assert!(c.try_add("w", "x", 0).await.unwrap());
    }
}
