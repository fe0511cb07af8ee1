//! The presence contract.

use std::collections::HashMap;

use async_trait::async_trait;
use pushwire_protocol::ClientInfo;

use super::EngineError;

/// Connection and user counts of a channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceStats {
    /// Connections present.
    pub num_clients: u32,
    /// Distinct users present.
    pub num_users: u32,
}

/// Who is in a channel. Entries of a closed connection are removed at once; backends shared
/// between nodes also expire entries that stop being refreshed (a crashed node).
#[async_trait]
pub trait PresenceManager: Send + Sync + 'static {
    /// Adds or refreshes `client` in `channel`.
    async fn add(&self, channel: &str, info: ClientInfo) -> Result<(), EngineError>;
    /// Removes `client` from `channel`.
    async fn remove(&self, channel: &str, client: &str) -> Result<(), EngineError>;
    /// Entries keyed by client id.
    async fn presence(&self, channel: &str) -> Result<HashMap<String, ClientInfo>, EngineError>;
    /// Counts.
    async fn stats(&self, channel: &str) -> Result<PresenceStats, EngineError>;
}
