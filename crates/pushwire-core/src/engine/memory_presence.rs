//! In-memory presence for a single node.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use parking_lot::Mutex;
use pushwire_protocol::ClientInfo;

use super::{EngineError, PresenceManager, PresenceStats};

/// Presence kept in this process; entries live until removed.
#[derive(Debug, Default)]
pub struct MemoryPresence {
    channels: Mutex<HashMap<String, HashMap<String, ClientInfo>>>,
}

impl MemoryPresence {
    /// Empty presence.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of channels with presence entries (for tests and metrics).
    pub fn num_channels(&self) -> usize {
        self.channels.lock().len()
    }
}

#[async_trait]
impl PresenceManager for MemoryPresence {
    async fn add(&self, channel: &str, info: ClientInfo) -> Result<(), EngineError> {
        self.channels
            .lock()
            .entry(channel.to_owned())
            .or_default()
            .insert(info.client.clone(), info);
        Ok(())
    }

    async fn remove(&self, channel: &str, client: &str) -> Result<(), EngineError> {
        let mut channels = self.channels.lock();
        if let Some(entries) = channels.get_mut(channel) {
            entries.remove(client);
            if entries.is_empty() {
                channels.remove(channel);
            }
        }
        Ok(())
    }

    async fn presence(&self, channel: &str) -> Result<HashMap<String, ClientInfo>, EngineError> {
        Ok(self
            .channels
            .lock()
            .get(channel)
            .cloned()
            .unwrap_or_default())
    }

    async fn stats(&self, channel: &str) -> Result<PresenceStats, EngineError> {
        let channels = self.channels.lock();
        let Some(entries) = channels.get(channel) else {
            return Ok(PresenceStats::default());
        };
        let users: HashSet<&str> = entries.values().map(|i| i.user.as_str()).collect();
        Ok(PresenceStats {
            num_clients: entries.len() as u32,
            num_users: users.len() as u32,
        })
    }
}
